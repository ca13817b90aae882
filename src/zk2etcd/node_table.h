// What zk2etcd knows about every covered znode, keyed by the 128-bit digest of its etcd key
// (common::KeyDigest: 16 bytes instead of a ~1 KB Dubbo path; two different keys colliding is
// ~1e-29 likely at 1e5 keys; the same digest names the key's etcd ownership mark). Per node: the
// version last submitted to etcd (czxid, mzxid: ZooKeeper's zxids are global, so versions stay
// comparable across sessions) or a tombstone for a deleted incarnation, and the etcd revision of
// kvsync's last committed write of the key.
//
// Version order is the guarantee that a stale read never resurrects a deleted key: a put is
// submitted only for a version newer than the one recorded, and a delete records a tombstone
// (czxid of the deleted incarnation, mzxid = infinity), so a late read of that incarnation is
// older than the tombstone and dropped, while a re-created node has a larger czxid.
//
// Thread-safe (one mutex): the applier reads and updates versions, writer threads record
// commits.
#pragma once

#include <cstdint>
#include <limits>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/digest.h"

namespace kvsync::zk2etcd {

using KeyHash = common::Digest128;
inline KeyHash HashKey(std::string_view key) { return common::KeyDigest(key); }
// 64-bit hash of a value, for comparing values without keeping them.
uint64_t HashValue(std::string_view value);

struct Version {
  int64_t czxid = 0;
  int64_t mzxid = 0;
  static constexpr int64_t kDeleted = std::numeric_limits<int64_t>::max();
  bool operator<(const Version& o) const {
    return czxid != o.czxid ? czxid < o.czxid : mzxid < o.mzxid;
  }
  bool tombstone() const { return mzxid == kDeleted; }
};

struct NodeState {
  Version version;      // last submitted (a tombstone after a delete)
  bool known = false;   // a version was recorded
  int32_t pending = 0;  // submitted writes not yet committed
  int64_t written = 0;  // etcd revision of the last committed write by kvsync (0: none)
  uint32_t seen = 0;    // the full-sync round in which it was last read or changed
  bool live() const { return known && !version.tombstone(); }
};

class NodeTable {
 public:
  NodeState Get(const KeyHash& key) const;
  // Records `v` as submitted when it is newer than what is recorded; returns false (nothing
  // changed) for a stale or equal version.
  bool Advance(const KeyHash& key, const Version& v);
  // Starts a full-sync round: nodes read or changed from now on are "seen" in it.
  uint32_t NewRound();
  uint32_t round() const;
  // Drops what is known about `key` (its next read is written whatever its version).
  void Forget(const KeyHash& key);
  // Marks `key` as read in the current round (its version unchanged).
  void Touch(const KeyHash& key);
  // Records that a write of `key` was submitted / committed at `revision`.
  void Submitted(const KeyHash& key);
  void Committed(const KeyHash& key, int64_t revision);
  // Live nodes (znodes watched).
  int64_t live() const;
  // Drops tombstones of keys without pending writes (after a complete full sync no late read
  // of a deleted incarnation can be in flight: every read since has seen the deletion).
  void DropTombstones();
  void Clear();

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<KeyHash, NodeState> nodes_ ABSL_GUARDED_BY(mu_);
  int64_t live_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t round_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kvsync::zk2etcd
