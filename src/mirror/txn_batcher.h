// Packs destination writes into txns that respect etcd's --max-txn-ops and
// --max-request-bytes, with room reserved for the checkpoint put that rides in every txn.
// A key appears at most once per txn (etcd rejects duplicates): a later op on the same key
// replaces the earlier one, which is what applying them in order would leave. Owned by one
// thread; not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "etcd/types.h"

namespace kvsync::mirror {

class TxnBatcher {
 public:
  // `reserved_ops` / `reserved_bytes`: room kept free for the checkpoint put.
  TxnBatcher(int max_ops, int64_t max_bytes, int reserved_ops, int64_t reserved_bytes);

  // True when `ops` more ops totalling `bytes` fit in the current batch.
  bool Fits(size_t ops, size_t bytes) const;
  // True when they would fit in an empty batch.
  bool FitsEmpty(size_t ops, size_t bytes) const;
  // Adds an op. Returns false, leaving the batch unchanged, when it does not fit; an op too
  // large for any batch is accepted into an empty one (the server then decides).
  bool Add(etcd::Op op);

  bool empty() const { return ops_.empty(); }
  size_t size() const { return ops_.size(); }
  int64_t bytes() const { return bytes_; }
  // Hands the batch over and starts a new one.
  std::vector<etcd::Op> Take();

 private:
  int max_ops_;
  int64_t max_bytes_;
  std::vector<etcd::Op> ops_;
  std::unordered_map<std::string, size_t> index_;
  int64_t bytes_ = 0;
};

}  // namespace kvsync::mirror
