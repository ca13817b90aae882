// Applies zk2etcd's key changes to etcd in batched txns, several in flight, without ever
// reordering two changes of one key: changes leave the queue in submission order, a batch
// holds a key at most once, and a change waits while an earlier change of its key is in
// flight. Group commit: an idle writer sends whatever is queued at once (low latency), but
// while a txn is in flight another one starts only with a full batch, so a busy stream of
// changes becomes few large txns instead of many small ones. Each txn carries the leader fence
// (when set); transient failures are retried and an oversized txn is split (sink::TxnWriter). The
// ownership store records keys before their puts commit and forgets them after their deletes
// commit; the deletes of a batch are looked up in the store first (one Redis round trip per
// batch, on a worker, never on the applier): a key kvsync does not own is left alone, and one
// whose owner is unknown (Redis down) is handed back; both through Options::on_skipped_delete.
//
// Memory: Submit waits while `max_queued_bytes` of changes are queued (backpressure on the
// applier).
//
// Threading: Submit, Flush and set_fence from the applier thread; `inflight` worker threads
// ("zk2etcd-write") commit. A non-transient failure (a fenced write, an etcd error) stops the
// writer: status() returns it, Flush() fails with it, and Options::on_failure is called once.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/stop_token.h"
#include "etcd/api.h"
#include "metrics/registry.h"
#include "ownership/store.h"
#include "runtime/thread.h"
#include "sink/txn_writer.h"
#include "sink/write_stats.h"
#include "zk2etcd/ephemeral_lease.h"
#include "zk2etcd/node_table.h"

namespace kvsync::zk2etcd {

// What `ops` cost against etcd's --max-txn-ops: etcd checks a nested txn against max-txn-ops
// minus the outer op count, so a guarded delete (one nested txn of two ops) costs 3.
size_t OpCost(const std::vector<etcd::Op>& ops);

struct Change {
  std::string key;
  KeyHash hash;
  std::vector<etcd::Op> ops;  // from the ownership store
  bool is_delete = false;
  // No etcd write: only record the key as kvsync's in the ownership store (Redis), in order
  // with the key's other changes (a full sync claiming keys already equal).
  bool claim_only = false;
  // The copy of an ephemeral znode (with --ephemeral-lease-ttl): its puts (the key and its
  // ownership mark) are attached to the ephemeral lease current when the txn is sent.
  bool ephemeral = false;
  // When the ZooKeeper change was seen (lag metrics); default: not measured.
  std::chrono::steady_clock::time_point origin{};
};

class Writer {
 public:
  struct Options {
    int inflight = 8;
    int max_ops = 128;
    int64_t max_bytes = 1536 * 1024;
    int64_t max_queued_bytes = 16 << 20;
    // Called on a worker for each delete not applied because the ownership store says the
    // key is not kvsync's (kNotOwned) or cannot say (kUnknown: Redis down).
    std::function<void(const Change& change, ownership::Owner owner)> on_skipped_delete;
    // Called on a worker once, when the writer stops on a failure.
    std::function<void()> on_failure;
    // With --ephemeral-lease-ttl: the lease of ephemeral copies. A txn refused because the
    // lease is gone is sent again with the lease EphemeralLease::Replace grants. Not owned.
    EphemeralLease* lease = nullptr;
  };
  Writer(etcd::TxnApi* etcd, ownership::Store* owners, NodeTable* nodes, Options options,
         const common::StopToken* stop, sink::WriteStats* stats, metrics::Histogram* lag);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  void set_fence(std::vector<etcd::Compare> fence);
  void Submit(Change change);
  // Waits until every change submitted so far is committed; returns the writer's status.
  absl::Status Flush();
  absl::Status status() const;
  int64_t queued() const;

 private:
  void Work();
  void UpdatePendingAge() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the deletes of `batch` kvsync may not apply (not owned, owner unknown) to `skipped`.
  void CheckOwners(std::vector<Change>* batch, std::vector<Change>* skipped);
  // Commits `ops`; with an ephemeral lease, again with a new lease when the cluster lost it.
  absl::Status Commit(std::vector<etcd::Op> ops, int64_t lease, int64_t* revision);

  ownership::Store* owners_;
  NodeTable* nodes_;
  Options options_;
  const common::StopToken* stop_;
  sink::WriteStats* stats_;
  metrics::Histogram* lag_;
  sink::TxnWriter txn_;

  mutable absl::Mutex mu_;
  std::deque<Change> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_ops_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_set<KeyHash> inflight_keys_ ABSL_GUARDED_BY(mu_);
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_seen_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point oldest_inflight_ ABSL_GUARDED_BY(mu_){};
  std::vector<runtime::Thread> workers_;
  std::optional<common::StopCallback> on_stop_;  // sets stop_seen_; reset first on destruction
};

}  // namespace kvsync::zk2etcd
