#include "common/stop_token.h"

#include "absl/time/time.h"

namespace kvsync::common {

void StopToken::RequestStop() {
  absl::MutexLock lock(&mu_);
  stopped_ = true;
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

}  // namespace kvsync::common
