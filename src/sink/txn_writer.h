// Commits batches of destination writes, each as one txn, optionally with a marker op (a
// checkpoint) that must become visible with or after all of them. Handles what every write path
// needs: transient failures are retried (the writes are idempotent puts and deletes of final
// values), a txn the server finds too large is split in halves (the marker then goes last, on
// its own), a single op the destination will never accept stops the task (FailedPrecondition
// naming the key, cut), and a fence (compares added to every txn, e.g. on a leader key) turns a
// failed compare into FailedPrecondition. Counts go to a WriteStats.
// Thread-safe: several writer threads may call Commit at once.
#pragma once

#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "common/stop_token.h"
#include "etcd/client.h"
#include "sink/write_stats.h"

namespace kvsync::sink {

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
  absl::Status Commit(std::vector<etcd::Op> ops, const std::optional<etcd::Op>& marker,
                      int64_t* revision = nullptr);

 private:
  absl::Status CommitOnce(const std::vector<etcd::Op>& ops, const std::optional<etcd::Op>& marker,
                          int64_t* revision);

  etcd::TxnApi* dst_;
  const common::StopToken* stop_;
  WriteStats* stats_;
  const std::string component_;
  std::vector<etcd::Compare> fence_;
};

}  // namespace kvsync::sink
