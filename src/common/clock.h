// Wall-clock time as the milliseconds since the Unix epoch that Stats fields, metrics and
// logs carry ("when was this observed"). Durations and deadlines use std::chrono::steady_clock
// directly. Any thread.
#pragma once

#include <chrono>
#include <cstdint>

namespace kvsync::common {

inline int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace kvsync::common
