// Unit tests of the zk2etcd parts that need no server: scope and key mapping, and the version
// order that keeps stale reads from resurrecting deleted keys.
#include <gtest/gtest.h>

#include "ownership/store.h"
#include "zk2etcd/guards.h"
#include "zk2etcd/migration.h"
#include "zk2etcd/node_table.h"
#include "zk2etcd/parity.h"
#include "zk2etcd/scope.h"
#include "zk2etcd/writer.h"

namespace kvsync::zk2etcd {
namespace {

TEST(ScopeTest, PrefixAndExcludeArePathAware) {
  Scope scope({"/dubbo"}, {"/dubbo/skip"}, "", "/kvsync/meta/");
  EXPECT_TRUE(scope.Covers("/dubbo"));
  EXPECT_TRUE(scope.Covers("/dubbo/a/providers/x"));
  EXPECT_FALSE(scope.Covers("/dubbo2"));
  EXPECT_FALSE(scope.Covers("/dubbo2/a"));
  EXPECT_FALSE(scope.Covers("/dubbo/skip"));
  EXPECT_FALSE(scope.Covers("/dubbo/skip/x"));
  EXPECT_TRUE(scope.Covers("/dubbo/skipper"));
  EXPECT_FALSE(scope.Covers("/other"));
}

TEST(ScopeTest, RootCoversEverythingButZooKeeperAndMeta) {
  Scope scope({"/"}, {}, "", "/kvsync/meta/");
  EXPECT_TRUE(scope.Covers("/"));
  EXPECT_TRUE(scope.Covers("/a"));
  EXPECT_FALSE(scope.Covers("/zookeeper"));
  EXPECT_FALSE(scope.Covers("/zookeeper/quota"));
  EXPECT_TRUE(scope.Covers("/zookeeperish"));
  EXPECT_FALSE(scope.Covers("/kvsync/meta/task/owned/a"));
}

TEST(ScopeTest, EtcdPrefixMapsBothWays) {
  Scope scope({"/dubbo"}, {}, "/zk", "/kvsync/meta/");
  EXPECT_EQ(scope.KeyOf("/dubbo/a"), "/zk/dubbo/a");
  EXPECT_EQ(scope.PathOf("/zk/dubbo/a"), "/dubbo/a");
  EXPECT_EQ(scope.PathOf("/zk/dubbo"), "/dubbo");
  EXPECT_FALSE(scope.PathOf("/zk/dubbo2/a").has_value());
  EXPECT_FALSE(scope.PathOf("/dubbo/a").has_value());
  auto ranges = scope.EtcdRanges();
  ASSERT_EQ(ranges.size(), 1u);
  EXPECT_EQ(ranges[0].key, "/zk/dubbo");
  EXPECT_EQ(ranges[0].range_end, "/zk/dubbo0");  // PrefixEnd("/zk/dubbo/")
}

TEST(NodeTableTest, StaleReadCannotFollowADelete) {
  NodeTable t;
  KeyHash k = HashKey("/dubbo/a");
  EXPECT_TRUE(t.Advance(k, Version{10, 10}));
  EXPECT_TRUE(t.Advance(k, Version{10, 12}));   // data change
  EXPECT_FALSE(t.Advance(k, Version{10, 12}));  // same version again: nothing to write
  EXPECT_FALSE(t.Advance(k, Version{10, 11}));  // older data
  EXPECT_EQ(t.live(), 1);
  EXPECT_TRUE(t.Advance(k, Version{10, Version::kDeleted}));  // deleted
  EXPECT_EQ(t.live(), 0);
  EXPECT_FALSE(t.Advance(k, Version{10, 12}));  // a late read of the deleted incarnation
  EXPECT_FALSE(t.Advance(k, Version{10, 99}));
  EXPECT_TRUE(t.Advance(k, Version{20, 20}));  // re-created: a larger czxid
  EXPECT_TRUE(t.Get(k).live());
  EXPECT_FALSE(t.Advance(k, Version{10, Version::kDeleted}));  // a stale delete of the old one
  EXPECT_TRUE(t.Get(k).live());
}

TEST(NodeTableTest, CommitsAndTombstoneCleanup) {
  NodeTable t;
  KeyHash a = HashKey("/a");
  KeyHash b = HashKey("/b");
  t.Advance(a, Version{1, 1});
  t.Submitted(a);
  EXPECT_EQ(t.Get(a).pending, 1);
  t.Committed(a, 42);
  EXPECT_EQ(t.Get(a).pending, 0);
  EXPECT_EQ(t.Get(a).written, 42);
  t.Advance(b, Version{2, Version::kDeleted});
  t.DropTombstones();
  EXPECT_FALSE(t.Get(b).known);
  EXPECT_TRUE(t.Get(a).known);
  EXPECT_FALSE(HashKey("/a") == HashKey("/b"));
}

// A guarded delete spends three ops of etcd's --max-txn-ops budget, a put with its mark two.
TEST(WriterTest, NestedTxnsCountAgainstTheOpBudget) {
  auto owners = ownership::NewEtcdStore("/kvsync/meta/t/owned");
  std::vector<etcd::Op> put;
  owners->AppendPut("/a", "v", &put);
  EXPECT_EQ(OpCost(put), 2u);
  std::vector<etcd::Op> del;
  owners->AppendDelete("/a", &del);
  EXPECT_EQ(OpCost(del), 3u);
}

TEST(GuardsTest, MassDeletesAreHeldUnlessConfirmed) {
  DeletePlan plan;
  plan.owned = 1000;
  plan.deletes = 100;
  EXPECT_TRUE(JudgeDeletes(plan, 0.1, false).ok());  // exactly the limit
  plan.deletes = 101;
  absl::Status held = JudgeDeletes(plan, 0.1, false);
  EXPECT_TRUE(absl::IsFailedPrecondition(held));
  EXPECT_NE(held.message().find("--confirm-mass-delete"), std::string_view::npos) << held;
  EXPECT_TRUE(JudgeDeletes(plan, 0.1, true).ok());
  EXPECT_TRUE(JudgeDeletes(plan, 0.2, false).ok());
  // One delete is a lost delete event, even in a tiny tree or with a fraction of 0.
  plan.owned = 4;
  plan.deletes = 1;
  EXPECT_TRUE(JudgeDeletes(plan, 0.0, false).ok());
  plan.deletes = 2;
  EXPECT_FALSE(JudgeDeletes(plan, 0.1, false).ok());
  // Nothing owned (the denominator) cannot justify deletes.
  plan.owned = 0;
  EXPECT_FALSE(JudgeDeletes(plan, 1.0, false).ok());
  // Anything under a missing root is held, however small.
  plan = DeletePlan{.deletes = 1, .under_missing_root = 1, .owned = 1000, .missing_roots = {"/a"}};
  held = JudgeDeletes(plan, 1.0, false);
  EXPECT_TRUE(absl::IsFailedPrecondition(held));
  EXPECT_NE(held.message().find("/a missing"), std::string_view::npos) << held;
  EXPECT_TRUE(JudgeDeletes(plan, 1.0, true).ok());
  EXPECT_TRUE(JudgeDeletes(DeletePlan{}, 0.0, false).ok());
}

TEST(GuardsTest, UnreadableZnodesCoverTheirSubtrees) {
  absl::flat_hash_set<std::string> nodes = {"/dubbo/secret", "/other"};
  EXPECT_TRUE(UnderAny("/dubbo/secret", nodes));
  EXPECT_TRUE(UnderAny("/dubbo/secret/child/leaf", nodes));
  EXPECT_FALSE(UnderAny("/dubbo/secret2", nodes));
  EXPECT_FALSE(UnderAny("/dubbo", nodes));
  EXPECT_FALSE(UnderAny("/", nodes));
  EXPECT_TRUE(UnderAny("/any/thing", {"/"}));
  EXPECT_FALSE(UnderAny("/dubbo/x", {}));
  // More unreadable znodes than the walk names: no inferred delete can be trusted.
  DeletePlan plan{.deletes = 1, .owned = 1000, .unreadable_unnamed = true};
  EXPECT_TRUE(absl::IsFailedPrecondition(JudgeDeletes(plan, 1.0, false)));
  EXPECT_TRUE(JudgeDeletes(plan, 1.0, true).ok());
}

}  // namespace
// Services are the paths `depth` levels below a root; providers the children of a node named
// "providers"; nodes above the service level belong to none.
TEST(Parity, ServicesAndProvidersByPath) {
  ParityCounter one({"/dubbo"}, 1);
  EXPECT_EQ(one.ServiceOf("/dubbo/a.B/providers/x"), "/dubbo/a.B");
  EXPECT_EQ(one.ServiceOf("/dubbo/a.B"), "/dubbo/a.B");
  EXPECT_EQ(one.ServiceOf("/dubbo"), "");
  EXPECT_EQ(one.ServiceOf("/dubbo2/a"), "");
  ParityCounter two({"/apps", "/"}, 2);
  EXPECT_EQ(two.ServiceOf("/apps/team/svc/instances/i1"), "/apps/team/svc");
  EXPECT_EQ(two.ServiceOf("/apps/team"), "");
  EXPECT_EQ(two.ServiceOf("/x/y/z"), "/x/y");
  EXPECT_TRUE(ParityCounter::IsProvider("/dubbo/a/providers/dubbo%3A%2F%2F1"));
  EXPECT_FALSE(ParityCounter::IsProvider("/dubbo/a/providers"));
  EXPECT_FALSE(ParityCounter::IsProvider("/dubbo/a/consumers/c"));

  for (const char* p : {"/dubbo/a", "/dubbo/a/providers", "/dubbo/a/providers/p1",
                        "/dubbo/a/providers/p2", "/dubbo/b", "/dubbo/b/providers/p1"}) {
    one.CountZk(p);
    one.CountEtcd(p);
  }
  one.CountEtcd("/dubbo/b/providers/p9");
  one.CountDifference("/dubbo/b/providers/p9", checker::DiffKind::kSrcMiss);
  std::vector<ServiceParity> services = one.Services();
  ASSERT_EQ(services.size(), 2u);
  EXPECT_EQ(services[0].service, "/dubbo/b");  // the one without parity first
  EXPECT_EQ(services[0].zk_providers, 1);
  EXPECT_EQ(services[0].etcd_providers, 2);
  EXPECT_EQ(services[0].src_miss, 1);
  EXPECT_FALSE(services[0].equal());
  EXPECT_TRUE(services[1].equal());
  EXPECT_EQ(services[1].zk_providers, 2);
  EXPECT_EQ(services[1].zk_nodes, 4);
  std::string text = RenderParityText(services, 10);
  EXPECT_NE(text.find("2 services, 1 without parity"), std::string::npos) << text;

  // Counts that differ by a change in flight are no difference; a key of another writer is.
  ParityCounter flight({"/dubbo"}, 1);
  flight.CountZk("/dubbo/c/providers/new");  // created after the etcd snapshot was read
  flight.CountEtcd("/dubbo/d/providers/theirs");
  flight.CountForeign("/dubbo/d/providers/theirs");
  services = flight.Services();
  ASSERT_EQ(services.size(), 2u);
  EXPECT_EQ(services[0].service, "/dubbo/d");
  EXPECT_EQ(services[0].foreign, 1);
  EXPECT_FALSE(services[0].equal());
  EXPECT_EQ(services[1].zk_providers, 1);
  EXPECT_EQ(services[1].etcd_providers, 0);
  EXPECT_TRUE(services[1].equal());
}

TEST(Migration, OneStepAtATimeAndNothingLeavesDone) {
  EXPECT_TRUE(CheckTransition(Phase::kMirroring, Phase::kDual).ok());
  EXPECT_TRUE(CheckTransition(Phase::kDual, Phase::kMirroring).ok());
  EXPECT_TRUE(CheckTransition(Phase::kEtcdPrimary, Phase::kDone).ok());
  EXPECT_TRUE(CheckTransition(Phase::kEtcdPrimary, Phase::kDual).ok());
  EXPECT_FALSE(CheckTransition(Phase::kMirroring, Phase::kEtcdPrimary).ok());
  EXPECT_FALSE(CheckTransition(Phase::kDual, Phase::kDual).ok());
  absl::Status out = CheckTransition(Phase::kDone, Phase::kEtcdPrimary);
  EXPECT_TRUE(absl::IsFailedPrecondition(out));
  EXPECT_NE(out.message().find("point of no return"), std::string::npos);
  for (Phase p : {Phase::kMirroring, Phase::kDual, Phase::kEtcdPrimary, Phase::kDone}) {
    EXPECT_EQ(ParsePhase(PhaseName(p)), p);
  }
  EXPECT_EQ(ParsePhase("etcd_primary"), std::nullopt);
}

TEST(Migration, EachDirectionRunsInItsPhases) {
  MigrationRecord none;
  EXPECT_TRUE(AllowedToRun(none, "t", false).ok());  // phases not in use
  EXPECT_TRUE(AllowedToRun(none, "t", true).ok());
  MigrationRecord r;
  r.exists = true;
  const std::pair<Phase, std::pair<bool, bool>> want[] = {
      {Phase::kMirroring, {true, false}},
      {Phase::kDual, {true, true}},
      {Phase::kEtcdPrimary, {false, true}},
      {Phase::kDone, {false, false}},
  };
  for (const auto& [phase, runs] : want) {
    r.phase = phase;
    EXPECT_EQ(AllowedToRun(r, "t", false).ok(), runs.first) << PhaseName(phase);
    EXPECT_EQ(AllowedToRun(r, "t", true).ok(), runs.second) << PhaseName(phase);
  }
}

}  // namespace kvsync::zk2etcd
