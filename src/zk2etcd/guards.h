// The deletion guards of zk2etcd. kvsync deletes an etcd key without a ZooKeeper delete event
// only when a full-sync walk found no znode for it; these guards refuse that inference when the
// walk cannot be trusted to have seen the tree the operator meant:
//   - at start-up, the chroot of --zk-servers and every --zk-prefix root must exist (a typo or
//     the wrong ensemble would otherwise look like an empty tree): CheckRootsExist;
//   - in every round, keys under a root the walk found missing are never deleted, and a round
//     that would delete more than --max-delete-fraction of the owned keys deletes nothing:
//     JudgeDeletes.
// Both are lifted only by --confirm-mass-delete. Pure functions except CheckRootsExist, which
// reads ZooKeeper; any thread but the session's loop thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "config/config.h"
#include "zk/api.h"

namespace kvsync::zk2etcd {

// OK when the chroot and every root exist, or when config.allow_missing_prefix is set.
// FailedPrecondition naming the missing chroot or root, the servers and the flag that allows it;
// other ZooKeeper errors as the session reports them.
absl::Status CheckRootsExist(zk::Reader* session, const config::Zk2EtcdConfig& config);

// The deletes one full-sync round inferred, before any is submitted.
struct DeletePlan {
  int64_t deletes = 0;             // owned keys no znode matched, all roots included
  int64_t under_missing_root = 0;  // of which under a root the walk found missing
  int64_t owned = 0;               // owned keys in scope when the round read etcd
  std::vector<std::string> missing_roots;
  // The walk met more unreadable znodes than it names (zk::WalkResult::kMaxUnreadable): no
  // inferred delete can be told apart from a key under one of them.
  bool unreadable_unnamed = false;
};

// Whether `path` is one of `nodes` or lies under one (path-aware), by looking up each ancestor:
// cost grows with the depth of `path`, not with the size of `nodes`.
bool UnderAny(absl::string_view path, const absl::flat_hash_set<std::string>& nodes);

// OK when the round may delete: nothing under a missing root, every unreadable znode named, and
// either a single delete (a lost
// delete event, never a mass removal) or at most max_fraction of the owned keys. Otherwise
// FailedPrecondition, one line saying what is held and how to confirm it. `confirmed` lifts both.
absl::Status JudgeDeletes(const DeletePlan& plan, double max_fraction, bool confirmed);

}  // namespace kvsync::zk2etcd
