#include <map>

#include "gtest/gtest.h"
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

}  // namespace
}  // namespace kvsync::mirror
