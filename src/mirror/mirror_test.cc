#include <map>

#include "absl/status/status.h"
#include "etcd/types.h"
#include "gtest/gtest.h"
#include "mirror/dr.h"
#include "mirror/observability.h"
#include "mirror/stats.h"
#include "mirror/txn_batcher.h"

namespace kvsync::mirror {
namespace {

// The batcher respects both limits, keeps room for the checkpoint and dedupes keys.
TEST(TxnBatcher, RespectsLimitsAndDedupes) {
  TxnBatcher b(4, 1000, 1, 100);
  EXPECT_TRUE(b.Add(etcd::Op::Put("k1", "v")));
  EXPECT_TRUE(b.Add(etcd::Op::Put("k2", "v")));
  EXPECT_TRUE(b.Add(etcd::Op::Put("k1", "newer")));
  EXPECT_EQ(b.size(), 2u);
  EXPECT_TRUE(b.Add(etcd::Op::Delete("k3")));
  EXPECT_FALSE(b.Add(etcd::Op::Put("k4", "v")));  // 3 data ops + 1 reserved = max
  auto ops = b.Take();
  ASSERT_EQ(ops.size(), 3u);
  EXPECT_EQ(ops[0].value, "newer");
  EXPECT_TRUE(b.empty());
  // Bytes: an op bigger than the budget goes alone into an empty batch.
  EXPECT_TRUE(b.Add(etcd::Op::Put("big", std::string(2000, 'x'))));
  EXPECT_FALSE(b.Add(etcd::Op::Put("small", "v")));
}

// Lag from head observations counts from the first time a head above the applied revision was
// seen, keeps counting while nothing is applied (a stuck stream), and drops to 0 once applied.
TEST(HeadTracker, LagCountsFromFirstUnappliedObservation) {
  HeadTracker t;
  EXPECT_EQ(t.BehindSeconds(0, 1000), 0.0);
  t.Observe(10, 1000, 10);  // caught up
  EXPECT_EQ(t.BehindSeconds(10, 5000), 0.0);
  t.Observe(12, 2000, 10);
  t.Observe(15, 3000, 10);
  EXPECT_DOUBLE_EQ(t.BehindSeconds(10, 9000), 7.0);  // since 12 was first seen
  EXPECT_DOUBLE_EQ(t.BehindSeconds(12, 9000), 6.0);  // 12 applied: since 15 was seen
  EXPECT_DOUBLE_EQ(t.BehindSeconds(15, 9000), 0.0);
  t.Observe(15, 10000, 12);  // the same head again keeps its first-seen time
  EXPECT_DOUBLE_EQ(t.BehindSeconds(12, 11000), 8.0);
  EXPECT_EQ(t.last_observed_ms(), 10000);
}

// Freshness: the destination is fresh as of the last time the source was observed at or below
// what it applied; a head seen while behind dates freshness only once it is applied, with the
// last time that head was still current, and an out-of-order older reply never dates a newer
// head.
TEST(HeadTracker, FreshAsOfIsTheLastObservationAtOrBelowApplied) {
  HeadTracker t;
  EXPECT_EQ(t.FreshAsOf(0), 0);
  t.Observe(10, 1000, 10);
  EXPECT_EQ(t.FreshAsOf(10), 1000);
  t.Observe(12, 2000, 10);
  t.Observe(12, 3000, 10);  // still 12 at 3000
  t.Observe(15, 4000, 10);
  t.Observe(13, 5000, 10);  // an older reply: says nothing about 15 at 5000
  EXPECT_EQ(t.FreshAsOf(11), 1000);
  EXPECT_EQ(t.FreshAsOf(12), 3000);
  EXPECT_EQ(t.FreshAsOf(14), 3000);
  EXPECT_EQ(t.FreshAsOf(15), 4000);
  EXPECT_EQ(t.FreshAsOf(12), 4000);  // never moves back
  EXPECT_EQ(t.LastHead(), std::make_pair(int64_t{13}, int64_t{5000}));
  t.Reset();
  EXPECT_EQ(t.FreshAsOf(100), 0);
}

// Watch cancels are told apart: compaction stays recognisable, permission and auth reasons
// and unknown server cancels are refusals, never transient.
TEST(Refusals, ServerCancelsAreRefusalsNotTransient) {
  absl::Status denied = etcd::WatchCanceledError("etcdserver: permission denied", "watch");
  EXPECT_EQ(RefusalOf(denied), Refusal::kPermissionDenied);
  EXPECT_FALSE(etcd::IsTransient(denied));
  absl::Status auth = etcd::WatchCanceledError("etcdserver: invalid auth token", "watch");
  EXPECT_EQ(RefusalOf(auth), Refusal::kAuth);
  absl::Status other = etcd::WatchCanceledError("no reason given", "watch");
  EXPECT_EQ(RefusalOf(other), Refusal::kWatchCanceled);
  EXPECT_FALSE(etcd::IsTransient(other));
  EXPECT_EQ(RefusalOf(absl::UnavailableError("x")), Refusal::kNone);
  EXPECT_FALSE(etcd::IsRefused(etcd::CompactedError(5, "watch")));
}

// Readiness says why it fails: a refusal, an unobserved head, lag.
TEST(Readiness, RefusalAndUnobservedHeadAreNotReady) {
  Stats s;
  s.leading.store(1);
  s.phase.store(static_cast<int>(sink::Phase::kIncremental));
  sink::RoleView role;
  std::string why;
  EXPECT_FALSE(Ready(s, role, std::chrono::seconds(30), &why));
  EXPECT_NE(why.find("not observed"), std::string::npos) << why;
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  s.head.Observe(5, now, 5);
  s.last_synced_revision.store(5);
  why.clear();
  EXPECT_TRUE(Ready(s, role, std::chrono::seconds(30), &why)) << why;
  s.head_refusal.store(static_cast<int>(Refusal::kPermissionDenied));
  EXPECT_FALSE(Ready(s, role, std::chrono::seconds(30), &why));
  EXPECT_NE(why.find("permission_denied"), std::string::npos) << why;
}

// kvsync status names each state from the records alone: promoted wins; a missing or stale
// heartbeat is stalled (a leader holds the election), no-leader (an HA task without one) or
// stopped; then full-sync, lagging beyond --max-lag, else streaming.
TEST(DeriveStatus, NamesEveryState) {
  const int64_t now = 1'000'000;
  TaskRecords r;
  r.checkpoint = checker::Checkpoint{};
  r.checkpoint->revision = 90;
  StatusOptions o;
  o.now_ms = now;
  o.max_lag = std::chrono::milliseconds(30000);
  EXPECT_EQ(DeriveStatus("t", r, o).state, "stopped");  // no freshness record

  checker::Freshness f;
  f.applied_revision = 100;
  f.source_head = 104;
  f.fresh_as_of_ms = now - 2000;
  f.updated_ms = now - 500;
  f.interval_ms = 1000;
  r.freshness = f;
  TaskStatus s = DeriveStatus("t", r, o);
  EXPECT_EQ(s.state, "streaming");
  EXPECT_TRUE(s.healthy());
  EXPECT_EQ(s.checkpoint, 100);
  EXPECT_EQ(s.lag_revisions, 4);
  EXPECT_DOUBLE_EQ(s.lag_seconds, 2.0);
  o.source_head = 110;  // read live
  EXPECT_EQ(DeriveStatus("t", r, o).lag_revisions, 10);

  r.freshness->fresh_as_of_ms = now - 31000;
  EXPECT_EQ(DeriveStatus("t", r, o).state, "lagging");
  r.freshness->fresh_as_of_ms = 0;  // never caught up
  EXPECT_EQ(DeriveStatus("t", r, o).state, "lagging");
  r.freshness->full_sync = true;
  EXPECT_EQ(DeriveStatus("t", r, o).state, "full-sync");
  EXPECT_FALSE(DeriveStatus("t", r, o).healthy());

  r.freshness->updated_ms = now - 60000;  // nobody writes
  EXPECT_EQ(DeriveStatus("t", r, o).state, "stopped");
  r.freshness->ha = true;
  EXPECT_EQ(DeriveStatus("t", r, o).state, "no-leader");
  r.leader = "a-1";
  EXPECT_EQ(DeriveStatus("t", r, o).state, "stalled");

  checker::RoleRecord role;
  role.applied_revision = 100;
  role.source_head = 107;
  r.role = role;
  s = DeriveStatus("t", r, o);
  EXPECT_EQ(s.state, "promoted");
  EXPECT_EQ(s.role, "promoted");
  EXPECT_TRUE(s.healthy());
  EXPECT_EQ(s.lag_revisions, 7);
}

}  // namespace
}  // namespace kvsync::mirror
