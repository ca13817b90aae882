#include "checker/merge.h"

#include <string_view>

#include "common/status_macros.h"

namespace kvsync::checker {
namespace {

// Advances `cursor` past keys the mapper protects; returns the first one in scope or nullptr.
template <typename InScope>
absl::StatusOr<const etcd::KeyValue*> NextInScope(KvCursor* cursor, InScope&& in_scope) {
  while (true) {
    ASSIGN_OR_RETURN(const etcd::KeyValue* kv, cursor->Current());
    if (kv == nullptr || in_scope(kv->key)) return kv;
    cursor->Advance();
  }
}

}  // namespace

const char* DiffKindName(DiffKind kind) {
  switch (kind) {
    case DiffKind::kDstMiss:
      return "dst miss";
    case DiffKind::kSrcMiss:
      return "src miss";
    case DiffKind::kMismatch:
      return "mismatch";
    case DiffKind::kLeaseMismatch:
      return "lease mismatch";
  }
  return "unknown";
}

absl::Status MergeJoin(KvCursor* src, KvCursor* dst, const KeyMapper& mapper, bool keys_only,
                       bool compare_leases,
                       const std::function<absl::Status(const Difference&)>& on_diff,
                       DiffCounts* counts) {
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
      RETURN_IF_ERROR(on_diff({DiffKind::kDstMiss, s, nullptr, *mapper.ToDestination(s->key)}));
    } else if (cmp > 0) {
      ++counts->destination_keys;
      ++counts->src_miss;
      RETURN_IF_ERROR(on_diff({DiffKind::kSrcMiss, nullptr, d, d->key}));
    } else {
      ++counts->source_keys;
      ++counts->destination_keys;
      if (!keys_only && s->value != d->value) {
        ++counts->mismatch;
        RETURN_IF_ERROR(on_diff({DiffKind::kMismatch, s, d, d->key}));
      } else if (compare_leases && s->lease != d->lease) {
        ++counts->lease_mismatch;
        RETURN_IF_ERROR(on_diff({DiffKind::kLeaseMismatch, s, d, d->key}));
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

}  // namespace kvsync::checker
