#include "mirror/stats.h"

namespace kvsync::mirror {

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
