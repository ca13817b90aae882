// The clock the runtime's timers read. Production code uses SystemClock(); unit tests inject a
// FakeClock and drive time by hand, so code that waits for "five seconds of silence" is tested
// without waiting. Steady time is for deadlines and durations; WallMs for "when was this
// observed" (metrics, logs, checkpoints).
//
// Thread-safety: every member may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace kvsync::runtime {

class Clock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
  // Milliseconds since the Unix epoch.
  virtual int64_t WallMs() const = 0;
};

// The process's real clocks (steady_clock and system_clock). Never destroyed.
const Clock* SystemClock();

// Starts at an arbitrary fixed point; moves only when Advance() is called.
class FakeClock : public Clock {
 public:
  TimePoint Now() const override { return TimePoint(std::chrono::nanoseconds(now_ns_.load())); }
  int64_t WallMs() const override { return kWallEpochMs + now_ns_.load() / 1000000; }
  void Advance(std::chrono::nanoseconds d) { now_ns_.fetch_add(d.count()); }

 private:
  // 2026-01-01T00:00:00Z: any fixed, plausible wall time.
  static constexpr int64_t kWallEpochMs = 1767225600000;
  std::atomic<int64_t> now_ns_{1000000000};
};

}  // namespace kvsync::runtime
