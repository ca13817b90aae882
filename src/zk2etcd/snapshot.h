// The etcd side of a zk2etcd full diff: every covered key read once in pages at one revision
// and kept as (key hash -> value hash, mod revision, ownership mark, visited), so 100,000 Dubbo
// keys of ~1 KB cost a few MB instead of the keys themselves. The walk marks entries it
// visits; a second, keys-only pass then names the keys no znode visited (src miss candidates).
// Owned by one thread at a time (the full sync hands it from the loader to the applier and
// back). It reads etcd through the KvApi seam (etcd/api.h), so tests can load it from FakeEtcd.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/stop_token.h"
#include "etcd/api.h"
#include "etcd/retry.h"
#include "zk2etcd/node_table.h"
#include "zk2etcd/scope.h"

namespace kvsync::zk2etcd {

class Snapshot {
 public:
  struct Entry {
    uint64_t value_hash = 0;
    int64_t mod_revision = 0;
    int64_t lease = 0;    // the key's lease (0: none)
    bool marked = false;  // the etcd ownership backend's mark exists
    bool visited = false;
  };

  // Reads the covered keys (and, with a non-empty `mark_prefix`, the ownership marks
  // mark_prefix + hex digest of the key). Errors: etcd errors after transient ones were retried;
  // Cancelled.
  static absl::StatusOr<Snapshot> Load(etcd::KvApi* etcd, const Scope& scope,
                                       const std::string& mark_prefix, int page_size,
                                       const common::StopToken& stop, etcd::RetryCounters* retries);

  Entry* Find(const KeyHash& key);
  int64_t revision() const { return revision_; }
  int64_t keys() const { return static_cast<int64_t>(entries_.size()); }
  // Keys carrying the etcd ownership backend's mark (0 when loaded without a mark prefix).
  int64_t marked_keys() const { return marked_; }
  // Keys a znode matched so far (counts the entries; call after the walk).
  int64_t visited_keys() const;
  int64_t bytes_read() const { return bytes_; }

  // Second pass: calls `fn(key, entry)` for every covered key present now and in the snapshot
  // that no znode visited.
  absl::Status ForEachUnvisited(etcd::KvApi* etcd, const Scope& scope, int page_size,
                                const common::StopToken& stop, etcd::RetryCounters* retries,
                                const std::function<void(const std::string& key, Entry&)>& fn);

 private:
  absl::flat_hash_map<KeyHash, Entry> entries_;
  int64_t revision_ = 0;
  int64_t bytes_ = 0;
  int64_t marked_ = 0;
};

// Reads [key, range_end) in pages (at `revision` when non-zero), calling `fn` per key-value.
absl::Status ReadRange(etcd::KvApi* etcd, const std::string& key, const std::string& range_end,
                       int64_t revision, bool keys_only, int page_size,
                       const common::StopToken& stop, etcd::RetryCounters* retries,
                       const std::function<void(const etcd::KeyValue&)>& fn,
                       int64_t* header_revision = nullptr);

}  // namespace kvsync::zk2etcd
