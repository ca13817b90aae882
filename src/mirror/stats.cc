#include "mirror/stats.h"

namespace kvsync::mirror {

void RetryCounters::Count(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
      unavailable.fetch_add(1, std::memory_order_relaxed);
      break;
    case absl::StatusCode::kDeadlineExceeded:
      deadline.fetch_add(1, std::memory_order_relaxed);
      break;
    default:
      other.fetch_add(1, std::memory_order_relaxed);
  }
}

const char* PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kStarting:
      return "starting";
    case Phase::kFullSync:
      return "full-sync";
    case Phase::kIncremental:
      return "incremental";
    case Phase::kStopped:
      return "stopped";
  }
  return "unknown";
}

}  // namespace kvsync::mirror
