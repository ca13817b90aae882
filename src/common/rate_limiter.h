// Keeps a stream of work under `rate` units per second (e.g. keys read by a consistency check,
// so that it never disturbs the primary). Acquire(n) waits until n more units fit the budget;
// bursts are bounded by one second of budget. Thread-safe; a rate <= 0 means unlimited.
#pragma once

#include <chrono>
#include <cstdint>

#include "absl/synchronization/mutex.h"
#include "common/stop_token.h"

namespace kvsync::common {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit RateLimiter(double rate) : rate_(rate) {}

  // Takes n units; returns how long the caller must wait before using them (zero when within
  // budget). Exposed with an explicit clock for tests.
  std::chrono::microseconds Reserve(int64_t n, Clock::time_point now);
  // Reserve(n, now) and wait for it; returns false when `stop` was requested meanwhile.
  bool Acquire(int64_t n, const StopToken* stop);

 private:
  const double rate_;
  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  Clock::time_point next_free_ ABSL_GUARDED_BY(mu_);  // when the budget is used up
};

}  // namespace kvsync::common
