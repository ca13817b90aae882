// The merge-join at the heart of both full syncs and consistency checks: walks a source cursor
// and a destination cursor in key order (both sorted; the prefix rewrite keeps order because it
// replaces a common prefix) and reports every difference:
//   dst miss  - at the source, missing at the destination;
//   src miss  - at the destination (inside the mapped prefix, not meta, not excluded), missing
//               at the source;
//   mismatch  - on both sides with different values (not reported with `keys_only`);
//   lease mismatch - same value, but the destination key is not attached to the lease with the
//               source key's lease ID (only with `compare_leases`: lease-aware mirroring keeps
//               the IDs, see mirror/lease_keeper.h).
// Keys the KeyMapper protects (excluded, meta) are skipped on both sides. Memory is O(page).
// Single-threaded; `on_diff` runs on the caller's thread, its pointers valid during the call.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "checker/key_mapper.h"
#include "checker/range_cursor.h"
#include "etcd/types.h"

namespace kvsync::checker {

enum class DiffKind { kDstMiss, kSrcMiss, kMismatch, kLeaseMismatch };
// "dst miss", "src miss", "mismatch", "lease mismatch"
const char* DiffKindName(DiffKind kind);

struct Difference {
  DiffKind kind;
  const etcd::KeyValue* src = nullptr;  // null for a src miss
  const etcd::KeyValue* dst = nullptr;  // null for a dst miss
  std::string dst_key;                  // the destination key (mapped from the source key)
};

struct DiffCounts {
  int64_t source_keys = 0;       // source keys in scope
  int64_t destination_keys = 0;  // destination keys in scope
  int64_t dst_miss = 0;
  int64_t mismatch = 0;
  int64_t src_miss = 0;
  int64_t lease_mismatch = 0;
  int64_t total() const { return dst_miss + mismatch + src_miss + lease_mismatch; }
};

// `on_diff` returning an error stops the merge with that error.
absl::Status MergeJoin(KvCursor* src, KvCursor* dst, const KeyMapper& mapper, bool keys_only,
                       bool compare_leases,
                       const std::function<absl::Status(const Difference&)>& on_diff,
                       DiffCounts* counts);

}  // namespace kvsync::checker
