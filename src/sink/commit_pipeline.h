// Keeps up to `inflight` destination txns in flight while they still commit one after the
// other in submission order: the incremental path's answer to a destination far away (one txn
// per round trip caps a 30 ms link at --max-txn-ops / 30 ms).
//
// The order is enforced by the destination, not by the network: every txn writes the marker
// key (the checkpoint) and carries a chain compare "the marker's version is exactly what the
// txn before it leaves" (base + seq - 1, base read by Start()). A txn that overtakes its
// predecessor (another connection, a server goroutine scheduled first, a retry after a
// timeout) writes nothing and comes back IsOutOfOrder; the pipeline then sends it and every
// later txn again, in order (go-back-N). So the destination goes through exactly the states
// a one-at-a-time writer would produce, and the marker names the last txn applied.
// A chain compare that fails while the predecessor is known committed is settled by reading
// the marker: our value at base + seq means an earlier attempt committed (an ambiguous
// timeout); anything else means someone else wrote the marker, and the pipeline fails with
// FailedPrecondition.
//
// Threads: Submit, Drain, committed() and the destructor are for one owner thread (the
// engine). `inflight` workers named "commit-txn" send the txns through the TxnWriter.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/stop_token.h"
#include "etcd/api.h"
#include "runtime/thread.h"
#include "sink/txn_writer.h"
#include "sink/write_stats.h"

namespace kvsync::sink {

class CommitPipeline {
 public:
  // `writer`, `dst`, `stop` and `stats` must outlive the pipeline.
  CommitPipeline(TxnWriter* writer, etcd::KvApi* dst, const common::StopToken* stop,
                 WriteStats* stats, std::string marker_key, int inflight);
  ~CommitPipeline();
  CommitPipeline(const CommitPipeline&) = delete;
  CommitPipeline& operator=(const CommitPipeline&) = delete;

  // Reads the marker's version (retrying transient faults) and starts the workers.
  absl::Status Start();

  // Queues a txn of `ops` that also puts `marker_value` at the marker key; returns its
  // sequence number (1, 2, ...). Blocks while `inflight` txns are outstanding. Returns the
  // pipeline's error once any txn failed (nothing is sent after that).
  absl::StatusOr<int64_t> Submit(std::vector<etcd::Op> ops, std::string marker_value);

  // The highest sequence number committed: it and every txn before it are applied.
  int64_t committed() const;
  // Sequence number of the last txn submitted (0 before the first).
  int64_t submitted() const;

  // Called (under the pipeline's lock: it must be quick and must not call back) each time a
  // txn commits; nullptr clears it, after which it is never called again.
  void SetOnCommit(std::function<void()> on_commit);

  // Waits until every submitted txn committed or, after a failure, until no txn is in flight
  // any more (committed() is then final). Returns the first error.
  absl::Status Drain();

 private:
  struct Entry {
    int64_t seq = 0;
    std::vector<etcd::Op> ops;
    etcd::Op marker;
    uint64_t send_id = 0;  // the latest send; results of older sends only count if they commit
  };

  void Work();
  // Whether the worker may send txn `seq` now (see Work).
  bool Sendable(int64_t seq) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Settles a chain failure of `entry` sent while its predecessor was already committed:
  // true when an earlier attempt committed it.
  absl::StatusOr<bool> CommittedEarlier(const Entry& entry);
  void Fail(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkCommitted(int64_t seq) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  TxnWriter* writer_;
  etcd::KvApi* dst_;
  const common::StopToken* stop_;
  WriteStats* stats_;
  const std::string marker_key_;
  const int inflight_;
  int64_t base_version_ = 0;  // the marker's version before the first txn

  mutable absl::Mutex mu_;
  // Entries not yet known committed, in sequence order (front: committed_ + 1).
  std::deque<std::shared_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
  int64_t committed_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t submitted_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_send_ ABSL_GUARDED_BY(mu_) = 1;  // sequence number the next free worker sends
  uint64_t sends_ ABSL_GUARDED_BY(mu_) = 0;
  int busy_ ABSL_GUARDED_BY(mu_) = 0;  // workers with a txn on the wire
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> on_commit_ ABSL_GUARDED_BY(mu_);
  std::vector<runtime::Thread> workers_;
};

}  // namespace kvsync::sink
