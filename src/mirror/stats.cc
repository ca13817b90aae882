#include "mirror/stats.h"

#include <algorithm>
#include <string_view>

#include "etcd/types.h"

namespace kvsync::mirror {

void HeadTracker::Observe(int64_t head, int64_t now_ms, int64_t applied) {
  last_observed_ms_.store(now_ms);
  absl::MutexLock lock(&mu_);
  last_head_ = {head, now_ms};
  if (head <= applied) {
    fresh_ms_ = std::max(fresh_ms_, now_ms);
  } else if (!recent_.empty() && recent_.back().first == head) {
    recent_.back().second = now_ms;  // seen again: still current
  } else if (recent_.empty() || recent_.back().first < head) {
    if (recent_.size() == kMaxSamples) recent_.pop_front();
    recent_.emplace_back(head, now_ms);
  }
  while (!samples_.empty() && samples_.front().first <= applied) samples_.pop_front();
  if (head <= applied) return;
  if (!samples_.empty() && head <= samples_.back().first) return;
  if (samples_.size() == kMaxSamples) {
    // Keep the oldest first-seen times (they define the lag); widen the newest sample.
    samples_.back().first = head;
    return;
  }
  samples_.emplace_back(head, now_ms);
}

void HeadTracker::Reset() {
  last_observed_ms_.store(0);
  absl::MutexLock lock(&mu_);
  samples_.clear();
  recent_.clear();
  fresh_ms_ = 0;
  last_head_ = {0, 0};
}

int64_t HeadTracker::FreshAsOf(int64_t applied) {
  absl::MutexLock lock(&mu_);
  while (!recent_.empty() && recent_.front().first <= applied) {
    fresh_ms_ = std::max(fresh_ms_, recent_.front().second);
    recent_.pop_front();
  }
  return fresh_ms_;
}

std::pair<int64_t, int64_t> HeadTracker::LastHead() const {
  absl::MutexLock lock(&mu_);
  return last_head_;
}

double HeadTracker::BehindSeconds(int64_t applied, int64_t now_ms) const {
  absl::MutexLock lock(&mu_);
  for (const auto& [head, seen] : samples_) {
    if (head > applied) return now_ms > seen ? static_cast<double>(now_ms - seen) / 1000.0 : 0.0;
  }
  return 0.0;
}

Refusal RefusalOf(const absl::Status& status) {
  std::string_view reason = etcd::RefusalReason(status);
  if (reason == "permission_denied") return Refusal::kPermissionDenied;
  if (reason == "auth") return Refusal::kAuth;
  if (reason == "watch_canceled") return Refusal::kWatchCanceled;
  return Refusal::kNone;
}

const char* RefusalName(Refusal refusal) {
  switch (refusal) {
    case Refusal::kNone:
      return "none";
    case Refusal::kPermissionDenied:
      return "permission_denied";
    case Refusal::kAuth:
      return "auth";
    case Refusal::kWatchCanceled:
      return "watch_canceled";
  }
  return "unknown";
}

}  // namespace kvsync::mirror
