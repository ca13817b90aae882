// FakeZk: an in-memory ZooKeeper behind the engine's seams (zk/api.h), for unit tests only
// (library kvsync_zk_fake; never linked into the binary).
//
// The tree keeps what kvsync reads of a znode: data, czxid and mzxid from one global zxid
// counter (so versions compare across sessions as ZooKeeper's do), pzxid, data and child
// versions, and the ephemeral owner (ephemeral znodes cannot have children). Tests change it as
// another client would (Create, Set, Delete...), one zxid per change, and each change fires
// the watches ZooKeeper fires, once each: a data watch kDataChanged on a set and kDeleted on a
// delete, a child watch kChildrenChanged when a child comes or goes and kDeleted when its own
// node goes, the exists watch a walk leaves on a missing root kCreated; a session with several
// watches on a deleted node gets one kDeleted, before the parent's kChildrenChanged.
//
// Sessions (Open): each has its own id, its own watches and one "loop" thread that delivers
// its completions, walk visits and events one at a time, in the order the fake produced them
// (server order: a read is answered, and its watch armed, when it is made; a watch event is
// queued when the change is made). Open delivers kConnected first. Disconnect() makes every
// session kConnecting (reads fail with Unavailable, watches are kept and what they fire
// meanwhile is delivered after the kConnected of Reconnect()); Expire() makes them kExpired
// (reads fail with Aborted, watches are gone, their ephemeral znodes are deleted); the next
// Open is a new session with a new id and no watches.
//
// Faults: FailNext() fails the next read of a kind (and path) with a status, walks included;
// Deny() makes a znode unreadable (PermissionDenied, as a ZooKeeper ACL does: a walk with
// skip_unreadable skips it with its subtree); HoldNextReply() answers the next read of a path
// at once but sets the reply aside until ReleaseReplies(), which delivers it after everything
// delivered meanwhile (a late read overtaken by a later change); DropWatches() forgets the
// watches on a path without firing them (a lost notification); PauseDelivery() stops every
// loop (queued deliveries keep their order); FailNextOpen() fails the next Open.
// SetWalkHook() runs a test function at the start of every walk, on the walking thread, so a
// test can change the tree or etcd between the rounds of a full sync.
//
// Differences from a real session, none of which the engine relies on: a read made on the
// loop thread is answered through the queue even when it cannot be submitted; a walk reads
// one node at a time (concurrency is only validated); Get reads the tree directly.
//
// Deterministic: no timers, no sleeps; the only threads are the sessions' loops. Thread-safe:
// one mutex guards the tree and every session. Sessions must be destroyed before the FakeZk.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "zk/api.h"
#include "zk/types.h"

namespace kvsync::zk {

class FakeZk : public SessionFactory {
 public:
  enum class Op { kGetData, kGetChildren, kAny };

  FakeZk();
  ~FakeZk() override;
  FakeZk(const FakeZk&) = delete;
  FakeZk& operator=(const FakeZk&) = delete;

  // SessionFactory: a connected session (kConnected is its first event) with a new id.
  absl::StatusOr<std::unique_ptr<Reader>> Open(EventFn on_event) override;

  // Changes, as another client makes them; each is one zxid and fires watches. Errors as
  // ZooKeeper's: NotFound (no node, or no parent), AlreadyExists, FailedPrecondition (a delete
  // of a node with children, a child of an ephemeral node), InvalidArgument (a bad path).
  // `ephemeral_owner` (non-zero) makes the node ephemeral, owned by that session id.
  absl::Status Create(const std::string& path, const std::string& data,
                      int64_t ephemeral_owner = 0);
  // mkdir -p: missing parents are created empty; OK when `path` exists (data unchanged).
  absl::Status CreateAll(const std::string& path, const std::string& data = "");
  absl::Status Set(const std::string& path, const std::string& data);
  absl::Status Delete(const std::string& path);
  // The subtree, deepest first (one zxid per node); OK when absent.
  absl::Status DeleteAll(const std::string& path);
  // Deletes every ephemeral node of `owner`, as the server does when that session ends.
  void DeleteEphemerals(int64_t owner);

  // The data and stat of `path` (nullopt when absent), and path → data of `path`'s subtree.
  std::optional<std::string> Data(const std::string& path, Stat* stat = nullptr) const;
  std::map<std::string, std::string> Tree(const std::string& path) const;
  int64_t zxid() const;

  // Sessions.
  void Disconnect();
  void Reconnect();
  void Expire();
  void FailNextOpen(absl::Status status);
  int sessions_opened() const;
  // Open sessions holding a data, child or exists watch on `path`.
  int watchers(const std::string& path) const;

  // Faults.
  // The next read of `op` on `path` ("" = any path) fails with `status` (no watch is armed).
  void FailNext(Op op, const std::string& path, absl::Status status);
  void Deny(const std::string& path, bool denied = true);
  // Sets aside the next reply to a read of `path` (each call one more).
  void HoldNextReply(const std::string& path);
  // Delivers the held replies in the order they were made, stops holding; returns how many.
  int ReleaseReplies();
  int held_replies() const;
  void DropWatches(const std::string& path);
  void PauseDelivery(bool paused);
  // `hook(n)` runs at the start of the n-th walk (1-based, counted over all sessions), on the
  // walking thread without the lock held; nullptr removes it.
  void SetWalkHook(std::function<void(int walk)> hook);
  int walks() const;

  // Waits until every session's loop has run everything queued for it (held replies are not
  // queued); false after `timeout` (e.g. while delivery is paused).
  bool WaitDelivered(absl::Duration timeout) const;

 private:
  class Session;
  struct Node {
    std::string data;
    Stat stat;
    std::set<std::string> children;
  };
  struct Fault {
    Op op;
    std::string path;
    absl::Status status;
  };
  // One read's reply: computed when the read is made.
  struct Reply {
    Session* session;
    std::function<void()> deliver;
    std::function<void()> cancel;  // on close: completes with Unavailable
  };

  // Checks a read of `path` by `session` (state, injected faults, ACL); OK to proceed.
  absl::Status ReadCheckLocked(Session* session, Op op, const std::string& path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues `reply` on its session's loop, or sets it aside when its path is held.
  void ReplyLocked(const std::string& path, Reply reply) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Fires `type` at the sessions watching `path` through the given watch tables.
  void FireLocked(const std::string& path, WatchEvent::Type type, bool data, bool child,
                  bool exists) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CreateLocked(const std::string& path, const std::string& data, int64_t owner)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status DeleteLocked(const std::string& path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DeleteEphemeralsLocked(int64_t owner) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Close(Session* session);
  absl::StatusOr<WalkResult> Walk(Session* session, const WalkOptions& options,
                                  const VisitFn& visit, const common::StopToken* stop);

  mutable absl::Mutex mu_;
  std::map<std::string, Node> nodes_ ABSL_GUARDED_BY(mu_);
  int64_t zxid_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_session_id_ ABSL_GUARDED_BY(mu_) = 0x1000;
  int sessions_opened_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<Session*> sessions_ ABSL_GUARDED_BY(mu_);
  std::deque<absl::Status> open_faults_ ABSL_GUARDED_BY(mu_);
  std::deque<Fault> faults_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> denied_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> holding_ ABSL_GUARDED_BY(mu_);  // path → replies to hold
  std::vector<Reply> held_ ABSL_GUARDED_BY(mu_);
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  bool disconnected_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void(int)> walk_hook_ ABSL_GUARDED_BY(mu_);
  int walks_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kvsync::zk
