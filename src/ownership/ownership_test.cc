#include "common/digest.h"
#include "gtest/gtest.h"
#include "ownership/store.h"

namespace kvsync::ownership {
namespace {

// The etcd store puts data and mark together and deletes through one guarded nested txn.
TEST(EtcdStore, OpsCarryTheMark) {
  auto store = NewEtcdStore("/kvsync/meta/t/owned");
  const std::string kMarkAB =
      "/kvsync/meta/t/owned/" + common::DigestHex(common::KeyDigest("/a/b"));
  EXPECT_EQ(store->backend(), "etcd");
  EXPECT_TRUE(store->available());
  EXPECT_EQ(store->MarkKey("/a/b"), kMarkAB);

  std::vector<etcd::Op> ops;
  store->AppendPut("/a/b", "v", &ops);
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(ops[0].type, etcd::Op::Type::kPut);
  EXPECT_EQ(ops[0].key, "/a/b");
  EXPECT_EQ(ops[0].value, "v");
  EXPECT_EQ(ops[1].type, etcd::Op::Type::kPut);
  EXPECT_EQ(ops[1].key, kMarkAB);
  EXPECT_EQ(ops[1].value, "");

  ops.clear();
  store->AppendDelete("/a/b", &ops);
  ASSERT_EQ(ops.size(), 1u);
  ASSERT_EQ(ops[0].type, etcd::Op::Type::kTxn);
  const etcd::TxnRequest& txn = *ops[0].txn;
  ASSERT_EQ(txn.compares.size(), 1u);
  EXPECT_EQ(txn.compares[0].key, kMarkAB);
  EXPECT_EQ(txn.compares[0].target, etcd::Compare::Target::kVersion);
  EXPECT_EQ(txn.compares[0].result, etcd::Compare::Result::kGreater);
  EXPECT_EQ(txn.compares[0].number, 0);
  ASSERT_EQ(txn.success.size(), 2u);
  EXPECT_EQ(txn.success[0].type, etcd::Op::Type::kDelete);
  EXPECT_EQ(txn.success[0].key, "/a/b");
  EXPECT_EQ(txn.success[1].key, kMarkAB);
  EXPECT_TRUE(txn.failure.empty());

  store->RecordWrites({"/a/b"});
  EXPECT_EQ(store->Lookup({"/a/b", "/x"}), (std::vector<Owner>{Owner::kOwned, Owner::kOwned}));
  EXPECT_EQ(store->pending(), 0);
}

// The none store owns everything and writes plain ops.
TEST(NoneStore, OwnsEverything) {
  auto store = NewNoneStore();
  EXPECT_EQ(store->backend(), "none");
  EXPECT_TRUE(store->available());
  EXPECT_EQ(store->MarkKey("/a"), "");
  std::vector<etcd::Op> ops;
  store->AppendPut("/a", "v", &ops);
  store->AppendDelete("/b", &ops);
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(ops[0].type, etcd::Op::Type::kPut);
  EXPECT_EQ(ops[1].type, etcd::Op::Type::kDelete);
  EXPECT_EQ(ops[1].key, "/b");
  EXPECT_EQ(store->Lookup({"/a", "/b"}), (std::vector<Owner>{Owner::kOwned, Owner::kOwned}));
}

}  // namespace
}  // namespace kvsync::ownership
