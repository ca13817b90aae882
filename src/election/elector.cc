#include "election/elector.h"

#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "common/status_macros.h"
#include "log/log.h"
#include "runtime/thread.h"

namespace kvsync::election {
namespace {
constexpr char kLog[] = "election";
}  // namespace

absl::Status FencedError(const std::string& context) {
  return common::WithKind(
      absl::AbortedError(absl::StrCat(context, ": fenced, this instance is no longer the leader")),
      common::ErrorKind::kFenced);
}

bool IsFenced(const absl::Status& status) {
  return common::KindOf(status) == common::ErrorKind::kFenced;
}

absl::StatusOr<std::vector<etcd::Compare>> LeaderFence(etcd::Client* client,
                                                       const std::string& election_name) {
  auto leader = client->Leader(election_name);
  if (etcd::IsNoLeader(leader.status())) return std::vector<etcd::Compare>{};
  if (!leader.ok()) return leader.status();
  etcd::Compare c;
  c.key = leader->key;
  c.target = etcd::Compare::Target::kCreateRevision;
  c.result = etcd::Compare::Result::kEqual;
  c.number = leader->create_revision;
  return std::vector<etcd::Compare>{c};
}

Elector::Elector(etcd::Client* client, ElectorOptions options, const common::StopToken* stop)
    : client_(client),
      options_(std::move(options)),
      stop_(stop),
      lost_token_(std::make_unique<common::StopToken>()) {}

Elector::~Elector() { StopKeepAlive(); }

void Elector::StopKeepAlive() {
  if (keepalive_stop_ != nullptr) keepalive_stop_->RequestStop();
  keepalive_.Join();
  keepalive_stop_.reset();
}

void Elector::MarkLost() {
  lost_.store(true);
  lost_token_->RequestStop();
}

namespace {
int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

bool Elector::healthy() const {
  int64_t last = last_contact_ms_.load();
  return last > 0 && SteadyMs() - last < 2 * 1000 * options_.lease_ttl.count();
}

bool Elector::leading() const {
  absl::MutexLock lock(&mu_);
  return leader_.has_value() && !lost_.load();
}

std::vector<etcd::Compare> Elector::Fence() const {
  absl::MutexLock lock(&mu_);
  if (!leader_) return {};
  etcd::Compare c;
  c.key = leader_->key;
  c.target = etcd::Compare::Target::kCreateRevision;
  c.result = etcd::Compare::Result::kEqual;
  c.number = leader_->revision;
  return {c};
}

void Elector::KeepAlive(int64_t lease, std::chrono::steady_clock::time_point granted) {
  const auto ttl = std::chrono::duration_cast<std::chrono::milliseconds>(options_.lease_ttl);
  auto last_ok = granted;
  bool failing = false;
  while (!keepalive_stop_->WaitFor(ttl / 3)) {
    auto sent = std::chrono::steady_clock::now();
    auto remaining = client_->LeaseKeepAliveOnce(lease);
    if (remaining.ok() && *remaining > 0) {
      // The lease now lives until `sent + remaining` at the earliest.
      last_ok = sent;
      last_contact_ms_.store(SteadyMs());
      if (failing) log::Info(kLog, "lease keep-alive recovered");
      failing = false;
      continue;
    }
    if (remaining.ok()) {
      log::Warn(kLog, "lease expired", {{"lease", lease}});
      MarkLost();
      return;
    }
    if (!failing) {
      log::Warn(kLog, "lease keep-alive failing", {{"error", remaining.status()}});
      failing = true;
    }
    if (std::chrono::steady_clock::now() - last_ok >= ttl) {
      log::Warn(kLog, "lease keep-alive failed for a whole TTL, giving up leadership");
      MarkLost();
      return;
    }
  }
}

absl::Status Elector::Campaign() {
  StopKeepAlive();
  lost_.store(false);
  lost_token_ = std::make_unique<common::StopToken>();
  {
    absl::MutexLock lock(&mu_);
    leader_.reset();
  }
  auto granted = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(lease_, client_->LeaseGrant(options_.lease_ttl));
  last_contact_ms_.store(SteadyMs());
  keepalive_stop_ = std::make_unique<common::StopToken>();
  keepalive_ = runtime::Thread("elect-keepalive",
                               [this, lease = lease_, granted] { KeepAlive(lease, granted); });
  log::Info(kLog, "campaigning",
            {{"election", options_.election_name}, {"identity", options_.identity}});
  // One Campaign call, cancelled on a stop request or a lost lease (see Client::Campaign for
  // why the call is not sliced into short ones).
  common::StopToken cancel;
  auto won = [&] {
    common::StopCallback on_stop(*stop_, [&cancel] { cancel.RequestStop(); });
    common::StopCallback on_lost(*lost_token_, [&cancel] { cancel.RequestStop(); });
    return client_->Campaign(options_.election_name, lease_, options_.identity,
                             std::chrono::hours(24 * 365), &cancel);
  }();
  if (won.ok()) {
    absl::MutexLock lock(&mu_);
    leader_ = *won;
    log::Info(kLog, "became leader",
              {{"identity", options_.identity}, {"revision", won->revision}});
    return absl::OkStatus();
  }
  if (stop_->stopped()) return absl::CancelledError("stop requested");
  if (lost_.load()) return absl::UnavailableError("lease lost while campaigning");
  return won.status();
}

void Elector::Resign() {
  std::optional<etcd::Client::LeaderKey> leader;
  {
    absl::MutexLock lock(&mu_);
    leader.swap(leader_);
  }
  StopKeepAlive();
  if (leader) {
    absl::Status s = client_->Resign(*leader);
    log::Info(kLog, "resigned", {{"identity", options_.identity}, {"ok", s.ok()}});
  }
  if (lease_ != 0) {
    client_->LeaseRevoke(lease_).IgnoreError();
    lease_ = 0;
  }
}

absl::StatusOr<std::string> Elector::CurrentLeader() {
  auto kv = client_->Leader(options_.election_name);
  if (!kv.ok()) {
    if (etcd::IsNoLeader(kv.status())) return std::string();
    return kv.status();
  }
  return kv->value;
}

}  // namespace kvsync::election
