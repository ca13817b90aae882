// The narrow interfaces ("seams") through which the zk2etcd engine and its check use
// ZooKeeper: a Reader is the read side of one session (asynchronous reads that arm watches, a
// blocking read, the full-sync tree walk, the session's state and id), and a SessionFactory
// opens Readers with the callback that receives their watch and session events. zk::Session
// (session.h, with the walk of walk.h driving the C client directly) implements Reader, and
// NewSessionFactory opens real Sessions; zk::FakeZk (fake_zk.h, linked into tests only)
// implements both over an in-memory tree, so that the engine's decisions can be unit tested in
// seconds.
//
// The contract is the real session's, ordering and errors included, so that the engine cannot
// tell the two apart:
//   - Ordering: completions, walk visits and the events of one session are delivered on one
//     thread (the session's "loop"), one at a time, in the order the server produced them; a
//     watch event comes before the result of any later read that reflects its change.
//     Callbacks must be quick (copy and enqueue) and must not call the blocking methods (Get,
//     Walk), which fail with FailedPrecondition there.
//   - Watches fire once (re-arm by reading again): a data watch (GetData) fires kDataChanged
//     or kDeleted, a child watch (GetChildren) kChildrenChanged or kDeleted, and the exists
//     watch a walk leaves on a missing root fires kCreated. A session keeps its watches across
//     a disconnection (kConnecting → kConnected); an expired session has lost them, and a new
//     session (a new id) starts with none.
//   - Errors: NotFound (node absent), Unavailable (connection lost while the read was in
//     flight, or the session is closing; the session may still recover: IsTransient), Aborted
//     marked as a dead session (expired: IsSessionExpired), PermissionDenied (ACL),
//     InvalidArgument (a bad path), Internal (anything else; never transient).
//
// Threading and ownership: every method may be called from any thread. The caller owns what
// Open returns; destroying a Reader closes its session (its ephemeral nodes go at once), and
// reads still in flight complete with Unavailable before the destructor returns. Never
// destroy a Reader from one of its callbacks. A SessionFactory outlives the Readers it opened.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/stop_token.h"
#include "zk/types.h"

namespace kvsync::zk {

// The status of a dead session (expired, or closed after auth failure).
bool IsSessionExpired(const absl::Status& status);
// A failure the session may recover from by itself (connection loss, timeout): retry once it
// is connected again. The shared rule of common::IsTransient.
bool IsTransient(const absl::Status& status);

class Reader {
 public:
  virtual ~Reader() = default;

  // Asynchronous reads; `watch` arms a data watch (GetData) or a child watch (GetChildren).
  // `done` runs on the loop thread (also for a read that could not be submitted: the
  // session expired or closing).
  virtual void GetData(const std::string& path, bool watch, DataFn done) = 0;
  virtual void GetChildren(const std::string& path, bool watch, ChildrenFn done) = 0;
  // Reads `path` without a watch and waits for the result (`stat` optional). Errors as above;
  // FailedPrecondition on the loop thread.
  virtual absl::StatusOr<std::string> Get(const std::string& path, Stat* stat) = 0;

  // Walks `options.roots` (zk::Walk's semantics, walk.h): `visit` runs on the loop thread,
  // once per node that existed when read, in the session's order with its events. A node gone
  // between listing and reading is skipped; a missing root is not an error but named in
  // WalkResult::missing_roots (with options.watch an exists watch is left on it, and a root
  // that appears during the walk is walked); excluded subtrees and roots under an exclude or
  // another root are never read; with skip_unreadable an ACL-denied node is skipped with its
  // subtree and named in WalkResult::unreadable. Blocks the caller until every visit has run.
  // Errors end the walk (the caller must treat it as incomplete): Unavailable, Aborted,
  // PermissionDenied (without skip_unreadable), Cancelled when `stop` (optional) fires;
  // InvalidArgument for a relative root or a concurrency below 1; FailedPrecondition on the
  // loop thread.
  virtual absl::StatusOr<WalkResult> Walk(const WalkOptions& options, const VisitFn& visit,
                                          const common::StopToken* stop) = 0;

  // The last state reported (updated before the session event is delivered).
  virtual SessionState state() const = 0;
  // The server-assigned session id (0 before the first connection).
  virtual int64_t session_id() const = 0;
};

class SessionFactory {
 public:
  virtual ~SessionFactory() = default;
  // Opens a session and waits for it to connect. `on_event` receives every watch and session
  // event of that session on its loop thread, possibly before Open returns (the first
  // kConnected) and until the Reader is destroyed. Errors: Unavailable (no server answered in
  // time), PermissionDenied (authentication refused), InvalidArgument (bad options).
  virtual absl::StatusOr<std::unique_ptr<Reader>> Open(EventFn on_event) = 0;
};

}  // namespace kvsync::zk
