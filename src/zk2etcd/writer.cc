#include "zk2etcd/writer.h"

#include <algorithm>

#include "log/log.h"

namespace kvsync::zk2etcd {

size_t OpCost(const std::vector<etcd::Op>& ops) {
  size_t n = 0;
  for (const auto& op : ops) {
    n += 1;
    if (op.type == etcd::Op::Type::kTxn && op.txn != nullptr) {
      n += std::max({op.txn->compares.size(), op.txn->success.size(), op.txn->failure.size()});
    }
  }
  return n;
}

namespace {

int64_t WallMsOf(std::chrono::steady_clock::time_point t) {
  auto age = std::chrono::steady_clock::now() - t;
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             (std::chrono::system_clock::now() - age).time_since_epoch())
      .count();
}

// What a change costs against the queue's bound and a txn's request size.
int64_t ChangeBytes(const Change& c) {
  int64_t n = static_cast<int64_t>(c.key.size());
  for (const auto& op : c.ops) n += static_cast<int64_t>(op.ByteSize());
  return n;
}

// Changes per txn at most (claims cost no etcd op).
constexpr size_t kMaxBatchChanges = 1000;

}  // namespace

Writer::Writer(etcd::TxnApi* etcd, ownership::Store* owners, NodeTable* nodes, Options options,
               const common::StopToken* stop, sink::WriteStats* stats, metrics::Histogram* lag)
    : owners_(owners),
      nodes_(nodes),
      options_(std::move(options)),
      stop_(stop),
      stats_(stats),
      lag_(lag),
      txn_(etcd, stop, stats, "zk2etcd") {
  on_stop_.emplace(*stop_, [this] {
    absl::MutexLock lock(&mu_);
    stop_seen_ = true;
  });
  for (int i = 0; i < options_.inflight; ++i) {
    workers_.emplace_back("zk2etcd-write", [this] { Work(); });
  }
}

Writer::~Writer() {
  on_stop_.reset();
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
  }
  for (auto& t : workers_) t.Join();
}

void Writer::set_fence(std::vector<etcd::Compare> fence) { txn_.set_fence(std::move(fence)); }

void Writer::Submit(Change change) {
  nodes_->Submitted(change.hash);
  int64_t bytes = ChangeBytes(change);
  absl::MutexLock lock(&mu_);
  auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return queued_bytes_ < options_.max_queued_bytes || closing_ || !status_.ok() || stop_seen_;
  };
  mu_.Await(absl::Condition(&room));
  queued_ops_ += OpCost(change.ops);
  queued_bytes_ += bytes;
  queue_.push_back(std::move(change));
  UpdatePendingAge();
}

absl::Status Writer::Flush() {
  absl::MutexLock lock(&mu_);
  auto drained = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !status_.ok() || (queue_.empty() && busy_ == 0) || stop_seen_;
  };
  mu_.Await(absl::Condition(&drained));
  if (!status_.ok()) return status_;
  if (!queue_.empty() || busy_ > 0) return absl::CancelledError("stop requested");
  return absl::OkStatus();
}

absl::Status Writer::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

int64_t Writer::queued() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(queue_.size());
}

void Writer::UpdatePendingAge() {
  std::chrono::steady_clock::time_point oldest{};
  if (busy_ > 0) oldest = oldest_inflight_;
  if (!queue_.empty()) {
    auto head = queue_.front().origin;
    if (head != std::chrono::steady_clock::time_point{} &&
        (oldest == std::chrono::steady_clock::time_point{} || head < oldest)) {
      oldest = head;
    }
  }
  stats_->oldest_pending_ms.store(
      oldest == std::chrono::steady_clock::time_point{} ? 0 : WallMsOf(oldest));
}

void Writer::CheckOwners(std::vector<Change>* batch, std::vector<Change>* skipped) {
  std::vector<std::string> keys;
  for (const auto& c : *batch) {
    if (c.is_delete) keys.push_back(c.key);
  }
  if (keys.empty()) return;
  std::vector<ownership::Owner> owners = owners_->Lookup(keys);
  std::vector<Change> kept;
  size_t i = 0;
  for (auto& c : *batch) {
    ownership::Owner owner = c.is_delete ? owners[i++] : ownership::Owner::kOwned;
    if (owner == ownership::Owner::kOwned) {
      kept.push_back(std::move(c));
      continue;
    }
    if (options_.on_skipped_delete) options_.on_skipped_delete(c, owner);
    skipped->push_back(std::move(c));
  }
  *batch = std::move(kept);
}

absl::Status Writer::Commit(std::vector<etcd::Op> ops, int64_t lease, int64_t* revision) {
  if (lease == 0) return txn_.Commit(std::move(ops), std::nullopt, revision);
  while (true) {
    absl::Status s = txn_.Commit(ops, std::nullopt, revision);
    if (!etcd::IsLeaseNotFound(s)) return s;
    // Only ephemeral copies carry a lease: move them to the new one and send the txn again.
    absl::StatusOr<int64_t> next = options_.lease->Replace(lease);
    if (!next.ok()) return next.status();
    for (auto& op : ops) {
      if (op.lease == lease) op.lease = *next;
    }
    lease = *next;
  }
}

void Writer::Work() {
  while (true) {
    std::vector<Change> batch;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return closing_ || !status_.ok() ||
               (!queue_.empty() && !inflight_keys_.contains(queue_.front().hash) &&
                (busy_ == 0 || queued_ops_ >= static_cast<size_t>(options_.max_ops) ||
                 queued_bytes_ >= options_.max_bytes));
      };
      mu_.Await(absl::Condition(&ready));
      if (closing_ || !status_.ok()) return;
      // Take changes in order while they fit and their key is free; stop at the first that
      // is not, so that no change overtakes an earlier one of the same key.
      size_t ops = 0;
      int64_t bytes = 0;
      absl::flat_hash_set<KeyHash> keys;
      while (!queue_.empty() && batch.size() < kMaxBatchChanges) {
        Change& c = queue_.front();
        int64_t c_bytes = ChangeBytes(c);
        bool fits =
            batch.empty() || (ops + OpCost(c.ops) <= static_cast<size_t>(options_.max_ops) &&
                              bytes + c_bytes <= options_.max_bytes);
        if (!fits || inflight_keys_.contains(c.hash) || keys.contains(c.hash)) break;
        ops += OpCost(c.ops);
        queued_ops_ -= OpCost(c.ops);
        queued_bytes_ -= c_bytes;
        bytes += c_bytes;
        keys.insert(c.hash);
        inflight_keys_.insert(c.hash);
        batch.push_back(std::move(c));
        queue_.pop_front();
      }
      if (busy_ == 0) oldest_inflight_ = batch.front().origin;
      busy_++;
      UpdatePendingAge();
    }

    std::vector<Change> skipped;
    CheckOwners(&batch, &skipped);
    std::vector<std::string> puts;
    std::vector<std::string> deletes;
    std::vector<etcd::Op> ops;
    int64_t lease = options_.lease != nullptr ? options_.lease->id() : 0;
    bool leased = false;
    for (auto& c : batch) {
      (c.is_delete ? deletes : puts).push_back(c.key);
      for (auto& op : c.ops) {
        if (lease != 0 && c.ephemeral && op.type == etcd::Op::Type::kPut) {
          op.lease = lease;
          leased = true;
        }
        ops.push_back(std::move(op));
      }
    }
    if (!puts.empty()) owners_->RecordWrites(puts);
    int64_t revision = 0;
    absl::Status s;
    if (!ops.empty()) s = Commit(std::move(ops), leased ? lease : 0, &revision);
    if (s.ok()) {
      if (!deletes.empty()) owners_->ForgetDeletes(deletes);
      auto now = std::chrono::steady_clock::now();
      for (const auto& c : batch) {
        nodes_->Committed(c.hash, c.claim_only ? 0 : revision);
        if (lag_ != nullptr && c.origin != std::chrono::steady_clock::time_point{}) {
          lag_->Observe(std::chrono::duration<double>(now - c.origin).count());
        }
      }
    } else {
      for (const auto& c : batch) nodes_->Committed(c.hash, 0);
    }
    for (const auto& c : skipped) nodes_->Committed(c.hash, 0);
    bool failed_now = false;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& c : batch) inflight_keys_.erase(c.hash);
      for (const auto& c : skipped) inflight_keys_.erase(c.hash);
      busy_--;
      if (!s.ok() && status_.ok()) {
        if (!absl::IsCancelled(s)) log::Error("zk2etcd", "etcd write failed", {{"error", s}});
        status_ = s;
        failed_now = true;
      }
      UpdatePendingAge();
    }
    if (failed_now && options_.on_failure) options_.on_failure();
  }
}

}  // namespace kvsync::zk2etcd
