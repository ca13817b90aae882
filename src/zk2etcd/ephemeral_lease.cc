#include "zk2etcd/ephemeral_lease.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/status_macros.h"
#include "etcd/retry.h"
#include "log/log.h"

namespace kvsync::zk2etcd {

EphemeralLease::EphemeralLease(etcd::LeaseApi* leases, etcd::KvApi* kv, etcd::TxnApi* txn,
                               std::string record_key, std::chrono::seconds ttl,
                               const common::StopToken* stop, Stats* stats,
                               std::function<void()> on_replaced,
                               std::function<void(const absl::Status&)> on_failure)
    : leases_(leases),
      kv_(kv),
      txn_(txn),
      record_key_(std::move(record_key)),
      ttl_(ttl),
      stop_(stop),
      stats_(stats),
      on_replaced_(std::move(on_replaced)),
      on_failure_(std::move(on_failure)) {
  on_stop_.emplace(*stop_, [this] { done_.RequestStop(); });
}

EphemeralLease::~EphemeralLease() {
  done_.RequestStop();
  keepalive_.Join();
  on_stop_.reset();
}

absl::Status EphemeralLease::Start(std::vector<etcd::Compare> fence) {
  absl::MutexLock lock(&mu_);
  fence_ = std::move(fence);
  etcd::RangeRequest read;
  read.key = record_key_;
  ASSIGN_OR_RETURN(etcd::RangeResponse recorded, kv_->Range(read));
  int64_t adopted = 0;
  if (!recorded.kvs.empty() && absl::SimpleAtoi(recorded.kvs[0].value, &adopted) && adopted > 0) {
    ASSIGN_OR_RETURN(etcd::LeaseInfo info, leases_->LeaseTimeToLive(adopted));
    if (info.exists() && info.granted_ttl != ttl_.count()) {
      // A lease of another TTL would be renewed too late (or too often): the start-up full
      // sync moves the copies to the new lease before the old one runs out.
      log::Info("zk2etcd", "ephemeral lease TTL changed, granting a new lease",
                {{"lease", absl::StrCat(absl::Hex(adopted))},
                 {"granted_ttl_s", info.granted_ttl},
                 {"ttl_s", static_cast<int64_t>(ttl_.count())}});
      adopted = 0;
    } else if (info.exists()) {
      // Renewed at once: the previous holder may have renewed it up to TTL/3 before it died.
      ASSIGN_OR_RETURN(std::vector<etcd::LeaseInfo> renewed, leases_->LeaseKeepAlive({adopted}));
      if (renewed.empty() || !renewed[0].exists()) {
        adopted = 0;
      } else {
        stats_->id.store(adopted);
        stats_->remaining_ttl.store(renewed[0].ttl);
        log::Info("zk2etcd", "ephemeral lease adopted",
                  {{"lease", absl::StrCat(absl::Hex(adopted))}, {"ttl_s", renewed[0].ttl}});
      }
    } else {
      adopted = 0;
    }
  }
  if (adopted == 0) {
    ASSIGN_OR_RETURN(int64_t granted, Grant());
    stats_->id.store(granted);
  }
  keepalive_ = runtime::Thread("zk2etcd-lease", [this] { KeepAlive(); });
  return absl::OkStatus();
}

absl::StatusOr<int64_t> EphemeralLease::Grant() {
  ASSIGN_OR_RETURN(int64_t id, leases_->LeaseGrant(0, ttl_));
  etcd::TxnRequest record;
  record.compares = fence_;
  record.success.push_back(etcd::Op::Put(record_key_, absl::StrCat(id)));
  ASSIGN_OR_RETURN(etcd::TxnResponse written, txn_->Txn(record));
  if (!written.succeeded) {
    // Not the leader any more: the lease must not outlive this attempt.
    (void)leases_->LeaseRevoke(id);
    return common::WithKind(
        absl::AbortedError("ephemeral lease record: fenced, this instance is no longer the leader"),
        common::ErrorKind::kFenced);
  }
  stats_->remaining_ttl.store(ttl_.count());
  log::Info(
      "zk2etcd", "ephemeral lease granted",
      {{"lease", absl::StrCat(absl::Hex(id))}, {"ttl_s", static_cast<int64_t>(ttl_.count())}});
  return id;
}

absl::StatusOr<int64_t> EphemeralLease::Replace(int64_t dead) {
  absl::MutexLock lock(&mu_);
  if (stats_->id.load() != dead) return stats_->id.load();  // replaced already
  log::Warn("zk2etcd", "ephemeral lease gone, granting a new one",
            {{"lease", absl::StrCat(absl::Hex(dead))},
             {"effect", "copies of ephemeral znodes expired; a full sync puts them back"}});
  etcd::RetryCounters retries;
  ASSIGN_OR_RETURN(int64_t granted, etcd::RetryTransient(done_, "grant ephemeral lease", &retries,
                                                         [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                                           return Grant();
                                                         }));
  stats_->id.store(granted);
  stats_->replaced.fetch_add(1);
  if (on_replaced_) on_replaced_();
  return granted;
}

void EphemeralLease::KeepAlive() {
  auto interval = std::max<std::chrono::milliseconds>(ttl_ / 3, std::chrono::milliseconds(500));
  while (!done_.WaitFor(interval)) {
    int64_t id = stats_->id.load();
    absl::StatusOr<std::vector<etcd::LeaseInfo>> renewed = leases_->LeaseKeepAlive({id});
    if (!renewed.ok() || renewed->empty()) {
      // etcd unreachable: the writes fail too; the lease has its TTL to survive it.
      stats_->keepalive_failures.fetch_add(1);
      continue;
    }
    if ((*renewed)[0].exists()) {
      stats_->remaining_ttl.store((*renewed)[0].ttl);
      continue;
    }
    stats_->remaining_ttl.store(0);
    absl::StatusOr<int64_t> replaced = Replace(id);
    if (!replaced.ok()) {
      // Stopping, or nothing can renew the lease any more: the engine must know.
      if (!done_.stopped() && on_failure_) on_failure_(replaced.status());
      return;
    }
  }
}

}  // namespace kvsync::zk2etcd
