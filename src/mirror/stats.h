// Live counters of a mirror task, written by the engine threads and read by the status printer
// (and later the metrics exporter). All fields are atomics; any thread.
#pragma once

#include <atomic>
#include <cstdint>

namespace kvsync::mirror {

enum class Phase { kStarting = 0, kFullSync = 1, kIncremental = 2, kStopped = 3 };

struct Stats {
  std::atomic<int> phase{static_cast<int>(Phase::kStarting)};
  std::atomic<int64_t> last_synced_revision{0};
  std::atomic<int64_t> source_head_revision{0};
  // Wall time (ms since epoch) when the oldest not-yet-applied source change was received;
  // 0 when caught up.
  std::atomic<int64_t> oldest_pending_ms{0};
  std::atomic<int64_t> events_applied{0};
  std::atomic<int64_t> puts{0};
  std::atomic<int64_t> deletes{0};
  std::atomic<int64_t> txns{0};
  std::atomic<int64_t> retries{0};
  std::atomic<int64_t> split_revisions{0};
  std::atomic<int64_t> watch_restarts{0};
  std::atomic<int64_t> full_syncs{0};
  std::atomic<int64_t> fast_path_resumes{0};
  // Progress of the current full sync.
  std::atomic<int64_t> full_sync_scanned{0};
  std::atomic<int64_t> full_sync_written{0};
};

const char* PhaseName(Phase phase);

}  // namespace kvsync::mirror
