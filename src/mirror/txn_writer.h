// Commits batches of destination writes, each as one txn, optionally with the task checkpoint
// put in the same txn. Handles what every write path needs: transient failures are retried
// (the writes are idempotent puts and deletes of final values), a txn the server finds too
// large is split in halves (the checkpoint then goes last, on its own), and a fence (compares
// added to every txn, e.g. on a leader key) turns a failed compare into FailedPrecondition.
// Thread-safe: the full-sync pool calls Commit from several threads.
#pragma once

#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "checker/checkpoint.h"
#include "common/stop_token.h"
#include "etcd/client.h"
#include "mirror/stats.h"

namespace kvsync::mirror {

class TxnWriter {
 public:
  TxnWriter(etcd::Client* dst, std::string checkpoint_key, const common::StopToken* stop,
            Stats* stats);

  // Compares every txn must carry (empty: no fencing).
  void set_fence(std::vector<etcd::Compare> fence) { fence_ = std::move(fence); }

  // Applies `ops` (and the checkpoint, when given) atomically when they fit in one txn.
  // Errors: Cancelled (stop requested), FailedPrecondition (fenced, or a single op the
  // destination refuses as too large), other non-transient etcd errors.
  // `revision` (optional) receives the revision of the (last) committed txn.
  absl::Status Commit(std::vector<etcd::Op> ops, std::optional<checker::Checkpoint> checkpoint,
                      int64_t* revision = nullptr);

 private:
  absl::Status CommitOnce(const std::vector<etcd::Op>& ops,
                          const std::optional<checker::Checkpoint>& checkpoint, int64_t* revision);

  etcd::Client* dst_;
  std::string checkpoint_key_;
  const common::StopToken* stop_;
  Stats* stats_;
  std::vector<etcd::Compare> fence_;
};

}  // namespace kvsync::mirror
