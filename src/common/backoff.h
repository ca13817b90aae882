// Capped exponential backoff with full jitter, for retrying transient faults.
// One Backoff per retry loop; not thread-safe. Next() returns the delay before the next attempt;
// Reset() after a success. Delays grow initial * 2^n up to `max`, each drawn uniformly from
// [delay/2, delay] so that many replicas retrying together spread out.
#pragma once

#include <chrono>
#include <random>

namespace kvsync::common {

class Backoff {
 public:
  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max);

  std::chrono::milliseconds Next();
  void Reset() { attempt_ = 0; }
  int attempt() const { return attempt_; }

 private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  int attempt_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace kvsync::common
