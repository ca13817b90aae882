#include "zk2etcd/snapshot.h"

#include "common/status_macros.h"
#include "common/strings.h"

namespace kvsync::zk2etcd {

absl::Status ReadRange(etcd::KvApi* etcd, const std::string& key, const std::string& range_end,
                       int64_t revision, bool keys_only, int page_size,
                       const common::StopToken& stop, etcd::RetryCounters* retries,
                       const std::function<void(const etcd::KeyValue&)>& fn,
                       int64_t* header_revision) {
  etcd::RangeRequest req;
  req.key = key;
  req.range_end = range_end;
  req.limit = page_size;
  req.revision = revision;
  req.keys_only = keys_only;
  while (true) {
    auto resp = etcd::RetryTransient(stop, "etcd range", retries, [&] { return etcd->Range(req); });
    if (!resp.ok()) return resp.status();
    if (req.revision == 0) {
      // Later pages read at the first page's revision: one consistent snapshot.
      req.revision = resp->header.revision;
      if (header_revision != nullptr) *header_revision = resp->header.revision;
    }
    for (const auto& kv : resp->kvs) fn(kv);
    if (!resp->more || resp->kvs.empty()) return absl::OkStatus();
    req.key = resp->kvs.back().key + std::string(1, '\0');
  }
}

absl::StatusOr<Snapshot> Snapshot::Load(etcd::KvApi* etcd, const Scope& scope,
                                        const std::string& mark_prefix, int page_size,
                                        const common::StopToken& stop,
                                        etcd::RetryCounters* retries) {
  Snapshot snap;
  for (const auto& range : scope.EtcdRanges()) {
    int64_t rev = snap.revision_;
    RETURN_IF_ERROR(ReadRange(
        etcd, range.key, range.range_end, snap.revision_, false, page_size, stop, retries,
        [&](const etcd::KeyValue& kv) {
          snap.bytes_ += static_cast<int64_t>(kv.key.size() + kv.value.size());
          if (!scope.PathOf(kv.key)) return;
          snap.entries_[HashKey(kv.key)] = Entry{HashValue(kv.value), kv.mod_revision, kv.lease};
        },
        &rev));
    if (snap.revision_ == 0) snap.revision_ = rev;
  }
  if (!mark_prefix.empty()) {
    RETURN_IF_ERROR(ReadRange(etcd, mark_prefix, common::PrefixEnd(mark_prefix), snap.revision_,
                              true, page_size, stop, retries, [&](const etcd::KeyValue& kv) {
                                std::string_view name(kv.key);
                                name.remove_prefix(mark_prefix.size());
                                KeyHash h;
                                if (!common::ParseDigestHex(name, &h)) return;
                                auto it = snap.entries_.find(h);
                                if (it != snap.entries_.end() && !it->second.marked) {
                                  it->second.marked = true;
                                  ++snap.marked_;
                                }
                              }));
  }
  return snap;
}

int64_t Snapshot::visited_keys() const {
  int64_t n = 0;
  for (const auto& [h, e] : entries_) n += e.visited ? 1 : 0;
  return n;
}

Snapshot::Entry* Snapshot::Find(const KeyHash& key) {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

absl::Status Snapshot::ForEachUnvisited(etcd::KvApi* etcd, const Scope& scope, int page_size,
                                        const common::StopToken& stop, etcd::RetryCounters* retries,
                                        const std::function<void(const std::string&, Entry&)>& fn) {
  for (const auto& range : scope.EtcdRanges()) {
    RETURN_IF_ERROR(ReadRange(etcd, range.key, range.range_end, 0, true, page_size, stop, retries,
                              [&](const etcd::KeyValue& kv) {
                                if (!scope.PathOf(kv.key)) return;
                                Entry* e = Find(HashKey(kv.key));
                                if (e != nullptr && !e->visited) fn(kv.key, *e);
                              }));
  }
  return absl::OkStatus();
}

}  // namespace kvsync::zk2etcd
