#include "mirror/freshness.h"

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "common/strings.h"

namespace kvsync::mirror {
FreshnessWriter::FreshnessWriter(Options options, etcd::ClusterApi* dst,
                                 std::vector<etcd::Compare> fence, Stats* stats,
                                 std::function<void(const checker::RoleRecord&)> on_promoted)
    : options_(std::move(options)),
      dst_(dst),
      fence_(std::move(fence)),
      stats_(stats),
      on_promoted_(std::move(on_promoted)) {}

FreshnessWriter::~FreshnessWriter() { Stop(); }

void FreshnessWriter::Start() {
  thread_ = runtime::Thread("freshness", [this] { Loop(); });
}

void FreshnessWriter::Stop() {
  {
    absl::MutexLock lock(&mu_);
    wake_.stopping = true;
  }
  thread_.Join();
}

void FreshnessWriter::WriteSoon() {
  absl::MutexLock lock(&mu_);
  wake_.soon = true;
}

bool FreshnessWriter::Wait() {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(
                           +[](Wake* w) { return w->soon || w->stopping; }, &wake_),
                       absl::FromChrono(options_.interval));
  wake_.soon = false;
  return wake_.stopping;
}

checker::Freshness FreshnessWriter::Current() const {
  checker::Freshness f;
  f.applied_revision = stats_->last_synced_revision.load();
  f.fresh_as_of_ms = stats_->head.FreshAsOf(f.applied_revision);
  auto [head, head_ms] = stats_->head.LastHead();
  f.source_head = std::max(head, f.applied_revision);
  f.source_head_ms = head_ms;
  f.updated_ms = common::WallMs();
  f.interval_ms = options_.interval.count();
  f.source_cluster_id = options_.source_cluster_id;
  f.writer = options_.writer;
  f.ha = options_.ha;
  f.full_sync = static_cast<sink::Phase>(stats_->phase.load()) == sink::Phase::kFullSync;
  f.check_ms = stats_->check_last_ms.load();
  f.check_differences = stats_->check_dst_miss.load() + stats_->check_src_miss.load() +
                        stats_->check_mismatch.load() + stats_->check_lease_mismatch.load();
  return f;
}

bool FreshnessWriter::WriteOnce() {
  etcd::TxnRequest txn;
  txn.compares = fence_;
  txn.success.push_back(etcd::Op::Put(options_.key, checker::EncodeFreshness(Current())));
  absl::StatusOr<etcd::TxnResponse> resp = dst_->Txn(txn);
  if (!resp.ok()) {
    stats_->freshness_write_failures.fetch_add(1);
    return false;  // transient or not, the engine's own writes report it
  }
  if (resp->succeeded) {
    stats_->freshness_writes.fetch_add(1);
    return false;
  }
  // A compare failed: the role record exists, or the term's fence (the election) is gone.
  absl::StatusOr<std::optional<checker::RoleRecord>> role = ReadRole(dst_, options_.role_key);
  if (role.ok() && role->has_value()) {
    on_promoted_(**role);
    return true;
  }
  return false;  // deposed: the elector ends the term
}

void FreshnessWriter::Loop() {
  do {
    if (WriteOnce()) return;
  } while (!Wait());
}

absl::StatusOr<std::optional<checker::RoleRecord>> ReadRole(etcd::KvApi* dst,
                                                            const std::string& role_key) {
  etcd::RangeRequest req;
  req.key = role_key;
  ASSIGN_OR_RETURN(etcd::RangeResponse resp, dst->Range(req));
  if (resp.kvs.empty()) return std::optional<checker::RoleRecord>();
  absl::StatusOr<checker::RoleRecord> role = checker::DecodeRole(resp.kvs[0].value);
  if (!role.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("role record ", common::PrintableKey(role_key),
                                                   ": ", role.status().message()));
  }
  return std::optional<checker::RoleRecord>(*std::move(role));
}

absl::Status PromotedError(const std::string& task, const checker::RoleRecord& role,
                           const std::string& role_key) {
  return absl::FailedPreconditionError(absl::StrCat(
      "the destination of task \"", task, "\" was ", checker::DescribePromotion(role),
      " (role record ", common::PrintableKey(role_key),
      "); refusing to write into a promoted cluster. To make it a standby again, overwriting "
      "what was written there since: kvsync demote with this task's flags"));
}

}  // namespace kvsync::mirror
