// Live counters of a mirror task, written by the engine threads and read by the status printer
// (and later the metrics exporter). All fields are atomics; any thread.
#pragma once

#include <atomic>
#include <cstdint>

#include "absl/status/status.h"
#include "etcd/retry.h"

namespace kvsync::metrics {
class Histogram;
}  // namespace kvsync::metrics

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
  etcd::RetryCounters retries;
  std::atomic<int64_t> split_revisions{0};
  std::atomic<int64_t> watch_restarts{0};
  std::atomic<int64_t> full_syncs{0};
  std::atomic<int64_t> fast_path_resumes{0};
  // Progress of the current full sync.
  std::atomic<int64_t> full_sync_scanned{0};
  std::atomic<int64_t> full_sync_written{0};
  std::atomic<int64_t> last_full_sync_ms{0};         // duration of the last full sync
  std::atomic<int64_t> last_checkpoint_write_ms{0};  // wall time of the last checkpoint write
  // Role (HA): 1 while this instance leads (always 1 without --ha).
  std::atomic<int> leading{0};
  std::atomic<int64_t> leadership_changes{0};
  std::atomic<int64_t> fencing_rejections{0};
  // Errors that ended a term or the task, by bounded reason.
  std::atomic<int64_t> errors_fenced{0};
  std::atomic<int64_t> errors_unavailable{0};
  std::atomic<int64_t> errors_other{0};
  // Continuous checks (--check-interval): confirmed differences of the last check.
  std::atomic<int64_t> check_dst_miss{0};
  std::atomic<int64_t> check_src_miss{0};
  std::atomic<int64_t> check_mismatch{0};
  std::atomic<int64_t> check_last_ms{0};  // wall time of the last completed check
  std::atomic<int64_t> check_duration_ms{0};
  std::atomic<int64_t> checks_full{0};
  std::atomic<int64_t> checks_presence{0};
  std::atomic<int64_t> check_repairs{0};
  // Optional: destination txn latency (set before the engine starts; not owned).
  metrics::Histogram* txn_latency = nullptr;
};

const char* PhaseName(Phase phase);

}  // namespace kvsync::mirror
