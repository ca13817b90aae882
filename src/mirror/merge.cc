#include "mirror/merge.h"

#include <string_view>

#include "common/status_macros.h"

namespace kvsync::mirror {
namespace {

// Advances `cursor` past keys the mapper protects; returns the first mirrored one or nullptr.
template <typename Mapped>
absl::StatusOr<const etcd::KeyValue*> NextInScope(KvCursor* cursor, Mapped&& in_scope) {
  while (true) {
    ASSIGN_OR_RETURN(const etcd::KeyValue* kv, cursor->Current());
    if (kv == nullptr || in_scope(kv->key)) return kv;
    cursor->Advance();
  }
}

}  // namespace

absl::Status MergeDiff(KvCursor* src, KvCursor* dst, const KeyMapper& mapper,
                       const std::function<absl::Status(etcd::Op)>& emit, DiffCounts* counts) {
  const size_t src_skip = mapper.src_prefix().size();
  const size_t dst_skip = mapper.dst_prefix().size();
  auto src_in_scope = [&](const std::string& k) { return mapper.ToDestination(k).has_value(); };
  auto dst_in_scope = [&](const std::string& k) { return mapper.ToSource(k).has_value(); };

  ASSIGN_OR_RETURN(const etcd::KeyValue* s, NextInScope(src, src_in_scope));
  ASSIGN_OR_RETURN(const etcd::KeyValue* d, NextInScope(dst, dst_in_scope));
  while (s != nullptr || d != nullptr) {
    int cmp;
    if (s == nullptr) {
      cmp = 1;
    } else if (d == nullptr) {
      cmp = -1;
    } else {
      cmp = std::string_view(s->key).substr(src_skip).compare(
          std::string_view(d->key).substr(dst_skip));
    }
    if (cmp < 0) {
      ++counts->source_keys;
      ++counts->dst_miss;
      RETURN_IF_ERROR(emit(etcd::Op::Put(*mapper.ToDestination(s->key), s->value)));
    } else if (cmp > 0) {
      ++counts->destination_keys;
      ++counts->src_miss;
      RETURN_IF_ERROR(emit(etcd::Op::Delete(d->key)));
    } else {
      ++counts->source_keys;
      ++counts->destination_keys;
      if (s->value != d->value) {
        ++counts->mismatch;
        RETURN_IF_ERROR(emit(etcd::Op::Put(d->key, s->value)));
      }
    }
    if (cmp <= 0) {
      src->Advance();
      ASSIGN_OR_RETURN(s, NextInScope(src, src_in_scope));
    }
    if (cmp >= 0) {
      dst->Advance();
      ASSIGN_OR_RETURN(d, NextInScope(dst, dst_in_scope));
    }
  }
  return absl::OkStatus();
}

}  // namespace kvsync::mirror
