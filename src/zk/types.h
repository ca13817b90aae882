// The plain vocabulary of kvsync's ZooKeeper layer, shared by the seam (zk/api.h), the real
// session over the C client (zk/session.h, zk/walk.h) and the test fake (zk/fake_zk.h): node
// stats, session states, watch events, the callback types of asynchronous reads, and the
// options and result of a tree walk. Value types only; no C client type appears here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace kvsync::zk {

struct Stat {
  int64_t czxid = 0, mzxid = 0, pzxid = 0, ephemeral_owner = 0;
  int32_t version = 0, cversion = 0, num_children = 0, data_length = 0;
};

enum class SessionState { kConnecting, kConnected, kExpired, kAuthFailed, kClosed };
const char* SessionStateName(SessionState state);

struct WatchEvent {
  // kSession: a connection state change (`path` empty, `state` the new state). kNotWatching:
  // the server removed a watch. The others name the znode in `path`.
  enum class Type { kCreated, kDeleted, kDataChanged, kChildrenChanged, kSession, kNotWatching };
  Type type;
  std::string path;
  SessionState state;
};

using EventFn = std::function<void(const WatchEvent&)>;
using DataFn = std::function<void(const absl::Status&, std::string data, const Stat&)>;
using ChildrenFn =
    std::function<void(const absl::Status&, std::vector<std::string> children, const Stat&)>;
using ExistsFn = std::function<void(const absl::Status&, const Stat&)>;  // NotFound when absent
using DoneFn = std::function<void(const absl::Status&)>;

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

}  // namespace kvsync::zk
