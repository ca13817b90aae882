// Cancellation. A StopToken is a "please stop" flag with an interruptible wait; RequestStop()
// sets it once and runs the callbacks registered on it. A StopCallback registers one callback
// for as long as it lives (as std::stop_callback): that is how cancellation composes, a term's
// token stopped by the process token and by a lost lease, or a gRPC call cancelled by a token,
// without a thread polling one token to forward it to another.
//
// Thread-safety: every member of both classes may be called from any thread. A callback runs
// exactly once: on the thread that calls RequestStop(), or at once in the StopCallback
// constructor when the token is already stopped. Callbacks must be quick and must not destroy
// their own StopCallback; a StopCallback must be destroyed before its token. The destructor of a
// StopCallback whose callback is running on another thread waits for it to return.
#pragma once

#include <chrono>
#include <functional>
#include <list>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace kvsync::common {

class StopCallback;

class StopToken {
 public:
  StopToken() = default;
  StopToken(const StopToken&) = delete;
  StopToken& operator=(const StopToken&) = delete;

  // Sets the flag (idempotent) and, the first time, runs every registered callback.
  void RequestStop();
  bool stopped() const;
  // Sleeps up to `d`; returns true early (and at once) when a stop was requested.
  bool WaitFor(std::chrono::milliseconds d) const;

 private:
  friend class StopCallback;

  mutable absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  // Registered and not yet run; registration does not change the token's observable state,
  // hence mutable (callers hold tokens as const StopToken*).
  mutable std::list<StopCallback*> callbacks_ ABSL_GUARDED_BY(mu_);
  // The callback RequestStop() is running right now (outside the lock), or nullptr.
  mutable const StopCallback* running_ ABSL_GUARDED_BY(mu_) = nullptr;
};

class StopCallback {
 public:
  StopCallback(const StopToken& token, std::function<void()> fn);
  ~StopCallback();
  StopCallback(const StopCallback&) = delete;
  StopCallback& operator=(const StopCallback&) = delete;

 private:
  friend class StopToken;

  const StopToken& token_;
  std::function<void()> fn_;
  bool registered_ = false;  // guarded by token_.mu_
  std::list<StopCallback*>::iterator position_;
};

}  // namespace kvsync::common
