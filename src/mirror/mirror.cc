#include "mirror/mirror.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <deque>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "checker/merge.h"
#include "checker/range_cursor.h"
#include "common/backoff.h"
#include "common/check.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "election/elector.h"
#include "etcd/retry.h"
#include "log/log.h"
#include "mirror/continuous_check.h"
#include "mirror/dr.h"
#include "mirror/head_monitor.h"
#include "mirror/txn_batcher.h"
#include "runtime/bounded_queue.h"
#include "runtime/thread.h"

namespace kvsync::mirror {
namespace {

constexpr char kLog[] = "mirror";
// Room kept in every txn for the checkpoint put.
constexpr int kCheckpointOps = 1;
// A chained txn's writes sit in a nested txn, and etcd lets a nested txn have only
// --max-txn-ops minus the ops of the level above (the larger of its compares, the fence, and
// its one op): room kept for that too.
int NestingOps(const std::vector<etcd::Compare>& fence) {
  return std::max<int>(static_cast<int>(fence.size()), 1);
}
constexpr int64_t kCheckpointBytes = 512;

std::string ClusterIdHex(uint64_t id) { return absl::StrFormat("%x", id); }

// Failpoint for tests (as etcd's gofail): KVSYNC_FAILPOINT_STALL_WATCHES=N makes the first N
// source watch streams of the process go silent after their created response (responses are
// read and dropped, the stream stays open): the stall class of a broken proxy, which the
// watchdog must detect. Unset in production.
std::atomic<int64_t>& WatchesToStall() {
  static std::atomic<int64_t> count{[] {
    const char* v = std::getenv("KVSYNC_FAILPOINT_STALL_WATCHES");
    int64_t n = 0;
    return v != nullptr && absl::SimpleAtoi(v, &n) ? n : int64_t{0};
  }()};
  return count;
}

// Runs full-sync txns on `threads` workers; Submit blocks while `threads` × 2 txns are queued
// so that reading never runs far ahead of writing. The first error stops further work.
class WriterPool {
 public:
  // `prepare` (optional) runs on the worker before each commit (leases are granted there).
  using Prepare = std::function<absl::Status(std::vector<etcd::Op>*)>;
  WriterPool(int threads, sink::TxnWriter* writer, Prepare prepare)
      : writer_(writer), prepare_(std::move(prepare)), queue_(threads * 2) {
    for (int i = 0; i < threads; ++i) workers_.emplace_back("mirror-write", [this] { Work(); });
  }
  ~WriterPool() { Finish().IgnoreError(); }

  absl::Status Submit(std::vector<etcd::Op> ops) {
    // Each txn counts 1 against the bound: the pool bounds txns in flight, not bytes (a txn is
    // at most --max-request-bytes anyway).
    // False only once the pool was closed by a failure: error() then names it.
    queue_.Push(std::move(ops), 1);
    return error();
  }

  // Waits for every submitted txn; returns the first error.
  absl::Status Finish() {
    queue_.Close();
    for (auto& t : workers_) t.Join();
    workers_.clear();
    return error();
  }

 private:
  absl::Status error() {
    absl::MutexLock lock(&mu_);
    return error_;
  }

  void Work() {
    // After Close() the queue still hands out what was queued, then nullopt.
    while (auto ops = queue_.PopUntil(std::chrono::steady_clock::time_point::max())) {
      if (!error().ok()) continue;  // drain without writing after a failure
      absl::Status s = prepare_ ? prepare_(&*ops) : absl::OkStatus();
      if (s.ok()) s = writer_->Commit(std::move(*ops), std::nullopt);
      if (!s.ok()) {
        {
          absl::MutexLock lock(&mu_);
          if (error_.ok()) error_ = s;
        }
        queue_.Close();  // a producer waiting for room returns at once with the error
      }
    }
  }

  sink::TxnWriter* writer_;
  Prepare prepare_;
  runtime::BoundedQueue<std::vector<etcd::Op>> queue_;
  absl::Mutex mu_;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  std::vector<runtime::Thread> workers_;
};

}  // namespace

// Responses handed from the watch reader thread to the engine thread. Bounded by the memory
// the buffered responses really take (strings' capacity and the structs around them), so that
// a slow or frozen destination pushes back on the watch stream (gRPC flow control) instead of
// growing memory with the backlog. The engine takes a slice at a time, so the reader can
// never hold a second full buffer while the engine works through the first.
struct Mirror::WatchQueue {
  struct Item {
    absl::StatusOr<etcd::WatchResponse> response;
    int64_t received_ms;
  };

  WatchQueue(int64_t max_bytes, std::atomic<int64_t>* gauge) : queue(max_bytes, gauge) {}

  static int64_t SizeOf(const std::string& s) {
    // Short strings live inside the object; longer ones are one heap block (plus its header).
    return s.capacity() > 15 ? static_cast<int64_t>(s.capacity()) + 16 : 0;
  }
  static int64_t SizeOf(const absl::StatusOr<etcd::WatchResponse>& response) {
    int64_t size = sizeof(Item) + sizeof(etcd::WatchResponse);
    if (!response.ok()) return size;
    size += static_cast<int64_t>(response->events.capacity() * sizeof(etcd::Event));
    for (const auto& e : response->events) {
      size +=
          SizeOf(e.kv.key) + SizeOf(e.kv.value) + SizeOf(e.prev_kv.key) + SizeOf(e.prev_kv.value);
    }
    return size;
  }

  // Blocks while the buffer is full; returns false when the queue was closed by the consumer.
  // One response always fits, however large, so that a big revision cannot wedge the stream.
  bool Push(absl::StatusOr<etcd::WatchResponse> response) {
    int64_t size = SizeOf(response);
    return queue.Push(Item{std::move(response), common::WallMs()}, size);
  }

  // Waits up to `timeout` for items; takes items worth at most `max_take` bytes (at least one).
  std::vector<Item> Take(std::chrono::milliseconds timeout, int64_t max_take) {
    return queue.PopUpTo(std::chrono::steady_clock::now() + timeout, max_take);
  }

  void Close() { queue.Close(); }

  runtime::BoundedQueue<Item> queue;
};

absl::Status CheckRenamedTask(const config::MirrorConfig& config, etcd::KvApi* election_cluster) {
  const std::string legacy = config::ReadableName(config.prefix);
  if (!config.name_derived || legacy == config.name) return absl::OkStatus();
  etcd::RangeRequest req;
  req.key = absl::StrCat(config.meta_prefix, legacy, "/election/");
  req.range_end = common::PrefixEnd(req.key);
  req.keys_only = true;
  req.limit = 1;
  auto resp = election_cluster->Range(req);
  if (!resp.ok()) {
    log::Warn(kLog, "cannot check the task's name of earlier releases", {{"error", resp.status()}});
    return absl::OkStatus();
  }
  if (resp->kvs.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "a replica of an earlier kvsync release leads this prefix under the task name \"", legacy,
      "\" (this release derives \"", config.name,
      "\"); stop the old replicas first, or pass --name ", legacy, " to keep the old name"));
}

Mirror::Mirror(config::MirrorConfig config, etcd::ClusterApi* src, etcd::ClusterApi* dst,
               const common::StopToken* stop, Stats* stats)
    : config_(std::move(config)),
      src_(src),
      dst_(dst),
      outer_stop_(*stop, [this] { term_stop_.RequestStop(); }),
      role_key_(checker::RoleKey(config_.meta_prefix, config_.name)),
      mapper_(config_.prefix, config_.dst_prefix, config_.exclude_prefixes, config_.meta_prefix),
      stats_(*stats),
      checkpoint_key_(checker::CheckpointKey(config_.meta_prefix, config_.name)),
      writer_(dst_, &term_stop_, stats, "mirror"),
      scope_(checker::ScopeDigest(config_.prefix, config_.dst_prefix, config_.exclude_prefixes)) {
  set_fence({});
}

void Mirror::set_fence(std::vector<etcd::Compare> fence) {
  fence.push_back(checker::NotPromoted(role_key_));
  fence_ = fence;
  writer_.set_fence(std::move(fence));
}

Mirror::~Mirror() = default;

absl::Status Mirror::CommitWithCheckpoint(std::vector<etcd::Op> ops,
                                          const checker::Checkpoint& checkpoint) {
  RETURN_IF_ERROR(writer_.Commit(
      std::move(ops), etcd::Op::Put(checkpoint_key_, checker::EncodeCheckpoint(checkpoint))));
  stats_.last_checkpoint_write_ms.store(common::WallMs(), std::memory_order_relaxed);
  return absl::OkStatus();
}

checker::Checkpoint Mirror::MakeCheckpoint(int64_t revision, bool pending) const {
  checker::Checkpoint cp;
  cp.revision = revision;
  cp.source_cluster_id = source_cluster_id_;
  cp.full_sync_pending = pending;
  cp.writer = config_.instance_id;
  cp.scope = scope_;
  cp.anchor = anchor_;
  return cp;
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
    if (config_.reset_last_synced_rev) return std::optional<checker::Checkpoint>();
    return absl::FailedPreconditionError(
        absl::StrCat("destination key ", req.key, " is not a kvsync checkpoint (",
                     cp.status().message(), "); use --reset-last-synced-rev to resync"));
  }
  return std::optional<checker::Checkpoint>(*cp);
}

absl::StatusOr<bool> Mirror::AnchorMatches(const checker::HistoryAnchor& anchor) {
  etcd::RangeRequest req;
  req.key = anchor.key;
  req.revision = anchor.at;
  req.keys_only = true;
  ASSIGN_OR_RETURN(etcd::RangeResponse resp,
                   etcd::RetryTransient(*stop_, "read checkpoint anchor", &stats_.retries,
                                        [&] { return src_->Range(req); }));
  return resp.kvs.size() == 1 && resp.kvs[0].mod_revision == anchor.mod_revision &&
         resp.kvs[0].create_revision == anchor.create_revision;
}

absl::Status Mirror::AnchorAt(int64_t revision) {
  etcd::RangeRequest req;
  req.key = mapper_.src_prefix();
  req.range_end = mapper_.src_range_end();
  req.revision = revision;
  req.limit = 1;
  req.keys_only = true;
  ASSIGN_OR_RETURN(etcd::RangeResponse resp,
                   etcd::RetryTransient(*stop_, "read history anchor", &stats_.retries,
                                        [&] { return src_->Range(req); }));
  anchor_.reset();
  anchor_live_ = !resp.kvs.empty();
  if (!resp.kvs.empty()) {
    const etcd::KeyValue& kv = resp.kvs[0];
    anchor_ = checker::HistoryAnchor{kv.key, kv.mod_revision, kv.create_revision, revision};
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> Mirror::RangeChanged(int64_t from, int64_t to) {
  return mirror::RangeChanged(src_, mapper_.src_prefix(), mapper_.src_range_end(), from, to);
}

absl::StatusOr<int64_t> Mirror::SourceRevision() {
  // A single-key range is the cheapest way to read the head revision (a range over the prefix
  // would make etcd 3.4 walk every key of it).
  etcd::RangeRequest req;
  req.key = config_.prefix;
  int64_t sent_ms = common::WallMs();
  ASSIGN_OR_RETURN(etcd::RangeResponse resp,
                   etcd::RetryTransient(*stop_, "read source revision", &stats_.retries,
                                        [&] { return src_->Range(req); }));
  if (resp.header.cluster_id != source_cluster_id_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "source cluster changed identity: cluster id ", ClusterIdHex(resp.header.cluster_id),
        ", expected ", ClusterIdHex(source_cluster_id_)));
  }
  stats_.source_head_revision.store(resp.header.revision);
  stats_.head.Observe(resp.header.revision, sent_ms, applied_);
  return resp.header.revision;
}

absl::Status Mirror::Start() {
  ASSIGN_OR_RETURN(etcd::Header src_header, src_->Connect());
  ASSIGN_OR_RETURN(etcd::Header dst_header, dst_->Connect());
  source_cluster_id_ = src_header.cluster_id;
  trust_requested_progress_ = etcd::RequestedProgressIsOrdered(src_->server_version());
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
             {"source_version", src_->server_version()},
             {"progress_requests", trust_requested_progress_ ? "trusted" : "liveness only"},
             {"destination", dst_->current_endpoint()},
             {"destination_cluster_id", ClusterIdHex(dst_header.cluster_id)}});
  return absl::OkStatus();
}

absl::Status Mirror::Run() {
  // The head monitor and continuous checks run beside the sync for as long as this Run (one
  // leadership term) lasts.
  HeadMonitor head(src_, config_.prefix,
                   std::min(config_.progress_interval, std::chrono::milliseconds(1000)), stop_,
                   &stats_);
  head.Start();
  std::unique_ptr<ContinuousChecker> checks;
  if (config_.check_interval.count() > 0 && !config_.once) {
    checks =
        std::make_unique<ContinuousChecker>(config_, src_, dst_, mapper_, fence_, stop_, &stats_);
    checks->Start();
  }
  absl::Status s = RunSync();
  if (freshness_) freshness_->Stop();
  freshness_.reset();
  if (leases_) leases_->Stop();
  leases_.reset();
  if (election::IsFenced(s)) {
    // A failed compare may be the role record rather than a lost election.
    absl::StatusOr<std::optional<checker::RoleRecord>> role = ReadRole(dst_, role_key_);
    if (role.ok() && role->has_value()) SetPromoted(**role);
  }
  absl::MutexLock lock(&promoted_mu_);
  if (!promoted_.ok()) {
    stats_.promoted.store(1);
    s = promoted_;
  }
  if (checks) checks->Stop();
  head.Stop();
  stats_.refusal.store(0);  // the next term (or replica) finds out for itself
  return s;
}

absl::StatusOr<Mirror::StartDecision> Mirror::Decide(const std::optional<checker::Checkpoint>& cp,
                                                     int64_t head) {
  const std::string key = checker::CheckpointKey(config_.meta_prefix, config_.name);
  if (config_.reset_last_synced_rev) return StartDecision{true, "--reset-last-synced-rev given"};
  if (!cp) return StartDecision{true, "no checkpoint"};
  if (cp->source_cluster_id != 0 && cp->source_cluster_id != source_cluster_id_) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint of task \"", config_.name, "\" was taken from source cluster ",
                     ClusterIdHex(cp->source_cluster_id), " but the source is now cluster ",
                     ClusterIdHex(source_cluster_id_),
                     "; refusing to resume (use --reset-last-synced-rev to resync from scratch)"));
  }
  if (!cp->scope.empty() && cp->scope != scope_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint ", key,
        " was written for another scope (prefix, destination prefix or "
        "excludes differ from --prefix \"",
        common::PrintableKey(config_.prefix), "\"): two tasks share the name \"", config_.name,
        "\" or this task's scope changed; give it its own --name, or use "
        "--reset-last-synced-rev to resync it with the new scope"));
  }
  if (cp->full_sync_pending) return StartDecision{true, "previous full sync was interrupted"};
  if (cp->revision > head) {
    return absl::FailedPreconditionError(
        absl::StrCat("source revision ", head, " is behind the checkpoint revision ", cp->revision,
                     " (was the source restored from a backup?); use --reset-last-synced-rev"));
  }
  if (cp->format < checker::kCheckpointFormat || cp->source_cluster_id == 0 || cp->scope.empty()) {
    return StartDecision{true,
                         "checkpoint cannot prove its origin (no cluster id, scope or anchor)"};
  }
  if (!cp->anchor) return StartDecision{true, "checkpoint has no history anchor (empty scope)"};
  if (cp->anchor->at > cp->revision) {
    return StartDecision{true, "checkpoint anchor is newer than its revision"};
  }
  absl::StatusOr<bool> matches = AnchorMatches(*cp->anchor);
  if (etcd::IsCompacted(matches.status())) {
    return StartDecision{true, "source compacted past the checkpoint (its history anchor is gone)"};
  }
  RETURN_IF_ERROR(matches.status());
  if (!*matches) {
    return absl::FailedPreconditionError(absl::StrCat(
        "source history does not match checkpoint ", key, ": key \"",
        common::PrintableKey(cp->anchor->key), "\" at revision ", cp->anchor->at,
        " differs from what was synced (the source was rebuilt or restored with the same cluster "
        "id); refusing to resume (use --reset-last-synced-rev to resync from scratch)"));
  }
  return StartDecision{false, "checkpoint found, source history verified"};
}

absl::Status CheckNotPromoted(etcd::KvApi* dst, const config::MirrorConfig& config) {
  const std::string key = checker::RoleKey(config.meta_prefix, config.name);
  ASSIGN_OR_RETURN(std::optional<checker::RoleRecord> role, ReadRole(dst, key));
  return role ? PromotedError(config.name, *role, key) : absl::OkStatus();
}

absl::Status Mirror::CheckNotPromoted() {
  ASSIGN_OR_RETURN(std::optional<checker::RoleRecord> role,
                   etcd::RetryTransient(*stop_, "read role record", &stats_.retries,
                                        [&] { return ReadRole(dst_, role_key_); }));
  if (role) SetPromoted(*role);
  absl::MutexLock lock(&promoted_mu_);
  return promoted_;
}

void Mirror::SetPromoted(const checker::RoleRecord& role) {
  absl::MutexLock lock(&promoted_mu_);
  promoted_ = PromotedError(config_.name, role, role_key_);
}

void Mirror::StartFreshness() {
  FreshnessWriter::Options options;
  options.key = checker::FreshnessKey(config_.meta_prefix, config_.name);
  options.role_key = role_key_;
  options.interval = config_.progress_interval;
  options.writer = config_.instance_id;
  options.ha = config_.ha;
  options.source_cluster_id = source_cluster_id_;
  freshness_ = std::make_unique<FreshnessWriter>(
      options, dst_, fence_, &stats_, [this](const checker::RoleRecord& role) {
        log::Warn(kLog, "the destination was promoted: this task stops writing into it",
                  {{"promotion", checker::DescribePromotion(role)}});
        SetPromoted(role);
        term_stop_.RequestStop();
      });
  freshness_->Start();
}

absl::Status Mirror::StartLeases() {
  if (config_.no_leases) return absl::OkStatus();
  LeaseKeeper::Options options;
  options.records_prefix = checker::LeaseRecordPrefix(config_.meta_prefix, config_.name);
  options.min_ttl = std::chrono::duration_cast<std::chrono::seconds>(config_.lease_min_ttl);
  options.hold = config_.lease_hold;
  options.adopt_existing = config_.adopt_leases;
  leases_ = std::make_unique<LeaseKeeper>(options, src_, dst_, &writer_, stop_, &stats_);
  RETURN_IF_ERROR(leases_->Load());
  leases_->Start();
  return absl::OkStatus();
}

absl::Status Mirror::PrepareLeases(std::vector<etcd::Op>* ops) {
  return leases_ ? leases_->Prepare(ops) : absl::OkStatus();
}

bool Mirror::LeasedKeysLost(const absl::Status& s) {
  if (!leases_) return false;
  if (etcd::IsLeaseNotFound(s)) {
    log::Warn(kLog, "the destination no longer has a lease kvsync manages", {{"error", s}});
    leases_->DestinationLost();
  }
  return leases_->TakeLost();
}

absl::Status Mirror::RunSync() {
  // Before the source is needed: after a failover it is usually gone.
  RETURN_IF_ERROR(CheckNotPromoted());
  RETURN_IF_ERROR(Start());
  StartFreshness();
  // Before anything is written: the leases of an earlier term are kept alive again at once.
  RETURN_IF_ERROR(StartLeases());
  ASSIGN_OR_RETURN(std::optional<checker::Checkpoint> cp, LoadCheckpoint());
  ASSIGN_OR_RETURN(int64_t head, SourceRevision());
  start_head_ = head;
  ASSIGN_OR_RETURN(StartDecision decision, Decide(cp, head));
  if (!decision.full && LeasedKeysLost(absl::OkStatus())) {
    decision = StartDecision{true,
                             "destination leases expired while kvsync was away (their keys "
                             "are gone there)"};
  }
  bool full = decision.full;
  if (cp && !config_.reset_last_synced_rev) {
    applied_ = persisted_ = cp->revision;
    anchor_ = cp->anchor;
    anchor_live_ = cp->anchor && cp->anchor->at == cp->revision;
  }
  stats_.last_synced_revision.store(applied_);
  log::Info(kLog, full ? "slow path chosen" : "fast path chosen",
            {{"reason", decision.reason}, {"checkpoint", applied_}, {"source_revision", head}});

  while (!stop_->stopped()) {
    if (full) {
      write_failed_ = false;
      absl::Status s = FullSync();
      if (etcd::IsCompacted(s)) {
        log::Warn(kLog, "source compacted during full sync, restarting at a new revision");
        continue;
      }
      if (absl::IsCancelled(s)) break;
      if (etcd::IsRefused(s) && !config_.once) {
        if (WaitAfterRefusal(s, write_failed_)) break;
        continue;
      }
      if (LeasedKeysLost(s)) {
        log::Warn(kLog, "destination leases lost during the full sync, starting it again");
        continue;
      }
      RETURN_IF_ERROR(s);
      ClearRefusal(/*write=*/true);
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
    if (absl::IsDataLoss(s)) {
      log::Warn(kLog, "slow path chosen",
                {{"reason", std::string(s.message())}, {"checkpoint", applied_}});
      full = true;
      continue;
    }
    if (absl::IsCancelled(s)) break;
    RETURN_IF_ERROR(s);
    break;
  }
  stats_.phase.store(static_cast<int>(sink::Phase::kStopped));
  log::Info(kLog, "stopped", {{"checkpoint", persisted_}, {"applied", applied_}});
  return absl::OkStatus();
}

bool Mirror::WaitAfterRefusal(const absl::Status& status, bool write) {
  Refusal kind = RefusalOf(status);
  refusal_is_write_ = write;
  stats_.refusal.store(static_cast<int>(kind));
  stats_.refusals[static_cast<int>(kind)].fetch_add(1);
  if (refusals_.IsNew(status)) {
    log::Error(kLog, "refused by etcd, not ready; retrying until an operator fixes it",
               {{"reason", RefusalName(kind)}, {"error", status}});
  }
  return stop_->WaitFor(refusal_backoff_.Next());
}

void Mirror::ClearRefusal(bool write) {
  if (stats_.refusal.load() == 0 || (refusal_is_write_ && !write)) return;
  stats_.refusal.store(0);
  log::Info(kLog, "no longer refused");
  refusals_.Reset();
  refusal_backoff_.Reset();
}

absl::Status Mirror::FullSync() {
  stats_.phase.store(static_cast<int>(sink::Phase::kFullSync));
  stats_.full_syncs.fetch_add(1);
  stats_.full_sync_scanned.store(0);
  stats_.full_sync_written.store(0);
  auto started = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(int64_t revision, SourceRevision());
  log::Info(kLog, "full sync started", {{"revision", revision}});
  checker::RangeCursor src(
      src_, {mapper_.src_prefix(), mapper_.src_range_end(), revision, config_.page_size}, stop_,
      &stats_.retries);
  checker::RangeCursor dst(dst_,
                           {mapper_.dst_prefix(), mapper_.dst_range_end(), 0, config_.page_size},
                           stop_, &stats_.retries);
  // The first pages are read while the pending mark is written: over a long link that is one
  // round trip less (the mark is a meta key, outside the pages read).
  src.Prefetch();
  dst.Prefetch();
  // Mark the full sync as pending: a crash before it ends must not resume incrementally,
  // or destination keys deleted at the source would never be removed.
  RETURN_IF_ERROR(CommitWithCheckpoint({}, MakeCheckpoint(persisted_, true)));
  WriterPool pool(config_.inflight, &writer_,
                  leases_ ? WriterPool::Prepare([this](std::vector<etcd::Op>* ops) {
                    return leases_->Prepare(ops);
                  })
                          : WriterPool::Prepare());
  TxnBatcher batcher(config_.max_txn_ops, config_.max_request_bytes, 0, 0);
  checker::DiffCounts counts;
  int64_t written = 0;
  auto emit = [&](const checker::Difference& d) -> absl::Status {
    ++written;
    etcd::Op op = d.kind == checker::DiffKind::kSrcMiss ? etcd::Op::Delete(d.dst_key)
                                                        : etcd::Op::Put(d.dst_key, d.src->value);
    if (leases_ && d.src != nullptr) op.lease = d.src->lease;
    if (!batcher.Add(op)) {
      RETURN_IF_ERROR(pool.Submit(batcher.Take()));
      batcher.Add(std::move(op));
    }
    stats_.full_sync_scanned.store(counts.source_keys, std::memory_order_relaxed);
    stats_.full_sync_written.store(written, std::memory_order_relaxed);
    return absl::OkStatus();
  };
  absl::Status merged =
      checker::MergeJoin(&src, &dst, mapper_, false, leases_ != nullptr, emit, &counts);
  if (merged.ok() && !batcher.empty()) merged = pool.Submit(batcher.Take());
  absl::Status written_status = pool.Finish();
  RETURN_IF_ERROR(merged);
  RETURN_IF_ERROR(written_status);
  stats_.full_sync_scanned.store(counts.source_keys);
  RETURN_IF_ERROR(AnchorAt(revision));
  RETURN_IF_ERROR(CommitWithCheckpoint({}, MakeCheckpoint(revision, false)));
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
             {"lease_mismatch_put", counts.lease_mismatch},
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
  absl::Status s = CommitWithCheckpoint({}, MakeCheckpoint(revision, false));
  write_failed_ = !s.ok();
  RETURN_IF_ERROR(s);
  persisted_ = revision;
  ClearRefusal(/*write=*/true);
  return absl::OkStatus();
}

absl::Status Mirror::Incremental() {
  stats_.phase.store(static_cast<int>(sink::Phase::kIncremental));
  if (freshness_) freshness_->WriteSoon();  // streaming: say so now, not an interval later
  common::Backoff backoff(std::chrono::milliseconds(100), std::chrono::milliseconds(5000));
  common::ErrorSeries errors;
  while (!stop_->stopped()) {
    if (OnceDone()) {
      if (persisted_ < applied_) RETURN_IF_ERROR(WriteCheckpoint(applied_));
      log::Info(kLog, "once: destination consistent at start revision", {{"revision", applied_}});
      return absl::OkStatus();
    }
    int64_t before = applied_;
    write_failed_ = false;
    absl::Status s = WatchOnce();
    if (LeasedKeysLost(s)) {
      return absl::DataLossError(
          "a destination lease kvsync manages is gone, and the keys attached to it with it");
    }
    if (s.ok() || absl::IsCancelled(s) || etcd::IsCompacted(s)) {
      if (s.ok() && !stop_->stopped() && !OnceDone()) continue;
      return s;
    }
    if (etcd::IsRefused(s) && !config_.once) {
      if (WaitAfterRefusal(s, write_failed_)) break;
      continue;
    }
    if (!etcd::IsTransient(s)) return s;
    stats_.watch_restarts.fetch_add(1);
    if (applied_ > before) {
      backoff.Reset();
      errors.Reset();
    }
    if (errors.IsNew(s)) {
      log::Warn(
          kLog, "watch interrupted, resuming",
          {{"from_revision", applied_ + 1}, {"error", s}, {"attempt", backoff.attempt() + 1}});
    }
    if (stop_->WaitFor(backoff.Next())) break;
  }
  return absl::OkStatus();
}

absl::Status Mirror::WatchOnce() {
  sink::CommitPipeline pipeline(&writer_, dst_, stop_, &stats_, checkpoint_key_, config_.inflight);
  RETURN_IF_ERROR(pipeline.Start());
  pipeline_ = &pipeline;
  submitted_ = applied_;
  applied_anchor_ = anchor_;
  applied_anchor_live_ = anchor_live_;
  absl::Status s = Stream();
  // Whatever ended the stream, every txn submitted settles first, so that applied_ is exact
  // and the next watch resumes right after it.
  absl::Status drained = pipeline.Drain();
  Settle();
  pipeline_ = nullptr;
  if (!pending_.empty()) {
    // Submitted but never applied: the anchor goes back with applied_.
    anchor_ = applied_anchor_;
    anchor_live_ = applied_anchor_live_;
    pending_.clear();
  }
  submitted_ = applied_;
  batch_received_ms_ = 0;
  if (!drained.ok() && !absl::IsCancelled(drained)) {
    write_failed_ = true;
    s = drained;
  }
  return s;
}

absl::Status Mirror::Submit(std::vector<etcd::Op> ops, int64_t revision, int64_t events,
                            bool write) {
  Pending p;
  p.revision = revision;
  p.events = events;
  p.received_ms = batch_received_ms_;
  p.persisted = write;
  p.anchor = anchor_;
  p.anchor_live = anchor_live_;
  if (write) {
    absl::StatusOr<int64_t> seq = pipeline_->Submit(
        std::move(ops), checker::EncodeCheckpoint(MakeCheckpoint(revision, false)));
    if (!seq.ok()) {
      write_failed_ = true;
      return seq.status();
    }
    p.seq = *seq;
  } else {
    KVSYNC_CHECK(ops.empty());
    p.seq = pipeline_->submitted();
  }
  pending_.push_back(std::move(p));
  submitted_ = std::max(submitted_, revision);
  Settle();
  return absl::OkStatus();
}

void Mirror::Settle() {
  const int64_t committed = pipeline_->committed();
  while (!pending_.empty() && pending_.front().seq <= committed) {
    Pending& p = pending_.front();
    applied_ = std::max(applied_, p.revision);
    if (p.persisted) {
      persisted_ = std::max(persisted_, p.revision);
      ClearRefusal(/*write=*/true);
      stats_.last_checkpoint_write_ms.store(common::WallMs(), std::memory_order_relaxed);
    }
    applied_anchor_ = std::move(p.anchor);
    applied_anchor_live_ = p.anchor_live;
    stats_.events_applied.fetch_add(p.events);
    pending_.pop_front();
  }
  stats_.last_synced_revision.store(applied_);
  NoteProgress();
  // The oldest change received and not yet committed: of the first pending txn, else of the
  // batch being built.
  int64_t oldest = batch_received_ms_;
  for (const Pending& p : pending_) {
    if (p.received_ms != 0) {
      oldest = oldest == 0 ? p.received_ms : std::min(oldest, p.received_ms);
      break;
    }
  }
  stats_.oldest_pending_ms.store(oldest);
}

absl::Status Mirror::DrainPipeline() {
  absl::Status s = pipeline_->Drain();
  Settle();
  if (!s.ok()) write_failed_ = true;
  return s;
}

absl::Status Mirror::Stream() {
  etcd::WatchOptions wo;
  wo.key = mapper_.src_prefix();
  wo.range_end = mapper_.src_range_end();
  wo.start_revision = applied_ + 1;
  wo.progress_notify = true;
  wo.require_leader = true;
  wo.fragment = true;
  ASSIGN_OR_RETURN(std::unique_ptr<etcd::WatchStream> stream, src_->Watch(wo));

  WatchQueue queue(config_.watch_buffer_bytes, &stats_.watch_buffer_bytes);
  // A commit wakes the engine: a batch held for the pipeline may go out now.
  pipeline_->SetOnCommit([&queue] { queue.queue.Wake(); });
  struct OnCommitReset {
    sink::CommitPipeline* pipeline;
    ~OnCommitReset() { pipeline->SetOnCommit(nullptr); }
  } on_commit_reset{pipeline_};
  const bool stall = WatchesToStall().fetch_sub(1) > 0;
  runtime::Thread reader("mirror-watch", [&] {
    bool created_seen = false;
    while (true) {
      auto resp = stream->Next();
      bool failed = !resp.ok();
      if (stall && created_seen && !failed) continue;
      created_seen = created_seen || (resp.ok() && resp->created);
      if (!queue.Push(std::move(resp)) || failed) return;
    }
  });
  // The reader is joined on every exit path; cancelling the stream unblocks it.
  struct Joiner {
    WatchQueue* queue;
    etcd::WatchStream* stream;
    runtime::Thread* reader;
    ~Joiner() {
      queue->Close();
      stream->Cancel();
      reader->Join();
    }
  } joiner{&queue, stream.get(), &reader};

  // A progress notification at revision P says "no event <= P is still to come", but only
  // notifications etcd sends on its own (watch_id of the watcher, sent through the watcher's
  // channel and only once it is synced) and, on servers that order them, requested ones
  // (etcd::RequestedProgressIsOrdered). Before etcd 3.4.25 / 3.5.8 a requested notification
  // is answered at once with the store revision, even while the watcher still replays history
  // (and may overtake queued events, etcd issue 15220), so there it only proves the stream is
  // alive; quiet periods are then proven by reading the source (the watchdog). A trusted P
  // is used once a later notification arrives, so anything queued before it has arrived.
  int64_t unconfirmed_progress = 0;
  const auto opened = std::chrono::steady_clock::now();
  auto last_request = opened;
  auto last_checkpoint_write = opened;
  auto last_delivery = opened;  // last event, created or trusted progress response
  auto last_quiet_check = opened;
  bool created = false;
  int64_t progress_asked_at_head = 0;
  const auto idle_poll = config_.once ? std::chrono::milliseconds(100) : config_.progress_interval;
  // A watch that is silent this long while the source moved on is examined by the watchdog.
  const auto stall_after = std::max(3 * config_.progress_interval, std::chrono::milliseconds(2000));
  const int64_t take_bytes = std::max<int64_t>(config_.watch_buffer_bytes / 4, 1);

  // Moves to `revision` with no data to write (filtered events, progress, a quiet proof): the
  // checkpoint is written at most every --progress-interval unless --once waits for it.
  auto advance_quietly = [&](int64_t revision, int64_t events) -> absl::Status {
    if (anchor_ && anchor_live_) anchor_->at = revision;
    const bool write = config_.once || std::chrono::steady_clock::now() - last_checkpoint_write >=
                                           config_.progress_interval;
    RETURN_IF_ERROR(Submit({}, revision, events, write));
    if (write) last_checkpoint_write = std::chrono::steady_clock::now();
    return absl::OkStatus();
  };

  // The watchdog, run only when the queue is empty (the engine has handled everything the
  // stream delivered): the stream never confirmed its creation, or the head monitor has seen
  // the source past applied_ for a while. Then the source is read (RangeChanged): nothing
  // changed in the watched range means a quiet period, proven, and the checkpoint advances
  // (the only way it advances behind a grpc-proxy, which ignores progress requests, or on
  // servers whose requested progress is not trusted); a change that the stream has not
  // delivered for stall_after means the stream is stalled.
  // The source revision being collected (kept across takes: a fragmented response may end
  // in the middle of one).
  std::vector<etcd::Op> group;
  int64_t group_bytes = 0;
  int64_t group_revision = 0;
  int64_t group_events = 0;
  std::optional<checker::HistoryAnchor> group_anchor;  // the group's put, if any
  std::vector<std::string> group_deletes;              // source keys the group deletes

  const auto proof_after = config_.once ? std::chrono::milliseconds(200) : stall_after;
  auto watchdog = [&](std::chrono::steady_clock::time_point now) -> absl::Status {
    if (!created && now - opened > stall_after) {
      stats_.watch_stalls.fetch_add(1);
      log::Warn(kLog, "watch stalled, re-creating it",
                {{"reason", "no created response"}, {"from_revision", applied_ + 1}});
      return absl::UnavailableError("source watch stalled: no created response");
    }
    int64_t head = stats_.source_head_revision.load();
    if (!created || head <= applied_ || now - last_quiet_check < proof_after ||
        stats_.head.BehindSeconds(applied_, common::WallMs()) * 1000 < proof_after.count()) {
      return absl::OkStatus();
    }
    last_quiet_check = now;
    absl::StatusOr<bool> changed = RangeChanged(applied_, head);
    if (!changed.ok()) {
      if (etcd::IsCompacted(changed.status())) return changed.status();
      return absl::OkStatus();  // cannot tell now; the head monitor reports source trouble
    }
    if (!*changed) {
      stats_.quiet_proofs.fetch_add(1);
      proven_through_ = head;
      return advance_quietly(head, 0);
    }
    if (now - last_delivery < stall_after) return absl::OkStatus();  // events on their way
    stats_.watch_stalls.fetch_add(1);
    log::Warn(kLog, "watch stalled, re-creating it",
              {{"reason", "source changed in scope but no event arrived"},
               {"from_revision", applied_ + 1},
               {"source_revision", head},
               {"silent_seconds", std::chrono::duration<double>(now - last_delivery).count()}});
    return absl::UnavailableError("source watch stalled: events in scope not delivered");
  };

  // The batch being built: kept across takes while the pipeline is busy (see below).
  TxnBatcher batcher(config_.max_txn_ops, config_.max_request_bytes,
                     kCheckpointOps + NestingOps(fence_), kCheckpointBytes);
  int64_t batch_revision = submitted_;  // revision the batch brings the destination to
  // The anchor as of the end of the batch (see anchor_).
  std::optional<checker::HistoryAnchor> batch_anchor = anchor_;
  bool batch_anchor_live = anchor_live_;
  int64_t events = 0;
  auto flush = [&](int64_t revision) -> absl::Status {
    anchor_ = batch_anchor;
    anchor_live_ = batch_anchor_live;
    if (anchor_ && anchor_live_) anchor_->at = revision;
    std::vector<etcd::Op> ops = batcher.Take();
    RETURN_IF_ERROR(PrepareLeases(&ops));
    RETURN_IF_ERROR(Submit(std::move(ops), revision, events, /*write=*/true));
    events = 0;
    last_checkpoint_write = std::chrono::steady_clock::now();
    return absl::OkStatus();
  };

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
    // A late event (below a revision already confirmed) is applied, but never moves the
    // checkpoint back.
    batch_revision = std::max(batch_revision, group_revision);
    if (group_anchor) {
      batch_anchor = std::move(group_anchor);
      batch_anchor_live = true;
    } else if (batch_anchor && std::find(group_deletes.begin(), group_deletes.end(),
                                         batch_anchor->key) != group_deletes.end()) {
      batch_anchor_live = false;
    }
    group.clear();
    // reset() re-initialises the optional moved from above; clang-tidy 14 knows this only
    // for smart pointers.
    group_anchor.reset();  // NOLINT(bugprone-use-after-move)
    group_deletes.clear();
    group_bytes = group_events = group_revision = 0;
    return absl::OkStatus();
  };

  while (!stop_->stopped()) {
    // Keys of a lost destination lease come back only with a full sync (Incremental asks).
    if (leases_ && leases_->lost()) return absl::UnavailableError("destination leases lost");
    // A batch held for the pipeline waits for the next commit (the pipeline wakes the queue).
    const bool holding = !batcher.empty();
    std::vector<WatchQueue::Item> items =
        queue.Take(holding ? std::chrono::milliseconds(100)
                           : std::min(idle_poll, std::chrono::milliseconds(500)),
                   take_bytes);
    auto now = std::chrono::steady_clock::now();
    if (items.empty() && !holding) {
      // Idle: let what is in flight settle, so that the watchdog judges applied revisions.
      RETURN_IF_ERROR(DrainPipeline());
      RETURN_IF_ERROR(watchdog(now));
      int64_t head = stats_.source_head_revision.load();
      // Ask for progress when idle for a while, or at once when the head monitor saw the
      // source move past what was applied (confirms a quiet scope within about a second).
      // (Only where the answers are trusted; elsewhere the watchdog's proofs do this.)
      if (trust_requested_progress_ && (now - last_request >= idle_poll ||
                                        (head > applied_ && head > progress_asked_at_head &&
                                         now - last_request >= std::chrono::milliseconds(200)))) {
        last_request = now;
        progress_asked_at_head = head;
        RETURN_IF_ERROR(stream->RequestProgress());
      }
      continue;
    }
    if (!holding) {
      batch_revision = submitted_;
      batch_anchor = anchor_;
      batch_anchor_live = anchor_live_;
      events = 0;
      if (!items.empty()) batch_received_ms_ = items.front().received_ms;
    }
    Settle();
    absl::Status stream_error;

    for (auto& item : items) {
      if (!item.response.ok()) {
        stream_error = item.response.status();
        break;
      }
      etcd::WatchResponse& resp = *item.response;
      if (resp.header.cluster_id != source_cluster_id_ && resp.header.cluster_id != 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "source cluster changed identity: cluster id ", ClusterIdHex(resp.header.cluster_id),
            ", expected ", ClusterIdHex(source_cluster_id_)));
      }
      if (resp.created) {
        created = true;
        last_delivery = std::chrono::steady_clock::now();
        ClearRefusal(/*write=*/false);  // the server accepts the watch
        continue;
      }
      if (resp.IsProgressNotify()) {
        // watch_id -1: the answer to a request; otherwise etcd's own, per watcher.
        if (resp.watch_id < 0 && !trust_requested_progress_) continue;
        last_delivery = std::chrono::steady_clock::now();
        RETURN_IF_ERROR(close_group());
        if (unconfirmed_progress > batch_revision) batch_revision = unconfirmed_progress;
        unconfirmed_progress = resp.header.revision;
        continue;
      }
      last_delivery = std::chrono::steady_clock::now();
      for (auto& ev : resp.events) {
        if (ev.kv.mod_revision <= proven_through_) continue;
        if (ev.kv.mod_revision != group_revision) {
          RETURN_IF_ERROR(close_group());
          group_revision = ev.kv.mod_revision;
        }
        ++group_events;
        // The anchor may be any key of the watched range (excluded and meta keys included):
        // every event of the range passes here, so its re-dating stays sound.
        if (ev.type == etcd::Event::Type::kPut) {
          group_anchor = checker::HistoryAnchor{ev.kv.key, ev.kv.mod_revision,
                                                ev.kv.create_revision, ev.kv.mod_revision};
        } else {
          group_deletes.push_back(ev.kv.key);
        }
        auto dst_key = mapper_.ToDestination(ev.kv.key);
        if (!dst_key) continue;
        etcd::Op op = ev.type == etcd::Event::Type::kPut
                          ? etcd::Op::Put(std::move(*dst_key), std::move(ev.kv.value))
                          : etcd::Op::Delete(std::move(*dst_key));
        if (leases_) op.lease = ev.kv.lease;
        group_bytes += op.ByteSize();
        group.push_back(std::move(op));
      }
      // A revision continues in the next response only when this one is a fragment.
      if (!resp.fragment) RETURN_IF_ERROR(close_group());
    }
    // A full batch went out as it filled (close_group). What is left goes out now when the
    // pipeline is idle; while txns are in flight it is held and grows until the next commit
    // (or until it fills): over a long link that sends fewer, fuller txns instead of a stream
    // of small ones that would mostly overtake each other and be sent again.
    const bool pipeline_idle = pipeline_->committed() == pipeline_->submitted();
    if (!batcher.empty()) {
      if (pipeline_idle || config_.once || !stream_error.ok()) {
        RETURN_IF_ERROR(flush(batch_revision));
      }
    } else if (batch_revision > submitted_) {
      // Only filtered events or progress: nothing to write but the checkpoint.
      anchor_ = batch_anchor;
      anchor_live_ = batch_anchor_live;
      RETURN_IF_ERROR(advance_quietly(batch_revision, events));
      events = 0;
    }
    if (batcher.empty()) batch_received_ms_ = 0;
    Settle();
    // --once ends when the start revision is applied: wait for the pipeline to get there.
    if (config_.once && submitted_ >= start_head_) RETURN_IF_ERROR(DrainPipeline());
    NoteProgress();
    if (!stream_error.ok()) return stream_error;
    if (OnceDone()) return absl::OkStatus();
    if (config_.once && trust_requested_progress_ &&
        std::chrono::steady_clock::now() - last_request >= idle_poll) {
      last_request = std::chrono::steady_clock::now();
      RETURN_IF_ERROR(stream->RequestProgress());
    }
  }
  return absl::CancelledError("stop requested");
}

}  // namespace kvsync::mirror
