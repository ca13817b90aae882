#include "common/rate_limiter.h"

namespace kvsync::common {

std::chrono::microseconds RateLimiter::Reserve(int64_t n, Clock::time_point now) {
  if (rate_ <= 0 || n <= 0) return std::chrono::microseconds(0);
  absl::MutexLock lock(&mu_);
  // Unused budget older than one second is forgotten, which bounds bursts.
  if (!started_ || next_free_ < now - std::chrono::seconds(1)) {
    next_free_ = now - std::chrono::seconds(1);
    started_ = true;
  }
  next_free_ +=
      std::chrono::microseconds(static_cast<int64_t>(1e6 * static_cast<double>(n) / rate_));
  auto wait = std::chrono::duration_cast<std::chrono::microseconds>(next_free_ - now);
  return wait.count() > 0 ? wait : std::chrono::microseconds(0);
}

bool RateLimiter::Acquire(int64_t n, const StopToken* stop) {
  auto wait = Reserve(n, Clock::now());
  if (wait.count() == 0) return true;
  return !stop->WaitFor(std::chrono::duration_cast<std::chrono::milliseconds>(wait) +
                        std::chrono::milliseconds(1));
}

}  // namespace kvsync::common
