// The full-sync merge-join: walks a source cursor and a destination cursor in key order (both
// sorted; the prefix rewrite keeps order because it replaces a common prefix) and emits the
// writes that make the destination equal the source: a put for each key missing or different
// at the destination, a delete for each destination key absent at the source. Keys the
// KeyMapper protects (excluded, meta) are skipped on both sides. Memory is O(page).
// Single-threaded; `emit` runs on the caller's thread.
#pragma once

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "etcd/types.h"
#include "mirror/key_mapper.h"
#include "mirror/range_cursor.h"

namespace kvsync::mirror {

struct DiffCounts {
  int64_t source_keys = 0;       // source keys in scope
  int64_t destination_keys = 0;  // destination keys in scope
  int64_t dst_miss = 0;          // at the source, missing at the destination
  int64_t mismatch = 0;          // on both sides, values differ
  int64_t src_miss = 0;          // at the destination, missing at the source
};

// `emit` returning an error stops the merge with that error.
absl::Status MergeDiff(KvCursor* src, KvCursor* dst, const KeyMapper& mapper,
                       const std::function<absl::Status(etcd::Op)>& emit, DiffCounts* counts);

}  // namespace kvsync::mirror
