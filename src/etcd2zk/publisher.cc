#include "etcd2zk/publisher.h"

#include <set>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/backoff.h"
#include "common/digest.h"
#include "common/errors.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "log/log.h"
#include "zk2etcd/reverse_sessions.h"
#include "zk2etcd/snapshot.h"

namespace kvsync::etcd2zk {
namespace {

constexpr const char* kLog = "etcd2zk";
// How often keys held for a missing parent are tried again (a path held by another znode is
// retried when that znode goes, through an exists watch).
constexpr std::chrono::seconds kNoParentRetry{10};
// After a transient ZooKeeper failure of one path: wait this long, then re-read and converge.
constexpr std::chrono::seconds kTransientRetry{1};
// Sessions of this task kept in the registry: older ones have long expired (and their znodes
// with them), so their records are deleted.
constexpr size_t kSessionsKept = 8;
// What a queued etcd event costs beyond its key and value (the bound is --queue-bytes).
constexpr int64_t kEventOverhead = 128;

int64_t EventBytes(const std::vector<etcd::Event>& events) {
  int64_t bytes = 0;
  for (const etcd::Event& e : events) {
    bytes += static_cast<int64_t>(e.kv.key.size() + e.kv.value.size()) + kEventOverhead;
  }
  return bytes;
}

std::string SessionHex(int64_t id) { return absl::StrCat(absl::Hex(id, absl::kZeroPad16)); }

}  // namespace

Publisher::Publisher(const config::Zk2EtcdConfig& config, std::string forward_mark_prefix,
                     zk::SessionOptions zk, etcd::ClusterApi* etcd, const common::StopToken* stop,
                     Stats* stats)
    : config_(config),
      forward_marks_(std::move(forward_mark_prefix)),
      zk_options_(std::move(zk)),
      etcd_(etcd),
      stop_(stop),
      stats_(stats),
      scope_(config.zk_prefixes, config.zk_excludes, config.etcd_prefix, config.meta_prefix) {}

Publisher::~Publisher() {
  StopWatches();
  session_.reset();
}

void Publisher::Push(Work work) {
  {
    absl::MutexLock lock(&mu_);
    if (work.kind != Work::Kind::kEvents) {
      queue_.push_back(std::move(work));
      return;
    }
    queued_bytes_ += EventBytes(work.events);
    if (queued_bytes_ <= config_.queue_bytes) {
      queue_.push_back(std::move(work));
      return;
    }
    // One re-read replaces the events (it reflects them all). Retries and expiry stay: a
    // re-read does not re-check a published znode whose watch fired.
    std::erase_if(queue_, [](const Work& w) { return w.kind == Work::Kind::kEvents; });
    queued_bytes_ = 0;
    queue_.push_back(Work{.kind = Work::Kind::kResync});
  }
  stats_->overflows.fetch_add(1);
  log::Warn(kLog, "etcd changes queued beyond --queue-bytes: dropped, re-reading the scope",
            {{"queue_bytes", config_.queue_bytes},
             {"effect", "ZooKeeper lags etcd until the re-read has converged"}});
}

void Publisher::OnZkEvent(const zk::WatchEvent& event) {
  // The session's loop thread: copy and queue only.
  switch (event.type) {
    case zk::WatchEvent::Type::kSession:
      stats_->session_state.store(static_cast<int>(event.state));
      if (event.state == zk::SessionState::kExpired ||
          event.state == zk::SessionState::kAuthFailed) {
        Push(Work{.kind = Work::Kind::kExpired});
      } else if (event.state == zk::SessionState::kConnected) {
        // Changes made while disconnected may have failed: converge everything again.
        Push(Work{.kind = Work::Kind::kResync});
      }
      break;
    case zk::WatchEvent::Type::kDeleted:
    case zk::WatchEvent::Type::kDataChanged:
      // The watch on a published znode (changed or deleted, by kvsync or another client), or
      // on a path another znode holds (gone: publish now). The watch is spent: the retry arms
      // it again.
      Push(Work{.kind = Work::Kind::kRetry, .path = event.path});
      break;
    default:
      break;
  }
}

absl::Status Publisher::OpenSession() {
  auto opened = zk::Session::Open(zk_options_, [this](const zk::WatchEvent& e) { OnZkEvent(e); });
  if (!opened.ok()) return opened.status();
  session_ = std::move(*opened);
  {
    // The first kConnected (seen by the callback during Open) asks for a resync: the loop
    // starts with one anyway.
    absl::MutexLock lock(&mu_);
    queue_.clear();
    queued_bytes_ = 0;
  }
  published_.clear();
  held_.clear();
  stats_->session_state.store(static_cast<int>(session_->state()));
  stats_->session_id.store(session_->session_id());
  return RecordSession();
}

absl::Status Publisher::RecordSession() {
  // Before any create: the forward direction must be able to recognise every znode of this
  // session (reverse_sessions.h). The list of this task's recent sessions lets old records go.
  const std::string list_key = config_.TaskMeta() + "zk-sessions";
  const int64_t id = session_->session_id();
  auto listed = etcd::RetryTransient(*stop_, "etcd2zk session list", &stats_->retries, [&] {
    etcd::RangeRequest r;
    r.key = list_key;
    return etcd_->Range(r);
  });
  if (!listed.ok()) return listed.status();
  std::vector<std::string> sessions;
  if (!listed->kvs.empty()) {
    sessions = absl::StrSplit(listed->kvs[0].value, ',', absl::SkipEmpty());
  }
  sessions.insert(sessions.begin(), SessionHex(id));
  etcd::TxnRequest txn;
  txn.compares = fence_;
  txn.success.push_back(
      etcd::Op::Put(zk2etcd::ReverseSessionKey(config_.meta_prefix, id), config_.name));
  while (sessions.size() > kSessionsKept) {
    txn.success.push_back(
        etcd::Op::Delete(zk2etcd::ReverseSessionPrefix(config_.meta_prefix) + sessions.back()));
    sessions.pop_back();
  }
  txn.success.push_back(etcd::Op::Put(list_key, absl::StrJoin(sessions, ",")));
  // Idempotent (same puts and deletes): safe to resend after an ambiguous failure.
  auto written = etcd::RetryTransient(*stop_, "etcd2zk session record", &stats_->retries,
                                      [&] { return etcd_->Txn(txn); });
  if (!written.ok()) return written.status();
  if (!written->succeeded) {
    return common::WithKind(
        absl::AbortedError("etcd2zk session record: fenced, this instance is no longer the leader"),
        common::ErrorKind::kFenced);
  }
  stats_->sessions.fetch_add(1);
  log::Info(kLog, "ZooKeeper session recorded",
            {{"session", SessionHex(id)},
             {"record", zk2etcd::ReverseSessionKey(config_.meta_prefix, id)}});
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Publisher::Load() {
  int64_t revision = 0;
  std::map<std::string, std::string> keys;  // etcd key -> value, at `revision`
  for (const zk2etcd::Scope::Range& range : scope_.EtcdRanges()) {
    RETURN_IF_ERROR(zk2etcd::ReadRange(
        etcd_, range.key, range.range_end, revision, false, config_.page_size, *stop_,
        &stats_->retries, [&](const etcd::KeyValue& kv) { keys.emplace(kv.key, kv.value); },
        revision == 0 ? &revision : nullptr));
  }
  if (revision == 0) {
    // No range at all (cannot happen: a task has a root); read the head for the watch.
    return absl::InternalError("etcd2zk: no etcd range to publish");
  }
  absl::flat_hash_set<std::string> marks;
  RETURN_IF_ERROR(zk2etcd::ReadRange(
      etcd_, forward_marks_, common::PrefixEnd(forward_marks_), revision, true, config_.page_size,
      *stop_, &stats_->retries,
      [&](const etcd::KeyValue& kv) { marks.insert(kv.key.substr(forward_marks_.size())); },
      nullptr));
  desired_.clear();
  for (auto& [key, value] : keys) {
    std::optional<std::string> path = scope_.PathOf(key);
    if (!path || !scope_.Covers(*path)) continue;
    if (marks.contains(common::DigestHex(common::KeyDigest(key)))) continue;  // zk2etcd's copy
    desired_.emplace(std::move(*path), std::move(value));
  }
  return revision;
}

absl::Status Publisher::StartWatches(int64_t from_revision) {
  for (const zk2etcd::Scope::Range& range : scope_.EtcdRanges()) {
    etcd::WatchOptions options;
    options.key = range.key;
    options.range_end = range.range_end;
    options.start_revision = from_revision;
    auto stream = etcd_->Watch(options);
    if (!stream.ok()) return stream.status();
    etcd::WatchStream* s = stream->get();
    streams_.push_back(std::move(*stream));
    watchers_.emplace_back("etcd2zk-watch", [this, s] {
      std::vector<etcd::Event> batch;
      while (true) {
        auto response = s->Next();
        if (!response.ok()) {
          if (!absl::IsCancelled(response.status())) {
            log::Warn(kLog, "etcd watch ended, re-reading", {{"error", response.status()}});
            Push(Work{.kind = Work::Kind::kResync});
          }
          return;
        }
        for (etcd::Event& e : response->events) batch.push_back(std::move(e));
        if (response->fragment || batch.empty()) continue;
        Push(Work{.kind = Work::Kind::kEvents, .events = std::move(batch)});
        batch.clear();
      }
    });
  }
  return absl::OkStatus();
}

void Publisher::StopWatches() {
  for (auto& s : streams_) s->Cancel();
  watchers_.clear();  // joins
  streams_.clear();
}

bool Publisher::Converge(const std::string& path) {
  auto want = desired_.find(path);
  auto have = published_.find(path);
  auto transient = [&](const absl::Status& s) {
    stats_->zk_errors.fetch_add(1);
    log::Warn(kLog, "ZooKeeper write failed", {{"path", path}, {"error", s}});
    return false;
  };
  if (want == desired_.end()) {
    held_.erase(path);
    if (have == published_.end()) return true;
    // Only a znode of this session is ever deleted.
    zk::Stat stat;
    auto got = session_->Get(path, &stat);
    if (got.ok() && stat.ephemeral_owner == session_->session_id()) {
      absl::Status deleted = session_->Delete(path);
      if (!deleted.ok() && !absl::IsNotFound(deleted)) return transient(deleted);
    } else if (!got.ok() && !absl::IsNotFound(got.status())) {
      return transient(got.status());
    }
    published_.erase(have);
    stats_->removes.fetch_add(1);
    return true;
  }
  if (have != published_.end()) {
    if (have->second == want->second) return true;
    absl::Status set = session_->Set(path, want->second);
    if (set.ok()) {
      have->second = want->second;
      stats_->updates.fetch_add(1);
      // The znode's watch, armed since its create, fires on this write: Recheck arms it again.
      return true;
    }
    if (!absl::IsNotFound(set)) return transient(set);
    published_.erase(have);  // deleted behind kvsync's back: create it again
  }
  zk::CreateOptions options;
  options.ephemeral = true;
  absl::Status created = session_->Create(path, want->second, options);
  if (created.ok()) {
    published_[path] = want->second;
    held_.erase(path);
    stats_->creates.fetch_add(1);
    Watch(path, 0);
    return true;
  }
  if (absl::IsAlreadyExists(created)) {
    zk::Stat stat;
    auto got = session_->Get(path, &stat);
    if (got.ok() && stat.ephemeral_owner == session_->session_id()) {
      // Created by an earlier attempt whose answer was lost.
      published_[path] = *got;
      held_.erase(path);
      Watch(path, stat.version);
      return Converge(path);
    }
    if (!got.ok() && !absl::IsNotFound(got.status())) return transient(got.status());
    held_[path] = Held::kExists;
    // Published when that znode goes: the watch's kDeleted (or a NotFound now) retries. A
    // session keeps one watch per path, so arming it again on every retry costs nothing.
    session_->Exists(path, true, [this, path](const absl::Status& s, const zk::Stat&) {
      if (absl::IsNotFound(s)) Push(Work{.kind = Work::Kind::kRetry, .path = path});
    });
    return true;
  }
  if (zk::IsTransient(created) || zk::IsSessionExpired(created)) return transient(created);
  // The parent is missing (NotFound) or ephemeral, or its ACL refuses: held, retried.
  if (held_.emplace(path, Held::kNoParent).second) {
    log::Warn(kLog, "cannot publish key: its parent znode is missing or refuses children",
              {{"path", path},
               {"error", created},
               {"effect", "held; tried again every 10s"},
               {"fix", "create the parent (persistent) in ZooKeeper"}});
  } else {
    held_[path] = Held::kNoParent;
  }
  return true;
}

void Publisher::Watch(const std::string& path, std::optional<int32_t> version) {
  // A session keeps one watch per path: arming it again costs nothing. A change made before
  // the watch is armed does not fire it: when no earlier watch covered the znode, `version`
  // (what kvsync last saw) tells whether one slipped in, and a re-check follows.
  const int64_t session = session_->session_id();
  session_->Exists(
      path, true, [this, path, version, session](const absl::Status& s, const zk::Stat& stat) {
        if (!version) return;
        bool same = s.ok() && stat.version == *version && stat.ephemeral_owner == session;
        if (!same && (s.ok() || absl::IsNotFound(s))) {
          Push(Work{.kind = Work::Kind::kRetry, .path = path});
        }
      });
}

bool Publisher::Recheck(const std::string& path) {
  auto have = published_.find(path);
  if (have == published_.end()) return Converge(path);
  Watch(path, std::nullopt);  // before the read: a change after it fires again
  zk::Stat stat;
  auto got = session_->Get(path, &stat);
  if (!got.ok() && !absl::IsNotFound(got.status())) {
    stats_->zk_errors.fetch_add(1);
    log::Warn(kLog, "ZooKeeper read failed", {{"path", path}, {"error", got.status()}});
    return false;
  }
  const bool gone = !got.ok() || stat.ephemeral_owner != session_->session_id();
  // kvsync's own writes are synchronous on this thread: the read sees the last of them. A
  // write reported failed may still have been applied: what etcd holds is never a repair.
  if (!gone) {
    auto want = desired_.find(path);
    if (*got == have->second) return true;
    if (want != desired_.end() && *got == want->second) {
      have->second = *got;
      return true;
    }
  }
  stats_->repairs.fetch_add(1);
  log::Warn(kLog,
            gone ? "a published znode was deleted by another client: publishing it again"
                 : "a published znode was changed by another client: restoring it from etcd",
            {{"path", path},
             {"effect", "consumers in ZooKeeper saw it missing or changed until now"},
             {"fix", "find the client that writes under the task's prefix"}});
  if (gone) {
    published_.erase(have);
  } else {
    have->second = *got;
  }
  return Converge(path);
}

absl::Status Publisher::Apply(const std::vector<etcd::Event>& events) {
  std::set<std::string> touched;
  for (const etcd::Event& e : events) {
    // Queued by a watch before the last re-read: that read already reflects it.
    if (e.kv.mod_revision <= loaded_revision_) continue;
    std::optional<std::string> path = scope_.PathOf(e.kv.key);
    if (!path || !scope_.Covers(*path)) continue;
    revision_ = std::max(revision_, e.kv.mod_revision);
    if (e.type == etcd::Event::Type::kDelete) {
      desired_.erase(*path);
    } else {
      // The zk2etcd direction writes its mark in the same txn as the key: read it at the
      // key's own revision.
      etcd::RangeRequest mark;
      mark.key = forward_marks_ + common::DigestHex(common::KeyDigest(e.kv.key));
      mark.revision = e.kv.mod_revision;
      mark.keys_only = true;
      auto got = etcd::RetryTransient(*stop_, "etcd2zk forward mark", &stats_->retries,
                                      [&] { return etcd_->Range(mark); });
      if (!got.ok()) return got.status();
      if (!got->kvs.empty()) {
        stats_->forward_skipped.fetch_add(1);
        desired_.erase(*path);
      } else {
        desired_[*path] = e.kv.value;
      }
    }
    touched.insert(*path);
  }
  for (const std::string& path : touched) {
    if (!Converge(path)) return absl::UnavailableError("ZooKeeper write failed");
  }
  stats_->applied_revision.store(revision_);
  return absl::OkStatus();
}

void Publisher::Publish() {
  int64_t exists = 0;
  int64_t no_parent = 0;
  for (const auto& [path, why] : held_) (why == Held::kExists ? exists : no_parent)++;
  stats_->held_exists.store(exists);
  stats_->held_no_parent.store(no_parent);
  stats_->published.store(static_cast<int64_t>(published_.size()));
}

absl::Status Publisher::Run() {
  common::Backoff backoff(std::chrono::milliseconds(200), std::chrono::milliseconds(5000));
  while (!stop_->stopped()) {
    stats_->common.phase.store(static_cast<int>(sink::Phase::kStarting));
    if (phase_check_) RETURN_IF_ERROR(phase_check_());
    absl::Status opened = OpenSession();
    if (!opened.ok()) {
      session_.reset();
      if (absl::IsCancelled(opened)) break;
      if (!zk::IsTransient(opened) && !etcd::IsTransient(opened)) return opened;
      log::Warn(kLog, "cannot open and record a ZooKeeper session, retrying", {{"error", opened}});
      if (stop_->WaitFor(backoff.Next())) break;
      continue;
    }
    backoff.Reset();
    bool resync = true;
    bool expired = false;
    auto next_retry = std::chrono::steady_clock::now() + kNoParentRetry;
    while (!stop_->stopped() && !expired) {
      if (resync) {
        StopWatches();
        stats_->common.phase.store(static_cast<int>(sink::Phase::kFullSync));
        auto loaded = Load();
        if (!loaded.ok()) {
          if (absl::IsCancelled(loaded.status())) break;
          if (!etcd::IsTransient(loaded.status())) return loaded.status();
          continue;
        }
        revision_ = loaded_revision_ = *loaded;
        std::set<std::string> paths;
        for (const auto& [path, data] : desired_) paths.insert(path);
        for (const auto& [path, data] : published_) paths.insert(path);
        for (const auto& [path, why] : held_) paths.insert(path);
        bool ok = true;
        for (const std::string& path : paths) ok = Converge(path) && ok;
        Publish();
        if (!ok) {
          if (stop_->WaitFor(kTransientRetry)) break;
          continue;
        }
        if (absl::Status watching = StartWatches(revision_ + 1); !watching.ok()) {
          if (!etcd::IsTransient(watching)) return watching;
          continue;
        }
        stats_->resyncs.fetch_add(1);
        stats_->applied_revision.store(revision_);
        stats_->common.phase.store(static_cast<int>(sink::Phase::kIncremental));
        resync = false;
      }
      std::optional<Work> work;
      {
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(
                                 +[](std::deque<Work>* q) { return !q->empty(); }, &queue_),
                             absl::Milliseconds(200));
        if (!queue_.empty()) {
          work = std::move(queue_.front());
          queue_.pop_front();
          if (work->kind == Work::Kind::kEvents) queued_bytes_ -= EventBytes(work->events);
        }
      }
      if (std::chrono::steady_clock::now() >= next_retry) {
        next_retry = std::chrono::steady_clock::now() + kNoParentRetry;
        if (phase_check_) {
          if (absl::Status allowed = phase_check_(); !allowed.ok()) {
            StopWatches();
            session_.reset();  // its znodes go at once
            published_.clear();
            held_.clear();
            Publish();
            stats_->common.phase.store(static_cast<int>(sink::Phase::kStopped));
            return allowed;
          }
        }
        std::vector<std::string> retry;
        for (const auto& [path, why] : held_) {
          if (why == Held::kNoParent) retry.push_back(path);
        }
        for (const std::string& path : retry) resync = !Converge(path) || resync;
        Publish();
      }
      if (!work) continue;
      switch (work->kind) {
        case Work::Kind::kEvents:
          if (absl::Status applied = Apply(work->events); !applied.ok()) {
            if (absl::IsCancelled(applied)) break;
            if (!etcd::IsTransient(applied) && !absl::IsUnavailable(applied)) return applied;
            resync = true;
          }
          break;
        case Work::Kind::kResync:
          resync = true;
          break;
        case Work::Kind::kRetry:
          if (!Recheck(work->path)) resync = true;
          break;
        case Work::Kind::kExpired:
          expired = true;
          break;
      }
      Publish();
    }
    StopWatches();
    // Closing the session removes every znode it published, at once.
    session_.reset();
    published_.clear();
    held_.clear();
    Publish();
    if (expired) {
      stats_->session_state.store(static_cast<int>(zk::SessionState::kExpired));
      log::Warn(kLog,
                "ZooKeeper session expired: its znodes are gone, publishing again with a new "
                "session");
    }
  }
  stats_->common.phase.store(static_cast<int>(sink::Phase::kStopped));
  return absl::OkStatus();
}

}  // namespace kvsync::etcd2zk
