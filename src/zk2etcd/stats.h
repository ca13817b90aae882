// Live counters of a zk2etcd task, written by the engine threads and read by the metrics
// exporter, /status and the progress log. The parts every task shares (role, txns, puts,
// deletes, retries, errors, full syncs, lag) are a sink::WriteStats. All atomics (the parity board
// has its own lock); any thread.
#pragma once

#include <atomic>
#include <cstdint>

#include "sink/write_stats.h"
#include "zk2etcd/ephemeral_lease.h"
#include "zk2etcd/parity.h"

namespace kvsync::metrics {
class Histogram;
}  // namespace kvsync::metrics

namespace kvsync::zk2etcd {

struct Stats {
  sink::WriteStats common;
  // zk::SessionState as an int (0 connecting, 1 connected, 2 expired, 3 auth failed, 4 closed).
  std::atomic<int> session_state{0};
  std::atomic<int64_t> session_id{0};
  std::atomic<int64_t> session_expirations{0};
  std::atomic<int64_t> reconnects{0};
  std::atomic<int64_t> znodes_watched{0};
  std::atomic<int64_t> zk_get_data{0};
  std::atomic<int64_t> zk_get_children{0};
  std::atomic<int64_t> zk_errors{0};
  std::atomic<int64_t> events_created{0};
  std::atomic<int64_t> events_deleted{0};
  std::atomic<int64_t> events_data{0};
  std::atomic<int64_t> events_children{0};
  // Full-sync differences found (every round) and fixed, by kind.
  std::atomic<int64_t> found_dst_miss{0};
  std::atomic<int64_t> found_src_miss{0};
  std::atomic<int64_t> found_mismatch{0};
  std::atomic<int64_t> fixed_dst_miss{0};
  std::atomic<int64_t> fixed_src_miss{0};
  std::atomic<int64_t> fixed_mismatch{0};
  std::atomic<int64_t> full_sync_walked{0};  // znodes walked by the current full sync
  // Znodes read that were the etcd2zk direction's copies (skipped), and etcd reads made to
  // tell (reverse_sessions.h).
  std::atomic<int64_t> reverse_skipped{0};
  std::atomic<int64_t> reverse_lookups{0};
  // Keys kvsync left alone because another writer owns them.
  std::atomic<int64_t> unowned_skipped{0};
  // Deletes waiting for the ownership store (Redis down); repairs paused meanwhile.
  std::atomic<int64_t> deletes_deferred{0};
  std::atomic<int64_t> repairs_paused{0};
  // Deletion guards: deletes the last deciding round held (0 = none), rounds that held, roots
  // the last walk found missing, znodes skipped because kvsync may not read them (ACL).
  std::atomic<int64_t> deletes_held{0};
  std::atomic<int64_t> delete_holds{0};
  std::atomic<int64_t> missing_roots{0};
  std::atomic<int64_t> unreadable_znodes{0};
  // ZooKeeper changes dropped because the applier's inbox was full, and whether the fixing
  // full sync that makes up for them is still to run (1) or done (0).
  std::atomic<int64_t> inbox_overflows{0};
  std::atomic<int64_t> resync_pending{0};
  // --ephemeral-lease-ttl: the lease, its remaining TTL, replacements, failed keep-alives.
  EphemeralLease::Stats ephemeral_lease;
  // Per-service parity as the last periodic full sync saw it (mutex inside).
  ParityBoard parity;
  metrics::Histogram* zk_latency = nullptr;  // set before the engine starts; not owned
  metrics::Histogram* event_lag = nullptr;
};

}  // namespace kvsync::zk2etcd
