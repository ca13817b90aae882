#include "sink/txn_writer.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "election/elector.h"
#include "etcd/retry.h"
#include "log/log.h"
#include "metrics/registry.h"

namespace kvsync::sink {

absl::Status OutOfOrderError(const std::string& context) {
  return common::WithKind(
      absl::AbortedError(absl::StrCat(context, ": chain compare failed, not written")),
      common::ErrorKind::kOutOfOrder);
}

bool IsOutOfOrder(const absl::Status& status) {
  return common::KindOf(status) == common::ErrorKind::kOutOfOrder;
}

TxnWriter::TxnWriter(etcd::TxnApi* dst, const common::StopToken* stop, WriteStats* stats,
                     std::string component)
    : dst_(dst), stop_(stop), stats_(stats), component_(std::move(component)) {}

absl::Status TxnWriter::CommitOnce(const std::vector<etcd::Op>& ops,
                                   const std::optional<etcd::Op>& marker, int64_t* revision,
                                   const etcd::Compare* chain) {
  etcd::TxnRequest txn;
  txn.compares = fence_;
  if (chain != nullptr) {
    etcd::TxnRequest inner;
    inner.compares.push_back(*chain);
    inner.success = ops;
    if (marker) inner.success.push_back(*marker);
    txn.success.push_back(etcd::Op::Txn(std::move(inner)));
  } else {
    txn.success = ops;
    if (marker) txn.success.push_back(*marker);
  }
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
  if (chain != nullptr && (resp->nested_succeeded.empty() || !resp->nested_succeeded[0])) {
    return OutOfOrderError("destination txn");
  }
  stats_->txns.fetch_add(1, std::memory_order_relaxed);
  if (revision != nullptr) *revision = resp->header.revision;
  for (const auto& op : ops) {
    (op.type == etcd::Op::Type::kPut ? stats_->puts : stats_->deletes)
        .fetch_add(1, std::memory_order_relaxed);
  }
  return absl::OkStatus();
}

absl::Status TxnWriter::Commit(std::vector<etcd::Op> ops, const std::optional<etcd::Op>& marker,
                               int64_t* revision, const etcd::Compare* chain) {
  absl::Status s = CommitOnce(ops, marker, revision, chain);
  if (s.ok() || !etcd::IsRequestTooLarge(s)) return s;
  if (ops.size() <= 1 && !marker) {
    // One op the destination will never accept. Skipping it would leave the destination
    // silently wrong and retrying would leave it silently stale, so the task stops (exit 2: the
    // fix is the destination's configuration). The marker (checkpoint) has not passed it, so a
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
  // Too large: write the data in halves, then the marker alone. Not atomic any more, but a
  // crash in between only makes the next start replay from the older marker. With a chain,
  // every part carries it: the marker is the only write that moves the chain on.
  log::Warn(component_, "txn too large for destination, splitting",
            {{"ops", static_cast<int64_t>(ops.size())}});
  if (ops.size() > 1) {
    std::vector<etcd::Op> second(std::make_move_iterator(ops.begin() + ops.size() / 2),
                                 std::make_move_iterator(ops.end()));
    ops.resize(ops.size() / 2);
    RETURN_IF_ERROR(Commit(std::move(ops), std::nullopt, revision, chain));
    RETURN_IF_ERROR(Commit(std::move(second), std::nullopt, revision, chain));
  } else if (!ops.empty()) {
    RETURN_IF_ERROR(Commit(std::move(ops), std::nullopt, revision, chain));
  }
  if (marker) return CommitOnce({}, marker, revision, chain);
  return absl::OkStatus();
}

}  // namespace kvsync::sink
