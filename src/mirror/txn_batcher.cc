#include "mirror/txn_batcher.h"

#include "common/check.h"

namespace kvsync::mirror {

TxnBatcher::TxnBatcher(int max_ops, int64_t max_bytes, int reserved_ops, int64_t reserved_bytes)
    : max_ops_(max_ops - reserved_ops), max_bytes_(max_bytes - reserved_bytes) {
  // Validation keeps --max-txn-ops and --max-request-bytes above what the checkpoint reserves;
  // a batch with no room would otherwise send one op per txn or none at all.
  KVSYNC_CHECK(max_ops_ > 0 && max_bytes_ > 0)
      << "txn limits " << max_ops << " ops / " << max_bytes << " bytes leave no room after "
      << reserved_ops << " ops / " << reserved_bytes << " bytes reserved";
}

bool TxnBatcher::Fits(size_t ops, size_t bytes) const {
  return ops_.size() + ops <= static_cast<size_t>(max_ops_) &&
         bytes_ + static_cast<int64_t>(bytes) <= max_bytes_;
}

bool TxnBatcher::FitsEmpty(size_t ops, size_t bytes) const {
  return ops <= static_cast<size_t>(max_ops_) && static_cast<int64_t>(bytes) <= max_bytes_;
}

bool TxnBatcher::Add(etcd::Op op) {
  auto it = index_.find(op.key);
  if (it != index_.end()) {
    etcd::Op& old = ops_[it->second];
    int64_t delta = static_cast<int64_t>(op.ByteSize()) - static_cast<int64_t>(old.ByteSize());
    if (bytes_ + delta > max_bytes_ && ops_.size() > 1) return false;
    bytes_ += delta;
    old = std::move(op);
    return true;
  }
  size_t size = op.ByteSize();
  if (!ops_.empty() && !Fits(1, size)) return false;
  index_.emplace(op.key, ops_.size());
  bytes_ += static_cast<int64_t>(size);
  ops_.push_back(std::move(op));
  return true;
}

std::vector<etcd::Op> TxnBatcher::Take() {
  std::vector<etcd::Op> out;
  out.swap(ops_);
  index_.clear();
  bytes_ = 0;
  return out;
}

}  // namespace kvsync::mirror
