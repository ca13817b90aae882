// Retry loop for etcd calls: transient failures (IsTransient) are retried with capped,
// jittered backoff until they succeed or a stop is requested; other errors return at once.
// The first failure of a series and every new kind of failure in it are logged; repeats are
// only counted. Any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <string>

#include "absl/status/status.h"
#include "common/backoff.h"
#include "common/error_series.h"
#include "common/stop_token.h"
#include "etcd/types.h"
#include "log/log.h"

namespace kvsync::etcd {

// Retries of transient failures by bounded reason (exported as metrics by the engines).
struct RetryCounters {
  std::atomic<int64_t> unavailable{0};
  std::atomic<int64_t> deadline{0};
  std::atomic<int64_t> other{0};
  void Count(const absl::Status& status) {
    switch (status.code()) {
      case absl::StatusCode::kUnavailable:
        unavailable.fetch_add(1, std::memory_order_relaxed);
        break;
      case absl::StatusCode::kDeadlineExceeded:
        deadline.fetch_add(1, std::memory_order_relaxed);
        break;
      default:
        other.fetch_add(1, std::memory_order_relaxed);
    }
  }
  int64_t total() const { return unavailable.load() + deadline.load() + other.load(); }
};

template <typename F>
auto RetryTransient(const common::StopToken& stop, const std::string& what, RetryCounters* retries,
                    F&& f) -> decltype(f()) {
  common::Backoff backoff(std::chrono::milliseconds(100), std::chrono::milliseconds(5000));
  common::ErrorSeries series;
  while (true) {
    auto result = f();
    if (result.ok()) {
      if (backoff.attempt() > 0) log::Info("etcd", "recovered", {{"op", what}});
      return result;
    }
    absl::Status status = result.status();
    if (!IsTransient(status) || IsCompacted(status)) return result;
    if (series.IsNew(status)) {
      log::Warn("etcd", "transient failure, retrying",
                {{"op", what}, {"error", status}, {"attempt", backoff.attempt() + 1}});
    }
    if (retries) retries->Count(status);
    if (stop.WaitFor(backoff.Next())) return absl::CancelledError("stop requested");
  }
}

}  // namespace kvsync::etcd
