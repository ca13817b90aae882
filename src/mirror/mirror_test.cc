#include <map>

#include "gtest/gtest.h"
#include "mirror/checkpoint.h"
#include "mirror/key_mapper.h"
#include "mirror/merge.h"
#include "mirror/txn_batcher.h"

namespace kvsync::mirror {
namespace {

etcd::KeyValue Kv(std::string k, std::string v) {
  etcd::KeyValue kv;
  kv.key = std::move(k);
  kv.value = std::move(v);
  return kv;
}

// Prefix rewrite maps both ways; excluded and meta keys are never mapped on either side.
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

// Checkpoints round-trip; foreign values are refused.
TEST(Checkpoint, RoundTripsAndRejectsForeignValues) {
  Checkpoint cp{12345, 0xdeadbeefcafe, true};
  auto back = DecodeCheckpoint(EncodeCheckpoint(cp));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->revision, 12345);
  EXPECT_EQ(back->source_cluster_id, 0xdeadbeefcafeu);
  EXPECT_TRUE(back->full_sync_pending);
  EXPECT_FALSE(DecodeCheckpoint("hello").ok());
  EXPECT_EQ(CheckpointKey("/kvsync/meta/", "t"), "/kvsync/meta/t/checkpoint");
}

// The merge-join writes exactly the differences: missing and different keys are put, extra
// destination keys deleted, excluded and meta keys untouched.
TEST(MergeDiff, EmitsOnlyDifferences) {
  KeyMapper m("/s/", "/d/", {"/s/ex/"}, "/kvsync/meta/");
  VectorCursor src({Kv("/s/a", "1"), Kv("/s/b", "2"), Kv("/s/ex/1", "x"), Kv("/s/d", "4")});
  VectorCursor dst(
      {Kv("/d/a", "1"), Kv("/d/b", "old"), Kv("/d/c", "3"), Kv("/d/ex/2", "y"), Kv("/d/z", "9")});
  std::map<std::string, std::string> puts;
  std::vector<std::string> deletes;
  DiffCounts counts;
  auto emit = [&](etcd::Op op) {
    if (op.type == etcd::Op::Type::kPut) {
      puts[op.key] = op.value;
    } else {
      deletes.push_back(op.key);
    }
    return absl::OkStatus();
  };
  ASSERT_TRUE(MergeDiff(&src, &dst, m, emit, &counts).ok());
  EXPECT_EQ(puts, (std::map<std::string, std::string>{{"/d/b", "2"}, {"/d/d", "4"}}));
  EXPECT_EQ(deletes, (std::vector<std::string>{"/d/c", "/d/z"}));
  EXPECT_EQ(counts.dst_miss, 1);
  EXPECT_EQ(counts.mismatch, 1);
  EXPECT_EQ(counts.src_miss, 2);
  EXPECT_EQ(counts.source_keys, 3);
}

}  // namespace
}  // namespace kvsync::mirror
