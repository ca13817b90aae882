#include "etcd/fake_etcd.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace kvsync::etcd {
namespace {

// Whether `key` lies in [begin, end) with etcd's conventions for `end`.
bool InRange(const std::string& key, const std::string& begin, const std::string& end) {
  if (end.empty()) return key == begin;
  if (end == std::string(1, '\0')) return key >= begin;
  return key >= begin && key < end;
}

template <typename T>
bool Holds(Compare::Result result, const T& actual, const T& expected) {
  switch (result) {
    case Compare::Result::kEqual:
      return actual == expected;
    case Compare::Result::kGreater:
      return actual > expected;
    case Compare::Result::kLess:
      return actual < expected;
    case Compare::Result::kNotEqual:
      return actual != expected;
  }
  return false;
}

}  // namespace

// One watcher. Its fields are guarded by the owner's mutex (owner_->mu_).
class FakeEtcd::Stream : public WatchStream {
 public:
  Stream(FakeEtcd* owner, WatchOptions options) : owner_(owner), options_(std::move(options)) {}
  ~Stream() override { owner_->Unregister(this); }

  absl::StatusOr<WatchResponse> Next() override {
    absl::MutexLock lock(&owner_->mu_);
    auto ready = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return cancelled_ || !urgent_.empty() || (!owner_->hold_ && !pending_.empty()) ||
             !error_.ok();
    };
    owner_->mu_.Await(absl::Condition(&ready));
    if (cancelled_) return absl::CancelledError("watch cancelled");
    if (!urgent_.empty()) return Pop(&urgent_);
    if (!owner_->hold_ && !pending_.empty()) return Pop(&pending_);
    return error_;
  }

  absl::Status RequestProgress() override {
    absl::MutexLock lock(&owner_->mu_);
    if (!error_.ok()) return error_;
    ++owner_->progress_requests_;
    ++owner_->changes_;
    WatchResponse resp;
    resp.header = owner_->HeaderLocked();
    resp.watch_id = -1;
    // Fixed releases answer once every event before it was sent; older ones at once.
    if (RequestedProgressIsOrdered(owner_->options_.version) &&
        !owner_->options_.misordered_progress) {
      pending_.push_back(std::move(resp));
    } else {
      urgent_.push_back(std::move(resp));
    }
    return absl::OkStatus();
  }

  void Cancel() override {
    absl::MutexLock lock(&owner_->mu_);
    cancelled_ = true;
  }

  // The rest is called with owner_->mu_ held.
  const WatchOptions& options() const { return options_; }
  void Fail(absl::Status status) {
    if (error_.ok()) error_ = std::move(status);
  }
  void Push(WatchResponse resp) { pending_.push_back(std::move(resp)); }
  // etcd confirms a watcher's creation at once, synced or not.
  void PushCreated(WatchResponse resp) { urgent_.push_back(std::move(resp)); }
  // Queues `events` (already filtered) as one response, or as fragments when asked for.
  void PushEvents(std::vector<Event> events, const Header& header, size_t max_events) {
    if (!options_.prev_kv) {
      for (Event& e : events) {
        e.prev_kv = KeyValue{};
        e.has_prev_kv = false;
      }
    }
    size_t step = options_.fragment ? std::max<size_t>(max_events, 1) : events.size();
    for (size_t from = 0; from < events.size(); from += step) {
      WatchResponse resp;
      resp.header = header;
      size_t to = std::min(events.size(), from + step);
      resp.events.assign(std::make_move_iterator(events.begin() + from),
                         std::make_move_iterator(events.begin() + to));
      resp.fragment = to < events.size();
      pending_.push_back(std::move(resp));
    }
  }
  std::vector<Event> Filter(const std::vector<Event>& events) const {
    std::vector<Event> out;
    for (const Event& e : events) {
      if (InRange(e.kv.key, options_.key, options_.range_end)) out.push_back(e);
    }
    return out;
  }
  int64_t next_revision = 0;

 private:
  static WatchResponse Pop(std::deque<WatchResponse>* queue) {
    WatchResponse resp = std::move(queue->front());
    queue->pop_front();
    return resp;
  }

  FakeEtcd* const owner_;
  const WatchOptions options_;
  std::deque<WatchResponse> urgent_;   // delivered even while watches are held
  std::deque<WatchResponse> pending_;  // delivered in order unless held
  absl::Status error_;                 // after the queues drain (at once while held)
  bool cancelled_ = false;
};

FakeEtcd::FakeEtcd(Options options) : options_(std::move(options)) {}

FakeEtcd::~FakeEtcd() = default;

Header FakeEtcd::HeaderLocked() const {
  return Header{options_.cluster_id, options_.cluster_id + 100, revision_, 1};
}

absl::Status FakeEtcd::TakeFault(Call call) {
  auto it = faults_.find(call);
  if (it == faults_.end() || it->second.empty()) return absl::OkStatus();
  absl::Status s = std::move(it->second.front());
  it->second.pop_front();
  return s;
}

const KeyValue* FakeEtcd::AtLocked(const std::string& key, int64_t revision) const {
  auto it = keys_.find(key);
  if (it == keys_.end()) return nullptr;
  const Version* found = nullptr;
  for (const Version& v : it->second) {
    if (v.revision > revision) break;
    found = &v;
  }
  return found == nullptr || found->deleted ? nullptr : &found->kv;
}

absl::StatusOr<RangeResponse> FakeEtcd::Range(const RangeRequest& request) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = TakeFault(Call::kRange); !s.ok()) return s;
  if (failing_ranges_ && failing_ranges_(request)) return failing_ranges_status_;
  int64_t at = request.revision == 0 ? revision_ : request.revision;
  if (at > revision_) {
    return absl::OutOfRangeError(absl::StrCat(
        options_.label, " range: etcdserver: mvcc: required revision is a future revision"));
  }
  // As the real client maps etcd's ErrCompacted of a range (no compact revision given).
  if (at < compacted_) return CompactedError(0, options_.label + " range");
  RangeResponse resp;
  resp.header = HeaderLocked();
  std::vector<KeyValue> matching;
  for (auto it = keys_.lower_bound(request.key); it != keys_.end(); ++it) {
    if (!InRange(it->first, request.key, request.range_end)) {
      if (request.range_end.empty() || it->first >= request.range_end) break;
      continue;
    }
    const KeyValue* kv = AtLocked(it->first, at);
    if (kv != nullptr) matching.push_back(*kv);
  }
  resp.count = static_cast<int64_t>(matching.size());
  if (request.count_only) return resp;
  for (KeyValue& kv : matching) {
    if (request.min_mod_revision > 0 && kv.mod_revision < request.min_mod_revision) continue;
    if (request.keys_only) kv.value.clear();
    resp.kvs.push_back(std::move(kv));
  }
  if (request.limit > 0 && resp.kvs.size() > static_cast<size_t>(request.limit)) {
    resp.kvs.resize(static_cast<size_t>(request.limit));
    resp.more = true;
  }
  return resp;
}

bool FakeEtcd::CompareHolds(const Compare& c) const {
  const KeyValue* kv = AtLocked(c.key, revision_);
  switch (c.target) {
    case Compare::Target::kVersion:
      return Holds(c.result, kv ? kv->version : 0, c.number);
    case Compare::Target::kCreateRevision:
      return Holds(c.result, kv ? kv->create_revision : 0, c.number);
    case Compare::Target::kModRevision:
      return Holds(c.result, kv ? kv->mod_revision : 0, c.number);
    case Compare::Target::kValue:
      return kv != nullptr && Holds(c.result, kv->value, c.value);  // etcd: absent fails
  }
  return false;
}

absl::Status FakeEtcd::CheckTxn(const TxnRequest& request) const {
  if (static_cast<int64_t>(request.ByteSize()) > options_.max_request_bytes) {
    return RequestTooLargeError(options_.label + " txn: etcdserver: request is too large");
  }
  return CheckTxnOps(request, options_.max_txn_ops);
}

absl::Status FakeEtcd::CheckTxnOps(const TxnRequest& request, int64_t max_ops) const {
  // As etcd: each level may have `max_ops` compares or ops per branch, and a nested txn gets
  // what its parent level left (max_ops minus the larger of the parent's counts).
  const int64_t used = static_cast<int64_t>(
      std::max({request.compares.size(), request.success.size(), request.failure.size()}));
  for (const std::vector<Op>* branch : {&request.success, &request.failure}) {
    if (used > max_ops) {
      return RequestTooLargeError(options_.label +
                                  " txn: etcdserver: too many operations in txn request");
    }
    std::set<std::string> puts;
    for (const Op& op : *branch) {
      if (op.type == Op::Type::kPut && !puts.insert(op.key).second) {
        return absl::InvalidArgumentError(options_.label +
                                          " txn: etcdserver: duplicate key given in txn request");
      }
    }
    for (const Op& op : *branch) {
      if (op.type != Op::Type::kDelete) continue;
      for (const std::string& key : puts) {
        if (InRange(key, op.key, op.range_end)) {
          return absl::InvalidArgumentError(options_.label +
                                            " txn: etcdserver: duplicate key given in txn request");
        }
      }
    }
    for (const Op& op : *branch) {
      if (op.type == Op::Type::kTxn) RETURN_IF_ERROR(CheckTxnOps(*op.txn, max_ops - used));
    }
  }
  return absl::OkStatus();
}

void FakeEtcd::PlanLocked(const TxnRequest& request, std::vector<const Op*>* ops,
                          std::vector<bool>* nested, bool* succeeded) const {
  *succeeded = std::all_of(request.compares.begin(), request.compares.end(),
                           [this](const Compare& c)
                               ABSL_NO_THREAD_SAFETY_ANALYSIS { return CompareHolds(c); });
  for (const Op& op : *succeeded ? request.success : request.failure) {
    if (op.type != Op::Type::kTxn) {
      ops->push_back(&op);
      continue;
    }
    bool inner = false;
    PlanLocked(*op.txn, ops, nullptr, &inner);
    if (nested != nullptr) nested->push_back(inner);
  }
}

void FakeEtcd::PutLocked(const std::string& key, const std::string& value, int64_t lease,
                         std::vector<Event>* events) {
  const int64_t rev = revision_ + 1;
  Version v;
  v.revision = rev;
  v.kv.key = key;
  v.kv.value = value;
  v.kv.lease = lease;
  v.kv.mod_revision = rev;
  Event e;
  const KeyValue* prev = AtLocked(key, revision_);
  if (prev != nullptr) {
    v.kv.create_revision = prev->create_revision;
    v.kv.version = prev->version + 1;
    e.prev_kv = *prev;
    e.has_prev_kv = true;
  } else {
    v.kv.create_revision = rev;
    v.kv.version = 1;
  }
  e.type = Event::Type::kPut;
  e.kv = v.kv;
  events->push_back(std::move(e));
  std::vector<Version>& versions = keys_[key];
  // A second write of the key in the same revision replaces the first (cannot happen for
  // txns that passed CheckTxn, kept for safety).
  if (!versions.empty() && versions.back().revision == rev) versions.pop_back();
  versions.push_back(std::move(v));
}

void FakeEtcd::DeleteLocked(const std::string& key, const std::string& range_end,
                            std::vector<Event>* events) {
  const int64_t rev = revision_ + 1;
  for (auto it = keys_.lower_bound(key); it != keys_.end(); ++it) {
    if (!InRange(it->first, key, range_end)) {
      if (range_end.empty() || it->first >= range_end) break;
      continue;
    }
    const KeyValue* prev = AtLocked(it->first, revision_);
    if (prev == nullptr) continue;
    Event e;
    e.type = Event::Type::kDelete;
    e.kv.key = it->first;
    e.kv.mod_revision = rev;
    e.prev_kv = *prev;
    e.has_prev_kv = true;
    events->push_back(std::move(e));
    Version tombstone;
    tombstone.revision = rev;
    tombstone.deleted = true;
    tombstone.kv.key = it->first;
    it->second.push_back(std::move(tombstone));
  }
}

void FakeEtcd::CommitLocked(std::vector<Event> events) {
  if (events.empty()) return;
  ++revision_;
  ++changes_;
  const Header header = HeaderLocked();
  for (Stream* s : streams_) {
    if (revision_ < s->next_revision) continue;
    s->next_revision = revision_ + 1;
    std::vector<Event> mine = s->Filter(events);
    if (!mine.empty()) s->PushEvents(std::move(mine), header, options_.max_watch_events);
  }
  history_[revision_] = std::move(events);
}

absl::StatusOr<TxnResponse> FakeEtcd::Txn(const TxnRequest& request) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = TakeFault(Call::kTxn); !s.ok()) return s;
  RETURN_IF_ERROR(CheckTxn(request));
  TxnResponse resp;
  std::vector<const Op*> ops;
  PlanLocked(request, &ops, &resp.nested_succeeded, &resp.succeeded);
  for (const Op* op : ops) {
    if (op->type == Op::Type::kPut && op->lease != 0 && leases_.count(op->lease) == 0) {
      return LeaseNotFoundError("fake txn: etcdserver: requested lease not found");
    }
  }
  std::vector<Event> events;
  for (const Op* op : ops) {
    if (op->type == Op::Type::kPut) {
      PutLocked(op->key, op->value, op->lease, &events);
    } else {
      DeleteLocked(op->key, op->range_end, &events);
    }
  }
  CommitLocked(std::move(events));
  resp.header = HeaderLocked();
  txns_.push_back(TxnRecord{revision_, resp.succeeded, request, resp.nested_succeeded});
  ++changes_;
  return resp;
}

absl::StatusOr<std::unique_ptr<WatchStream>> FakeEtcd::Watch(const WatchOptions& options) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = TakeFault(Call::kWatch); !s.ok()) return s;
  auto stream = std::make_unique<Stream>(this, options);
  WatchResponse created;
  created.header = HeaderLocked();
  created.created = true;
  stream->PushCreated(created);
  const int64_t start = options.start_revision > 0 ? options.start_revision : revision_ + 1;
  if (start < compacted_) {
    stream->Fail(CompactedError(compacted_, options_.label + " watch"));
  } else {
    std::vector<Event> replay;
    for (auto it = history_.lower_bound(start); it != history_.end(); ++it) {
      std::vector<Event> mine = stream->Filter(it->second);
      replay.insert(replay.end(), mine.begin(), mine.end());
    }
    if (!replay.empty()) {
      stream->PushEvents(std::move(replay), HeaderLocked(), options_.max_watch_events);
    }
  }
  stream->next_revision = std::max(start, revision_ + 1);
  streams_.insert(stream.get());
  ++watches_opened_;
  ++changes_;
  return std::unique_ptr<WatchStream>(std::move(stream));
}

void FakeEtcd::Unregister(Stream* stream) {
  absl::MutexLock lock(&mu_);
  streams_.erase(stream);
  ++changes_;
}

absl::StatusOr<Header> FakeEtcd::Connect() {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = TakeFault(Call::kConnect); !s.ok()) return s;
  return HeaderLocked();
}

int64_t FakeEtcd::Put(const std::string& key, const std::string& value, int64_t lease) {
  absl::MutexLock lock(&mu_);
  std::vector<Event> events;
  PutLocked(key, value, lease, &events);
  CommitLocked(std::move(events));
  return revision_;
}

absl::StatusOr<int64_t> FakeEtcd::LeaseGrant(int64_t id, std::chrono::seconds ttl) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = TakeFault(Call::kLease); !s.ok()) return s;
  if (id == 0) id = next_lease_++;
  if (leases_.count(id) != 0) {
    return LeaseExistsError("fake lease: etcdserver: lease already exists");
  }
  leases_[id].granted_ttl = ttl.count();
  ++changes_;
  return id;
}

absl::Status FakeEtcd::RevokeLocked(int64_t id) {
  if (leases_.erase(id) == 0) {
    return LeaseNotFoundError("fake revoke: etcdserver: requested lease not found");
  }
  std::vector<Event> events;
  for (const auto& [key, versions] : keys_) {
    const KeyValue* kv = AtLocked(key, revision_);
    if (kv != nullptr && kv->lease == id) DeleteLocked(key, "", &events);
  }
  CommitLocked(std::move(events));
  ++changes_;
  return absl::OkStatus();
}

absl::Status FakeEtcd::LeaseRevoke(int64_t id) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = TakeFault(Call::kLease); !s.ok()) return s;
  return RevokeLocked(id);
}

void FakeEtcd::ExpireLease(int64_t id) {
  absl::MutexLock lock(&mu_);
  RevokeLocked(id).IgnoreError();
}

absl::StatusOr<LeaseInfo> FakeEtcd::LeaseTimeToLive(int64_t id) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = TakeFault(Call::kLease); !s.ok()) return s;
  auto it = leases_.find(id);
  if (it == leases_.end()) return LeaseInfo{id, -1, 0, HeaderLocked()};
  return LeaseInfo{id, it->second.granted_ttl, it->second.granted_ttl, HeaderLocked()};
}

absl::StatusOr<std::vector<int64_t>> FakeEtcd::LeaseLeases() {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = TakeFault(Call::kLease); !s.ok()) return s;
  std::vector<int64_t> ids;
  for (const auto& entry : leases_) ids.push_back(entry.first);
  return ids;
}

absl::StatusOr<std::vector<LeaseInfo>> FakeEtcd::LeaseKeepAlive(const std::vector<int64_t>& ids) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = TakeFault(Call::kLease); !s.ok()) return s;
  std::vector<LeaseInfo> out;
  for (int64_t id : ids) {
    auto it = leases_.find(id);
    if (it == leases_.end()) {
      out.push_back(LeaseInfo{id, 0, 0, HeaderLocked()});
      continue;
    }
    ++it->second.keepalives;
    out.push_back(LeaseInfo{id, it->second.granted_ttl, it->second.granted_ttl, HeaderLocked()});
  }
  ++changes_;
  return out;
}

int64_t FakeEtcd::keepalives(int64_t id) const {
  absl::MutexLock lock(&mu_);
  auto it = leases_.find(id);
  return it == leases_.end() ? 0 : it->second.keepalives;
}

int64_t FakeEtcd::Delete(const std::string& key) {
  absl::MutexLock lock(&mu_);
  std::vector<Event> events;
  DeleteLocked(key, "", &events);
  CommitLocked(std::move(events));
  return revision_;
}

void FakeEtcd::Compact(int64_t revision) {
  absl::MutexLock lock(&mu_);
  compacted_ = std::max(compacted_, std::min(revision, revision_));
  ++changes_;
}

std::optional<std::string> FakeEtcd::Get(const std::string& key) const {
  absl::MutexLock lock(&mu_);
  const KeyValue* kv = AtLocked(key, revision_);
  if (kv == nullptr) return std::nullopt;
  return kv->value;
}

std::map<std::string, std::string> FakeEtcd::Snapshot(const std::string& prefix) const {
  absl::MutexLock lock(&mu_);
  std::map<std::string, std::string> out;
  for (auto it = keys_.lower_bound(prefix);
       it != keys_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    const KeyValue* kv = AtLocked(it->first, revision_);
    if (kv != nullptr) out[it->first] = kv->value;
  }
  return out;
}

int64_t FakeEtcd::revision() const {
  absl::MutexLock lock(&mu_);
  return revision_;
}

std::vector<FakeEtcd::TxnRecord> FakeEtcd::txns() const {
  absl::MutexLock lock(&mu_);
  return txns_;
}

int64_t FakeEtcd::progress_requests() const {
  absl::MutexLock lock(&mu_);
  return progress_requests_;
}

int64_t FakeEtcd::watches_opened() const {
  absl::MutexLock lock(&mu_);
  return watches_opened_;
}

void FakeEtcd::FailNext(Call call, int n, const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  for (int i = 0; i < n; ++i) faults_[call].push_back(status);
}

void FakeEtcd::FailRangesIf(std::function<bool(const RangeRequest&)> pick, absl::Status status) {
  absl::MutexLock lock(&mu_);
  failing_ranges_ = std::move(pick);
  failing_ranges_status_ = std::move(status);
}

void FakeEtcd::HoldWatches(bool hold) {
  absl::MutexLock lock(&mu_);
  hold_ = hold;
  ++changes_;
}

void FakeEtcd::CancelWatches(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  for (Stream* s : streams_) s->Fail(status);
  ++changes_;
}

void FakeEtcd::SendProgress() {
  absl::MutexLock lock(&mu_);
  for (Stream* s : streams_) {
    WatchResponse resp;
    resp.header = HeaderLocked();
    resp.watch_id = 0;
    s->Push(std::move(resp));
  }
  ++changes_;
}

uint64_t FakeEtcd::changes() const {
  absl::MutexLock lock(&mu_);
  return changes_;
}

bool FakeEtcd::WaitForChange(uint64_t seen, absl::Duration timeout) const {
  auto changed = [this, seen]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return changes_ != seen; };
  bool ok = mu_.LockWhenWithTimeout(absl::Condition(&changed), timeout);
  mu_.Unlock();
  return ok;
}

bool FakeEtcd::WaitFor(const std::function<bool()>& condition, absl::Duration timeout) const {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    uint64_t seen = changes();
    if (condition()) return true;
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    WaitForChange(seen, left);
  }
}

}  // namespace kvsync::etcd
