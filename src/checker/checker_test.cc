#include <map>

#include "checker/checkpoint.h"
#include "checker/dr_records.h"
#include "checker/key_mapper.h"
#include "checker/merge.h"
#include "gtest/gtest.h"

namespace kvsync::checker {
namespace {

etcd::KeyValue Kv(std::string k, std::string v) {
  etcd::KeyValue kv;
  kv.key = std::move(k);
  kv.value = std::move(v);
  return kv;
}

// Checkpoints round-trip with everything that binds them (scope, anchor with a binary key);
// foreign or malformed values are refused.
TEST(Checkpoint, RoundTripsAndRejectsForeignValues) {
  Checkpoint cp;
  cp.revision = 12345;
  cp.source_cluster_id = 0xdeadbeefcafe;
  cp.full_sync_pending = true;
  cp.scope = ScopeDigest("/a/", "/b/", {"/a/x/"});
  cp.anchor = HistoryAnchor{std::string("/a/\xff\x00k", 6), 12000, 11000, 12300};
  auto back = DecodeCheckpoint(EncodeCheckpoint(cp));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->revision, 12345);
  EXPECT_EQ(back->source_cluster_id, 0xdeadbeefcafeu);
  EXPECT_TRUE(back->full_sync_pending);
  EXPECT_EQ(back->format, kCheckpointFormat);
  EXPECT_EQ(back->scope, cp.scope);
  ASSERT_TRUE(back->anchor.has_value());
  EXPECT_EQ(*back->anchor, *cp.anchor);
  EXPECT_FALSE(DecodeCheckpoint("hello").ok());
  EXPECT_FALSE(DecodeCheckpoint(R"({"revision": -5})").ok());
  EXPECT_FALSE(DecodeCheckpoint(R"({"revision": "7"})").ok());
  EXPECT_FALSE(DecodeCheckpoint(
                   R"({"revision": 9, "anchor": {"key_hex": "zz", "mod_revision": 1,
                       "create_revision": 1, "at": 1}})")
                   .ok());
  EXPECT_EQ(CheckpointKey("/kvsync/meta/", "t"), "/kvsync/meta/t/checkpoint");
}

// A checkpoint written by hand or by an older release reads as format 1 without scope or
// anchor, which the engine never resumes from.
TEST(Checkpoint, LegacyValuesCarryNoProof) {
  auto legacy = DecodeCheckpoint(R"({"revision": 25})");
  ASSERT_TRUE(legacy.ok());
  EXPECT_EQ(legacy->format, 1);
  EXPECT_TRUE(legacy->scope.empty());
  EXPECT_FALSE(legacy->anchor.has_value());
  EXPECT_EQ(legacy->source_cluster_id, 0u);
}

// Scope digests differ whenever prefix, destination prefix or excludes differ, and ignore the
// order of excludes.
TEST(Checkpoint, ScopeDigestNamesTheScope) {
  std::string base = ScopeDigest("/a/b/", "/a/b/", {});
  EXPECT_NE(base, ScopeDigest("/a-b/", "/a-b/", {}));
  EXPECT_NE(base, ScopeDigest("/a/b/", "/c/", {}));
  EXPECT_NE(base, ScopeDigest("/a/b/", "/a/b/", {"/a/b/x/"}));
  EXPECT_NE(ScopeDigest("/a", "/ab", {}), ScopeDigest("/ab", "/a", {}));
  EXPECT_EQ(ScopeDigest("/a/", "/a/", {"/a/x/", "/a/y/"}),
            ScopeDigest("/a/", "/a/", {"/a/y/", "/a/x/"}));
}

// Prefix rewrite maps both ways; excluded and meta keys are never mapped on either side.
TEST(DrRecords, RoundTripAndRejectForeignValues) {
  Freshness f;
  f.applied_revision = 41;
  f.fresh_as_of_ms = 1700000000123;
  f.source_head = 45;
  f.source_head_ms = 1700000000456;
  f.source_cluster_id = 0xabcdef0123456789ULL;
  f.writer = "a-1";
  f.ha = true;
  f.check_ms = 5;
  f.check_differences = 2;
  auto fd = DecodeFreshness(EncodeFreshness(f));
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_EQ(fd->applied_revision, 41);
  EXPECT_EQ(fd->fresh_as_of_ms, 1700000000123);
  EXPECT_EQ(fd->source_head, 45);
  EXPECT_EQ(fd->source_cluster_id, 0xabcdef0123456789ULL);
  EXPECT_EQ(fd->writer, "a-1");
  EXPECT_TRUE(fd->ha);
  EXPECT_EQ(fd->check_differences, 2);

  RoleRecord r;
  r.mode = "failover";
  r.by = "ops@dr";
  r.promoted_ms = 1700000000000;
  r.applied_revision = 41;
  r.source_head = 45;
  auto rd = DecodeRole(EncodeRole(r));
  ASSERT_TRUE(rd.ok()) << rd.status();
  EXPECT_EQ(rd->role, "promoted");
  EXPECT_EQ(rd->mode, "failover");
  EXPECT_EQ(rd->applied_revision, 41);
  EXPECT_EQ(rd->source_head, 45);
  EXPECT_EQ(DescribePromotion(*rd), "promoted by ops@dr at 2023-11-14T22:13:20.000Z (failover)");

  for (const char* bad : {"", "x", "{}", R"({"applied_revision":-1})", "[1]"}) {
    EXPECT_FALSE(DecodeFreshness(bad).ok()) << bad;
    EXPECT_FALSE(DecodeRole(bad).ok()) << bad;
  }
  EXPECT_EQ(RoleKey("/kvsync/meta/", "t"), "/kvsync/meta/t/role");
  EXPECT_EQ(FreshnessKey("/kvsync/meta/", "t"), "/kvsync/meta/t/freshness");
  etcd::Compare c = NotPromoted("/r");
  EXPECT_EQ(c.target, etcd::Compare::Target::kVersion);
  EXPECT_EQ(c.number, 0);
}

TEST(KeyMapper, RewritesAndProtects) {
  KeyMapper m("/a/", "/b/", {"/a/skip/"}, "/kvsync/meta/");
  EXPECT_EQ(m.ToDestination("/a/x"), "/b/x");
  EXPECT_EQ(m.ToSource("/b/x"), "/a/x");
  EXPECT_FALSE(m.ToDestination("/a/skip/1").has_value());
  EXPECT_FALSE(m.ToSource("/b/skip/1").has_value());
  EXPECT_FALSE(m.ToDestination("/other").has_value());
  KeyMapper root("/", "/", {}, "/kvsync/meta/");
  EXPECT_FALSE(root.ToDestination("/kvsync/meta/t/checkpoint").has_value());
  EXPECT_FALSE(root.ToSource("/kvsync/meta/t/checkpoint").has_value());
  // A rewrite that would land a source key inside the meta prefix is refused too.
  KeyMapper into("/x/", "/", {}, "/kvsync/meta/");
  EXPECT_FALSE(into.ToDestination("/x/kvsync/meta/t/checkpoint").has_value());
}

// The merge-join writes exactly the differences: missing and different keys are put, extra
// destination keys deleted, excluded and meta keys untouched.
TEST(MergeJoin, ReportsEveryKindOfDifference) {
  KeyMapper m("/s/", "/d/", {"/s/ex/"}, "/kvsync/meta/");
  VectorCursor src({Kv("/s/a", "1"), Kv("/s/b", "2"), Kv("/s/ex/1", "x"), Kv("/s/d", "4")});
  VectorCursor dst(
      {Kv("/d/a", "1"), Kv("/d/b", "old"), Kv("/d/c", "3"), Kv("/d/ex/2", "y"), Kv("/d/z", "9")});
  std::map<std::string, std::string> puts;
  std::vector<std::string> deletes;
  DiffCounts counts;
  auto on_diff = [&](const Difference& d) {
    if (d.kind == DiffKind::kSrcMiss) {
      deletes.push_back(d.dst_key);
    } else {
      puts[d.dst_key] = d.src->value;
    }
    return absl::OkStatus();
  };
  ASSERT_TRUE(MergeJoin(&src, &dst, m, false, false, on_diff, &counts).ok());
  EXPECT_EQ(puts, (std::map<std::string, std::string>{{"/d/b", "2"}, {"/d/d", "4"}}));
  EXPECT_EQ(deletes, (std::vector<std::string>{"/d/c", "/d/z"}));
  EXPECT_EQ(counts.dst_miss, 1);
  EXPECT_EQ(counts.mismatch, 1);
  EXPECT_EQ(counts.src_miss, 2);
  EXPECT_EQ(counts.source_keys, 3);
}

// Presence mode reports the same dst miss and src miss as full mode, and no mismatch.
TEST(MergeJoin, KeysOnlyAgreesOnPresence) {
  KeyMapper m("/s/", "/s/", {}, "/kvsync/meta/");
  auto run = [&](bool keys_only) {
    VectorCursor src({Kv("/s/a", "1"), Kv("/s/b", "2"), Kv("/s/c", "3")});
    VectorCursor dst({Kv("/s/b", "x"), Kv("/s/c", "3"), Kv("/s/d", "4")});
    DiffCounts counts;
    EXPECT_TRUE(MergeJoin(
                    &src, &dst, m, keys_only, false,
                    [](const Difference&) { return absl::OkStatus(); }, &counts)
                    .ok());
    return counts;
  };
  DiffCounts full = run(false);
  DiffCounts presence = run(true);
  EXPECT_EQ(full.dst_miss, presence.dst_miss);
  EXPECT_EQ(full.src_miss, presence.src_miss);
  EXPECT_EQ(full.mismatch, 1);
  EXPECT_EQ(presence.mismatch, 0);
}

// Lease attachment is compared only when asked: the same value on another lease (or none) is a
// lease mismatch; a different value is a mismatch whatever the leases.
TEST(MergeJoin, LeaseMismatchOnlyWhenComparingLeases) {
  KeyMapper m("/s/", "/s/", {}, "/kvsync/meta/");
  auto kv = [](std::string k, std::string v, int64_t lease) {
    etcd::KeyValue out = Kv(std::move(k), std::move(v));
    out.lease = lease;
    return out;
  };
  auto run = [&](bool compare_leases, std::vector<DiffKind>* kinds) {
    VectorCursor src(
        {kv("/s/a", "1", 5), kv("/s/b", "2", 0), kv("/s/c", "3", 7), kv("/s/d", "4", 8)});
    VectorCursor dst(
        {kv("/s/a", "1", 5), kv("/s/b", "2", 9), kv("/s/c", "x", 0), kv("/s/d", "4", 0)});
    DiffCounts counts;
    EXPECT_TRUE(MergeJoin(
                    &src, &dst, m, false, compare_leases,
                    [&](const Difference& d) {
                      kinds->push_back(d.kind);
                      return absl::OkStatus();
                    },
                    &counts)
                    .ok());
    return counts;
  };
  std::vector<DiffKind> kinds;
  DiffCounts with = run(true, &kinds);
  EXPECT_EQ(with.lease_mismatch, 2);  // b (9 instead of none), d (none instead of 8)
  EXPECT_EQ(with.mismatch, 1);        // c
  EXPECT_EQ(with.total(), 3);
  EXPECT_EQ(kinds, (std::vector<DiffKind>{DiffKind::kLeaseMismatch, DiffKind::kMismatch,
                                          DiffKind::kLeaseMismatch}));
  kinds.clear();
  DiffCounts without = run(false, &kinds);
  EXPECT_EQ(without.lease_mismatch, 0);
  EXPECT_EQ(without.total(), 1);
}

}  // namespace
}  // namespace kvsync::checker
