// A process-wide "please stop" flag with an interruptible wait, shared by the signal thread
// (which calls RequestStop) and the engines (which poll stopped() or WaitFor between retries).
// Thread-safe.
#pragma once

#include <chrono>

#include "absl/synchronization/mutex.h"

namespace kvsync::common {

class StopToken {
 public:
  void RequestStop();
  bool stopped() const;
  // Sleeps up to `d`; returns true early (and at once) when a stop was requested.
  bool WaitFor(std::chrono::milliseconds d) const;

 private:
  mutable absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kvsync::common
