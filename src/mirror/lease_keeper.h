// Lease-aware mirroring: a source key attached to lease L is written at the destination
// attached to the destination lease with the same ID L (etcd's LeaseGrant takes a requested
// ID), granted with max(the source's granted TTL, --lease-min-ttl). The identity mapping makes
// restarts and takeovers trivial, and after a promotion a provider that keeps alive its lease
// ID against the promoted cluster keeps its registration (docs/architecture.md, "Leases").
//
// Ownership. kvsync manages a destination lease only when it holds a *lease record*
// `<meta>/<task>/leases/<id, 16 hex digits>` (JSON: source and destination TTL), written before
// the grant and deleted after the revoke, all through the leader's fenced TxnWriter. A grant
// that finds lease L already there is adopted only if the record existed before (a previous
// term or replica granted it); otherwise L belongs to someone else: a *conflict*. Mirrored keys
// are never attached to a conflicting lease: they are written without a lease, and the
// conflict is counted (kvsync_lease_conflicts, /readyz) and logged once.
//
// One thread ("lease-list") lists the source's leases every clamp(shortest source TTL / 3,
// 1 s, 10 s); another ("lease-renew") renews the managed destination leases over one
// keep-alive stream every clamp(shortest destination TTL / 3, 500 ms, 20 s), so that a source
// that does not answer never delays the destination's keep-alives. A managed lease
// missing from the source's list is confirmed gone with LeaseTimeToLive (a follower may list
// late) and revoked at the destination once the engine has applied the source revision at
// which it was seen gone: the watch's delete events remove the keys first, so the revoke only
// removes the lease. While the source cannot be listed, destination leases are *held* (kept
// alive: the standby keeps serving the last known registry) until --lease-hold passes (0:
// until the task is promoted or stopped).
//
// Lost keys. A managed destination lease can vanish under the engine (every replica down
// longer than its TTL, the hold limit passed, a destination restored): the keys attached to it
// are gone there while the source still has them, and no watch event will bring them back.
// Load() (at term start) and every keep-alive round detect it; TakeLost() then tells the
// engine to run a full sync, which writes only the differences.
//
// Thread-safety: Prepare() may be called from many threads at once (full-sync writers); the
// two keeper threads run between Start() and Stop().
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/stop_token.h"
#include "etcd/api.h"
#include "mirror/stats.h"
#include "runtime/thread.h"
#include "sink/txn_writer.h"

namespace kvsync::mirror {

class LeaseKeeper {
 public:
  struct Options {
    std::string records_prefix;  // <meta>/<task>/leases/
    std::chrono::seconds min_ttl{60};
    std::chrono::milliseconds hold{0};  // 0: hold until promoted or stopped
    // A destination lease that already has a mirrored ID is that lease's original, not a
    // conflict: failback mirrors the promoted cluster's leases (granted by kvsync with the
    // old primary's IDs) back into the old primary, which still has them.
    bool adopt_existing = false;
  };

  // `writer` carries the leader's fence; `stats->last_synced_revision` is the engine's applied
  // revision. All must outlive the keeper.
  LeaseKeeper(Options options, etcd::ClusterApi* src, etcd::ClusterApi* dst,
              sink::TxnWriter* writer, const common::StopToken* stop, Stats* stats);
  ~LeaseKeeper();

  // Term start: reads the lease records and both clusters' lease lists. Records whose
  // destination lease is alive are managed again at once (their keep-alives resume before any
  // write); a record whose destination lease is gone while the source lease lives means lost
  // keys (TakeLost); records of leases gone on both sides are deleted.
  absl::Status Load();
  void Start();
  void Stop();

  // For each put in `ops` attached to a source lease: makes sure the destination lease with
  // the same ID exists and is kvsync's (granting it when new). A put whose lease cannot be
  // mirrored (a conflict, or the source lease already gone: a later delete event removes the
  // key) is written without a lease.
  absl::Status Prepare(std::vector<etcd::Op>* ops);

  // True once after a managed destination lease was found gone (its keys with it): the
  // engine must run a full sync.
  bool TakeLost() { return lost_.exchange(false); }
  bool lost() const { return lost_.load(); }
  // The destination refused a write naming a lease it no longer has: finds out which managed
  // leases are gone (a keep-alive round; all are forgotten when it cannot run), so they are
  // granted again on next use, and reports lost keys.
  void DestinationLost();

  // The destination TTL for a source lease granted `source_ttl` seconds.
  int64_t DestinationTtl(int64_t source_ttl) const;

 private:
  enum class State { kPending, kOurs, kConflict, kGone };
  struct Entry {
    State state = State::kPending;
    int64_t source_ttl = 0;
    int64_t ttl = 0;
    // Listing round during which the lease became managed: a list taken before it may miss it.
    int64_t since_round = 0;
    // Source revision at which the source lease was seen gone (0: alive as far as we know).
    int64_t gone_at = 0;
  };

  std::string RecordKey(int64_t id) const;
  // Grants (or adopts, or finds in conflict) each lease of `ids`, claimed as kPending by this
  // caller; every claim is settled on return, also on error.
  absl::Status Ensure(const std::vector<int64_t>& ids);
  absl::Status CommitRecords(std::vector<etcd::Op> ops);
  // The current (list, keep-alive) intervals, from the shortest TTLs managed.
  std::pair<std::chrono::milliseconds, std::chrono::milliseconds> Intervals();
  // The source side lists; the destination side renews and revokes.
  void Loop(bool source_side);
  // One listing of the source: marks managed leases the source no longer has.
  void ListSource();
  void RevokeDead();
  // Renews every managed lease; forgets (and reports as lost) those the destination no longer
  // has. False when the round could not run (destination unreachable, hold expired). Any
  // thread.
  bool KeepAlive();
  void PublishGauges() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  etcd::ClusterApi* src_;
  etcd::ClusterApi* dst_;
  sink::TxnWriter* writer_;
  const common::StopToken* stop_;
  Stats& stats_;

  absl::Mutex mu_;
  absl::CondVar settled_;
  absl::flat_hash_map<int64_t, Entry> leases_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<int64_t> recorded_ ABSL_GUARDED_BY(mu_);  // records at the destination
  int64_t round_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<bool> lost_{false};

  // Lister thread state (read by the renewer and PublishGauges: atomics).
  std::chrono::steady_clock::time_point last_listed_{};  // last successful source listing
  std::atomic<bool> holding_{false};
  std::atomic<bool> hold_expired_{false};
  runtime::Thread lister_;
  runtime::Thread renewer_;
  common::StopToken thread_stop_;
};

}  // namespace kvsync::mirror
