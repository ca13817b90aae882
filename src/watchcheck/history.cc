#include "watchcheck/history.h"

#include <algorithm>

namespace kvsync::watchcheck {

WritePlan::WritePlan(int keys, int delete_every) : delete_every_(delete_every), keys_(keys) {}

std::vector<WriteOp> WritePlan::Ops(int64_t tick) const {
  std::vector<WriteOp> ops(keys_.size());
  for (size_t k = 0; k < keys_.size(); ++k) {
    ops[k].key = static_cast<int>(k);
    ops[k].value = tick;
    ops[k].is_delete =
        k == 0 && delete_every_ > 0 && keys_[0].exists && tick % delete_every_ == delete_every_ - 1;
  }
  return ops;
}

void WritePlan::Commit(int64_t revision, std::vector<WriteOp>* ops) {
  for (WriteOp& op : *ops) {
    KeyState& k = keys_[op.key];
    op.prev_exists = k.exists;
    op.prev_value = k.value;
    op.prev_mod_revision = k.mod_revision;
    if (op.is_delete) {
      k = KeyState{};
      continue;
    }
    if (!k.exists) {
      k.exists = true;
      k.create_revision = revision;
      k.version = 0;
    }
    ++k.version;
    k.value = op.value;
    k.mod_revision = revision;
    op.version = k.version;
    op.create_revision = k.create_revision;
  }
}

History::History(size_t capacity) : records_(capacity) {}

bool History::Append(WriteRecord record) {
  size_t n = size_.load(std::memory_order_relaxed);
  if (n == records_.size()) return false;
  records_[n] = std::move(record);
  size_.store(n + 1, std::memory_order_release);
  return true;
}

int64_t History::Find(int64_t revision, size_t n) const {
  auto end = records_.begin() + static_cast<std::ptrdiff_t>(n);
  auto it = std::lower_bound(records_.begin(), end, revision,
                             [](const WriteRecord& r, int64_t rev) { return r.revision < rev; });
  if (it == end || it->revision != revision) return -1;
  return it - records_.begin();
}

}  // namespace kvsync::watchcheck
