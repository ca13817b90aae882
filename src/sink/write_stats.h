// What every sync task shares, whatever its source: its lifecycle phase, its role, and the
// counters of its destination writes. mirror::Stats extends it with the etcd2etcd engine's own
// state; zk2etcd::Stats holds one. All atomics; written by the engine threads and read by the
// metrics exporter, /status and the progress log from any thread.
#pragma once

#include <atomic>
#include <cstdint>

#include "etcd/retry.h"

namespace kvsync::metrics {
class Histogram;
}  // namespace kvsync::metrics

namespace kvsync::sink {

enum class Phase { kStarting = 0, kFullSync = 1, kIncremental = 2, kStopped = 3 };
const char* PhaseName(Phase phase);  // "starting", "full-sync", "incremental", "stopped"

struct WriteStats {
  std::atomic<int> phase{static_cast<int>(Phase::kStarting)};
  // Role (HA): 1 while this instance leads (always 1 without --ha).
  std::atomic<int> leading{0};
  std::atomic<int64_t> leadership_changes{0};
  std::atomic<int64_t> fencing_rejections{0};
  // Wall time (ms since epoch) when the oldest source change not yet written was received;
  // 0 when caught up.
  std::atomic<int64_t> oldest_pending_ms{0};
  // Destination writes (counted by TxnWriter) and transient failures retried.
  std::atomic<int64_t> puts{0};
  std::atomic<int64_t> deletes{0};
  std::atomic<int64_t> txns{0};
  etcd::RetryCounters retries;
  // Chained txns (CommitPipeline): in flight now, and sent again because they reached the
  // destination before the txn they follow (or to settle an ambiguous attempt).
  std::atomic<int64_t> txns_inflight{0};
  std::atomic<int64_t> txn_resends{0};
  // Full syncs started and the duration of the last completed one.
  std::atomic<int64_t> full_syncs{0};
  std::atomic<int64_t> last_full_sync_ms{0};
  // Errors that ended a term or the task, by bounded reason.
  std::atomic<int64_t> errors_fenced{0};
  std::atomic<int64_t> errors_unavailable{0};
  std::atomic<int64_t> errors_other{0};
  // Optional: destination txn latency (set before the engine starts; not owned).
  metrics::Histogram* txn_latency = nullptr;
};

// Seconds since the oldest change received and not yet written (0 when caught up).
double PendingLagSeconds(const WriteStats& stats);

}  // namespace kvsync::sink
