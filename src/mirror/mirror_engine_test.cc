// Unit tests of the etcd2etcd engine's decisions against FakeEtcd source and destination
// clusters (no servers, seconds): which path a start takes (docs/architecture.md,
// "Resuming"), how source revisions are grouped into destination txns with the checkpoint,
// and when progress moves the checkpoint. Waits are on the fakes' state with deadlines.
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "checker/checkpoint.h"
#include "checker/dr_records.h"
#include "common/stop_token.h"
#include "config/config.h"
#include "etcd/fake_etcd.h"
#include "gtest/gtest.h"
#include "mirror/mirror.h"
#include "mirror/observability.h"

namespace kvsync::mirror {
namespace {

using etcd::FakeEtcd;

constexpr absl::Duration kDeadline = absl::Seconds(20);

FakeEtcd::Options ClusterOptions(uint64_t id, std::string version = "3.5.9") {
  FakeEtcd::Options options;
  options.cluster_id = id;
  options.version = std::move(version);
  options.label = id == 2 ? "destination" : "source";
  return options;
}

class MirrorEngineTest : public ::testing::Test {
 protected:
  MirrorEngineTest()
      : src_(std::make_unique<FakeEtcd>(ClusterOptions(1))), dst_(ClusterOptions(2)) {
    config_.prefix = "/app/";
    config_.dst_prefix = "/app/";
    config_.name = "app";
    config_.instance_id = "test";
    config_.check_interval = std::chrono::milliseconds(0);
    config_.progress_interval = std::chrono::milliseconds(100);
    config_.inflight = 2;
    config_.page_size = 3;  // several pages even for small scopes
  }
  ~MirrorEngineTest() override { StopRun().IgnoreError(); }

  // One --once run to completion on the calling thread.
  absl::Status RunOnce() {
    config::MirrorConfig c = config_;
    c.once = true;
    common::StopToken stop;
    Mirror mirror(c, src_.get(), &dst_, &stop, &stats_);
    return mirror.Run();
  }

  // A run on its own thread until StopRun().
  void StartRun(bool once = false) {
    config::MirrorConfig c = config_;
    c.once = once;
    mirror_ = std::make_unique<Mirror>(c, src_.get(), &dst_, &stop_, &stats_);
    run_ended_ = std::make_unique<absl::Notification>();
    thread_ = std::thread([this] {
      result_ = mirror_->Run();
      run_ended_->Notify();
    });
  }
  absl::Status StopRun() {
    if (!thread_.joinable()) return result_;
    stop_.RequestStop();
    thread_.join();
    mirror_.reset();
    return result_;
  }

  std::string CheckpointKey() const {
    return checker::CheckpointKey(config_.meta_prefix, config_.name);
  }
  std::optional<checker::Checkpoint> Checkpoint() const {
    auto value = dst_.Get(CheckpointKey());
    if (!value) return std::nullopt;
    auto cp = checker::DecodeCheckpoint(*value);
    if (!cp.ok()) return std::nullopt;
    return *cp;
  }
  int64_t CheckpointRevision() const {
    auto cp = Checkpoint();
    return cp ? cp->revision : -1;
  }
  std::optional<checker::Freshness> Freshness() const {
    auto value = dst_.Get(checker::FreshnessKey(config_.meta_prefix, config_.name));
    if (!value) return std::nullopt;
    auto f = checker::DecodeFreshness(*value);
    if (!f.ok()) return std::nullopt;
    return *f;
  }
  // The checkpoint a destination txn carries (-1: none).
  // The destination's txns from the `first` on that wrote something, as the writes they made
  // (a chained txn's writes sit in a nested txn; one whose chain compare failed wrote nothing).
  // The destination's txns but the freshness heartbeat's (written on a timer of its own).
  std::vector<FakeEtcd::TxnRecord> MirrorTxns() const {
    std::vector<FakeEtcd::TxnRecord> out;
    for (FakeEtcd::TxnRecord& r : dst_.txns()) {
      const auto& ops = r.request.success;
      if (ops.size() == 1 && absl::EndsWith(ops[0].key, "/freshness")) continue;
      out.push_back(std::move(r));
    }
    return out;
  }
  std::vector<FakeEtcd::TxnRecord> AppliedTxns(size_t first) const {
    std::vector<FakeEtcd::TxnRecord> out;
    auto all = MirrorTxns();
    for (size_t i = first; i < all.size(); ++i) {
      FakeEtcd::TxnRecord r = all[i];
      if (!r.succeeded) continue;
      if (!r.request.success.empty() && r.request.success[0].type == etcd::Op::Type::kTxn) {
        if (r.nested_succeeded.empty() || !r.nested_succeeded[0]) continue;
        etcd::TxnRequest inner = *r.request.success[0].txn;
        r.request = std::move(inner);
      }
      out.push_back(std::move(r));
    }
    return out;
  }
  int64_t CheckpointIn(const etcd::TxnRequest& txn) const {
    for (const etcd::Op& op : txn.success) {
      if (op.key != CheckpointKey()) continue;
      auto cp = checker::DecodeCheckpoint(op.value);
      return cp.ok() ? cp->revision : -1;
    }
    return -1;
  }
  // Data ops of a txn (all but the checkpoint).
  std::vector<etcd::Op> DataOps(const etcd::TxnRequest& txn) const {
    std::vector<etcd::Op> out;
    for (const etcd::Op& op : txn.success) {
      if (op.key != CheckpointKey()) out.push_back(op);
    }
    return out;
  }
  void ExpectDestinationMatchesSource() const {
    EXPECT_EQ(dst_.Snapshot(config_.prefix), src_->Snapshot(config_.prefix));
  }
  // A first --once run: a full sync of `keys` source keys.
  void SyncOnce(int keys = 5) {
    for (int i = 0; i < keys; ++i) src_->Put("/app/k" + std::to_string(i), "v");
    ASSERT_TRUE(RunOnce().ok());
    ASSERT_EQ(CheckpointRevision(), src_->revision());
  }

  std::unique_ptr<FakeEtcd> src_;
  FakeEtcd dst_;
  config::MirrorConfig config_;
  Stats stats_;
  common::StopToken stop_;
  std::unique_ptr<Mirror> mirror_;
  std::thread thread_;
  std::unique_ptr<absl::Notification> run_ended_;  // notified when the started run returns
  absl::Status result_;
};

// Path choice.

// Without a checkpoint the start copies the scope (full sync) and checkpoints the source head
// with a history anchor; destination keys the source lacks are deleted.
TEST_F(MirrorEngineTest, NoCheckpointTakesTheSlowPath) {
  for (int i = 0; i < 7; ++i) src_->Put("/app/k" + std::to_string(i), "v" + std::to_string(i));
  src_->Put("/other/x", "out of scope");
  dst_.Put("/app/stray", "only in the destination");
  ASSERT_TRUE(RunOnce().ok());
  EXPECT_EQ(stats_.full_syncs.load(), 1);
  EXPECT_EQ(stats_.fast_path_resumes.load(), 0);
  ExpectDestinationMatchesSource();
  auto cp = Checkpoint();
  ASSERT_TRUE(cp.has_value());
  EXPECT_EQ(cp->revision, src_->revision());
  EXPECT_EQ(cp->source_cluster_id, 1u);
  EXPECT_FALSE(cp->full_sync_pending);
  ASSERT_TRUE(cp->anchor.has_value());
  EXPECT_EQ(cp->anchor->key, "/app/k0");
}

// A checkpoint of this source and scope whose anchor reads back resumes from the checkpoint:
// no copy (a destination-only key survives), the missed revisions are applied.
TEST_F(MirrorEngineTest, MatchingCheckpointResumesOnTheFastPath) {
  SyncOnce();
  dst_.Put("/app/stray", "a full sync would delete this");
  src_->Put("/app/k1", "changed");
  src_->Delete("/app/k2");
  ASSERT_TRUE(RunOnce().ok());
  EXPECT_EQ(stats_.full_syncs.load(), 1);
  EXPECT_EQ(stats_.fast_path_resumes.load(), 1);
  EXPECT_EQ(dst_.Get("/app/stray"), "a full sync would delete this");
  EXPECT_EQ(dst_.Get("/app/k1"), "changed");
  EXPECT_FALSE(dst_.Get("/app/k2").has_value());
  EXPECT_EQ(CheckpointRevision(), src_->revision());
}

// The same task name with another scope (here an exclude added) is refused, naming the cause.
TEST_F(MirrorEngineTest, CheckpointOfAnotherScopeIsRefused) {
  SyncOnce();
  config_.exclude_prefixes = {"/app/tmp/"};
  absl::Status s = RunOnce();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "another scope")) << s;
  EXPECT_EQ(stats_.full_syncs.load(), 1);
}

// A checkpoint taken from another source cluster is refused.
TEST_F(MirrorEngineTest, CheckpointOfAnotherClusterIsRefused) {
  SyncOnce();
  src_ = std::make_unique<FakeEtcd>(ClusterOptions(7));
  for (int i = 0; i < 20; ++i) src_->Put("/app/k" + std::to_string(i), "other");
  absl::Status s = RunOnce();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "source cluster")) << s;
  EXPECT_EQ(dst_.Get("/app/k10"), std::nullopt);  // nothing of the other cluster copied
}

// A source rebuilt with the same cluster ID (its history differs: the anchor key has other
// revisions at the checkpoint's revision) is refused, and nothing is written.
TEST_F(MirrorEngineTest, RebuiltSourceWithTheSameClusterIdIsRefused) {
  SyncOnce();
  const size_t txns_before = MirrorTxns().size();
  src_ = std::make_unique<FakeEtcd>(ClusterOptions(1));
  src_->Put("/app/other", "x");  // shifts every later revision
  for (int i = 0; i < 10; ++i) src_->Put("/app/k" + std::to_string(i), "rebuilt");
  absl::Status s = RunOnce();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "does not match")) << s;
  EXPECT_EQ(MirrorTxns().size(), txns_before);
}

// A source behind the checkpoint (restored from a backup) is refused.
TEST_F(MirrorEngineTest, SourceBehindTheCheckpointIsRefused) {
  SyncOnce(8);
  src_ = std::make_unique<FakeEtcd>(ClusterOptions(1));
  src_->Put("/app/k0", "v");
  absl::Status s = RunOnce();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "behind the checkpoint")) << s;
}

// History compacted past the anchor cannot prove the checkpoint: a full sync (which removes
// the destination-only key the fast path would keep).
TEST_F(MirrorEngineTest, CompactedAnchorTakesTheSlowPath) {
  SyncOnce();
  dst_.Put("/app/stray", "x");
  src_->Put("/app/k1", "changed");
  src_->Compact(src_->revision());
  ASSERT_TRUE(RunOnce().ok());
  EXPECT_EQ(stats_.full_syncs.load(), 2);
  EXPECT_EQ(stats_.fast_path_resumes.load(), 0);
  ExpectDestinationMatchesSource();
}

// Checkpoints that cannot prove their origin (no cluster ID or scope, e.g. written by hand or
// by an older release) and interrupted full syncs take the slow path; a value that is not a
// checkpoint is refused.
TEST_F(MirrorEngineTest, UnprovableOrPendingCheckpointTakesTheSlowPathMalformedIsRefused) {
  SyncOnce();
  // Everything matches (the anchor too) but the cluster ID and scope are missing.
  checker::Checkpoint by_hand = *Checkpoint();
  by_hand.source_cluster_id = 0;
  by_hand.scope.clear();
  dst_.Put(CheckpointKey(), checker::EncodeCheckpoint(by_hand));
  dst_.Put("/app/stray", "x");
  ASSERT_TRUE(RunOnce().ok());
  EXPECT_EQ(stats_.full_syncs.load(), 2);
  EXPECT_FALSE(dst_.Get("/app/stray").has_value());

  auto pending = Checkpoint();
  ASSERT_TRUE(pending.has_value());
  pending->full_sync_pending = true;
  dst_.Put(CheckpointKey(), checker::EncodeCheckpoint(*pending));
  ASSERT_TRUE(RunOnce().ok());
  EXPECT_EQ(stats_.full_syncs.load(), 3);

  dst_.Put(CheckpointKey(), "not a checkpoint");
  absl::Status s = RunOnce();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_EQ(stats_.full_syncs.load(), 3);
  EXPECT_EQ(stats_.fast_path_resumes.load(), 0);
}

// Grouping revisions into txns.

// Whole revisions are packed into txns within --max-txn-ops (checkpoint included), in order,
// a key at most once per txn, each txn carrying the checkpoint of the last revision it
// completes.
TEST_F(MirrorEngineTest, RevisionsArePackedWholeIntoTxnsWithinMaxTxnOps) {
  SyncOnce(1);
  const size_t first = MirrorTxns().size();
  config_.max_txn_ops = 5;  // 3 data ops + the checkpoint, nested one level down
  // Every value names its source revision (r1...), so ops can be traced back.
  std::map<std::string, int64_t> revision_of;
  auto txn = [&](const std::string& tag, const std::vector<std::string>& keys) {
    etcd::TxnRequest t;
    for (const auto& k : keys) t.success.push_back(etcd::Op::Put(k, tag));
    revision_of[tag] = src_->Txn(t)->header.revision;
  };
  txn("r1", {"/app/a1", "/app/a2"});             // 2 ops
  txn("r2", {"/app/b1", "/app/b2"});             // 2 ops: does not fit beside r1
  txn("r3", {"/app/b1"});                        // same key as r2: replaces it in r2's txn
  src_->Put("/other/x", "out of scope");         // no event in scope
  txn("r5", {"/app/d1", "/app/d2", "/app/d3"});  // 3 ops: a txn of its own
  txn("r6", {"/app/e1"});                        // does not fit beside r5
  ASSERT_TRUE(RunOnce().ok());
  ExpectDestinationMatchesSource();

  std::vector<FakeEtcd::TxnRecord> txns = AppliedTxns(first);
  std::map<int64_t, std::set<size_t>> txns_of_revision;
  std::vector<int64_t> checkpoints;
  for (size_t i = 0; i < txns.size(); ++i) {
    const etcd::TxnRequest& t = txns[i].request;
    EXPECT_LE(t.success.size(), 4u) << "txn " << i;
    const int64_t cp = CheckpointIn(t);
    checkpoints.push_back(cp);
    int64_t max_revision = 0;
    std::set<std::string> keys;
    for (const etcd::Op& op : DataOps(t)) {
      EXPECT_TRUE(keys.insert(op.key).second) << op.key << " twice in txn " << i;
      const int64_t rev = revision_of[op.value];
      txns_of_revision[rev].insert(i);
      max_revision = std::max(max_revision, rev);
    }
    EXPECT_EQ(cp, max_revision) << "txn " << i << " carries the wrong checkpoint";
  }
  for (const auto& [rev, in] : txns_of_revision) {
    EXPECT_EQ(in.size(), 1u) << "revision " << rev << " split across txns";
  }
  // r1 | r2 r3 | r5 | r6, in source order.
  EXPECT_EQ(checkpoints, (std::vector<int64_t>{revision_of["r1"], revision_of["r3"],
                                               revision_of["r5"], revision_of["r6"]}));
  EXPECT_EQ(stats_.split_revisions.load(), 0);
}

// A revision with more ops than one txn holds is split; every part but the last carries the
// previous checkpoint, so a crash between parts replays the whole revision.
TEST_F(MirrorEngineTest, ARevisionLargerThanOneTxnIsSplitWithThePreviousCheckpoint) {
  SyncOnce(1);
  const int64_t before = src_->revision();
  const size_t first = MirrorTxns().size();
  config_.max_txn_ops = 5;
  etcd::TxnRequest big;
  for (int i = 0; i < 7; ++i) {
    big.success.push_back(etcd::Op::Put("/app/big" + std::to_string(i), "v"));
  }
  const int64_t rev = src_->Txn(big)->header.revision;
  ASSERT_TRUE(RunOnce().ok());
  ExpectDestinationMatchesSource();
  std::vector<FakeEtcd::TxnRecord> txns = AppliedTxns(first);
  ASSERT_EQ(txns.size(), 3u);  // 3 + 3 + 1 data ops
  for (size_t i = 0; i < txns.size(); ++i) {
    EXPECT_LE(txns[i].request.success.size(), 4u);
    EXPECT_EQ(CheckpointIn(txns[i].request), i + 1 < txns.size() ? before : rev) << "part " << i;
  }
  EXPECT_EQ(stats_.split_revisions.load(), 1);
}

// Fragmented watch responses (a replayed backlog split mid-revision), taken one at a time,
// still give each revision one txn.
TEST_F(MirrorEngineTest, AFragmentedRevisionStaysInOneTxn) {
  auto options = ClusterOptions(1);
  options.max_watch_events = 2;
  src_ = std::make_unique<FakeEtcd>(options);
  SyncOnce(1);
  const size_t first = MirrorTxns().size();
  config_.watch_buffer_bytes = 1;  // the engine takes one response at a time
  config_.max_txn_ops = 7;  // 5 data ops + checkpoint + nesting: one revision of 5 fits, two do not
  etcd::TxnRequest t;
  for (int i = 0; i < 5; ++i) t.success.push_back(etcd::Op::Put("/app/f" + std::to_string(i), "v"));
  const int64_t r1 = src_->Txn(t)->header.revision;
  for (auto& op : t.success) op.key += "x";
  const int64_t r2 = src_->Txn(t)->header.revision;
  ASSERT_TRUE(RunOnce().ok());
  ExpectDestinationMatchesSource();
  std::vector<FakeEtcd::TxnRecord> txns = AppliedTxns(first);
  ASSERT_EQ(txns.size(), 2u);
  EXPECT_EQ(DataOps(txns[0].request).size(), 5u);
  EXPECT_EQ(CheckpointIn(txns[0].request), r1);
  EXPECT_EQ(CheckpointIn(txns[1].request), r2);
  EXPECT_EQ(stats_.split_revisions.load(), 0);
}

// Progress.

// Reads that could prove a quiet period (the watchdog's) fail, so only progress can move the
// checkpoint.
void FailProofReads(FakeEtcd* src) {
  src->FailRangesIf(
      [](const etcd::RangeRequest& r) { return r.min_mod_revision > 0 || r.count_only; },
      absl::UnavailableError("proof reads disabled by the test"));
}

// On a release that orders requested progress, the engine asks for progress and advances
// the checkpoint through a period with no event in scope (confirmed by the next answer).
TEST_F(MirrorEngineTest, TrustedRequestedProgressAdvancesTheCheckpointThroughAQuietScope) {
  SyncOnce();
  const int64_t quiet_to = src_->Put("/other/x", "out of scope");
  FailProofReads(src_.get());
  StartRun(/*once=*/true);
  ASSERT_TRUE(dst_.WaitFor([&] { return CheckpointRevision() >= quiet_to; }, kDeadline))
      << "checkpoint " << CheckpointRevision();
  EXPECT_TRUE(StopRun().ok());
  EXPECT_GE(src_->progress_requests(), 2);
  EXPECT_EQ(stats_.quiet_proofs.load(), 0);
  ExpectDestinationMatchesSource();
}

// Where requested progress cannot be trusted (etcd 3.4.23) the engine does not ask; etcd's own
// notifications (the watcher's id, sent once synced) advance the checkpoint.
TEST_F(MirrorEngineTest, EtcdsOwnProgressAdvancesTheCheckpointWhereRequestsAreNotTrusted) {
  src_ = std::make_unique<FakeEtcd>(ClusterOptions(1, "3.4.23"));
  SyncOnce();
  const int64_t quiet_to = src_->Put("/other/x", "out of scope");
  FailProofReads(src_.get());
  const int64_t watches = src_->watches_opened();
  StartRun(/*once=*/true);
  ASSERT_TRUE(src_->WaitFor([&] { return src_->watches_opened() > watches; }, kDeadline));
  src_->SendProgress();
  src_->SendProgress();  // confirms the first
  ASSERT_TRUE(dst_.WaitFor([&] { return CheckpointRevision() >= quiet_to; }, kDeadline))
      << "checkpoint " << CheckpointRevision();
  EXPECT_TRUE(StopRun().ok());
  EXPECT_EQ(src_->progress_requests(), 0);
  EXPECT_EQ(stats_.quiet_proofs.load(), 0);
}

// A progress answer that overtakes an undelivered event (etcd issue 15220) moves the engine
// past it; the late event is still applied, and its txn never moves the checkpoint back.
TEST_F(MirrorEngineTest, ALateEventIsAppliedAndNeverMovesTheCheckpointBack) {
  auto options = ClusterOptions(1);
  options.misordered_progress = true;
  src_ = std::make_unique<FakeEtcd>(options);
  SyncOnce();
  const size_t first = MirrorTxns().size();
  src_->HoldWatches(true);
  const int64_t late = src_->Put("/app/late", "v");
  const int64_t ahead = src_->Put("/other/x", "out of scope");
  FailProofReads(src_.get());
  StartRun();
  // Progress requests keep coming; wait until the engine took the overtaking answer.
  ASSERT_TRUE(
      src_->WaitFor([&] { return stats_.last_synced_revision.load() >= ahead; }, kDeadline));
  src_->HoldWatches(false);
  ASSERT_TRUE(dst_.WaitFor([&] { return dst_.Get("/app/late").has_value(); }, kDeadline));
  EXPECT_TRUE(StopRun().ok());
  auto all = AppliedTxns(first);
  int64_t last = 0;
  bool carried = false;
  for (size_t i = 0; i < all.size(); ++i) {
    int64_t cp = CheckpointIn(all[i].request);
    EXPECT_GE(cp, last) << "checkpoint moved back in txn " << i;
    last = std::max(last, cp);
    for (const etcd::Op& op : DataOps(all[i].request)) {
      if (op.key != "/app/late") continue;
      carried = true;
      EXPECT_GE(cp, ahead) << "the late event's txn carries checkpoint " << cp << " < " << ahead;
    }
  }
  EXPECT_TRUE(carried);
  EXPECT_LT(late, ahead);
  EXPECT_GE(CheckpointRevision(), ahead);
}

// Without progress (a grpc-proxy, an old release), the engine proves a quiet period by reading
// the source, but a change in scope the stream has not delivered is a stall: the watch is
// re-created and the checkpoint never passes the undelivered event.
TEST_F(MirrorEngineTest, QuietPeriodsAreProvenByReadingButUndeliveredChangesAreStalls) {
  src_ = std::make_unique<FakeEtcd>(ClusterOptions(1, "3.4.23"));
  SyncOnce();
  const int64_t quiet_to = src_->Put("/other/x", "out of scope");
  StartRun();
  ASSERT_TRUE(dst_.WaitFor([&] { return CheckpointRevision() >= quiet_to; }, kDeadline));
  EXPECT_GE(stats_.quiet_proofs.load(), 1);

  src_->HoldWatches(true);
  const int64_t undelivered = src_->Put("/app/held", "v");
  src_->Put("/other/y", "moves the head on");
  const int64_t watches = src_->watches_opened();
  ASSERT_TRUE(src_->WaitFor([&] { return src_->watches_opened() > watches; }, kDeadline));
  EXPECT_GE(stats_.watch_stalls.load(), 1);
  EXPECT_LT(CheckpointRevision(), undelivered);
  EXPECT_LT(stats_.last_synced_revision.load(), undelivered);
  src_->HoldWatches(false);
  ASSERT_TRUE(dst_.WaitFor([&] { return dst_.Get("/app/held").has_value(); }, kDeadline));
  EXPECT_TRUE(StopRun().ok());
}

// Leases (lease_keeper.h).

// The lease a key is attached to at a cluster (-1: no such key).
int64_t LeaseOf(FakeEtcd* cluster, const std::string& key) {
  etcd::RangeRequest req;
  req.key = key;
  auto resp = cluster->Range(req);
  return resp.ok() && !resp->kvs.empty() ? resp->kvs[0].lease : -1;
}

// A key on source lease L lands on destination lease L, granted with max(source TTL,
// --lease-min-ttl) and recorded as the task's; a key without a lease stays without one, and
// --no-leases writes every key without one.
TEST_F(MirrorEngineTest, LeasedKeysLandOnTheSameLeaseIdWithTheTtlFloor) {
  ASSERT_TRUE(src_->LeaseGrant(0x100, std::chrono::seconds(10)).ok());
  src_->Put("/app/provider", "10.0.0.1:80", 0x100);
  src_->Put("/app/config", "static");
  config_.lease_min_ttl = std::chrono::milliseconds(0);
  ASSERT_TRUE(RunOnce().ok());
  EXPECT_EQ(LeaseOf(&dst_, "/app/provider"), 0x100);
  EXPECT_EQ(LeaseOf(&dst_, "/app/config"), 0);
  EXPECT_EQ(dst_.LeaseTimeToLive(0x100)->granted_ttl, 10);
  const std::string record =
      checker::LeaseRecordKey(checker::LeaseRecordPrefix(config_.meta_prefix, config_.name), 0x100);
  EXPECT_TRUE(dst_.Get(record).has_value());
  EXPECT_EQ(stats_.lease_grants.load(), 1);

  // A second lease, mirrored by the watch, gets the floor.
  config_.lease_min_ttl = std::chrono::milliseconds(60000);
  ASSERT_TRUE(src_->LeaseGrant(0x200, std::chrono::seconds(10)).ok());
  src_->Put("/app/provider2", "10.0.0.2:80", 0x200);
  ASSERT_TRUE(RunOnce().ok());
  EXPECT_EQ(stats_.fast_path_resumes.load(), 1);
  EXPECT_EQ(LeaseOf(&dst_, "/app/provider2"), 0x200);
  EXPECT_EQ(dst_.LeaseTimeToLive(0x200)->granted_ttl, 60);

  config_.no_leases = true;
  config_.reset_last_synced_rev = true;
  dst_.ExpireLease(0x100);
  dst_.ExpireLease(0x200);
  ASSERT_TRUE(RunOnce().ok());
  EXPECT_EQ(LeaseOf(&dst_, "/app/provider"), 0);
  EXPECT_EQ(LeaseOf(&dst_, "/app/provider2"), 0);
}

// A destination lease with a mirrored ID that kvsync did not grant is someone else's: mirrored
// keys are never attached to it (written without a lease), the conflict is counted, and the
// foreign lease and its keys are left alone.
TEST_F(MirrorEngineTest, AConflictingDestinationLeaseIsNeverAdopted) {
  ASSERT_TRUE(dst_.LeaseGrant(0x100, std::chrono::seconds(30)).ok());
  dst_.Put("/elsewhere/theirs", "v", 0x100);
  ASSERT_TRUE(src_->LeaseGrant(0x100, std::chrono::seconds(10)).ok());
  src_->Put("/app/provider", "10.0.0.1:80", 0x100);
  ASSERT_TRUE(RunOnce().ok());
  EXPECT_EQ(dst_.Get("/app/provider"), "10.0.0.1:80");
  EXPECT_EQ(LeaseOf(&dst_, "/app/provider"), 0);
  EXPECT_EQ(stats_.lease_conflicts.load(), 1);
  EXPECT_EQ(stats_.lease_grants.load(), 0);
  EXPECT_FALSE(dst_.Get(checker::LeaseRecordKey(
                            checker::LeaseRecordPrefix(config_.meta_prefix, config_.name), 0x100))
                   .has_value());
  EXPECT_EQ(LeaseOf(&dst_, "/elsewhere/theirs"), 0x100);
  std::string why;
  stats_.phase.store(static_cast<int>(sink::Phase::kIncremental));
  EXPECT_FALSE(Ready(stats_, sink::RoleView{}, std::chrono::milliseconds(60000), &why));
  EXPECT_TRUE(absl::StrContains(why, "lease ID conflict")) << why;
}

// While the source lease lives its destination lease is kept alive; when it is revoked at the
// source, the watch deletes the key and the keeper revokes the destination lease and its
// record.
TEST_F(MirrorEngineTest, ADeadSourceLeaseIsRevokedAtTheDestinationAfterItsKeys) {
  ASSERT_TRUE(src_->LeaseGrant(0x100, std::chrono::seconds(3)).ok());
  src_->Put("/app/provider", "10.0.0.1:80", 0x100);
  config_.lease_min_ttl = std::chrono::milliseconds(0);
  StartRun();
  ASSERT_TRUE(dst_.WaitFor([&] { return LeaseOf(&dst_, "/app/provider") == 0x100; }, kDeadline));
  ASSERT_TRUE(dst_.WaitFor([&] { return dst_.keepalives(0x100) >= 2; }, kDeadline));
  const std::string record =
      checker::LeaseRecordKey(checker::LeaseRecordPrefix(config_.meta_prefix, config_.name), 0x100);
  ASSERT_TRUE(dst_.Get(record).has_value());
  ASSERT_TRUE(src_->LeaseRevoke(0x100).ok());
  ASSERT_TRUE(dst_.WaitFor([&] { return !dst_.Get(record).has_value(); }, kDeadline));
  EXPECT_FALSE(dst_.LeaseTimeToLive(0x100)->exists());
  EXPECT_FALSE(dst_.Get("/app/provider").has_value());
  EXPECT_EQ(stats_.lease_revokes.load(), 1);
  EXPECT_TRUE(StopRun().ok());
}

// A destination lease that expired while kvsync was away took its keys with it, and no watch
// event brings them back: the next start takes the slow path and restores them on the lease.
TEST_F(MirrorEngineTest, ADestinationLeaseLostWhileAwayTakesTheSlowPath) {
  ASSERT_TRUE(src_->LeaseGrant(0x100, std::chrono::seconds(10)).ok());
  src_->Put("/app/provider", "10.0.0.1:80", 0x100);
  src_->Put("/app/config", "static");
  ASSERT_TRUE(RunOnce().ok());
  dst_.ExpireLease(0x100);
  ASSERT_FALSE(dst_.Get("/app/provider").has_value());
  ASSERT_TRUE(RunOnce().ok());
  EXPECT_EQ(stats_.full_syncs.load(), 2);
  EXPECT_EQ(stats_.leases_lost.load(), 1);
  EXPECT_EQ(LeaseOf(&dst_, "/app/provider"), 0x100);
  ExpectDestinationMatchesSource();
}

// A managed destination lease that expires while the task runs (keep-alives lost, say) takes
// its keys with it: the keeper or the refused write of a new key on it notices, and a full sync
// restores every key on a re-granted lease with the same ID.
TEST_F(MirrorEngineTest, ADestinationLeaseLostWhileRunningIsRestoredByAFullSync) {
  ASSERT_TRUE(src_->LeaseGrant(0x100, std::chrono::seconds(3)).ok());
  src_->Put("/app/provider", "10.0.0.1:80", 0x100);
  config_.lease_min_ttl = std::chrono::milliseconds(0);
  StartRun();
  ASSERT_TRUE(dst_.WaitFor([&] { return LeaseOf(&dst_, "/app/provider") == 0x100; }, kDeadline));
  dst_.ExpireLease(0x100);
  src_->Put("/app/provider2", "10.0.0.2:80", 0x100);
  ASSERT_TRUE(dst_.WaitFor(
      [&] {
        return LeaseOf(&dst_, "/app/provider") == 0x100 &&
               LeaseOf(&dst_, "/app/provider2") == 0x100;
      },
      kDeadline));
  EXPECT_GE(stats_.leases_lost.load(), 1);
  EXPECT_EQ(stats_.full_syncs.load(), 2);
  EXPECT_TRUE(dst_.LeaseTimeToLive(0x100)->exists());
  EXPECT_TRUE(StopRun().ok());
}

// The freshness record says "streaming" as soon as the first full sync is done, not an
// interval later: a promotion in between would find "full sync" and no time for the applied
// revision (the interval here is an hour: only the start and that write happen).
TEST_F(MirrorEngineTest, TheFreshnessRecordIsWrittenAsSoonAsTheTaskStreams) {
  for (int i = 0; i < 5; ++i) src_->Put(absl::StrCat("/app/k", i), "v");
  config_.progress_interval = std::chrono::hours(1);
  StartRun();
  ASSERT_TRUE(dst_.WaitFor(
      [&] {
        auto f = Freshness();
        return f && !f->full_sync && f->applied_revision == src_->revision() &&
               f->fresh_as_of_ms > 0;
      },
      kDeadline))
      << (Freshness() ? checker::EncodeFreshness(*Freshness()) : "(none)");
  EXPECT_TRUE(StopRun().ok());
}

// The freshness record is kept while running: applied revision, the source head and when the
// destination was last known fresh. A promotion (the role record) is noticed by that heartbeat
// even when nothing else is written: the run ends on its own with the refusal, and a restart
// is refused before anything is written.
TEST_F(MirrorEngineTest, APromotedDestinationStopsTheRunningMirrorAndRefusesRestart) {
  SyncOnce();
  const int64_t synced = CheckpointRevision();
  StartRun();
  ASSERT_TRUE(dst_.WaitFor(
      [&] {
        auto f = Freshness();
        return f && f->applied_revision >= synced && f->fresh_as_of_ms > 0;
      },
      kDeadline));
  std::optional<checker::Freshness> f = Freshness();
  ASSERT_TRUE(f.has_value());
  EXPECT_GE(f->source_head, f->applied_revision);
  EXPECT_EQ(f->writer, "test");

  checker::RoleRecord role;
  role.mode = "failover";
  role.by = "ops@test";
  dst_.Put(checker::RoleKey(config_.meta_prefix, config_.name), checker::EncodeRole(role));
  // The run ends on its own (no stop was requested), having counted the promotion.
  ASSERT_TRUE(run_ended_->WaitForNotificationWithTimeout(kDeadline));
  EXPECT_EQ(stats_.promoted.load(), 1);
  thread_.join();
  mirror_.reset();
  EXPECT_TRUE(absl::IsFailedPrecondition(result_)) << result_;
  EXPECT_TRUE(absl::StrContains(result_.message(), "promoted by ops@test")) << result_;
  EXPECT_TRUE(absl::StrContains(result_.message(), "kvsync demote")) << result_;

  src_->Put("/app/after", "v");
  const size_t txns_before = MirrorTxns().size();
  absl::Status s = RunOnce();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_EQ(MirrorTxns().size(), txns_before);
  EXPECT_EQ(dst_.Get("/app/after"), std::nullopt);
}

}  // namespace
}  // namespace kvsync::mirror
