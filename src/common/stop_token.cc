#include "common/stop_token.h"

#include <utility>

#include "absl/time/time.h"

namespace kvsync::common {

void StopToken::RequestStop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  // Each callback runs outside the lock (it may stop other tokens), one at a time; a
  // StopCallback destroyed meanwhile on another thread is either unregistered before it runs
  // or waits until it has run.
  while (true) {
    StopCallback* cb;
    {
      absl::MutexLock lock(&mu_);
      running_ = nullptr;
      if (callbacks_.empty()) return;
      cb = callbacks_.front();
      callbacks_.pop_front();
      cb->registered_ = false;
      running_ = cb;
    }
    cb->fn_();
  }
}

bool StopToken::stopped() const {
  absl::MutexLock lock(&mu_);
  return stopped_;
}

bool StopToken::WaitFor(std::chrono::milliseconds d) const {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stopped_), absl::FromChrono(d));
  return stopped_;
}

StopCallback::StopCallback(const StopToken& token, std::function<void()> fn)
    : token_(token), fn_(std::move(fn)) {
  {
    absl::MutexLock lock(&token_.mu_);
    if (!token_.stopped_) {
      position_ = token_.callbacks_.insert(token_.callbacks_.end(), this);
      registered_ = true;
      return;
    }
  }
  fn_();  // already stopped: run at once, on this thread
}

StopCallback::~StopCallback() {
  absl::MutexLock lock(&token_.mu_);
  if (registered_) {
    token_.callbacks_.erase(position_);
    registered_ = false;
    return;
  }
  // Running on RequestStop()'s thread right now: wait until it has returned.
  auto done = [this]()
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(token_.mu_) { return token_.running_ != this; };
  token_.mu_.Await(absl::Condition(&done));
}

}  // namespace kvsync::common
