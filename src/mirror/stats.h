// Live state of an etcd2etcd task: the shared phase, role and write counters (sink::WriteStats)
// plus the engine's own (checkpoint, source head, watch, refusals, continuous checks). Written
// by the engine threads and read by the metrics exporter, /status and the progress log. All
// fields are atomics (or thread-safe); any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "sink/write_stats.h"

namespace kvsync::mirror {

// Source head revisions as observed by the head monitor (a request of its own, independent of
// the watch), each with the wall time it was first seen. It answers "since when has the
// source had a revision this task has not applied", which cannot read 0 while a stream is
// stuck. Thread-safe.
class HeadTracker {
 public:
  // Records head revision `head` seen at `now_ms`; drops samples at or below `applied`.
  void Observe(int64_t head, int64_t now_ms, int64_t applied);
  // Seconds since the first observation of a head above `applied` (0 when none).
  double BehindSeconds(int64_t applied, int64_t now_ms) const;
  // Wall time of the last successful observation (0: never).
  int64_t last_observed_ms() const { return last_observed_ms_.load(); }
  // Wall time of the last observation of a head at or below `applied` (0: none yet): the
  // destination held everything the source held then. Never moves back within a term.
  int64_t FreshAsOf(int64_t applied);
  // The last head observed and when (0, 0: none).
  std::pair<int64_t, int64_t> LastHead() const;
  // Forgets every observation (a new leadership term must not inherit an old one's samples).
  void Reset();

 private:
  static constexpr size_t kMaxSamples = 4096;
  mutable absl::Mutex mu_;
  std::deque<std::pair<int64_t, int64_t>> samples_ ABSL_GUARDED_BY(mu_);  // (head, first seen)
  // Observations not yet known applied: (head, last seen), heads increasing.
  std::deque<std::pair<int64_t, int64_t>> recent_ ABSL_GUARDED_BY(mu_);
  int64_t fresh_ms_ ABSL_GUARDED_BY(mu_) = 0;
  std::pair<int64_t, int64_t> last_head_ ABSL_GUARDED_BY(mu_) = {0, 0};
  std::atomic<int64_t> last_observed_ms_{0};
};

// Permanent refusals (etcd::RefusalReason) by kind; index 0 means "none".
enum class Refusal { kNone = 0, kPermissionDenied = 1, kAuth = 2, kWatchCanceled = 3 };
inline constexpr int kRefusalKinds = 4;
Refusal RefusalOf(const absl::Status& status);
const char* RefusalName(Refusal refusal);  // the metric label: "permission_denied"...

struct Stats : sink::WriteStats {
  std::atomic<int64_t> last_synced_revision{0};
  std::atomic<int64_t> source_head_revision{0};
  HeadTracker head;
  std::atomic<int64_t> head_poll_failures{0};
  // Watch streams re-created by the watchdog (silent while the source moved on), and quiet
  // periods proven free of changes in scope by reading the source (a grpc-proxy does not
  // answer progress requests).
  std::atomic<int64_t> watch_stalls{0};
  std::atomic<int64_t> quiet_proofs{0};
  // The refusal the engine is currently stuck on and the one the head monitor's reads get
  // (Refusal as int, 0 = none; etcd 3.4 keeps serving an existing watch after a permission is
  // revoked, so only a fresh read shows it), and counts of both.
  std::atomic<int> refusal{0};
  std::atomic<int> head_refusal{0};
  std::atomic<int64_t> refusals[kRefusalKinds] = {};
  // Bytes of watch responses buffered between the watch reader and the engine.
  std::atomic<int64_t> watch_buffer_bytes{0};
  std::atomic<int64_t> events_applied{0};
  std::atomic<int64_t> split_revisions{0};
  std::atomic<int64_t> watch_restarts{0};
  std::atomic<int64_t> fast_path_resumes{0};
  // Progress of the current full sync.
  std::atomic<int64_t> full_sync_scanned{0};
  std::atomic<int64_t> full_sync_written{0};
  std::atomic<int64_t> last_checkpoint_write_ms{0};  // wall time of the last checkpoint write
  // Continuous checks (--check-interval): confirmed differences of the last check.
  std::atomic<int64_t> check_dst_miss{0};
  std::atomic<int64_t> check_src_miss{0};
  std::atomic<int64_t> check_mismatch{0};
  std::atomic<int64_t> check_lease_mismatch{0};
  std::atomic<int64_t> check_last_ms{0};  // wall time of the last completed check
  std::atomic<int64_t> check_duration_ms{0};
  std::atomic<int64_t> checks_full{0};
  std::atomic<int64_t> checks_presence{0};
  std::atomic<int64_t> check_repairs{0};
  // Lease-aware mirroring (LeaseKeeper): destination leases managed, conflicts (a destination
  // lease with a mirrored ID kvsync did not grant), leases held while the source cannot be
  // listed, 1 once --lease-hold passed, and counts.
  std::atomic<int64_t> leases_mirrored{0};
  std::atomic<int64_t> lease_conflicts{0};
  std::atomic<int64_t> leases_held{0};
  std::atomic<int64_t> lease_hold_expired{0};
  std::atomic<int64_t> lease_grants{0};
  std::atomic<int64_t> lease_revokes{0};
  std::atomic<int64_t> lease_keepalives{0};
  std::atomic<int64_t> lease_keepalive_failures{0};
  std::atomic<int64_t> leases_lost{0};
  // The freshness record (FreshnessWriter): writes, failed writes; 1 once the destination was
  // found promoted (this task no longer writes into it).
  std::atomic<int64_t> freshness_writes{0};
  std::atomic<int64_t> freshness_write_failures{0};
  std::atomic<int64_t> promoted{0};
};

}  // namespace kvsync::mirror
