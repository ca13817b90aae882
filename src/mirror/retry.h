// Retry loop for etcd calls: transient failures (IsTransient) are retried with capped,
// jittered backoff until they succeed or a stop is requested; other errors return at once.
// The first failure of a series is logged; the rest are only counted. Any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <string>

#include "absl/status/status.h"
#include "common/backoff.h"
#include "common/stop_token.h"
#include "etcd/types.h"
#include "log/log.h"
#include "mirror/stats.h"

namespace kvsync::mirror {

template <typename F>
auto RetryTransient(const common::StopToken& stop, const std::string& what, RetryCounters* retries,
                    F&& f) -> decltype(f()) {
  common::Backoff backoff(std::chrono::milliseconds(100), std::chrono::milliseconds(5000));
  while (true) {
    auto result = f();
    if (result.ok()) {
      if (backoff.attempt() > 0) log::Info("mirror", "recovered", {{"op", what}});
      return result;
    }
    absl::Status status = result.status();
    if (!etcd::IsTransient(status) || etcd::IsCompacted(status)) return result;
    if (backoff.attempt() == 0) {
      log::Warn("mirror", "transient failure, retrying", {{"op", what}, {"error", status}});
    }
    if (retries) retries->Count(status);
    if (stop.WaitFor(backoff.Next())) return absl::CancelledError("stop requested");
  }
}

}  // namespace kvsync::mirror
