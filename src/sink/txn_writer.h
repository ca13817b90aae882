// Commits batches of destination writes, each as one txn, optionally with a marker op (a
// checkpoint) that must become visible with or after all of them. Handles what every write path
// needs: transient failures are retried (the writes are idempotent puts and deletes of final
// values), a txn the server finds too large is split in halves (the marker then goes last, on
// its own), a single op the destination will never accept stops the task (FailedPrecondition
// naming the key, cut), and a fence (compares added to every txn, e.g. on a leader key) turns a
// failed compare into FailedPrecondition. Counts go to a WriteStats.
// A chain compare (optional, per call) orders txns sent concurrently: the txn's writes sit in a
// nested txn guarded by it (etcd >= 3.3), so a txn whose chain compare fails writes nothing and
// returns IsOutOfOrder, told apart from a failed fence (sink::CommitPipeline uses this).
// Thread-safe: several writer threads may call Commit at once.
#pragma once

#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "common/stop_token.h"
#include "etcd/client.h"
#include "sink/write_stats.h"

namespace kvsync::sink {

// A chained txn's compare did not hold: it was not written (kind kOutOfOrder, Aborted).
absl::Status OutOfOrderError(const std::string& context);
bool IsOutOfOrder(const absl::Status& status);

class TxnWriter {
 public:
  // `component` names the engine in log lines ("mirror", "zk2etcd").
  TxnWriter(etcd::TxnApi* dst, const common::StopToken* stop, WriteStats* stats,
            std::string component);

  // Compares every txn must carry (empty: no fencing). Set before the first Commit.
  void set_fence(std::vector<etcd::Compare> fence) { fence_ = std::move(fence); }

  // Applies `ops` (and `marker`, when given) atomically when they fit in one txn.
  // Errors: Cancelled (stop requested), FailedPrecondition (fenced, or a single op the
  // destination refuses as too large), other non-transient etcd errors.
  // `revision` (optional) receives the revision of the (last) committed txn.
  // With `chain`, every txn (each part of a split one too) writes only when `chain` holds, and
  // returns IsOutOfOrder when it does not.
  absl::Status Commit(std::vector<etcd::Op> ops, const std::optional<etcd::Op>& marker,
                      int64_t* revision = nullptr, const etcd::Compare* chain = nullptr);

 private:
  absl::Status CommitOnce(const std::vector<etcd::Op>& ops, const std::optional<etcd::Op>& marker,
                          int64_t* revision, const etcd::Compare* chain);

  etcd::TxnApi* dst_;
  const common::StopToken* stop_;
  WriteStats* stats_;
  const std::string component_;
  std::vector<etcd::Compare> fence_;
};

}  // namespace kvsync::sink
