// A fast parallel walk of ZooKeeper subtrees: the full-sync read path of zk2etcd and the
// "ZooKeeper read ceiling" of the benchmarks.
//
// Walk() keeps up to `concurrency` reads in flight on one Session, driving the C client
// directly (one pooled context per node in flight, no per-read std::function). For each node it
// issues a GetData and then — unless the node is ephemeral (ephemeral znodes cannot have
// children) — a GetChildren; listed children are pushed on a LIFO stack so the pending frontier
// stays small (depth-first). With read_data=false each node costs one GetChildren only.
//
// Threading: Walk blocks the calling thread (never call it from a Session callback); every read
// is issued, and `visit` runs, on the session's loop thread, in completion order, once per node
// that existed when read. Ownership: nothing is retained after Walk returns.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/stop_token.h"
#include "zk/session.h"

namespace kvsync::zk {

struct WalkOptions {
  std::vector<std::string> roots;     // each root and everything under it
  std::vector<std::string> excludes;  // path-aware; excluded subtrees are never read
  int concurrency = 64;               // max reads in flight
  // Set data watches on every node and child watches on every persistent node; an exists
  // watch on a missing root (which fires kCreated). With read_data=false: child watches on
  // every node (they also fire kDeleted when the node goes away).
  bool watch = false;
  bool read_data = true;  // false: children only (presence walk; visit gets empty data)
  // A node the session may not read (ACL: PermissionDenied) is skipped with its subtree and
  // named in WalkResult::unreadable, instead of ending the walk.
  bool skip_unreadable = false;
};

// `data` is valid only during the call.
using VisitFn =
    std::function<void(const std::string& path, const std::string& data, const Stat& stat)>;

// nodes: nodes visited; reads: read requests completed; bytes: data bytes plus child-name bytes
// received.
// missing_roots: roots absent when the walk ended (a root that appeared meanwhile under an exists
// watch was walked); unreadable: nodes skipped with skip_unreadable (at most kMaxUnreadable named,
// unreadable_count counts them all).
struct WalkResult {
  static constexpr size_t kMaxUnreadable = 10000;
  int64_t nodes = 0, reads = 0, bytes = 0;
  std::vector<std::string> missing_roots;
  std::vector<std::string> unreadable;
  int64_t unreadable_count = 0;
};

// Walks the trees in parallel (see above). A node that vanished between listing and reading
// (NotFound) is skipped; a missing root is not an error (it is listed in missing_roots); roots
// under an exclude or under another root are dropped. Any other error (Unavailable on connection
// loss, Aborted on session expiry, PermissionDenied unless skip_unreadable) ends the walk with that
// error after in-flight reads drain — callers must then treat the walk as incomplete. `stop`
// (optional) cancels with Cancelled. InvalidArgument for a relative root or a concurrency below 1;
// FailedPrecondition on the loop thread.
absl::StatusOr<WalkResult> Walk(Session* session, const WalkOptions& options, const VisitFn& visit,
                                const common::StopToken* stop = nullptr);

}  // namespace kvsync::zk
