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
#include "zk/types.h"

namespace kvsync::zk {

// Walks the trees in parallel (see above). A node that vanished between listing and reading
// (NotFound) is skipped; a missing root is not an error (it is listed in missing_roots); roots
// under an exclude or under another root are dropped. Any other error (Unavailable on connection
// loss, Aborted on session expiry, PermissionDenied unless skip_unreadable) ends the walk with that
// error after in-flight reads drain — callers must then treat the walk as incomplete. `stop`
// (optional) cancels with Cancelled. InvalidArgument for a relative root or a concurrency below 1;
// FailedPrecondition on the loop thread.
// The roots a walk reads, in order: trailing slashes dropped, roots under an exclude, under
// another root or repeated are left out. InvalidArgument for a relative root or a concurrency
// below 1. Shared with the test fake (zk/fake_zk.h), so both walk the same roots.
absl::StatusOr<std::vector<std::string>> WalkRoots(const WalkOptions& options);

absl::StatusOr<WalkResult> Walk(Session* session, const WalkOptions& options, const VisitFn& visit,
                                const common::StopToken* stop = nullptr);

}  // namespace kvsync::zk
