#include "sink/commit_pipeline.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "etcd/retry.h"

namespace kvsync::sink {

CommitPipeline::CommitPipeline(TxnWriter* writer, etcd::KvApi* dst, const common::StopToken* stop,
                               WriteStats* stats, std::string marker_key, int inflight)
    : writer_(writer),
      dst_(dst),
      stop_(stop),
      stats_(stats),
      marker_key_(std::move(marker_key)),
      inflight_(std::max(inflight, 1)) {}

CommitPipeline::~CommitPipeline() {
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
  }
  for (auto& worker : workers_) worker.Join();
}

absl::Status CommitPipeline::Start() {
  etcd::RangeRequest req;
  req.key = marker_key_;
  ASSIGN_OR_RETURN(etcd::RangeResponse resp,
                   etcd::RetryTransient(*stop_, "read checkpoint version", &stats_->retries,
                                        [&] { return dst_->Range(req); }));
  base_version_ = resp.kvs.empty() ? 0 : resp.kvs[0].version;
  for (int i = 0; i < inflight_; ++i) workers_.emplace_back("commit-txn", [this] { Work(); });
  return absl::OkStatus();
}

absl::StatusOr<int64_t> CommitPipeline::Submit(std::vector<etcd::Op> ops,
                                               std::string marker_value) {
  auto entry = std::make_shared<Entry>();
  entry->ops = std::move(ops);
  entry->marker = etcd::Op::Put(marker_key_, std::move(marker_value));
  absl::MutexLock lock(&mu_);
  auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !error_.ok() || submitted_ - committed_ < inflight_;
  };
  mu_.Await(absl::Condition(&room));
  if (!error_.ok()) return error_;
  entry->seq = ++submitted_;
  entries_.push_back(std::move(entry));
  return submitted_;
}

int64_t CommitPipeline::committed() const {
  absl::MutexLock lock(&mu_);
  return committed_;
}

int64_t CommitPipeline::submitted() const {
  absl::MutexLock lock(&mu_);
  return submitted_;
}

absl::Status CommitPipeline::Drain() {
  absl::MutexLock lock(&mu_);
  auto settled = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return busy_ == 0 && (committed_ == submitted_ || !error_.ok());
  };
  mu_.Await(absl::Condition(&settled));
  return error_;
}

void CommitPipeline::SetOnCommit(std::function<void()> on_commit) {
  absl::MutexLock lock(&mu_);
  on_commit_ = std::move(on_commit);
}

void CommitPipeline::Fail(const absl::Status& status) {
  if (error_.ok()) error_ = status;
}

void CommitPipeline::MarkCommitted(int64_t seq) {
  committed_ = std::max(committed_, seq);
  while (!entries_.empty() && entries_.front()->seq <= committed_) entries_.pop_front();
  next_send_ = std::max(next_send_, committed_ + 1);
  if (on_commit_) on_commit_();
}

bool CommitPipeline::Sendable(int64_t seq) const {
  if (seq == committed_ + 1) return true;
  const Entry& entry = *entries_[seq - committed_ - 1];
  const Entry& predecessor = *entries_[seq - committed_ - 2];
  // First sends go out in order at once; a send again waits until its predecessor committed
  // or was itself sent after it (else it would only overtake it again).
  return entry.send_id == 0 || predecessor.send_id > entry.send_id;
}

absl::StatusOr<bool> CommitPipeline::CommittedEarlier(const Entry& entry) {
  etcd::RangeRequest req;
  req.key = marker_key_;
  ASSIGN_OR_RETURN(etcd::RangeResponse resp,
                   etcd::RetryTransient(*stop_, "read checkpoint version", &stats_->retries,
                                        [&] { return dst_->Range(req); }));
  if (resp.kvs.empty()) return false;
  const int64_t seq = resp.kvs[0].version - base_version_;
  if (seq < entry.seq) return false;
  absl::MutexLock lock(&mu_);
  if (seq <= committed_) return true;
  if (seq > submitted_) return false;
  // The marker names one of our txns at or after `entry`: it and all before it committed.
  const Entry& shown = *entries_[seq - committed_ - 1];
  if (resp.kvs[0].value != shown.marker.value) return false;
  MarkCommitted(seq);
  return true;
}

void CommitPipeline::Work() {
  while (true) {
    std::shared_ptr<Entry> entry;
    uint64_t send_id = 0;
    bool predecessor_committed = false;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return closing_ || (error_.ok() && next_send_ <= submitted_ && Sendable(next_send_));
      };
      mu_.Await(absl::Condition(&ready));
      if (closing_) return;
      entry = entries_[next_send_ - committed_ - 1];
      ++next_send_;
      send_id = ++sends_;
      entry->send_id = send_id;
      predecessor_committed = committed_ >= entry->seq - 1;
      ++busy_;
    }
    stats_->txns_inflight.fetch_add(1, std::memory_order_relaxed);
    etcd::Compare chain;
    chain.key = marker_key_;
    chain.target = etcd::Compare::Target::kVersion;
    chain.result = etcd::Compare::Result::kEqual;
    chain.number = base_version_ + entry->seq - 1;
    absl::Status s = writer_->Commit(entry->ops, entry->marker, nullptr, &chain);
    if (IsOutOfOrder(s) && predecessor_committed) {
      // Nothing of ours could be in the way: an earlier attempt committed, or someone else
      // writes the marker.
      absl::StatusOr<bool> earlier = CommittedEarlier(*entry);
      if (!earlier.ok()) {
        s = earlier.status();
      } else if (*earlier) {
        s = absl::OkStatus();
      } else {
        s = absl::FailedPreconditionError(absl::StrCat(
            "destination key ", marker_key_,
            " was written by someone else while this replica mirrors (another kvsync writing "
            "the same task without a fence?)"));
      }
    }
    stats_->txns_inflight.fetch_sub(1, std::memory_order_relaxed);
    absl::MutexLock lock(&mu_);
    --busy_;
    if (s.ok()) {
      MarkCommitted(entry->seq);
    } else if (IsOutOfOrder(s)) {
      // Overtook its predecessor: send it and everything after it again, in order (unless a
      // newer send of it is already on its way).
      if (entry->seq > committed_ && entry->send_id == send_id) {
        next_send_ = std::min(next_send_, entry->seq);
        stats_->txn_resends.fetch_add(1, std::memory_order_relaxed);
      }
    } else {
      Fail(s);
    }
  }
}

}  // namespace kvsync::sink
