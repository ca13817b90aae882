#include "mirror/txn_writer.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "election/elector.h"
#include "etcd/retry.h"
#include "log/log.h"
#include "metrics/registry.h"

namespace kvsync::mirror {

TxnWriter::TxnWriter(etcd::Client* dst, std::string checkpoint_key, const common::StopToken* stop,
                     Stats* stats)
    : dst_(dst), checkpoint_key_(std::move(checkpoint_key)), stop_(stop), stats_(stats) {}

absl::Status TxnWriter::CommitOnce(const std::vector<etcd::Op>& ops,
                                   const std::optional<checker::Checkpoint>& checkpoint,
                                   int64_t* revision) {
  etcd::TxnRequest txn;
  txn.compares = fence_;
  txn.success = ops;
  if (checkpoint)
    txn.success.push_back(etcd::Op::Put(checkpoint_key_, checker::EncodeCheckpoint(*checkpoint)));
  auto resp = etcd::RetryTransient(*stop_, "destination txn", &stats_->retries, [&] {
    auto started = std::chrono::steady_clock::now();
    auto r = dst_->Txn(txn);
    if (stats_->txn_latency != nullptr) {
      stats_->txn_latency->Observe(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    }
    return r;
  });
  if (!resp.ok()) return resp.status();
  if (!resp->succeeded) {
    return election::FencedError("destination txn");
  }
  stats_->txns.fetch_add(1, std::memory_order_relaxed);
  if (revision != nullptr) *revision = resp->header.revision;
  if (checkpoint) {
    stats_->last_checkpoint_write_ms.store(std::chrono::duration_cast<std::chrono::milliseconds>(
                                               std::chrono::system_clock::now().time_since_epoch())
                                               .count(),
                                           std::memory_order_relaxed);
  }
  for (const auto& op : ops) {
    (op.type == etcd::Op::Type::kPut ? stats_->puts : stats_->deletes)
        .fetch_add(1, std::memory_order_relaxed);
  }
  return absl::OkStatus();
}

absl::Status TxnWriter::Commit(std::vector<etcd::Op> ops,
                               std::optional<checker::Checkpoint> checkpoint, int64_t* revision) {
  absl::Status s = CommitOnce(ops, checkpoint, revision);
  if (s.ok() || !etcd::IsRequestTooLarge(s)) return s;
  if (ops.size() <= 1 && !checkpoint) {
    // One op the destination will never accept. Skipping it would leave the standby silently
    // wrong and retrying would leave it silently stale, so the task stops (exit 2: the fix is
    // the destination's configuration). The checkpoint has not passed this revision, so a
    // restart after the fix resumes here and nothing is lost. The key is cut for the message.
    const etcd::Op* op = ops.empty() ? nullptr : &ops[0];
    return absl::FailedPreconditionError(absl::StrCat(
        "destination refuses key \"", common::PrintableKey(op ? op->key : ""), "\" (",
        op ? op->key.size() : 0, "-byte key, ", op ? op->value.size() : 0,
        "-byte value) as too large: raise the destination's --max-request-bytes above ",
        op ? op->ByteSize() : 0,
        " bytes (as large as the source's); nothing after it is "
        "mirrored until then, and a restart resumes from this revision"));
  }
  // Too large: write the data in halves, then the checkpoint alone. Not atomic any more, but a
  // crash in between only makes the next start replay from the older checkpoint.
  log::Warn("mirror", "txn too large for destination, splitting",
            {{"ops", static_cast<int64_t>(ops.size())}});
  if (ops.size() > 1) {
    std::vector<etcd::Op> second(std::make_move_iterator(ops.begin() + ops.size() / 2),
                                 std::make_move_iterator(ops.end()));
    ops.resize(ops.size() / 2);
    RETURN_IF_ERROR(Commit(std::move(ops), std::nullopt, revision));
    RETURN_IF_ERROR(Commit(std::move(second), std::nullopt, revision));
  } else if (!ops.empty()) {
    RETURN_IF_ERROR(Commit(std::move(ops), std::nullopt, revision));
  }
  if (checkpoint) return CommitOnce({}, checkpoint, revision);
  return absl::OkStatus();
}

}  // namespace kvsync::mirror
