#include "common/backoff.h"

#include <algorithm>

namespace kvsync::common {

Backoff::Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max)
    : initial_(initial), max_(max), rng_(std::random_device{}()) {}

std::chrono::milliseconds Backoff::Next() {
  // Doubling stops once the cap is reached, so the shift never overflows.
  int64_t delay = initial_.count();
  for (int i = 0; i < attempt_ && delay < max_.count(); ++i) delay *= 2;
  delay = std::min<int64_t>(delay, max_.count());
  ++attempt_;
  std::uniform_int_distribution<int64_t> dist(delay / 2, delay);
  return std::chrono::milliseconds(dist(rng_));
}

}  // namespace kvsync::common
