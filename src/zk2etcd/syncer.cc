#include "zk2etcd/syncer.h"

#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "etcd/retry.h"
#include "log/log.h"
#include "metrics/registry.h"
#include "zk2etcd/guards.h"

namespace kvsync::zk2etcd {
namespace {

using Clock = std::chrono::steady_clock;
using checker::DiffKind;

std::string ChildPath(const std::string& parent, const std::string& child) {
  return parent == "/" ? "/" + child : parent + "/" + child;
}

std::atomic<int64_t>& Found(Stats* s, DiffKind k) {
  return k == DiffKind::kDstMiss   ? s->found_dst_miss
         : k == DiffKind::kSrcMiss ? s->found_src_miss
                                   : s->found_mismatch;
}

std::atomic<int64_t>& Fixed(Stats* s, DiffKind k) {
  return k == DiffKind::kDstMiss   ? s->fixed_dst_miss
         : k == DiffKind::kSrcMiss ? s->fixed_src_miss
                                   : s->fixed_mismatch;
}

// How often deferred deletes ask the ownership store again.
constexpr auto kDeferredRetry = std::chrono::seconds(1);

}  // namespace

struct Syncer::Item {
  enum class Kind { kEvent, kData, kChildren, kWalkNode };
  Kind kind = Kind::kEvent;
  uint64_t gen = 0;
  zk::WatchEvent::Type event = zk::WatchEvent::Type::kSession;
  std::string path;
  absl::Status status;
  std::string data;
  zk::Stat stat;
  std::vector<std::string> children;
  bool discover = false;
  Clock::time_point origin{};
  // What the item holds, for the inbox's bound.
  int64_t Bytes() const {
    int64_t n = static_cast<int64_t>(sizeof(Item) + path.size() + data.size());
    for (const auto& c : children) n += static_cast<int64_t>(sizeof(std::string) + c.size());
    return n;
  }
};

struct Syncer::Round {
  Mode mode = Mode::kFixNow;
  Snapshot snapshot;
  absl::flat_hash_map<KeyHash, DiffKind> diffs;
  int64_t walked = 0;
  int64_t fixed = 0;
  // Periodic rounds: per-service counts; differences counted are all of a first round's and
  // the confirmed ones of a confirm round.
  std::optional<ParityCounter> parity;
  bool claim = false;   // record ownership of keys already equal (first sync of a session)
  bool counted = true;  // false for the initial copy: its writes are not "fixes"
  bool Fixes(const KeyHash& h, DiffKind kind, const absl::flat_hash_map<KeyHash, DiffKind>& prev) {
    if (mode == Mode::kFixNow) return true;
    if (mode == Mode::kFirstRound) return false;
    auto it = prev.find(h);
    return it != prev.end() && it->second == kind;
  }
};

Syncer::Syncer(const config::Zk2EtcdConfig& config, zk::SessionFactory* zk, etcd::KvApi* etcd_kv,
               etcd::TxnApi* etcd_txn, ownership::Store* owners, const common::StopToken* stop,
               Stats* stats)
    : config_(config),
      zk_(zk),
      etcd_(etcd_kv),
      etcd_txn_(etcd_txn),
      owners_(owners),
      stop_(stop),
      stats_(stats),
      scope_(config.zk_prefixes, config.zk_excludes, config.etcd_prefix, config.meta_prefix),
      reverse_(etcd_kv, config.meta_prefix),
      applier_({.name = "zk2etcd-apply", .max_queued_bytes = config.queue_bytes}) {}

Syncer::~Syncer() = default;

absl::Status Syncer::OpenSession() {
  uint64_t gen = ++gen_;
  {
    absl::MutexLock lock(&control_mu_);
    disconnected_ = reconnected_ = expired_ = false;
  }
  auto opened = zk_->Open([this, gen](const zk::WatchEvent& e) { OnZkEvent(gen, e); });
  if (!opened.ok()) return opened.status();
  std::shared_ptr<zk::Reader> s(std::move(*opened));
  stats_->session_state.store(static_cast<int>(s->state()));
  stats_->session_id.store(s->session_id());
  log::Info(
      "zk2etcd", "zookeeper session open",
      {{"servers", config_.zk_servers}, {"session_id", absl::StrCat(absl::Hex(s->session_id()))}});
  std::shared_ptr<zk::Reader> old;
  {
    absl::MutexLock lock(&control_mu_);
    old = std::exchange(session_, std::move(s));
  }
  // The old session is closed (if this was its last owner) outside control_mu_: closing runs
  // its callbacks, and OnZkEvent takes control_mu_.
  old.reset();
  return absl::OkStatus();
}

std::shared_ptr<zk::Reader> Syncer::session() {
  absl::MutexLock lock(&control_mu_);
  return session_;
}

void Syncer::OnZkEvent(uint64_t gen, const zk::WatchEvent& e) {
  if (e.type == zk::WatchEvent::Type::kSession) {
    absl::MutexLock lock(&control_mu_);
    if (gen != gen_.load()) return;
    stats_->session_state.store(static_cast<int>(e.state));
    switch (e.state) {
      case zk::SessionState::kConnecting:
        disconnected_ = true;
        break;
      case zk::SessionState::kConnected:
        if (disconnected_) reconnected_ = true;
        disconnected_ = false;
        break;
      case zk::SessionState::kExpired:
        expired_ = true;
        break;
      case zk::SessionState::kAuthFailed:
        auth_failed_ = true;
        break;
      case zk::SessionState::kClosed:
        break;
    }
    return;
  }
  Item item;
  item.kind = Item::Kind::kEvent;
  item.gen = gen;
  item.event = e.type;
  item.path = e.path;
  item.origin = Clock::now();
  Offer(std::move(item));
}

void Syncer::Offer(Item item) {
  int64_t bytes = item.Bytes();
  auto shared = std::make_shared<Item>(std::move(item));
  if (applier_.TryPost([this, shared] { Handle(*shared); }, bytes)) return;
  // Refused because the task is stopping, or the item belongs to a replaced session: nothing
  // to repair.
  if (shutting_down_.load() || shared->gen != gen_.load()) return;
  // Dropped: the watch it carried (or re-armed) is lost for this session, so only a full sync
  // that re-arms every watch can make up for it.
  stats_->inbox_overflows.fetch_add(1);
  SignalControl([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(control_mu_) {
    if (!overflowed_) {
      log::Warn(
          "zk2etcd", "applier inbox full, ZooKeeper changes dropped; a full sync follows",
          {{"queue_bytes", config_.queue_bytes}, {"see", "kvsync_zk2etcd_inbox_overflows_total"}});
    }
    overflowed_ = true;
  });
  stats_->resync_pending.store(1);
}

bool Syncer::Deliver(Item item) {
  int64_t bytes = item.Bytes();
  auto shared = std::make_shared<Item>(std::move(item));
  return applier_.Post([this, shared] { Handle(*shared); }, bytes);
}

void Syncer::RunOnApplier(const std::function<void()>& fn) { applier_.RunSync(fn); }

void Syncer::SignalControl(const std::function<void()>& change) {
  absl::MutexLock lock(&control_mu_);
  change();
}

// ---- applier thread ----

void Syncer::Handle(Item& item) {
  if (item.gen != gen_.load()) return;  // from an expired session
  switch (item.kind) {
    case Item::Kind::kEvent:
      switch (item.event) {
        case zk::WatchEvent::Type::kDataChanged:
          stats_->events_data.fetch_add(1);
          if (scope_.Covers(item.path)) Read(item.path, false, item.origin);
          break;
        case zk::WatchEvent::Type::kCreated:
          stats_->events_created.fetch_add(1);
          if (scope_.Covers(item.path)) Read(item.path, true, item.origin);
          break;
        case zk::WatchEvent::Type::kDeleted:
          stats_->events_deleted.fetch_add(1);
          OnGone(item.path, item.origin);
          break;
        case zk::WatchEvent::Type::kChildrenChanged:
          stats_->events_children.fetch_add(1);
          if (config_.coalesce.count() == 0) {
            List(item.path, item.origin);
          } else {
            Coalesce(item.path, item.origin);
          }
          break;
        default:
          break;
      }
      break;
    case Item::Kind::kData:
      if (absl::IsNotFound(item.status)) {
        OnGone(item.path, item.origin);
      } else if (absl::IsPermissionDenied(item.status)) {
        NoteUnreadable({item.path}, false);
      } else if (!item.status.ok()) {
        stats_->zk_errors.fetch_add(1);  // reconciled by the full sync after reconnecting
      } else {
        OnNode(item.path, item.data, item.stat, item.discover, item.origin);
      }
      break;
    case Item::Kind::kChildren:
      if (absl::IsPermissionDenied(item.status)) {
        NoteUnreadable({item.path}, false);
        break;
      }
      if (!item.status.ok()) {
        if (!absl::IsNotFound(item.status)) stats_->zk_errors.fetch_add(1);
        break;
      }
      for (const auto& child : item.children) {
        std::string path = ChildPath(item.path, child);
        if (!scope_.Covers(path)) continue;
        if (nodes_.Get(HashKey(scope_.KeyOf(path))).live()) continue;
        Read(path, true, item.origin);
      }
      break;
    case Item::Kind::kWalkNode:
      OnWalkNode(item.path, item.data, item.stat);
      break;
  }
}

void Syncer::Coalesce(const std::string& parent, Clock::time_point origin) {
  if (coalescing_.contains(parent)) return;
  // The deadline is fixed by the first event; later events never extend it.
  auto delay = origin + config_.coalesce - Clock::now();
  coalescing_[parent] = applier_.PostAfter(delay, [this, parent] {
    coalescing_.erase(parent);
    List(parent, Clock::now());
  });
}

void Syncer::Read(const std::string& path, bool discover, Clock::time_point origin) {
  auto s = session();
  uint64_t gen = gen_.load();
  stats_->zk_get_data.fetch_add(1);
  auto started = Clock::now();
  s->GetData(path, true,
             [this, path, discover, origin, gen, started](const absl::Status& st, std::string data,
                                                          const zk::Stat& stat) {
               if (stats_->zk_latency != nullptr) {
                 stats_->zk_latency->Observe(
                     std::chrono::duration<double>(Clock::now() - started).count());
               }
               Item item;
               item.kind = Item::Kind::kData;
               item.gen = gen;
               item.path = path;
               item.status = st;
               item.data = std::move(data);
               item.stat = stat;
               item.discover = discover;
               item.origin = origin;
               Offer(std::move(item));
             });
}

void Syncer::List(const std::string& path, Clock::time_point origin) {
  auto s = session();
  uint64_t gen = gen_.load();
  stats_->zk_get_children.fetch_add(1);
  auto started = Clock::now();
  s->GetChildren(path, true,
                 [this, path, origin, gen, started](
                     const absl::Status& st, std::vector<std::string> children, const zk::Stat&) {
                   if (stats_->zk_latency != nullptr) {
                     stats_->zk_latency->Observe(
                         std::chrono::duration<double>(Clock::now() - started).count());
                   }
                   Item item;
                   item.kind = Item::Kind::kChildren;
                   item.gen = gen;
                   item.path = path;
                   item.status = st;
                   item.children = std::move(children);
                   item.origin = origin;
                   Offer(std::move(item));
                 });
}

bool Syncer::IsReverseCopy(const zk::Stat& stat) {
  if (stat.ephemeral_owner == 0 || !reverse_.IsReverse(stat.ephemeral_owner)) return false;
  stats_->reverse_skipped.fetch_add(1);
  stats_->reverse_lookups.store(reverse_.lookups());
  return true;
}

void Syncer::OnNode(const std::string& path, const std::string& data, const zk::Stat& stat,
                    bool discover, Clock::time_point origin) {
  if (!scope_.Covers(path)) return;
  // The etcd2zk direction's copy of an etcd key: never copied back (its deletion is not one
  // either: the node table never saw it live).
  if (IsReverseCopy(stat)) return;
  std::string key = scope_.KeyOf(path);
  KeyHash h = HashKey(key);
  if (nodes_.Advance(h, Version{stat.czxid, stat.mzxid})) {
    SubmitPut(key, h, data, stat.ephemeral_owner != 0, origin);
  }
  if (discover && stat.ephemeral_owner == 0) List(path, origin);
  stats_->znodes_watched.store(nodes_.live());
}

void Syncer::OnGone(const std::string& path, Clock::time_point origin) {
  if (!scope_.Covers(path)) return;
  std::string key = scope_.KeyOf(path);
  KeyHash h = HashKey(key);
  NodeState st = nodes_.Get(h);
  if (!st.live()) return;
  nodes_.Advance(h, Version{st.version.czxid, Version::kDeleted});
  SubmitDelete(key, h, origin);
  stats_->znodes_watched.store(nodes_.live());
}

void Syncer::SubmitPut(const std::string& key, const KeyHash& h, const std::string& data,
                       bool ephemeral, Clock::time_point origin) {
  Change c;
  c.key = key;
  c.hash = h;
  c.ephemeral = ephemeral && lease_ != nullptr;
  owners_->AppendPut(key, data, &c.ops);
  c.origin = origin;
  writer_->Submit(std::move(c));
}

bool Syncer::LeaseMatches(int64_t lease, const zk::Stat& stat) const {
  // Only kvsync's own lease matters: other writers' leases are theirs to keep.
  if (lease_ == nullptr) return lease == 0 || lease != retired_lease_;
  bool ours = lease == lease_->id();
  return stat.ephemeral_owner != 0 ? ours : !ours;
}

void Syncer::SubmitDelete(const std::string& key, const KeyHash& h, Clock::time_point origin) {
  Change c;
  c.key = key;
  c.hash = h;
  c.is_delete = true;
  owners_->AppendDelete(key, &c.ops);
  c.origin = origin;
  writer_->Submit(std::move(c));
}

void Syncer::Defer(const std::string& key, const KeyHash& h) {
  absl::MutexLock lock(&deferred_mu_);
  if (deferred_.emplace(h, key).second) stats_->deletes_deferred.store(deferred_.size());
  if (!retry_armed_) {
    retry_armed_ = true;
    applier_.PostAfter(kDeferredRetry, [this] { RetryDeferred(); });
  }
}

void Syncer::RetryDeferred() {
  absl::flat_hash_map<KeyHash, std::string> pending;
  {
    absl::MutexLock lock(&deferred_mu_);
    if (!owners_->available()) {
      applier_.PostAfter(kDeferredRetry, [this] { RetryDeferred(); });
      return;
    }
    retry_armed_ = false;
    pending = std::move(deferred_);
    deferred_.clear();
    stats_->deletes_deferred.store(0);
  }
  for (auto& [h, key] : pending) {
    // Still deleted? A re-created node has a live version by now and must stay.
    NodeState st = nodes_.Get(h);
    if (st.live()) continue;
    SubmitDelete(key, h, Clock::time_point{});
  }
  log::Info("zk2etcd", "deferred deletes resumed",
            {{"deletes", static_cast<int64_t>(pending.size())}});
}

void Syncer::NoteUnreadable(const std::vector<std::string>& paths, bool whole_round) {
  // The first paths are logged one line each; beyond that one line says more were skipped
  // (the gauge counts them all).
  constexpr size_t kLoggedPaths = 100;
  if (whole_round) unreadable_.clear();
  for (const std::string& path : paths) {
    unreadable_.insert(path);
    if (logged_unreadable_.size() >= kLoggedPaths) {
      if (!logged_unreadable_.contains(path) && !unreadable_overflow_logged_) {
        unreadable_overflow_logged_ = true;
        log::Warn("zk2etcd", "more unreadable znodes skipped, not logged one by one",
                  {{"logged", static_cast<int64_t>(kLoggedPaths)},
                   {"see", "kvsync_zk2etcd_unreadable_znodes"}});
      }
      continue;
    }
    if (!logged_unreadable_.insert(path).second) continue;
    log::Warn("zk2etcd", "unreadable znode skipped",
              {{"path", path},
               {"reason", "ZooKeeper ACL denies kvsync read access"},
               {"effect", "its subtree is not mirrored; etcd keys under it are kept"},
               {"fix", "grant read access (--zk-auth) or exclude it (--zk-exclude-prefix)"}});
  }
  stats_->unreadable_znodes.store(static_cast<int64_t>(unreadable_.size()));
}

void Syncer::OnWalkNode(const std::string& path, const std::string& data, const zk::Stat& stat) {
  Round* r = round_;
  if (r == nullptr || !scope_.Covers(path)) return;
  r->walked++;
  stats_->full_sync_walked.store(r->walked);
  std::string key = scope_.KeyOf(path);
  KeyHash h = HashKey(key);
  Snapshot::Entry* e = r->snapshot.Find(h);
  if (e != nullptr) e->visited = true;
  if (r->parity) {
    r->parity->CountZk(path);
    if (e != nullptr) r->parity->CountEtcd(path);
  }
  // The etcd2zk direction's copy: its etcd key (visited above) is the original, another
  // writer's, and is neither claimed nor compared; nothing is copied back.
  if (IsReverseCopy(stat)) return;
  Version v{stat.czxid, stat.mzxid};
  nodes_.Touch(h);
  bool ephemeral = stat.ephemeral_owner != 0;
  if (e != nullptr && e->value_hash == HashValue(data) && LeaseMatches(e->lease, stat)) {
    nodes_.Advance(h, v);
    // Equal keys become kvsync's: the znode exists, so etcd must lose the key with it.
    if (owners_->backend() == "etcd" ? !e->marked : r->claim) {
      if (owners_->backend() == "etcd") {
        SubmitPut(key, h, data, ephemeral, Clock::time_point{});
      } else if (owners_->backend() == "redis") {
        // Recorded by the Writer, in order with this key's other changes.
        Change c;
        c.key = key;
        c.hash = h;
        c.claim_only = true;
        writer_->Submit(std::move(c));
      }
    }
    return;
  }
  NodeState st = nodes_.Get(h);
  // A write of ours after the snapshot was read explains the difference.
  if (st.pending > 0 || st.written > r->snapshot.revision()) return;
  if (st.known && v < st.version) return;
  DiffKind kind = e == nullptr ? DiffKind::kDstMiss : DiffKind::kMismatch;
  r->diffs[h] = kind;
  if (r->counted) Found(stats_, kind).fetch_add(1);
  bool fixes = r->Fixes(h, kind, previous_diffs_);
  if (r->parity && (fixes || r->mode == Mode::kFirstRound)) r->parity->CountDifference(path, kind);
  if (!fixes) return;
  if (r->mode == Mode::kFixNow) {
    nodes_.Advance(h, v);
    SubmitPut(key, h, data, ephemeral, Clock::time_point{});
  } else {
    // A confirmed repair re-reads the znode with watches (the periodic walk arms none), and
    // puts what that read returns: force it by forgetting the recorded version.
    nodes_.Forget(h);
    Read(path, true, Clock::now());
  }
  if (r->counted) Fixed(stats_, kind).fetch_add(1);
  r->fixed++;
}

// ---- control thread ----

absl::Status Syncer::RunRound(Round* r) {
  auto started = Clock::now();
  std::string mark_prefix = owners_->MarkPrefix();
  ASSIGN_OR_RETURN(r->snapshot, Snapshot::Load(etcd_, scope_, mark_prefix, config_.page_size,
                                               *stop_, &stats_->common.retries));
  if (r->mode != Mode::kFixNow && config_.parity_top > 0) {
    r->parity.emplace(scope_.roots(), config_.service_depth);
  }
  stats_->full_sync_walked.store(0);
  RunOnApplier([this, r] {
    round_ = r;
    nodes_.NewRound();
  });
  zk::WalkOptions walk;
  walk.roots = scope_.roots();
  walk.excludes = scope_.walk_excludes();
  walk.concurrency = config_.concurrency;
  // Watches are armed by the walks that fix at once (start-up, reconnect, expiry) and stay
  // armed for the session; periodic rounds only read.
  walk.watch = !config_.once && r->mode == Mode::kFixNow;
  // A znode kvsync may not read is skipped (and its etcd keys kept), never fatal.
  walk.skip_unreadable = true;
  uint64_t gen = gen_.load();
  auto walked = session()->Walk(
      walk,
      [this, gen](const std::string& path, const std::string& data, const zk::Stat& stat) {
        Item item;
        item.kind = Item::Kind::kWalkNode;
        item.gen = gen;
        item.path = path;
        item.data = data;
        item.stat = stat;
        Deliver(std::move(item));
      },
      stop_);
  RunOnApplier([this] { round_ = nullptr; });
  if (!walked.ok()) return walked.status();
  stats_->zk_get_data.fetch_add(walked->reads);
  stats_->missing_roots.store(static_cast<int64_t>(walked->missing_roots.size()));
  RunOnApplier([&] { NoteUnreadable(walked->unreadable, true); });
  if (walked->unreadable_count > static_cast<int64_t>(walked->unreadable.size())) {
    stats_->unreadable_znodes.store(walked->unreadable_count);
  }

  // etcd keys that no znode matched: src miss candidates, unless a znode appeared meanwhile
  // (live), a write of ours is in flight, or we wrote the key after the snapshot.
  std::vector<std::pair<std::string, bool>> candidates;  // key, marked
  RETURN_IF_ERROR(r->snapshot.ForEachUnvisited(
      etcd_, scope_, config_.page_size, *stop_, &stats_->common.retries,
      [&](const std::string& key, Snapshot::Entry& e) { candidates.emplace_back(key, e.marked); }));
  if (r->parity) {
    // Every key in etcd counts for its service, whoever wrote it.
    for (const auto& c : candidates) {
      if (std::optional<std::string> path = scope_.PathOf(c.first)) r->parity->CountEtcd(*path);
    }
  }
  std::vector<ownership::Owner> owners;
  if (!candidates.empty()) {
    std::vector<std::string> keys;
    keys.reserve(candidates.size());
    for (const auto& c : candidates) keys.push_back(c.first);
    owners = owners_->Lookup(keys);
  }
  DeletePlan plan;
  plan.missing_roots = walked->missing_roots;
  plan.unreadable_unnamed =
      walked->unreadable_count > static_cast<int64_t>(walked->unreadable.size());
  // Owned keys: the etcd marks; otherwise the keys a znode matched (claimed by the full syncs)
  // plus the unmatched ones the store calls kvsync's, so other writers' keys never dilute it.
  if (owners_->backend() == "etcd") {
    plan.owned = r->snapshot.marked_keys();
  } else {
    plan.owned = r->snapshot.visited_keys();
    for (ownership::Owner o : owners) plan.owned += o == ownership::Owner::kOwned ? 1 : 0;
  }
  bool src_miss_found = false;
  absl::Status judged;
  RunOnApplier([&] {
    std::vector<std::pair<size_t, NodeState>> deletes;  // candidate index, node state
    for (size_t i = 0; i < candidates.size(); ++i) {
      const std::string& key = candidates[i].first;
      KeyHash h = HashKey(key);
      NodeState st = nodes_.Get(h);
      // Live and read or changed during this round: created after the walk passed. Live
      // from an earlier round but not walked: gone (its delete event was lost).
      bool appeared = st.live() && st.seen == nodes_.round();
      if (appeared || st.pending > 0 || st.written > r->snapshot.revision()) continue;
      if (owners[i] == ownership::Owner::kUnknown) {
        stats_->repairs_paused.fetch_add(1);
        continue;
      }
      bool owned = owners_->backend() == "etcd" ? candidates[i].second
                                                : owners[i] == ownership::Owner::kOwned;
      std::optional<std::string> path = scope_.PathOf(key);
      if (!owned) {
        stats_->unowned_skipped.fetch_add(1);
        if (r->parity && path) r->parity->CountForeign(*path);
        continue;
      }
      if (path && UnderAny(*path, unreadable_)) continue;  // its znode may well exist: keep
      r->diffs[h] = DiffKind::kSrcMiss;
      src_miss_found = true;
      if (r->counted) Found(stats_, DiffKind::kSrcMiss).fetch_add(1);
      bool fixes = r->Fixes(h, DiffKind::kSrcMiss, previous_diffs_);
      if (r->parity && path && (fixes || r->mode == Mode::kFirstRound)) {
        r->parity->CountDifference(*path, DiffKind::kSrcMiss);
      }
      if (!fixes) continue;
      plan.deletes++;
      for (const std::string& root : plan.missing_roots) {
        if (path && common::PathUnder(*path, root)) {
          plan.under_missing_root++;
          break;
        }
      }
      deletes.emplace_back(i, st);
    }
    // All or nothing: a round either may delete what it inferred, or holds all of it.
    judged = JudgeDeletes(plan, config_.max_delete_fraction, config_.confirm_mass_delete);
    if (!judged.ok()) return;
    for (const auto& [i, st] : deletes) {
      const std::string& key = candidates[i].first;
      KeyHash h = HashKey(key);
      nodes_.Advance(h, Version{st.version.czxid, Version::kDeleted});
      // Owned (looked up above), so submitted; the Writer asks again before the txn.
      SubmitDelete(key, h, Clock::time_point{});
      if (r->counted) Fixed(stats_, DiffKind::kSrcMiss).fetch_add(1);
      r->fixed++;
    }
  });
  if (r->mode != Mode::kFirstRound || !src_miss_found) {
    // A first round decides nothing; a round without src miss has nothing to hold.
    stats_->deletes_held.store(judged.ok() ? 0 : plan.deletes);
    hold_ = judged;
  }
  if (!judged.ok()) {
    stats_->delete_holds.fetch_add(1);
    log::Error("zk2etcd", "deletes held by the deletion guard",
               {{"held", plan.deletes},
                {"owned", plan.owned},
                {"missing_roots", static_cast<int64_t>(plan.missing_roots.size())},
                {"error", judged}});
  }
  RETURN_IF_ERROR(Flush());
  nodes_.DropTombstones();
  stats_->znodes_watched.store(nodes_.live());
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
  stats_->common.last_full_sync_ms.store(ms);
  log::Info("zk2etcd", "full sync round done",
            {{"mode", r->mode == Mode::kFixNow       ? "fix"
                      : r->mode == Mode::kFirstRound ? "round1"
                                                     : "round2"},
             {"znodes", r->walked},
             {"etcd_keys", r->snapshot.keys()},
             {"differences", static_cast<int64_t>(r->diffs.size())},
             {"fixed", r->fixed},
             {"seconds", static_cast<double>(ms) / 1000.0}});
  return absl::OkStatus();
}

absl::Status Syncer::FullSync(Mode mode) {
  stats_->common.full_syncs.fetch_add(1);
  // One read for every etcd2zk session recorded so far (owners seen later are read once each).
  if (absl::Status loaded = reverse_.Preload(); !loaded.ok()) {
    log::Warn("zk2etcd", "cannot read the etcd2zk session registry",
              {{"error", loaded}, {"effect", "each ephemeral owner is looked up on its own"}});
  }
  stats_->common.phase.store(static_cast<int>(sink::Phase::kFullSync));
  if (mode == Mode::kFixNow) {
    Round r;
    r.mode = Mode::kFixNow;
    r.claim = true;
    r.counted = stats_->common.full_syncs.load() > 1;  // the initial copy is not a repair
    RETURN_IF_ERROR(RunRound(&r));
  } else {
    Round first;
    first.mode = Mode::kFirstRound;
    RETURN_IF_ERROR(RunRound(&first));
    Round second;
    Round* last = &first;
    if (!first.diffs.empty()) {
      // Differences count only when the next round sees them again: in-flight changes of the
      // first round are gone by then.
      RunOnApplier([&] { previous_diffs_ = std::move(first.diffs); });
      second.mode = Mode::kConfirmRound;
      absl::Status s = RunRound(&second);
      RunOnApplier([&] { previous_diffs_.clear(); });
      RETURN_IF_ERROR(s);
      last = &second;
    }
    if (last->parity) {
      stats_->parity.Publish(last->parity->Services(), static_cast<size_t>(config_.parity_top),
                             common::WallMs());
    }
  }
  stats_->common.phase.store(static_cast<int>(sink::Phase::kIncremental));
  return absl::OkStatus();
}

absl::Status Syncer::Flush() { return writer_->Flush(); }

absl::Status Syncer::LeaseError() {
  absl::MutexLock lock(&control_mu_);
  return lease_error_;
}

absl::Status Syncer::Run() {
  RETURN_IF_ERROR(OpenSession());
  Writer::Options options{config_.inflight, config_.max_txn_ops, config_.max_request_bytes,
                          config_.queue_bytes / 2};
  options.on_skipped_delete = [this](const Change& c, ownership::Owner owner) {
    if (owner == ownership::Owner::kUnknown) {
      Defer(c.key, c.hash);
    } else {
      stats_->unowned_skipped.fetch_add(1);
    }
  };
  options.on_failure = [this] {
    SignalControl([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(control_mu_) { writer_failed_ = true; });
  };
  if (config_.ephemeral_lease_ttl.count() > 0) {
    if (leases_ == nullptr) return absl::InternalError("--ephemeral-lease-ttl without a lease API");
    lease_ = std::make_unique<EphemeralLease>(
        leases_, etcd_, etcd_txn_, config_.TaskMeta() + "ephemeral-lease",
        std::chrono::duration_cast<std::chrono::seconds>(config_.ephemeral_lease_ttl), stop_,
        &stats_->ephemeral_lease,
        [this] {
          SignalControl([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(control_mu_) {
            lease_replaced_ = true;
            stats_->resync_pending.store(1);  // under the lock, as the control thread clears it
          });
        },
        [this](const absl::Status& error) {
          SignalControl([this, error]()
                            ABSL_EXCLUSIVE_LOCKS_REQUIRED(control_mu_) { lease_error_ = error; });
        });
    absl::StatusOr<bool> started = etcd::RetryTransient(
        *stop_, "ephemeral lease", &stats_->common.retries, [this]() -> absl::StatusOr<bool> {
          RETURN_IF_ERROR(lease_->Start(fence_));
          return true;
        });
    if (!started.ok()) return started.status();
    options.lease = lease_.get();
  } else {
    // Copies left on the lease of an earlier run with --ephemeral-lease-ttl become plain keys
    // at the start-up full sync, before that lease runs out.
    etcd::RangeRequest read;
    read.key = config_.TaskMeta() + "ephemeral-lease";
    absl::StatusOr<etcd::RangeResponse> recorded = etcd_->Range(read);
    if (recorded.ok() && !recorded->kvs.empty()) {
      int64_t id = 0;
      if (absl::SimpleAtoi(recorded->kvs[0].value, &id)) retired_lease_ = id;
    }
  }
  writer_ = std::make_unique<Writer>(etcd_txn_, owners_, &nodes_, std::move(options), stop_,
                                     &stats_->common, stats_->event_lag);
  writer_->set_fence(fence_);
  applier_.Start();
  common::StopCallback on_stop(*stop_, [this] {
    SignalControl([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(control_mu_) { stopping_ = true; });
  });
  auto finish = [&](absl::Status s) {
    shutting_down_.store(true);
    if (lease_) lease_->Stop();  // a worker waiting for a new lease returns
    applier_.Shutdown();         // runs what is queued, which may still submit writes
    writer_.reset();
    lease_.reset();  // never revoked: the copies outlive a restart within the TTL
    stats_->ephemeral_lease.id.store(0);
    stats_->ephemeral_lease.remaining_ttl.store(0);
    // A standby (or a stopped task) exports no parity: the next leader counts its own.
    stats_->parity.Publish({}, 0, 0);
    ++gen_;
    std::shared_ptr<zk::Reader> closing;
    {
      absl::MutexLock lock(&control_mu_);
      closing = std::move(session_);
    }
    closing.reset();  // outside control_mu_, as in OpenSession
    stats_->common.phase.store(static_cast<int>(sink::Phase::kStopped));
    return s;
  };

  bool need_sync = true;
  auto next_periodic = Clock::now() + config_.fullsync_interval;
  common::Backoff backoff(std::chrono::milliseconds(200), std::chrono::seconds(10));
  auto retry_at = Clock::now();
  // An expiry is being handled: a failed open is retried, not counted as another expiry.
  bool reopening = false;
  while (!stop_->stopped()) {
    // Sleeps until the session, the writer, the inbox or a stop reports something, or the
    // next full sync (a retry or a periodic one) is due.
    bool expired = false, reconnected = false, auth_failed = false, overflowed = false;
    {
      absl::MutexLock lock(&control_mu_);
      auto until = need_sync                               ? retry_at
                   : config_.fullsync_interval.count() > 0 ? next_periodic
                                                           : Clock::now() + std::chrono::hours(1);
      auto reported = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(control_mu_) {
        return expired_ || reconnected_ || auth_failed_ || overflowed_ || writer_failed_ ||
               lease_replaced_ || !lease_error_.ok() || stopping_;
      };
      auto left = until - Clock::now();
      if (left > Clock::duration::zero()) {
        control_mu_.AwaitWithTimeout(absl::Condition(&reported), absl::FromChrono(left));
      }
      expired = expired_;
      reconnected = reconnected_;
      auth_failed = auth_failed_;
      overflowed = overflowed_ || lease_replaced_;
      reconnected_ = false;
      overflowed_ = false;
      lease_replaced_ = false;
    }
    if (stop_->stopped()) break;
    if (!writer_->status().ok()) return finish(writer_->status());
    if (absl::Status lease_error = LeaseError(); !lease_error.ok()) return finish(lease_error);
    if (auth_failed) {
      return finish(absl::PermissionDeniedError("ZooKeeper refused the credentials (--zk-auth)"));
    }
    if (expired) {
      if (!reopening) {
        stats_->session_expirations.fetch_add(1);
        log::Warn("zk2etcd", "zookeeper session expired, opening a new one", {});
      }
      absl::Status opened = OpenSession();
      reopening = !opened.ok();
      if (!opened.ok()) {
        if (!zk::IsTransient(opened)) return finish(opened);
        log::Warn("zk2etcd", "zookeeper unreachable, retrying", {{"error", opened}});
        absl::MutexLock lock(&control_mu_);
        expired_ = true;  // try again
      }
      // Old-session events are dropped by generation; pending listings belonged to it.
      RunOnApplier([this] {
        for (const auto& [parent, timer] : coalescing_) applier_.Cancel(timer);
        coalescing_.clear();
      });
      need_sync = true;
      if (!opened.ok()) {
        if (stop_->WaitFor(backoff.Next())) break;
        continue;
      }
    }
    if (reconnected || overflowed) {
      if (reconnected) {
        stats_->reconnects.fetch_add(1);
        log::Info("zk2etcd", "zookeeper reconnected, reconciling", {});
      }
      need_sync = true;
      retry_at = Clock::now();
    }
    Mode mode;
    if (need_sync && Clock::now() >= retry_at) {
      mode = Mode::kFixNow;
    } else if (!need_sync && config_.fullsync_interval.count() > 0 &&
               Clock::now() >= next_periodic) {
      mode = Mode::kFirstRound;
    } else {
      continue;
    }
    // The migration phase may have stopped this direction (migration.h): checked before
    // every full sync, so a running task stops within --fullsync-interval.
    if (phase_check_) {
      if (absl::Status allowed = phase_check_(); !allowed.ok()) return finish(allowed);
    }
    // Changes dropped from here on are not covered by this full sync's walk: they set the
    // flag again.
    if (mode == Mode::kFixNow) {
      absl::MutexLock lock(&control_mu_);
      overflowed_ = false;
      lease_replaced_ = false;
    }
    absl::Status s = FullSync(mode);
    if (s.ok()) {
      backoff.Reset();
      need_sync = false;
      next_periodic = Clock::now() + config_.fullsync_interval;
      if (mode == Mode::kFixNow) {
        absl::MutexLock lock(&control_mu_);
        if (!overflowed_ && !lease_replaced_) stats_->resync_pending.store(0);
      }
      // --once reports a hold as a refusal (exit 2); a running task keeps holding, not ready.
      if (config_.once) return finish(hold_);
      continue;
    }
    if (stop_->stopped()) break;
    if (!writer_->status().ok() ||
        !(zk::IsTransient(s) || zk::IsSessionExpired(s) || etcd::IsTransient(s))) {
      return finish(s);
    }
    // ZooKeeper or etcd unreachable, or the session expired mid-walk: nothing was deleted from
    // the incomplete walk; run a fixing full sync once the session is back. Anything else (a
    // refusal, an error nobody classified) ends the run: never retried forever.
    log::Warn("zk2etcd", "full sync incomplete, will retry", {{"error", s}});
    need_sync = true;
    retry_at = Clock::now() + backoff.Next();
  }
  return finish(absl::OkStatus());
}

}  // namespace kvsync::zk2etcd
