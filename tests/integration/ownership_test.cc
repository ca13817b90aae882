// Ownership stores against real servers: the etcd mark backend through real txns, and the
// Redis backend across a Redis outage (queueing, flush on return, ordering per key).
#include "common/digest.h"
#include "etcd/client.h"
#include "gtest/gtest.h"
#include "ownership/store.h"
#include "redis/client.h"
#include "tests/harness/etcd_cluster.h"
#include "tests/harness/kvsync_util.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/wait.h"

namespace kvsync::ownership {
namespace {

using std::chrono::milliseconds;
using testing::RedisServer;
using testing::WaitFor;

constexpr milliseconds kDeadline(20000);

// Set members as seen by an independent connection.
std::vector<std::string> Members(const RedisServer& server, const std::string& set) {
  auto client = redis::Client::Connect(server.client_options());
  EXPECT_TRUE(client.ok()) << client.status();
  if (!client.ok()) return {};
  auto reply = (*client)->Command({"SMEMBERS", set});
  EXPECT_TRUE(reply.ok()) << reply.status();
  std::vector<std::string> out;
  if (reply.ok()) {
    for (const auto& e : reply->elements) out.push_back(e.str);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A put through the etcd store writes key and mark; a guarded delete in the same txn as a
// delete of a foreign key (no mark) removes only the owned key and its mark.
TEST(OwnershipEtcd, GuardedDeleteSparesForeignKeys) {
  auto cluster = testing::EtcdCluster::Start({});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto client = testing::ConnectEtcd((*cluster)->endpoints_csv());
  auto store = NewEtcdStore("/kvsync/meta/t/owned");

  etcd::TxnRequest put;
  store->AppendPut("/d/mine", "v", &put.success);
  ASSERT_TRUE(client->Txn(put).ok());
  ASSERT_TRUE(client->Put("/d/foreign", "theirs").ok());
  EXPECT_EQ(testing::DumpPrefix(client.get(), "/"),
            (std::map<std::string, std::string>{
                {"/d/foreign", "theirs"},
                {"/d/mine", "v"},
                {"/kvsync/meta/t/owned/" + common::DigestHex(common::KeyDigest("/d/mine")), ""}}));

  etcd::TxnRequest del;
  store->AppendDelete("/d/mine", &del.success);
  store->AppendDelete("/d/foreign", &del.success);
  auto resp = client->Txn(del);
  ASSERT_TRUE(resp.ok()) << resp.status();
  EXPECT_EQ(resp->nested_succeeded, (std::vector<bool>{true, false}));
  EXPECT_EQ(testing::DumpPrefix(client.get(), "/"),
            (std::map<std::string, std::string>{{"/d/foreign", "theirs"}}));
}

// Records and lookups while Redis is up; after Redis dies the store notices by itself, queues
// records and forgets (decided keys answer from the queue, others are unknown), and flushes
// the queue in per-key order when Redis is back.
TEST(OwnershipRedis, QueuesWhileDownAndFlushesOnReturn) {
  auto server = RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  auto store = NewRedisStore((*server)->client_options(), "t1");
  ASSERT_TRUE(store.ok()) << store.status();
  Store& s = **store;
  EXPECT_EQ(s.backend(), "redis");
  EXPECT_TRUE(s.available());
  const std::string set = "kvsync:t1:owned";

  s.RecordWrites({"/a", "/b", "/gone"});
  s.ForgetDeletes({"/gone"});
  EXPECT_EQ(s.Lookup({"/a", "/b", "/foreign", "/gone"}),
            (std::vector<Owner>{Owner::kOwned, Owner::kOwned, Owner::kNotOwned, Owner::kNotOwned}));
  EXPECT_EQ(Members(**server, set), (std::vector<std::string>{"/a", "/b"}));
  std::vector<etcd::Op> ops;
  s.AppendPut("/a", "v", &ops);
  s.AppendDelete("/a", &ops);
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(ops[1].type, etcd::Op::Type::kDelete);

  (*server)->Kill();
  ASSERT_TRUE(WaitFor([&] { return !s.available(); }, kDeadline));
  EXPECT_GT(s.errors(), 0);

  s.RecordWrites({"/c"});
  s.ForgetDeletes({"/b"});
  s.RecordWrites({"/d"});  // recorded then forgotten: ends forgotten
  s.ForgetDeletes({"/d"});
  s.ForgetDeletes({"/a"});  // forgotten then recorded: ends recorded
  s.RecordWrites({"/a"});
  EXPECT_EQ(s.Lookup({"/a", "/b", "/c", "/d", "/x"}),
            (std::vector<Owner>{Owner::kOwned, Owner::kNotOwned, Owner::kOwned, Owner::kNotOwned,
                                Owner::kUnknown}));
  EXPECT_EQ(s.pending(), 4);

  // The restarted server has no data (no persistence): what it holds afterwards is exactly
  // the flushed queue.
  ASSERT_TRUE((*server)->Restart().ok());
  ASSERT_TRUE(WaitFor([&] { return s.available(); }, kDeadline));
  EXPECT_EQ(s.pending(), 0);
  EXPECT_EQ(Members(**server, set), (std::vector<std::string>{"/a", "/c"}));
  EXPECT_EQ(s.Lookup({"/a", "/b", "/c", "/d"}),
            (std::vector<Owner>{Owner::kOwned, Owner::kNotOwned, Owner::kOwned, Owner::kNotOwned}));
}

// A Redis that is down at start yields a store in down mode that comes up when Redis does.
TEST(OwnershipRedis, StartsDownAndComesUp) {
  auto server = RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  (*server)->Stop();
  auto store = NewRedisStore((*server)->client_options(), "t2", "ns");
  ASSERT_TRUE(store.ok()) << store.status();
  Store& s = **store;
  EXPECT_FALSE(s.available());
  EXPECT_EQ(s.Lookup({"/k"}), (std::vector<Owner>{Owner::kUnknown}));
  s.RecordWrites({"/k"});
  EXPECT_EQ(s.Lookup({"/k"}), (std::vector<Owner>{Owner::kOwned}));

  ASSERT_TRUE((*server)->Restart().ok());
  ASSERT_TRUE(WaitFor([&] { return s.available(); }, kDeadline));
  EXPECT_EQ(Members(**server, "ns:t2:owned"), (std::vector<std::string>{"/k"}));
}

// Configuration mistakes fail at start instead of starting down.
TEST(OwnershipRedis, BadCredentialsFailAtStart) {
  testing::RedisServerOptions options;
  options.password = "right";
  auto server = RedisServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  redis::Options o = (*server)->client_options();
  o.password = "wrong";
  EXPECT_EQ(NewRedisStore(o, "t3").status().code(), absl::StatusCode::kPermissionDenied);
  o.addr = "no-port";
  EXPECT_EQ(NewRedisStore(o, "t3").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(NewRedisStore((*server)->client_options(), "t3").ok());
}

}  // namespace
}  // namespace kvsync::ownership
