#include "mirror/mirror.h"

#include <chrono>
#include <deque>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "checker/merge.h"
#include "checker/range_cursor.h"
#include "common/backoff.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "etcd/retry.h"
#include "log/log.h"
#include "mirror/continuous_check.h"
#include "mirror/txn_batcher.h"

namespace kvsync::mirror {
namespace {

constexpr char kLog[] = "mirror";
// Room kept in every txn for the checkpoint put.
constexpr int kCheckpointOps = 1;
constexpr int64_t kCheckpointBytes = 512;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string ClusterIdHex(uint64_t id) { return absl::StrFormat("%x", id); }

// Runs full-sync txns on `threads` workers; Submit blocks while the queue is full so that
// reading never runs far ahead of writing. The first error stops further work.
class WriterPool {
 public:
  WriterPool(int threads, TxnWriter* writer) : writer_(writer) {
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { Work(); });
    capacity_ = static_cast<size_t>(threads) * 2;
  }
  ~WriterPool() { Finish().IgnoreError(); }

  absl::Status Submit(std::vector<etcd::Op> ops) {
    absl::MutexLock lock(&mu_);
    auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return queue_.size() < capacity_ || !error_.ok();
    };
    mu_.Await(absl::Condition(&room));
    if (!error_.ok()) return error_;
    queue_.push_back(std::move(ops));
    return absl::OkStatus();
  }

  // Waits for every submitted txn; returns the first error.
  absl::Status Finish() {
    {
      absl::MutexLock lock(&mu_);
      closed_ = true;
    }
    for (auto& t : workers_) t.join();
    workers_.clear();
    absl::MutexLock lock(&mu_);
    return error_;
  }

 private:
  void Work() {
    while (true) {
      std::vector<etcd::Op> ops;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return !queue_.empty() || closed_ || !error_.ok();
        };
        mu_.Await(absl::Condition(&ready));
        if (!error_.ok() || queue_.empty()) return;
        ops = std::move(queue_.front());
        queue_.pop_front();
      }
      absl::Status s = writer_->Commit(std::move(ops), std::nullopt);
      if (!s.ok()) {
        absl::MutexLock lock(&mu_);
        if (error_.ok()) error_ = s;
      }
    }
  }

  TxnWriter* writer_;
  absl::Mutex mu_;
  std::deque<std::vector<etcd::Op>> queue_ ABSL_GUARDED_BY(mu_);
  size_t capacity_ = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> workers_;
};

}  // namespace

// Responses handed from the watch reader thread to the engine thread. Bounded by pending
// event bytes so that a slow destination pushes back on the watch stream (gRPC flow control)
// instead of growing memory.
struct Mirror::WatchQueue {
  struct Item {
    absl::StatusOr<etcd::WatchResponse> response;
    int64_t received_ms;
    int64_t bytes;
  };
  static constexpr int64_t kMaxBytes = 64 << 20;

  absl::Mutex mu;
  std::deque<Item> items ABSL_GUARDED_BY(mu);
  int64_t bytes ABSL_GUARDED_BY(mu) = 0;
  bool closed ABSL_GUARDED_BY(mu) = false;

  // Returns false when the queue was closed by the consumer.
  bool Push(absl::StatusOr<etcd::WatchResponse> response) {
    int64_t size = 64;
    if (response.ok()) {
      for (const auto& e : response->events) size += e.kv.key.size() + e.kv.value.size() + 32;
    }
    absl::MutexLock lock(&mu);
    auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return bytes < kMaxBytes || closed; };
    mu.Await(absl::Condition(&room));
    if (closed) return false;
    items.push_back(Item{std::move(response), NowMs(), size});
    bytes += size;
    return true;
  }

  // Waits up to `timeout` for items; takes all of them.
  std::deque<Item> TakeAll(std::chrono::milliseconds timeout) {
    absl::MutexLock lock(&mu);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return !items.empty(); };
    mu.AwaitWithTimeout(absl::Condition(&ready), absl::FromChrono(timeout));
    std::deque<Item> out;
    out.swap(items);
    bytes = 0;
    return out;
  }

  void Close() {
    absl::MutexLock lock(&mu);
    closed = true;
  }
};

Mirror::Mirror(config::MirrorConfig config, etcd::Client* src, etcd::Client* dst,
               const common::StopToken* stop, Stats* stats)
    : config_(std::move(config)),
      src_(src),
      dst_(dst),
      stop_(stop),
      mapper_(config_.prefix, config_.dst_prefix, config_.exclude_prefixes, config_.meta_prefix),
      stats_(*stats),
      writer_(dst_, checker::CheckpointKey(config_.meta_prefix, config_.name), stop, stats) {}

Mirror::~Mirror() = default;

checker::Checkpoint Mirror::MakeCheckpoint(int64_t revision, bool pending) const {
  return checker::Checkpoint{revision, source_cluster_id_, pending, config_.instance_id};
}

absl::StatusOr<std::optional<checker::Checkpoint>> Mirror::LoadCheckpoint() {
  etcd::RangeRequest req;
  req.key = checker::CheckpointKey(config_.meta_prefix, config_.name);
  ASSIGN_OR_RETURN(etcd::RangeResponse resp,
                   etcd::RetryTransient(*stop_, "read checkpoint", &stats_.retries,
                                        [&] { return dst_->Range(req); }));
  if (resp.kvs.empty()) return std::optional<checker::Checkpoint>();
  auto cp = checker::DecodeCheckpoint(resp.kvs[0].value);
  if (!cp.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "destination key ", req.key, " is not a kvsync checkpoint: ", cp.status().message()));
  }
  return std::optional<checker::Checkpoint>(*cp);
}

absl::StatusOr<int64_t> Mirror::SourceRevision() {
  // A single-key range is the cheapest way to read the head revision (a range over the prefix
  // would make etcd 3.4 walk every key of it).
  etcd::RangeRequest req;
  req.key = config_.prefix;
  ASSIGN_OR_RETURN(etcd::RangeResponse resp,
                   etcd::RetryTransient(*stop_, "read source revision", &stats_.retries,
                                        [&] { return src_->Range(req); }));
  if (resp.header.cluster_id != source_cluster_id_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "source cluster changed identity: cluster id ", ClusterIdHex(resp.header.cluster_id),
        ", expected ", ClusterIdHex(source_cluster_id_)));
  }
  stats_.source_head_revision.store(resp.header.revision);
  return resp.header.revision;
}

absl::Status Mirror::Start() {
  ASSIGN_OR_RETURN(etcd::Header src_header, src_->Connect());
  ASSIGN_OR_RETURN(etcd::Header dst_header, dst_->Connect());
  source_cluster_id_ = src_header.cluster_id;
  if (src_header.cluster_id == dst_header.cluster_id) {
    return absl::FailedPreconditionError(
        absl::StrCat("source and destination are the same etcd cluster (id ",
                     ClusterIdHex(source_cluster_id_), ")"));
  }
  log::Info(kLog, "connected",
            {{"task", config_.name},
             {"source", src_->current_endpoint()},
             {"source_cluster_id", ClusterIdHex(src_header.cluster_id)},
             {"source_revision", src_header.revision},
             {"destination", dst_->current_endpoint()},
             {"destination_cluster_id", ClusterIdHex(dst_header.cluster_id)}});
  return absl::OkStatus();
}

absl::Status Mirror::Run() {
  // Continuous checks run beside the sync for as long as this Run (one leadership term) lasts.
  std::unique_ptr<ContinuousChecker> checks;
  if (config_.check_interval.count() > 0 && !config_.once) {
    checks =
        std::make_unique<ContinuousChecker>(config_, src_, dst_, mapper_, fence_, stop_, &stats_);
    checks->Start();
  }
  absl::Status s = RunSync();
  if (checks) checks->Stop();
  return s;
}

absl::Status Mirror::RunSync() {
  RETURN_IF_ERROR(Start());
  ASSIGN_OR_RETURN(std::optional<checker::Checkpoint> cp, LoadCheckpoint());
  ASSIGN_OR_RETURN(int64_t head, SourceRevision());
  start_head_ = head;

  bool full = true;
  std::string why;
  if (cp && cp->source_cluster_id != 0 && cp->source_cluster_id != source_cluster_id_ &&
      !config_.reset_last_synced_rev) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint of task \"", config_.name, "\" was taken from source cluster ",
                     ClusterIdHex(cp->source_cluster_id), " but the source is now cluster ",
                     ClusterIdHex(source_cluster_id_),
                     "; refusing to resume (use --reset-last-synced-rev to resync from scratch)"));
  }
  if (config_.reset_last_synced_rev) {
    why = "--reset-last-synced-rev given";
  } else if (!cp) {
    why = "no checkpoint";
  } else if (cp->full_sync_pending) {
    why = "previous full sync was interrupted";
  } else if (cp->revision > head) {
    return absl::FailedPreconditionError(
        absl::StrCat("source revision ", head, " is behind the checkpoint revision ", cp->revision,
                     " (was the source restored from a backup?); use --reset-last-synced-rev"));
  } else {
    full = false;
    why = "checkpoint found";
  }
  if (cp) applied_ = persisted_ = cp->revision;
  stats_.last_synced_revision.store(applied_);
  log::Info(kLog, full ? "slow path chosen" : "fast path chosen",
            {{"reason", why}, {"checkpoint", applied_}, {"source_revision", head}});

  while (!stop_->stopped()) {
    if (full) {
      absl::Status s = FullSync();
      if (etcd::IsCompacted(s)) {
        log::Warn(kLog, "source compacted during full sync, restarting at a new revision");
        continue;
      }
      if (absl::IsCancelled(s)) break;
      RETURN_IF_ERROR(s);
      if (config_.once) break;
    } else {
      stats_.fast_path_resumes.fetch_add(1);
    }
    absl::Status s = Incremental();
    if (etcd::IsCompacted(s)) {
      log::Warn(kLog, "source compacted past the checkpoint, slow path chosen",
                {{"checkpoint", applied_}, {"compact_revision", etcd::CompactRevision(s)}});
      full = true;
      continue;
    }
    if (absl::IsCancelled(s)) break;
    RETURN_IF_ERROR(s);
    break;
  }
  stats_.phase.store(static_cast<int>(Phase::kStopped));
  log::Info(kLog, "stopped", {{"checkpoint", persisted_}, {"applied", applied_}});
  return absl::OkStatus();
}

absl::Status Mirror::FullSync() {
  stats_.phase.store(static_cast<int>(Phase::kFullSync));
  stats_.full_syncs.fetch_add(1);
  stats_.full_sync_scanned.store(0);
  stats_.full_sync_written.store(0);
  auto started = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(int64_t revision, SourceRevision());
  log::Info(kLog, "full sync started", {{"revision", revision}});
  // Mark the full sync as pending: a crash before it ends must not resume incrementally,
  // or destination keys deleted at the source would never be removed.
  RETURN_IF_ERROR(writer_.Commit({}, MakeCheckpoint(persisted_, true)));

  checker::RangeCursor src(
      src_, {mapper_.src_prefix(), mapper_.src_range_end(), revision, config_.page_size}, stop_,
      &stats_.retries);
  checker::RangeCursor dst(dst_,
                           {mapper_.dst_prefix(), mapper_.dst_range_end(), 0, config_.page_size},
                           stop_, &stats_.retries);
  WriterPool pool(config_.inflight, &writer_);
  TxnBatcher batcher(config_.max_txn_ops, config_.max_request_bytes, 0, 0);
  checker::DiffCounts counts;
  int64_t written = 0;
  auto emit = [&](const checker::Difference& d) -> absl::Status {
    ++written;
    etcd::Op op = d.kind == checker::DiffKind::kSrcMiss ? etcd::Op::Delete(d.dst_key)
                                                        : etcd::Op::Put(d.dst_key, d.src->value);
    if (!batcher.Add(op)) {
      RETURN_IF_ERROR(pool.Submit(batcher.Take()));
      batcher.Add(std::move(op));
    }
    stats_.full_sync_scanned.store(counts.source_keys, std::memory_order_relaxed);
    stats_.full_sync_written.store(written, std::memory_order_relaxed);
    return absl::OkStatus();
  };
  absl::Status merged = checker::MergeJoin(&src, &dst, mapper_, false, emit, &counts);
  if (merged.ok() && !batcher.empty()) merged = pool.Submit(batcher.Take());
  absl::Status written_status = pool.Finish();
  RETURN_IF_ERROR(merged);
  RETURN_IF_ERROR(written_status);
  stats_.full_sync_scanned.store(counts.source_keys);
  RETURN_IF_ERROR(writer_.Commit({}, MakeCheckpoint(revision, false)));
  applied_ = persisted_ = revision;
  stats_.last_synced_revision.store(revision);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  stats_.last_full_sync_ms.store(static_cast<int64_t>(seconds * 1000));
  NoteProgress();
  log::Info(kLog, "full sync done",
            {{"revision", revision},
             {"source_keys", counts.source_keys},
             {"destination_keys", counts.destination_keys},
             {"dst_miss_put", counts.dst_miss},
             {"mismatch_put", counts.mismatch},
             {"src_miss_deleted", counts.src_miss},
             {"seconds", seconds},
             {"source_bytes", src.bytes_read()}});
  return absl::OkStatus();
}

bool Mirror::OnceDone() const { return config_.once && applied_ >= start_head_; }

void Mirror::NoteProgress() {
  if (caught_up_logged_ || applied_ < start_head_) return;
  caught_up_logged_ = true;
  log::Info(kLog, "caught up", {{"revision", applied_}, {"start_revision", start_head_}});
}

absl::Status Mirror::WriteCheckpoint(int64_t revision) {
  RETURN_IF_ERROR(writer_.Commit({}, MakeCheckpoint(revision, false)));
  persisted_ = revision;
  return absl::OkStatus();
}

absl::Status Mirror::Incremental() {
  stats_.phase.store(static_cast<int>(Phase::kIncremental));
  common::Backoff backoff(std::chrono::milliseconds(100), std::chrono::milliseconds(5000));
  while (!stop_->stopped()) {
    if (OnceDone()) {
      if (persisted_ < applied_) RETURN_IF_ERROR(WriteCheckpoint(applied_));
      log::Info(kLog, "once: destination consistent at start revision", {{"revision", applied_}});
      return absl::OkStatus();
    }
    int64_t before = applied_;
    absl::Status s = WatchOnce();
    if (s.ok() || absl::IsCancelled(s) || etcd::IsCompacted(s)) {
      if (s.ok() && !stop_->stopped() && !OnceDone()) continue;
      return s;
    }
    if (!etcd::IsTransient(s)) return s;
    stats_.watch_restarts.fetch_add(1);
    if (applied_ > before) backoff.Reset();
    if (backoff.attempt() == 0) {
      log::Warn(kLog, "watch interrupted, resuming",
                {{"from_revision", applied_ + 1}, {"error", s}});
    }
    if (stop_->WaitFor(backoff.Next())) break;
  }
  return absl::OkStatus();
}

absl::Status Mirror::WatchOnce() {
  etcd::Client::WatchOptions wo;
  wo.key = mapper_.src_prefix();
  wo.range_end = mapper_.src_range_end();
  wo.start_revision = applied_ + 1;
  wo.progress_notify = true;
  wo.require_leader = true;
  ASSIGN_OR_RETURN(std::unique_ptr<etcd::WatchStream> stream, src_->Watch(wo));

  WatchQueue queue;
  std::thread reader([&] {
    while (true) {
      auto resp = stream->Next();
      bool failed = !resp.ok();
      if (!queue.Push(std::move(resp)) || failed) return;
    }
  });
  // The reader is joined on every exit path; cancelling the stream unblocks it.
  struct Joiner {
    WatchQueue* queue;
    etcd::WatchStream* stream;
    std::thread* reader;
    ~Joiner() {
      queue->Close();
      stream->Cancel();
      reader->join();
    }
  } joiner{&queue, stream.get(), &reader};

  // A progress notification at revision P says "no event <= P is still to come". etcd 3.4
  // before 3.4.25 may send a requested one ahead of events already queued for the stream
  // (etcd issue 15220), so P is only trusted once a later notification arrives: by then
  // any such event has been delivered.
  int64_t unconfirmed_progress = 0;
  auto last_request = std::chrono::steady_clock::now();
  auto last_checkpoint_write = std::chrono::steady_clock::now();
  const auto idle_poll = config_.once ? std::chrono::milliseconds(100) : config_.progress_interval;

  while (!stop_->stopped()) {
    std::deque<WatchQueue::Item> items =
        queue.TakeAll(std::min(idle_poll, std::chrono::milliseconds(500)));
    auto now = std::chrono::steady_clock::now();
    if (items.empty()) {
      if (now - last_request >= idle_poll) {
        last_request = now;
        RETURN_IF_ERROR(stream->RequestProgress());
      }
      continue;
    }
    stats_.oldest_pending_ms.store(items.front().received_ms);

    TxnBatcher batcher(config_.max_txn_ops, config_.max_request_bytes, kCheckpointOps,
                       kCheckpointBytes);
    int64_t batch_revision = applied_;  // revision the batch brings the destination to
    int64_t events = 0;
    auto flush = [&](int64_t revision) -> absl::Status {
      RETURN_IF_ERROR(writer_.Commit(batcher.Take(), MakeCheckpoint(revision, false)));
      applied_ = persisted_ = revision;
      stats_.last_synced_revision.store(revision);
      stats_.events_applied.fetch_add(events);
      events = 0;
      last_checkpoint_write = std::chrono::steady_clock::now();
      return absl::OkStatus();
    };

    absl::Status stream_error;
    std::vector<etcd::Op> group;
    int64_t group_bytes = 0;
    int64_t group_revision = 0;
    int64_t group_events = 0;
    auto close_group = [&]() -> absl::Status {
      if (group_revision == 0) return absl::OkStatus();
      if (!batcher.Fits(group.size(), group_bytes) && !batcher.empty()) {
        RETURN_IF_ERROR(flush(batch_revision));
      }
      if (!batcher.FitsEmpty(group.size(), group_bytes)) {
        stats_.split_revisions.fetch_add(1);
        log::Warn(kLog, "source revision larger than one txn, splitting",
                  {{"revision", group_revision},
                   {"ops", static_cast<int64_t>(group.size())},
                   {"bytes", group_bytes}});
      }
      for (auto& op : group) {
        if (!batcher.Add(op)) {
          // Only a split revision gets here: its parts carry the previous revision.
          RETURN_IF_ERROR(flush(batch_revision));
          batcher.Add(std::move(op));
        }
      }
      events += group_events;
      batch_revision = group_revision;
      group.clear();
      group_bytes = group_events = group_revision = 0;
      return absl::OkStatus();
    };

    for (auto& item : items) {
      if (!item.response.ok()) {
        stream_error = item.response.status();
        break;
      }
      etcd::WatchResponse& resp = *item.response;
      if (resp.header.revision > stats_.source_head_revision.load()) {
        stats_.source_head_revision.store(resp.header.revision);
      }
      if (resp.header.cluster_id != source_cluster_id_ && resp.header.cluster_id != 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "source cluster changed identity: cluster id ", ClusterIdHex(resp.header.cluster_id),
            ", expected ", ClusterIdHex(source_cluster_id_)));
      }
      if (resp.created) continue;
      if (resp.IsProgressNotify()) {
        RETURN_IF_ERROR(close_group());
        if (unconfirmed_progress > batch_revision) batch_revision = unconfirmed_progress;
        unconfirmed_progress = resp.header.revision;
        continue;
      }
      for (auto& ev : resp.events) {
        if (ev.kv.mod_revision != group_revision) {
          RETURN_IF_ERROR(close_group());
          group_revision = ev.kv.mod_revision;
        }
        ++group_events;
        auto dst_key = mapper_.ToDestination(ev.kv.key);
        if (!dst_key) continue;
        etcd::Op op = ev.type == etcd::Event::Type::kPut
                          ? etcd::Op::Put(std::move(*dst_key), std::move(ev.kv.value))
                          : etcd::Op::Delete(std::move(*dst_key));
        group_bytes += op.ByteSize();
        group.push_back(std::move(op));
      }
      // etcd never splits one revision across responses (without fragment), so a response
      // ends the group.
      RETURN_IF_ERROR(close_group());
    }
    if (!batcher.empty()) {
      RETURN_IF_ERROR(flush(batch_revision));
    } else if (batch_revision > applied_) {
      // Only filtered events or progress: nothing to write but the checkpoint, which is
      // rate-limited unless --once waits for it.
      applied_ = batch_revision;
      stats_.last_synced_revision.store(applied_);
      stats_.events_applied.fetch_add(events);
      if (config_.once ||
          std::chrono::steady_clock::now() - last_checkpoint_write >= config_.progress_interval) {
        RETURN_IF_ERROR(flush(applied_));
      }
    }
    stats_.oldest_pending_ms.store(0);
    NoteProgress();
    if (!stream_error.ok()) return stream_error;
    if (OnceDone()) return absl::OkStatus();
    if (config_.once && std::chrono::steady_clock::now() - last_request >= idle_poll) {
      last_request = std::chrono::steady_clock::now();
      RETURN_IF_ERROR(stream->RequestProgress());
    }
  }
  return absl::CancelledError("stop requested");
}

}  // namespace kvsync::mirror
