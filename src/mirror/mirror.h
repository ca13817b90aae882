// The etcd2etcd engine: keeps the destination prefix equal to the source prefix.
//
// Start-up picks the path by one rule (docs/architecture.md, "Resuming"):
//   refuse (FailedPrecondition, exit 2): the checkpoint is not a well-formed kvsync checkpoint,
//     was taken from another source cluster, was written for another scope (same task name,
//     different prefix, destination prefix or excludes), the source is behind it, or its
//     history anchor does not match the source (a source rebuilt with the same cluster ID);
//   slow path (full sync at a pinned revision R, then watch from R + 1): no checkpoint,
//     --reset-last-synced-rev, an interrupted full sync, a checkpoint that cannot prove its
//     origin (no cluster ID, scope or anchor: older format or written by hand), an anchor or
//     history already compacted;
//   fast path (watch from checkpoint + 1, no copy): everything matched and the anchor read
//     back from the source at its revision.
// The fast path applies each source revision as one destination txn (small consecutive
// revisions coalesced), with the checkpoint (and a fresh anchor) in the same txn.
//
// Never silently stale: a HeadMonitor observes the source head on its own; a watchdog
// re-creates a watch that delivered nothing while the source moved on and the scope changed
// (kvsync_watch_stalls_total), and proves quiet periods by reading the source where progress
// notifications do not come (grpc-proxy). A permanent refusal (permission denied, auth, a
// server-cancelled watch) while running is reported in Stats (readiness fails) and retried
// every 30 s at most; with --once it ends the run.
//
// Threads: Run() is the engine thread and owns all engine state. Helper threads (the watch
// reader "mirror-watch", the full-sync writer pool "mirror-write", range prefetch) only move
// data to and from it; the term's HeadMonitor ("head-monitor") and ContinuousChecker
// ("check-periodic") have their own. stats()
// may be read from any thread. Stop by requesting a stop on the StopToken: the in-flight txn
// finishes and Run() returns OK.
#pragma once

#include <deque>
#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "checker/checkpoint.h"
#include "checker/key_mapper.h"
#include "common/backoff.h"
#include "common/error_series.h"
#include "common/stop_token.h"
#include "config/config.h"
#include "etcd/api.h"
#include "mirror/freshness.h"
#include "mirror/lease_keeper.h"
#include "mirror/stats.h"
#include "sink/commit_pipeline.h"
#include "sink/txn_writer.h"

namespace kvsync::mirror {

// Releases before checkpoint format 2 derived task names that were not injective ("/a-b/" and
// "/a/b/" both gave "a-b"). When this task's derived name differs from that old name and a
// replica of an older release still holds the old election on `election_cluster`, two
// leaders would write under two names: refuses with FailedPrecondition (exit 2) naming both.
// Read failures are logged and ignored (the run itself reports an unreachable cluster).
absl::Status CheckRenamedTask(const config::MirrorConfig& config, etcd::KvApi* election_cluster);

// FailedPrecondition (PromotedError) when the destination of task `config` was promoted; the
// read's error otherwise.
absl::Status CheckNotPromoted(etcd::KvApi* dst, const config::MirrorConfig& config);

class Mirror {
 public:
  // `src` and `dst` (an etcd::Client each in production, etcd::FakeEtcd in unit tests) and
  // `stats` must outlive the Mirror; `stats` may be shared by successive Mirrors of one task
  // (one per leadership term) so that counters keep counting.
  Mirror(config::MirrorConfig config, etcd::ClusterApi* src, etcd::ClusterApi* dst,
         const common::StopToken* stop, Stats* stats);
  ~Mirror();

  // Compares added to every destination txn (the leader's fence); a failed compare makes
  // Run() return election::IsFenced. Every txn also carries checker::NotPromoted on the
  // task's role record, with or without a leader's fence.
  void set_fence(std::vector<etcd::Compare> fence);

  // Returns OK when stopped or, with --once, when the destination matched the source at the
  // start revision. Errors: Unavailable (a cluster unreachable at start-up), FailedPrecondition
  // (a checkpoint refused by the rule above; the destination was promoted (kvsync promote),
  // found at start-up or by the freshness heartbeat while running; a key the destination refuses;
  // election::IsFenced when a fence compare failed), PermissionDenied / Unauthenticated at
  // start-up or with --once, other permanent etcd errors. Transient faults are retried inside.
  absl::Status Run();

 private:
  struct WatchQueue;

  // How the run starts: the slow path, or the fast path from the checkpoint.
  struct StartDecision {
    bool full = true;
    std::string reason;
  };

  absl::Status Start();
  // FailedPrecondition (PromotedError) when the destination's role record says promoted.
  absl::Status CheckNotPromoted();
  void SetPromoted(const checker::RoleRecord& role);
  // Starts the term's FreshnessWriter (once the source cluster ID is known).
  void StartFreshness();
  // Creates the term's LeaseKeeper (unless --no-leases), loads its records, starts it.
  absl::Status StartLeases();
  // A source lease's put ready for the destination: its lease resolved (see LeaseKeeper).
  absl::Status PrepareLeases(std::vector<etcd::Op>* ops);
  // Whether `s` (or the keeper) says the destination lost leased keys: a full sync is due.
  bool LeasedKeysLost(const absl::Status& s);
  absl::Status RunSync();
  absl::StatusOr<std::optional<checker::Checkpoint>> LoadCheckpoint();
  absl::StatusOr<StartDecision> Decide(const std::optional<checker::Checkpoint>& cp, int64_t head);
  // Reads the anchor's key at the anchor's revision from the source. OK(true) when it matches,
  // OK(false) when the source has another history, IsCompacted when it cannot tell.
  absl::StatusOr<bool> AnchorMatches(const checker::HistoryAnchor& anchor);
  // An anchor at `revision`: the first source key in scope, or none when the scope is empty.
  absl::Status AnchorAt(int64_t revision);
  // True when no key in the watched range changed in (from, to] (read from the source).
  absl::StatusOr<bool> RangeChanged(int64_t from, int64_t to);
  // Records a permanent refusal (`write`: of a destination write, else of a read or the
  // watch), logs it when new, and waits with backoff (true: stop requested).
  bool WaitAfterRefusal(const absl::Status& status, bool write);
  // The operation that was refused works again: a destination write (`write`), or a read.
  // A read succeeding does not clear a write refusal.
  void ClearRefusal(bool write);
  absl::StatusOr<int64_t> SourceRevision();
  absl::Status FullSync();
  // Returns OK when stopped or --once is done; IsCompacted when history is gone.
  absl::Status Incremental();
  // One watch stream with its commit pipeline; returns once every txn it submitted settled.
  absl::Status WatchOnce();
  absl::Status Stream();
  // Hands `ops` (possibly none) bringing the destination to `revision` to the pipeline, with
  // the checkpoint when `write`; without `write` (and without ops) the revision counts as
  // applied once the txns before it committed.
  absl::Status Submit(std::vector<etcd::Op> ops, int64_t revision, int64_t events, bool write);
  // Takes what the pipeline committed: applied_, persisted_, the committed anchor, stats.
  void Settle();
  absl::Status DrainPipeline();
  absl::Status WriteCheckpoint(int64_t revision);
  checker::Checkpoint MakeCheckpoint(int64_t revision, bool pending) const;
  // Commits `ops` with `checkpoint` as the txn's marker (visible with or after them).
  absl::Status CommitWithCheckpoint(std::vector<etcd::Op> ops,
                                    const checker::Checkpoint& checkpoint);
  bool OnceDone() const;
  // Logs "caught up" the first time the destination reaches the start-up head revision.
  void NoteProgress();

  config::MirrorConfig config_;
  etcd::ClusterApi* src_;
  etcd::ClusterApi* dst_;
  // The term's token: stopped by the caller's, or by the freshness heartbeat finding the
  // destination promoted (promoted_ then holds the refusal Run() returns).
  common::StopToken term_stop_;
  common::StopCallback outer_stop_;
  const common::StopToken* stop_ = &term_stop_;
  absl::Mutex promoted_mu_;
  absl::Status promoted_ ABSL_GUARDED_BY(promoted_mu_);
  const std::string role_key_;
  checker::KeyMapper mapper_;
  std::vector<etcd::Compare> fence_;
  Stats& stats_;
  const std::string checkpoint_key_;
  sink::TxnWriter writer_;
  // Lease-aware mirroring (none with --no-leases): one per term, started by RunSync.
  std::unique_ptr<LeaseKeeper> leases_;
  std::unique_ptr<FreshnessWriter> freshness_;

  uint64_t source_cluster_id_ = 0;
  std::string scope_;  // checker::ScopeDigest of this task
  // The anchor written with the next checkpoint: the last applied put, or the full sync's
  // first key. While its key is live (no delete of it applied since), no event touched it, so
  // it is re-dated to every revision applied: the anchor then never ages into compaction.
  std::optional<checker::HistoryAnchor> anchor_;
  bool anchor_live_ = false;
  common::ErrorSeries refusals_;
  common::Backoff refusal_backoff_{std::chrono::seconds(1), std::chrono::seconds(30)};
  bool refusal_is_write_ = false;
  bool write_failed_ = false;  // the last error came from a destination write
  // Requested progress notifications can be trusted (etcd::RequestedProgressIsOrdered).
  bool trust_requested_progress_ = false;
  // Events at or below this revision are already covered by a proof that nothing in the
  // watched range changed (RangeChanged); only a key created and deleted within the proven
  // period can still arrive, and skipping it leaves the destination as it is.
  int64_t proven_through_ = 0;
  // Everything up to applied_ has been written to the destination; persisted_ is the revision
  // in the destination's checkpoint (persisted_ <= applied_); submitted_ (>= applied_) has
  // been handed to the commit pipeline.
  int64_t applied_ = 0;
  int64_t persisted_ = 0;
  int64_t submitted_ = 0;
  // While a watch runs: its pipeline and what each submitted txn brings once committed.
  struct Pending {
    int64_t seq = 0;  // the pipeline's txn that must commit first
    int64_t revision = 0;
    int64_t events = 0;
    int64_t received_ms = 0;
    bool persisted = false;
    std::optional<checker::HistoryAnchor> anchor;
    bool anchor_live = false;
  };
  sink::CommitPipeline* pipeline_ = nullptr;
  std::deque<Pending> pending_;
  // Receive time of the batch being turned into txns (0 between batches).
  int64_t batch_received_ms_ = 0;
  // anchor_ / anchor_live_ as of applied_ (anchor_ runs ahead with what was submitted).
  std::optional<checker::HistoryAnchor> applied_anchor_;
  bool applied_anchor_live_ = false;
  // Source head revision at start-up: --once stops there, and reaching it is "caught up".
  int64_t start_head_ = 0;
  bool caught_up_logged_ = false;
};

}  // namespace kvsync::mirror
