#include "mirror/lease_keeper.h"

#include <algorithm>
#include <functional>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "checker/checkpoint.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "etcd/retry.h"
#include "log/log.h"
#include "nlohmann/json.hpp"

namespace kvsync::mirror {
namespace {

constexpr char kLog[] = "leases";
// Record puts and deletes per txn (far below any --max-txn-ops a destination would run).
constexpr size_t kRecordsPerTxn = 64;

std::string Hex(int64_t id) { return absl::StrFormat("%016x", static_cast<uint64_t>(id)); }

// Lease reads and grants one Prepare call makes at once: a grant is a raft write, and etcd
// commits concurrent ones together, so ten thousand new leases take seconds, not minutes.
constexpr size_t kParallelCalls = 8;

// Runs fn(0..n-1) on up to `threads` threads (the caller's included); the first error stops
// the rest and is returned.
absl::Status ParallelFor(size_t n, size_t threads, const std::function<absl::Status(size_t)>& fn) {
  std::atomic<size_t> next{0};
  absl::Mutex mu;
  absl::Status first;
  auto work = [&] {
    for (size_t i = next++; i < n; i = next++) {
      absl::Status s = fn(i);
      if (s.ok()) continue;
      absl::MutexLock lock(&mu);
      if (first.ok()) first = s;
      next.store(n);
      return;
    }
  };
  {
    std::vector<runtime::Thread> helpers;
    for (size_t t = 1; t < std::min(threads, n); ++t) helpers.emplace_back("lease-grant", work);
    work();
  }  // helpers joined
  absl::MutexLock lock(&mu);
  return first;
}

template <typename Rep, typename Period>
std::chrono::milliseconds Clamp(std::chrono::duration<Rep, Period> d, std::chrono::milliseconds lo,
                                std::chrono::milliseconds hi) {
  return std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(d), lo, hi);
}

}  // namespace

LeaseKeeper::LeaseKeeper(Options options, etcd::ClusterApi* src, etcd::ClusterApi* dst,
                         sink::TxnWriter* writer, const common::StopToken* stop, Stats* stats)
    : options_(std::move(options)),
      src_(src),
      dst_(dst),
      writer_(writer),
      stop_(stop),
      stats_(*stats) {}

LeaseKeeper::~LeaseKeeper() { Stop(); }

std::string LeaseKeeper::RecordKey(int64_t id) const {
  return checker::LeaseRecordKey(options_.records_prefix, id);
}

int64_t LeaseKeeper::DestinationTtl(int64_t source_ttl) const {
  return std::max<int64_t>(source_ttl, options_.min_ttl.count());
}

absl::Status LeaseKeeper::CommitRecords(std::vector<etcd::Op> ops) {
  for (size_t begin = 0; begin < ops.size(); begin += kRecordsPerTxn) {
    size_t end = std::min(ops.size(), begin + kRecordsPerTxn);
    std::vector<etcd::Op> part(std::make_move_iterator(ops.begin() + begin),
                               std::make_move_iterator(ops.begin() + end));
    RETURN_IF_ERROR(writer_->Commit(std::move(part), std::nullopt));
  }
  return absl::OkStatus();
}

absl::Status LeaseKeeper::Load() {
  // The records (one page per 10,000), then both clusters' lease lists.
  struct Record {
    int64_t id;
    int64_t source_ttl;
    int64_t ttl;
  };
  std::vector<Record> records;
  etcd::RangeRequest req;
  req.key = options_.records_prefix;
  req.range_end = common::PrefixEnd(options_.records_prefix);
  req.limit = 10000;
  while (true) {
    ASSIGN_OR_RETURN(etcd::RangeResponse page,
                     etcd::RetryTransient(*stop_, "read lease records", &stats_.retries,
                                          [&] { return dst_->Range(req); }));
    for (const etcd::KeyValue& kv : page.kvs) {
      uint64_t id = 0;
      std::string hex = kv.key.substr(options_.records_prefix.size());
      if (!absl::SimpleHexAtoi(hex, &id) || id == 0) {
        log::Warn(kLog, "ignoring a malformed lease record", {{"key", kv.key}});
        continue;
      }
      auto j = nlohmann::json::parse(kv.value, nullptr, false);
      int64_t source_ttl = j.is_object() ? j.value("source_ttl", int64_t{0}) : 0;
      int64_t ttl = j.is_object() ? j.value("ttl", int64_t{0}) : 0;
      records.push_back(Record{static_cast<int64_t>(id), source_ttl, ttl});
    }
    if (!page.more || page.kvs.empty()) break;
    req.key = page.kvs.back().key + std::string(1, '\0');
  }
  ASSIGN_OR_RETURN(std::vector<int64_t> dst_list,
                   etcd::RetryTransient(*stop_, "list destination leases", &stats_.retries,
                                        [&] { return dst_->LeaseLeases(); }));
  ASSIGN_OR_RETURN(std::vector<int64_t> src_list,
                   etcd::RetryTransient(*stop_, "list source leases", &stats_.retries,
                                        [&] { return src_->LeaseLeases(); }));
  absl::flat_hash_set<int64_t> at_dst(dst_list.begin(), dst_list.end());
  absl::flat_hash_set<int64_t> at_src(src_list.begin(), src_list.end());
  std::vector<etcd::Op> stale;
  int64_t lost = 0;
  {
    absl::MutexLock lock(&mu_);
    leases_.clear();
    recorded_.clear();
    for (const Record& r : records) {
      if (at_dst.contains(r.id)) {
        recorded_.insert(r.id);
        leases_[r.id] = Entry{State::kOurs, r.source_ttl, r.ttl, 0, 0};
      } else if (at_src.contains(r.id)) {
        // Granted by kvsync, expired at the destination while the source still has it: its
        // keys are gone there. The record stays, so the next grant is ours.
        recorded_.insert(r.id);
        ++lost;
      } else {
        stale.push_back(etcd::Op::Delete(RecordKey(r.id)));
      }
    }
    PublishGauges();
  }
  const auto managed = static_cast<int64_t>(records.size() - stale.size()) - lost;
  RETURN_IF_ERROR(CommitRecords(std::move(stale)));
  if (lost > 0) {
    stats_.leases_lost.fetch_add(lost);
    lost_.store(true);
    log::Warn(kLog, "destination leases expired while kvsync was away; their keys are gone there",
              {{"leases", lost}});
  }
  log::Info(kLog, "lease records loaded",
            {{"managed", managed},
             {"lost", lost},
             {"source_leases", static_cast<int64_t>(src_list.size())}});
  last_listed_ = std::chrono::steady_clock::now();
  return absl::OkStatus();
}

void LeaseKeeper::Start() {
  // Two threads, so that a source that does not answer (the hold) never delays the
  // destination's keep-alives, and the other way round.
  lister_ = runtime::Thread("lease-list", [this] { Loop(/*source_side=*/true); });
  renewer_ = runtime::Thread("lease-renew", [this] { Loop(/*source_side=*/false); });
}

void LeaseKeeper::Stop() {
  thread_stop_.RequestStop();
  lister_.Join();
  renewer_.Join();
  absl::MutexLock lock(&mu_);
  stats_.leases_held.store(0);
}

void LeaseKeeper::DestinationLost() {
  // The refusal does not say which lease. Renewing them all does: the gone ones are forgotten
  // (granted again on next use) while the others stay renewed. Forgetting them all instead
  // would leave live leases unrenewed until the full sync reaches their keys.
  if (!KeepAlive()) {
    absl::MutexLock lock(&mu_);
    int64_t forgotten = 0;
    for (auto it = leases_.begin(); it != leases_.end();) {
      if (it->second.state == State::kOurs) {
        leases_.erase(it++);
        ++forgotten;
      } else {
        ++it;
      }
    }
    stats_.leases_lost.fetch_add(forgotten);
    PublishGauges();
  }
  lost_.store(true);
}

absl::Status LeaseKeeper::Prepare(std::vector<etcd::Op>* ops) {
  std::vector<int64_t> wanted;
  for (const etcd::Op& op : *ops) {
    if (op.type == etcd::Op::Type::kPut && op.lease != 0) wanted.push_back(op.lease);
  }
  if (wanted.empty()) return absl::OkStatus();
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  absl::flat_hash_set<int64_t> usable;
  while (true) {
    std::vector<int64_t> mine;
    {
      absl::MutexLock lock(&mu_);
      // Wait for leases another thread is granting; claim the unknown ones.
      bool waiting = true;
      while (waiting) {
        waiting = false;
        for (int64_t id : wanted) {
          auto it = leases_.find(id);
          if (it != leases_.end() && it->second.state == State::kPending) waiting = true;
        }
        if (waiting && stop_->stopped()) return absl::CancelledError("stop requested");
        if (waiting) settled_.WaitWithTimeout(&mu_, absl::Milliseconds(200));
      }
      usable.clear();
      for (int64_t id : wanted) {
        auto it = leases_.find(id);
        if (it == leases_.end()) {
          leases_[id].state = State::kPending;
          mine.push_back(id);
        } else if (it->second.state == State::kOurs) {
          usable.insert(id);
        }
      }
    }
    if (mine.empty()) break;
    RETURN_IF_ERROR(Ensure(mine));
  }
  for (etcd::Op& op : *ops) {
    if (op.type == etcd::Op::Type::kPut && op.lease != 0 && !usable.contains(op.lease)) {
      op.lease = 0;
    }
  }
  return absl::OkStatus();
}

absl::Status LeaseKeeper::Ensure(const std::vector<int64_t>& ids) {
  // Every claim is settled on return: resolved, or released (erased) on error.
  absl::flat_hash_map<int64_t, Entry> resolved;
  auto settle = [&] {
    absl::MutexLock lock(&mu_);
    for (int64_t id : ids) {
      auto r = resolved.find(id);
      if (r == resolved.end()) {
        leases_.erase(id);
      } else {
        r->second.since_round = round_;
        leases_[id] = r->second;
      }
    }
    PublishGauges();
    settled_.SignalAll();
  };
  absl::Status status = [&]() -> absl::Status {
    // 1. The source's granted TTL (answered by its leader). A lease already gone there: the
    // key is written without a lease and a later delete event removes it.
    std::vector<etcd::LeaseInfo> infos(ids.size());
    RETURN_IF_ERROR(ParallelFor(ids.size(), kParallelCalls, [&](size_t i) -> absl::Status {
      ASSIGN_OR_RETURN(infos[i],
                       etcd::RetryTransient(*stop_, "read source lease", &stats_.retries,
                                            [&] { return src_->LeaseTimeToLive(ids[i]); }));
      return absl::OkStatus();
    }));
    std::vector<std::pair<int64_t, Entry>> alive;
    for (size_t i = 0; i < ids.size(); ++i) {
      const int64_t id = ids[i];
      const etcd::LeaseInfo& info = infos[i];
      if (!info.exists()) {
        resolved[id] = Entry{State::kGone, 0, 0, 0, info.header.revision};
        continue;
      }
      alive.emplace_back(
          id, Entry{State::kOurs, info.granted_ttl, DestinationTtl(info.granted_ttl), 0, 0});
    }
    // 2. Records first, so that a crash after the grant still finds the lease ours.
    std::vector<etcd::Op> records;
    absl::flat_hash_set<int64_t> recorded_before;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [id, e] : alive) {
        if (recorded_.contains(id)) recorded_before.insert(id);
      }
    }
    for (const auto& [id, e] : alive) {
      if (recorded_before.contains(id)) continue;
      nlohmann::json j = {{"source_ttl", e.source_ttl}, {"ttl", e.ttl}};
      records.push_back(etcd::Op::Put(RecordKey(id), j.dump()));
    }
    RETURN_IF_ERROR(CommitRecords(std::move(records)));
    {
      absl::MutexLock lock(&mu_);
      for (const auto& entry : alive) recorded_.insert(entry.first);
    }
    // 3. Grants.
    std::vector<absl::Status> grants(alive.size());
    ParallelFor(alive.size(), kParallelCalls, [&](size_t i) {
      grants[i] =
          etcd::RetryTransient(*stop_, "grant destination lease", &stats_.retries, [&] {
            return dst_->LeaseGrant(alive[i].first, std::chrono::seconds(alive[i].second.ttl));
          }).status();
      return absl::OkStatus();
    }).IgnoreError();
    std::vector<etcd::Op> withdrawn;
    for (size_t i = 0; i < alive.size(); ++i) {
      auto& [id, e] = alive[i];
      const absl::Status& granted = grants[i];
      if (granted.ok()) {
        stats_.lease_grants.fetch_add(1);
      } else if (etcd::IsLeaseExists(granted) &&
                 (recorded_before.contains(id) || options_.adopt_existing)) {
        // Granted by an earlier term or replica of this task (or, in a failback, the
        // original lease at the old primary): adopt it.
      } else if (etcd::IsLeaseExists(granted)) {
        e.state = State::kConflict;
        withdrawn.push_back(etcd::Op::Delete(RecordKey(id)));
        log::Error(kLog,
                   "lease ID conflict: the destination already has this lease and kvsync did not "
                   "grant it; its keys are mirrored without a lease",
                   {{"lease", Hex(id)}});
      } else {
        return granted;
      }
      resolved[id] = e;
    }
    if (!withdrawn.empty()) {
      RETURN_IF_ERROR(CommitRecords(withdrawn));
      absl::MutexLock lock(&mu_);
      for (const etcd::Op& op : withdrawn) {
        uint64_t id = 0;
        if (absl::SimpleHexAtoi(op.key.substr(options_.records_prefix.size()), &id)) {
          recorded_.erase(static_cast<int64_t>(id));
        }
      }
    }
    return absl::OkStatus();
  }();
  settle();
  return status;
}

void LeaseKeeper::PublishGauges() {
  int64_t ours = 0;
  int64_t conflicts = 0;
  for (const auto& entry : leases_) {
    ours += entry.second.state == State::kOurs ? 1 : 0;
    conflicts += entry.second.state == State::kConflict ? 1 : 0;
  }
  stats_.leases_mirrored.store(ours);
  stats_.lease_conflicts.store(conflicts);
  stats_.leases_held.store(holding_ && !hold_expired_ ? ours : 0);
}

std::pair<std::chrono::milliseconds, std::chrono::milliseconds> LeaseKeeper::Intervals() {
  int64_t shortest_src = 30;
  int64_t shortest_dst = 60;
  absl::MutexLock lock(&mu_);
  for (const auto& entry : leases_) {
    if (entry.second.state != State::kOurs) continue;
    if (entry.second.source_ttl > 0) shortest_src = std::min(shortest_src, entry.second.source_ttl);
    if (entry.second.ttl > 0) shortest_dst = std::min(shortest_dst, entry.second.ttl);
  }
  return {Clamp(std::chrono::seconds(shortest_src) / 3, std::chrono::milliseconds(1000),
                std::chrono::milliseconds(10000)),
          Clamp(std::chrono::seconds(shortest_dst) / 3, std::chrono::milliseconds(500),
                std::chrono::milliseconds(20000))};
}

void LeaseKeeper::Loop(bool source_side) {
  common::StopCallback relay(*stop_, [this] { thread_stop_.RequestStop(); });
  // Due times follow the current intervals, which shrink when a shorter TTL comes under
  // management.
  std::chrono::steady_clock::time_point last{};
  while (!thread_stop_.stopped()) {
    auto [list_every, keepalive_every] = Intervals();
    const auto every = source_side ? list_every : keepalive_every;
    auto now = std::chrono::steady_clock::now();
    if (source_side && now - last >= every) {
      ListSource();
      last = now;
    }
    if (!source_side) {
      RevokeDead();
      if (now - last >= every) {
        KeepAlive();
        last = now;
      }
    }
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
        last + every - std::chrono::steady_clock::now());
    thread_stop_.WaitFor(
        std::clamp(wait, std::chrono::milliseconds(50), std::chrono::milliseconds(500)));
  }
}

void LeaseKeeper::ListSource() {
  int64_t round = 0;
  {
    absl::MutexLock lock(&mu_);
    round = ++round_;
  }
  absl::StatusOr<std::vector<int64_t>> listed = src_->LeaseLeases();
  auto now = std::chrono::steady_clock::now();
  if (!listed.ok()) {
    if (!holding_) {
      log::Warn(kLog, "cannot list the source's leases; holding destination leases",
                {{"error", listed.status()},
                 {"hold", options_.hold.count() > 0 ? std::to_string(options_.hold.count()) + "ms"
                                                    : std::string("until promoted or stopped")}});
    }
    holding_ = true;
    if (options_.hold.count() > 0 && now - last_listed_ > options_.hold && !hold_expired_) {
      hold_expired_ = true;
      stats_.lease_hold_expired.store(1);
      log::Error(kLog,
                 "--lease-hold passed without reaching the source: destination leases are no "
                 "longer kept alive and will expire",
                 {{"hold_ms", static_cast<int64_t>(options_.hold.count())}});
    }
    absl::MutexLock lock(&mu_);
    PublishGauges();
    return;
  }
  if (holding_) log::Info(kLog, "source leases listed again; hold ended");
  holding_ = false;
  hold_expired_ = false;
  stats_.lease_hold_expired.store(0);
  last_listed_ = now;
  absl::flat_hash_set<int64_t> at_src(listed->begin(), listed->end());
  std::vector<int64_t> missing;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, e] : leases_) {
      if (e.state == State::kOurs && e.gone_at == 0 && e.since_round < round &&
          !at_src.contains(id)) {
        missing.push_back(id);
      }
    }
    PublishGauges();
  }
  for (int64_t id : missing) {
    // A follower may list late: only the leader's answer says gone.
    absl::StatusOr<etcd::LeaseInfo> info = src_->LeaseTimeToLive(id);
    if (!info.ok() || info->exists()) continue;
    // The revision every delete of its keys is at or below: a linearizable read after it.
    etcd::RangeRequest head;
    head.key = options_.records_prefix;
    absl::StatusOr<etcd::RangeResponse> at = src_->Range(head);
    if (!at.ok()) continue;
    absl::MutexLock lock(&mu_);
    auto it = leases_.find(id);
    if (it != leases_.end() && it->second.state == State::kOurs) {
      it->second.gone_at = std::max(at->header.revision, info->header.revision);
    }
  }
}

void LeaseKeeper::RevokeDead() {
  const int64_t applied = stats_.last_synced_revision.load();
  std::vector<int64_t> dead;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, e] : leases_) {
      if (e.state == State::kOurs && e.gone_at > 0 && e.gone_at <= applied) dead.push_back(id);
    }
  }
  for (int64_t id : dead) {
    absl::Status s = dst_->LeaseRevoke(id);
    if (!s.ok() && !etcd::IsLeaseNotFound(s)) {
      log::Warn(kLog, "cannot revoke a destination lease; retrying",
                {{"lease", Hex(id)}, {"error", s}});
      continue;
    }
    if (s.ok()) stats_.lease_revokes.fetch_add(1);
    // The record goes after the lease: a crash between leaves a record of a lease gone on both
    // sides, which Load() deletes.
    if (absl::Status deleted = CommitRecords({etcd::Op::Delete(RecordKey(id))}); !deleted.ok()) {
      log::Warn(kLog, "cannot delete a lease record; retrying",
                {{"lease", Hex(id)}, {"error", deleted}});
      continue;
    }
    absl::MutexLock lock(&mu_);
    leases_.erase(id);
    recorded_.erase(id);
    PublishGauges();
  }
}

bool LeaseKeeper::KeepAlive() {
  if (hold_expired_) return false;
  std::vector<int64_t> ids;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, e] : leases_) {
      if (e.state == State::kOurs) ids.push_back(id);
    }
  }
  if (ids.empty()) return true;
  absl::StatusOr<std::vector<etcd::LeaseInfo>> renewed = dst_->LeaseKeepAlive(ids);
  if (!renewed.ok()) {
    stats_.lease_keepalive_failures.fetch_add(static_cast<int64_t>(ids.size()));
    log::Warn(kLog, "destination keep-alives failed; retrying",
              {{"leases", static_cast<int64_t>(ids.size())}, {"error", renewed.status()}});
    return false;
  }
  stats_.lease_keepalives.fetch_add(static_cast<int64_t>(renewed->size()));
  int64_t gone = 0;
  absl::MutexLock lock(&mu_);
  for (const etcd::LeaseInfo& info : *renewed) {
    if (info.ttl > 0) continue;
    auto it = leases_.find(info.id);
    // Being revoked on purpose (gone at the source): not a loss.
    if (it == leases_.end() || it->second.state != State::kOurs || it->second.gone_at > 0) {
      continue;
    }
    leases_.erase(it);
    ++gone;
  }
  if (gone > 0) {
    stats_.leases_lost.fetch_add(gone);
    lost_.store(true);
    log::Warn(kLog, "destination leases expired under kvsync; their keys are gone there, full sync",
              {{"leases", gone}});
  }
  PublishGauges();
  return true;
}

}  // namespace kvsync::mirror
