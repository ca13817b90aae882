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
//
// Threading: Run() on one thread; the applier and writer threads live inside Run().
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "checker/merge.h"
#include "common/stop_token.h"
#include "config/config.h"
#include "etcd/client.h"
#include "ownership/store.h"
#include "zk/session.h"
#include "zk2etcd/node_table.h"
#include "zk2etcd/scope.h"
#include "zk2etcd/snapshot.h"
#include "zk2etcd/stats.h"
#include "zk2etcd/writer.h"

namespace kvsync::zk2etcd {

class Syncer {
 public:
  Syncer(const config::Zk2EtcdConfig& config, etcd::Client* etcd, ownership::Store* owners,
         const common::StopToken* stop, Stats* stats);
  ~Syncer();

  void set_fence(std::vector<etcd::Compare> fence) { fence_ = std::move(fence); }

  // Runs until stopped (OK), or with --once until one full sync is applied. Errors: ZooKeeper
  // unreachable at start (Unavailable), auth refused (PermissionDenied), a fenced write,
  // non-transient etcd errors.
  absl::Status Run();

 private:
  struct Item;
  struct Round;
  enum class Mode { kFixNow, kFirstRound, kConfirmRound };

  absl::Status OpenSession();
  std::shared_ptr<zk::Session> session();
  void OnZkEvent(uint64_t gen, const zk::WatchEvent& event);
  void Push(Item item);
  // Runs `fn` on the applier thread after everything queued so far, and waits for it.
  void RunOnApplier(std::function<void()> fn);

  void ApplierLoop();
  void Handle(Item& item);
  void Read(const std::string& path, bool discover, std::chrono::steady_clock::time_point origin);
  void List(const std::string& path, std::chrono::steady_clock::time_point origin);
  void OnNode(const std::string& path, const std::string& data, const zk::Stat& stat, bool discover,
              std::chrono::steady_clock::time_point origin);
  void OnGone(const std::string& path, std::chrono::steady_clock::time_point origin);
  void OnWalkNode(const std::string& path, const std::string& data, const zk::Stat& stat);
  void SubmitPut(const std::string& key, const KeyHash& h, const std::string& data,
                 std::chrono::steady_clock::time_point origin);
  // Deletes an owned key; defers it while ownership is unknown. Returns false when the key is
  // not kvsync's (left alone) or deferred.
  bool SubmitDelete(const std::string& key, const KeyHash& h,
                    std::chrono::steady_clock::time_point origin);
  void RetryDeferred();
  // Records unreadable znodes (ACL), logging each path once; `whole_round` replaces the set
  // with a full walk's.
  void NoteUnreadable(const std::vector<std::string>& paths, bool whole_round);

  // One full sync (Mode::kFixNow) or a periodic pair of rounds.
  absl::Status FullSync(Mode mode);
  absl::Status RunRound(Round* round);
  absl::Status Flush();
  absl::Status WaitForEvent(std::chrono::steady_clock::time_point until);

  const config::Zk2EtcdConfig& config_;
  etcd::Client* etcd_;
  ownership::Store* owners_;
  const common::StopToken* stop_;
  Stats* stats_;
  Scope scope_;
  std::vector<etcd::Compare> fence_;
  NodeTable nodes_;
  std::unique_ptr<Writer> writer_;

  // Session, its generation, and what the session callback reported to the control thread.
  std::mutex session_mu_;
  std::shared_ptr<zk::Session> session_;
  uint64_t gen_ = 0;  // read by the applier under session_mu_
  bool disconnected_ = false;
  bool reconnected_ = false;
  bool expired_ = false;
  bool auth_failed_ = false;
  std::condition_variable control_cv_;

  // The applier's queue.
  std::mutex inbox_mu_;
  std::condition_variable inbox_cv_;
  std::deque<Item> inbox_;
  bool applier_exit_ = false;

  // Applier-thread state.
  Round* round_ = nullptr;
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::string>> coalesce_;
  absl::flat_hash_set<std::string> coalescing_;
  absl::flat_hash_map<KeyHash, std::string> deferred_;
  std::chrono::steady_clock::time_point next_deferred_retry_{};
  // Differences of the last first round, confirmed (or not) by the next round.
  absl::flat_hash_map<KeyHash, checker::DiffKind> previous_diffs_;
  absl::flat_hash_set<std::string> unreadable_;         // znodes kvsync may not read
  absl::flat_hash_set<std::string> logged_unreadable_;  // logged once each (bounded)
  bool unreadable_overflow_logged_ = false;

  // Control thread: the deletion guard's verdict of the last round that could delete.
  absl::Status hold_;
};

}  // namespace kvsync::zk2etcd
