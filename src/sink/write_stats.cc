#include "sink/write_stats.h"

#include "common/clock.h"

namespace kvsync::sink {

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

double PendingLagSeconds(const WriteStats& s) {
  int64_t pending = s.oldest_pending_ms.load();
  if (pending <= 0) return 0.0;
  int64_t now = common::WallMs();
  return now > pending ? static_cast<double>(now - pending) / 1000.0 : 0.0;
}

}  // namespace kvsync::sink
