// The zk2etcd engine: keeps every covered znode of a ZooKeeper tree mirrored in etcd, live.
//
// One ZooKeeper session carries every read and watch, so ZooKeeper's ordering guarantee holds
// for all of them: its loop thread delivers read results and watch events in the order
// the server produced them, and they enter one queue in that order. The applier thread works
// through that queue:
//   - data change      -> one getData (re-arming the data watch) -> put;
//   - node deleted     -> delete straight from the event (the node's own data watch);
//   - children changed -> after at most --coalesce (a fixed deadline from the first event,
//                         never extended) one getChildren of that parent re-arms its watch;
//                         each child not known yet is read once (getData + watch) and put,
//                         and listed in turn when it is persistent (ephemeral znodes cannot
//                         have children);
// and hands puts and deletes to the Writer, which never reorders two changes of one key.
// NodeTable's version order (czxid, mzxid, tombstones) makes the applier drop anything older
// than what it already submitted, so a stale read can never resurrect a deleted key.
//
// Full syncs run on the control thread (Run's caller): the etcd keys are loaded into a
// Snapshot, the ZooKeeper tree is walked with many reads in flight (arming every watch), each
// znode is compared with the snapshot on the applier thread, and a keys-only second pass finds
// etcd keys no znode matched. A full sync at start, after a reconnect and after a session
// expiry fixes every difference at once (the walk shares the event order, so this is safe);
// a periodic one (--fullsync-interval) fixes only differences seen in two consecutive rounds.
// Deletions need a complete walk and an owned key: nothing is deleted because ZooKeeper is
// unreachable, and keys of other writers are never deleted. The deletion guards (guards.h) hold
// a round's inferred deletes when a root was missing or they exceed --max-delete-fraction, and
// znodes kvsync may not read (ACL) are skipped with their subtree, whose etcd keys are kept.
// Ephemeral znodes of an etcd2zk session (reverse_sessions.h) are that direction's copies of
// etcd keys: they are skipped, so the two directions never echo each other.
// Periodic rounds also count per-service parity (parity.h) and publish it to Stats::parity.
// With --ephemeral-lease-ttl the copies of ephemeral znodes (and their ownership marks) are
// put on the lease of ephemeral_lease.h; a key on another lease (or on none) differs from its
// znode, and a replaced lease triggers a fixing full sync that re-attaches every copy.
//
// Threads (all started and joined inside Run(), on the runtime):
//   - the control thread (Run's caller): sessions, full syncs, the deletion guard's verdict;
//   - "zk2etcd-apply", an runtime::Executor owning every piece of applier state below
//     (NodeTable decisions, coalescing timers, rounds, unreadable paths): ZooKeeper callbacks
//     and the walk post to it, nothing else touches that state;
//   - the ZooKeeper session's loop thread ("zk-loop", see zk/api.h and zk/session.h): copies
//     results and posts them, never blocks except on a full inbox during a walk;
//   - the Writer's "zk2etcd-write" workers (writer.h), which also ask the ownership store
//     (Redis) who owns a key before deleting it, so the applier never waits on Redis.
// Memory: the applier's inbox is bounded (--queue-bytes, counted from the items' paths, data
// and child names); the walk may fill half of it, the other half is headroom for watch events
// and read results. The walk waits for room (backpressure on ZooKeeper reads); a watch event
// or read result that finds the inbox full is dropped instead (the session must never stall),
// counted in kvsync_zk2etcd_inbox_overflows_total, and a fixing full sync (which re-arms every
// watch) follows; readiness fails until it has run. The Writer's queue holds half as much.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "checker/merge.h"
#include "common/stop_token.h"
#include "config/config.h"
#include "etcd/api.h"
#include "ownership/store.h"
#include "runtime/executor.h"
#include "zk/api.h"
#include "zk2etcd/ephemeral_lease.h"
#include "zk2etcd/node_table.h"
#include "zk2etcd/reverse_sessions.h"
#include "zk2etcd/scope.h"
#include "zk2etcd/snapshot.h"
#include "zk2etcd/stats.h"
#include "zk2etcd/writer.h"

namespace kvsync::zk2etcd {

class Syncer {
 public:
  // `zk` opens the sessions (one at a time; a new one after each expiry); `etcd_kv` reads and
  // `etcd_txn` writes the destination (the same etcd::Client in the binary). None is owned;
  // all must outlive the Syncer.
  Syncer(const config::Zk2EtcdConfig& config, zk::SessionFactory* zk, etcd::KvApi* etcd_kv,
         etcd::TxnApi* etcd_txn, ownership::Store* owners, const common::StopToken* stop,
         Stats* stats);
  ~Syncer();

  void set_fence(std::vector<etcd::Compare> fence) { fence_ = std::move(fence); }
  // Asked before every full sync: a non-OK answer (the migration phase stopped this direction)
  // ends Run() with it.
  void set_phase_check(std::function<absl::Status()> check) { phase_check_ = std::move(check); }
  // The destination's leases, for --ephemeral-lease-ttl (required then). Not owned.
  void set_leases(etcd::LeaseApi* leases) { leases_ = leases; }

  // Runs until stopped (OK), or with --once until one full sync is applied. Errors: ZooKeeper
  // unreachable at start (Unavailable), auth refused (PermissionDenied), a fenced write,
  // non-transient etcd errors.
  absl::Status Run();

 private:
  struct Item;
  struct Round;
  enum class Mode { kFixNow, kFirstRound, kConfirmRound };

  absl::Status OpenSession();
  std::shared_ptr<zk::Reader> session();
  void OnZkEvent(uint64_t gen, const zk::WatchEvent& event);
  // From the session's loop thread: queues `item` for the applier, or drops it (inbox full)
  // and asks the control thread for a fixing full sync.
  void Offer(Item item);
  // From the walk: waits for room (backpressure); false when the applier has shut down.
  bool Deliver(Item item);
  // Runs `fn` on the applier thread after everything queued so far, and waits for it.
  void RunOnApplier(const std::function<void()>& fn);
  // Wakes the control thread (after changing what it waits for).
  void SignalControl(const std::function<void()>& change);

  // Applier thread: everything from here to FullSync's helpers runs there.
  void Handle(Item& item);
  void Coalesce(const std::string& parent, std::chrono::steady_clock::time_point origin);
  void Read(const std::string& path, bool discover, std::chrono::steady_clock::time_point origin);
  void List(const std::string& path, std::chrono::steady_clock::time_point origin);
  void OnNode(const std::string& path, const std::string& data, const zk::Stat& stat, bool discover,
              std::chrono::steady_clock::time_point origin);
  void OnGone(const std::string& path, std::chrono::steady_clock::time_point origin);
  void OnWalkNode(const std::string& path, const std::string& data, const zk::Stat& stat);
  // Whether a znode is the etcd2zk direction's copy (reverse_sessions.h); counts it.
  bool IsReverseCopy(const zk::Stat& stat);
  // `ephemeral`: the znode is ephemeral (its copy goes on the ephemeral lease, if any).
  void SubmitPut(const std::string& key, const KeyHash& h, const std::string& data, bool ephemeral,
                 std::chrono::steady_clock::time_point origin);
  // Whether an etcd key's lease is the one its znode's copy should have.
  bool LeaseMatches(int64_t lease, const zk::Stat& stat) const;
  // Deletes `key` if kvsync owns it: the Writer asks the ownership store; a key whose owner is
  // unknown (Redis down) comes back through Defer.
  void SubmitDelete(const std::string& key, const KeyHash& h,
                    std::chrono::steady_clock::time_point origin);
  // Any thread (the Writer's workers): keeps a delete until ownership can be decided.
  void Defer(const std::string& key, const KeyHash& h);
  void RetryDeferred();
  // Records unreadable znodes (ACL), logging each path once; `whole_round` replaces the set
  // with a full walk's.
  void NoteUnreadable(const std::vector<std::string>& paths, bool whole_round);

  // Control thread: one full sync (Mode::kFixNow) or a periodic pair of rounds.
  absl::Status FullSync(Mode mode);
  absl::Status RunRound(Round* round);
  absl::Status Flush();
  // The ephemeral lease's keep-alive gave up (OK otherwise).
  absl::Status LeaseError();

  const config::Zk2EtcdConfig& config_;
  zk::SessionFactory* zk_;
  etcd::KvApi* etcd_;
  etcd::TxnApi* etcd_txn_;
  ownership::Store* owners_;
  const common::StopToken* stop_;
  Stats* stats_;
  Scope scope_;
  ReverseSessions reverse_;
  std::vector<etcd::Compare> fence_;
  etcd::LeaseApi* leases_ = nullptr;
  std::function<absl::Status()> phase_check_;
  std::unique_ptr<EphemeralLease> lease_;  // with --ephemeral-lease-ttl, during Run()
  // Without it: the lease an earlier run recorded, whose copies must become plain keys.
  int64_t retired_lease_ = 0;
  NodeTable nodes_;
  std::unique_ptr<Writer> writer_;
  runtime::Executor applier_;

  // The session's generation: events and results of an older session are dropped.
  std::atomic<uint64_t> gen_{0};
  // Set when Run() ends: results refused by the shut-down applier are not overflows.
  std::atomic<bool> shutting_down_{false};

  // What the session callback, the writer, the inbox and a stop report to the control thread.
  absl::Mutex control_mu_;
  std::shared_ptr<zk::Reader> session_ ABSL_GUARDED_BY(control_mu_);
  bool disconnected_ ABSL_GUARDED_BY(control_mu_) = false;
  bool reconnected_ ABSL_GUARDED_BY(control_mu_) = false;
  bool expired_ ABSL_GUARDED_BY(control_mu_) = false;
  bool auth_failed_ ABSL_GUARDED_BY(control_mu_) = false;
  bool overflowed_ ABSL_GUARDED_BY(control_mu_) = false;
  bool writer_failed_ ABSL_GUARDED_BY(control_mu_) = false;
  // The ephemeral lease was gone and replaced: its copies need a fixing full sync.
  bool lease_replaced_ ABSL_GUARDED_BY(control_mu_) = false;
  absl::Status lease_error_ ABSL_GUARDED_BY(control_mu_);
  bool stopping_ ABSL_GUARDED_BY(control_mu_) = false;

  // Deletes waiting for the ownership store; filled by writer workers, drained on the applier.
  absl::Mutex deferred_mu_;
  absl::flat_hash_map<KeyHash, std::string> deferred_ ABSL_GUARDED_BY(deferred_mu_);
  bool retry_armed_ ABSL_GUARDED_BY(deferred_mu_) = false;

  // Applier-thread state.
  Round* round_ = nullptr;
  absl::flat_hash_map<std::string, runtime::Executor::TimerId> coalescing_;
  // Differences of the last first round, confirmed (or not) by the next round.
  absl::flat_hash_map<KeyHash, checker::DiffKind> previous_diffs_;
  absl::flat_hash_set<std::string> unreadable_;         // znodes kvsync may not read
  absl::flat_hash_set<std::string> logged_unreadable_;  // logged once each (bounded)
  bool unreadable_overflow_logged_ = false;

  // Control thread: the deletion guard's verdict of the last round that could delete.
  absl::Status hold_;
};

}  // namespace kvsync::zk2etcd
