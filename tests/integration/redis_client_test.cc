// The Redis client against a real redis-server 7.0: commands and reply types, pipelines,
// AUTH, SELECT, TLS, and how network failures surface.
#include "gtest/gtest.h"
#include "redis/client.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/wait.h"

namespace kvsync::redis {
namespace {

using std::chrono::milliseconds;
using testing::RedisServer;
using testing::RedisServerOptions;

std::unique_ptr<RedisServer> StartServer(RedisServerOptions options = {}) {
  auto server = RedisServer::Start(std::move(options));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(*server) : nullptr;
}

std::unique_ptr<Client> MustConnect(const Options& options) {
  auto client = Client::Connect(options);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? std::move(*client) : nullptr;
}

// Commands return each reply type: status, bulk, nil, integer, arrays; error replies become
// FailedPrecondition and leave the connection usable.
TEST(RedisClient, CommandsAndReplyTypes) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto client = MustConnect(server->client_options());
  ASSERT_NE(client, nullptr);

  auto set = client->Command({"SET", "k", std::string("v\r\n\0x", 5)});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->type, Reply::Type::kStatus);
  EXPECT_EQ(set->str, "OK");
  auto get = client->Command({"GET", "k"});
  ASSERT_TRUE(get.ok()) << get.status();
  EXPECT_EQ(get->type, Reply::Type::kString);
  EXPECT_EQ(get->str, std::string("v\r\n\0x", 5));
  auto missing = client->Command({"GET", "absent"});
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->type, Reply::Type::kNil);
  auto added = client->Command({"SADD", "s", "a", "b", "c"});
  ASSERT_TRUE(added.ok());
  EXPECT_EQ(added->type, Reply::Type::kInteger);
  EXPECT_EQ(added->integer, 3);
  auto members = client->Command({"SMISMEMBER", "s", "a", "x", "c"});
  ASSERT_TRUE(members.ok()) << members.status();
  ASSERT_EQ(members->type, Reply::Type::kArray);
  ASSERT_EQ(members->elements.size(), 3u);
  EXPECT_EQ(members->elements[0].integer, 1);
  EXPECT_EQ(members->elements[1].integer, 0);
  EXPECT_EQ(members->elements[2].integer, 1);
  auto mget = client->Command({"MGET", "k", "absent"});
  ASSERT_TRUE(mget.ok());
  ASSERT_EQ(mget->elements.size(), 2u);
  EXPECT_EQ(mget->elements[1].type, Reply::Type::kNil);
  auto empty = client->Command({"SMEMBERS", "nothing"});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->type, Reply::Type::kArray);
  EXPECT_TRUE(empty->elements.empty());

  auto wrong = client->Command({"INCR", "s"});
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(wrong.status().message().find("WRONGTYPE"), std::string::npos) << wrong.status();
  EXPECT_FALSE(client->broken());
  EXPECT_TRUE(client->Command({"PING"}).ok());
}

// A pipeline returns one reply per command in order, error replies included in place, and
// large values cross many reads.
TEST(RedisClient, PipelineKeepsOrder) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto client = MustConnect(server->client_options());
  ASSERT_NE(client, nullptr);
  std::vector<std::vector<std::string>> commands;
  for (int i = 0; i < 500; ++i) commands.push_back({"SADD", "set", "m" + std::to_string(i)});
  commands.push_back({"SCARD", "set"});
  commands.push_back({"NOSUCHCOMMAND"});
  commands.push_back({"SET", "big", std::string(3 << 20, 'x')});
  commands.push_back({"GET", "big"});
  auto replies = client->Pipeline(commands);
  ASSERT_TRUE(replies.ok()) << replies.status();
  ASSERT_EQ(replies->size(), commands.size());
  EXPECT_EQ((*replies)[0].integer, 1);
  EXPECT_EQ((*replies)[500].integer, 500);
  EXPECT_EQ((*replies)[501].type, Reply::Type::kError);
  EXPECT_EQ((*replies)[503].str.size(), size_t{3} << 20);
}

// The right password connects; a wrong or missing one is PermissionDenied.
TEST(RedisClient, PasswordAuth) {
  RedisServerOptions options;
  options.password = "s3cret";
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  Options o = server->client_options();
  auto ok = MustConnect(o);
  ASSERT_NE(ok, nullptr);
  EXPECT_TRUE(ok->Command({"SET", "a", "1"}).ok());

  o.password = "wrong";
  auto wrong = Client::Connect(o);
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kPermissionDenied) << wrong.status();
  EXPECT_EQ(wrong.status().message().find("wrong"), std::string::npos) << "password leaked";
  o.password.clear();
  auto none = Client::Connect(o);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kPermissionDenied) << none.status();
  o.password = "s3cret";
  o.username = "default";
  EXPECT_NE(MustConnect(o), nullptr);
}

// SELECT isolates databases.
TEST(RedisClient, DbSelectionIsolates) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  Options o = server->client_options();
  auto db0 = MustConnect(o);
  o.db = 3;
  auto db3 = MustConnect(o);
  ASSERT_NE(db0, nullptr);
  ASSERT_NE(db3, nullptr);
  ASSERT_TRUE(db3->Command({"SET", "only3", "v"}).ok());
  EXPECT_EQ(db0->Command({"GET", "only3"})->type, Reply::Type::kNil);
  EXPECT_EQ(db3->Command({"GET", "only3"})->str, "v");
  o.db = 999;
  auto bad = Client::Connect(o);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << bad.status();
}

// TLS works with the server's CA; another CA fails the handshake with a clear message.
TEST(RedisClient, TlsVerifiesTheServer) {
  RedisServerOptions options;
  options.tls = true;
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  Options o = server->client_options();
  auto client = MustConnect(o);
  ASSERT_NE(client, nullptr);
  EXPECT_TRUE(client->Command({"SET", "t", "1"}).ok());
  EXPECT_EQ(client->Command({"GET", "t"})->str, "1");

  std::string other_ca = server->temp_dir() + "/other-ca.crt";
  auto made = testing::RunCommand(
      {"openssl", "req", "-x509", "-new", "-nodes", "-days", "1", "-newkey", "ec", "-pkeyopt",
       "ec_paramgen_curve:prime256v1", "-subj", "/CN=other-ca", "-keyout",
       server->temp_dir() + "/other-ca.key", "-out", other_ca},
      milliseconds(30000));
  ASSERT_TRUE(made.ok() && made->exit_code == 0) << (made.ok() ? made->err : "");
  o.ca_file = other_ca;
  auto untrusted = Client::Connect(o);
  EXPECT_EQ(untrusted.status().code(), absl::StatusCode::kUnavailable) << untrusted.status();
  EXPECT_NE(untrusted.status().message().find("certificate"), std::string::npos)
      << untrusted.status();
  EXPECT_NE(untrusted.status().message().find(server->addr()), std::string::npos)
      << untrusted.status();

  o.insecure_skip_verify = true;
  EXPECT_NE(MustConnect(o), nullptr);

  // Plain TCP against the TLS port does not hang past the deadline.
  Options plain = server->client_options();
  plain.tls = false;
  plain.ca_file.clear();
  plain.io_timeout = milliseconds(500);
  auto mismatch = Client::Connect(plain);
  EXPECT_FALSE(mismatch.ok());
}

// A refused connection is Unavailable and names the address.
TEST(RedisClient, ConnectionRefusedIsUnavailable) {
  Options o;
  o.addr = "127.0.0.1:" + std::to_string(testing::FreePort());
  auto client = Client::Connect(o);
  EXPECT_EQ(client.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(client.status().message().find(o.addr), std::string::npos) << client.status();
}

// When the server dies, the next command fails with Unavailable and marks the connection
// broken; later calls fail at once.
TEST(RedisClient, ServerKillBreaksConnection) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  auto client = MustConnect(server->client_options());
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Command({"PING"}).ok());
  server->Kill();
  auto after = client->Command({"PING"});
  EXPECT_EQ(after.status().code(), absl::StatusCode::kUnavailable) << after.status();
  EXPECT_TRUE(client->broken());
  EXPECT_EQ(client->Pipeline({{"PING"}}).status().code(), absl::StatusCode::kUnavailable);

  ASSERT_TRUE(server->Restart().ok());
  auto fresh = MustConnect(server->client_options());
  ASSERT_NE(fresh, nullptr);
  EXPECT_TRUE(fresh->Command({"PING"}).ok());
}

}  // namespace
}  // namespace kvsync::redis
