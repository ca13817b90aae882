// Checks the harness against real servers: etcd clusters (plain, three members, TLS, auth),
// the fault proxy's modes, and the subprocess and wait helpers they are built on.
#include <signal.h>

#include <chrono>
#include <filesystem>

#include "etcd/client.h"
#include "gtest/gtest.h"
#include "tests/harness/etcd_cluster.h"
#include "tests/harness/fault_proxy.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/wait.h"

namespace kvsync::testing {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<etcd::Client> MakeClient(etcd::ClientOptions options) {
  auto client = etcd::Client::Create(std::move(options));
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? std::move(*client) : nullptr;
}

EtcdClusterOptions Cluster(const std::string& name, int members = 1) {
  EtcdClusterOptions options;
  options.name = name;
  options.members = members;
  return options;
}

etcd::ClientOptions ClientTo(std::vector<std::string> endpoints,
                             std::chrono::milliseconds request_timeout = 5s) {
  etcd::ClientOptions options;
  options.endpoints = std::move(endpoints);
  options.request_timeout = request_timeout;
  return options;
}

absl::StatusOr<std::string> Get(etcd::Client& client, const std::string& key) {
  etcd::RangeRequest request;
  request.key = key;
  auto response = client.Range(request);
  if (!response.ok()) return response.status();
  if (response->kvs.empty()) return absl::NotFoundError(key);
  return response->kvs[0].value;
}

// A child's exit code, signal death and log output are reported, and Stop ends a running child.
TEST(SubprocessTest, ReportsExitCodeSignalAndLog) {
  std::string dir = MakeTempDir("subprocess");
  auto done = Subprocess::Start({"sh", "-c", "echo out; echo err >&2; exit 3"}, dir + "/a.log");
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ((*done)->Wait(10s), 3);
  EXPECT_NE((*done)->LogTail().find("out\nerr\n"), std::string::npos) << (*done)->LogTail();
  EXPECT_NE((*done)->LogTail().find("=== the process has exited: code 3\n"), std::string::npos)
      << (*done)->LogTail();

  auto sleeper = Subprocess::Start({"sleep", "60"}, dir + "/b.log");
  ASSERT_TRUE(sleeper.ok()) << sleeper.status();
  EXPECT_TRUE((*sleeper)->Running());
  EXPECT_EQ((*sleeper)->LogTail().find("=== the process has exited"), std::string::npos);
  EXPECT_EQ((*sleeper)->Stop(5s), 128 + SIGTERM);

  auto run = RunCommand({"sh", "-c", "echo hello; echo oops >&2; exit 1"}, 10s);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->exit_code, 1);
  EXPECT_EQ(run->out, "hello\n");
  EXPECT_EQ(run->err, "oops\n");
  EXPECT_EQ(RunCommand({"sleep", "60"}, 100ms).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(Subprocess::Start({"/nonexistent/program"}, dir + "/c.log").status().code(),
            absl::StatusCode::kInternal);
  EXPECT_NE(FreePort(), FreePort());
  std::filesystem::remove_all(dir);
}

// A single-member cluster serves put/get through the client; a paused member times requests
// out and serves again once resumed.
TEST(EtcdClusterTest, SingleMemberServesPutGetAndPause) {
  auto cluster = EtcdCluster::Start(Cluster("single"));
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  EtcdCluster& c = **cluster;
  ASSERT_EQ(c.size(), 1);
  auto client = MakeClient(ClientTo(c.endpoints(), 1s));
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Connect().ok()) << c.LogTails();
  ASSERT_TRUE(client->Put("/k", "v1").ok()) << c.LogTails();
  EXPECT_EQ(Get(*client, "/k").value_or("<error>"), "v1");
  std::string out;
  ASSERT_TRUE(c.Etcdctl({"get", "/k", "--print-value-only"}, &out).ok());
  EXPECT_EQ(out, "v1\n");
  EXPECT_EQ(c.LeaderIndex().value_or(-1), 0);

  c.Pause(0);
  EXPECT_EQ(Get(*client, "/k").status().code(), absl::StatusCode::kDeadlineExceeded);
  c.Resume(0);
  EXPECT_TRUE(WaitFor([&] { return Get(*client, "/k").ok(); }, 10s)) << c.LogTails();
}

// Killing the leader of a three-member cluster elects another leader, writes succeed again,
// and the killed member rejoins after Restart.
TEST(EtcdClusterTest, KilledLeaderIsReplacedAndRestartedMemberRejoins) {
  auto cluster = EtcdCluster::Start(Cluster("three", 3));
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  EtcdCluster& c = **cluster;
  auto client = MakeClient(ClientTo(c.endpoints(), 2s));
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Put("/before", "1").ok()) << c.LogTails();
  auto leader = c.LeaderIndex();
  ASSERT_TRUE(leader.ok()) << leader.status();

  c.Kill(*leader);
  int new_leader = -1;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto l = c.LeaderIndex();
        new_leader = l.value_or(-1);
        return l.ok() && *l != *leader;
      },
      15s))
      << c.LogTails();
  EXPECT_TRUE(WaitFor([&] { return client->Put("/after", "2").ok(); }, 10s)) << c.LogTails();

  ASSERT_TRUE(c.Restart(*leader).ok()) << c.LogTails();
  auto member_client = MakeClient(ClientTo({c.endpoint(*leader)}));
  ASSERT_NE(member_client, nullptr);
  EXPECT_TRUE(WaitFor([&] { return Get(*member_client, "/after").value_or("") == "2"; }, 10s));
}

// Through the fault proxy: pass forwards, cut fails requests fast with Unavailable, pass
// recovers, blackhole makes requests time out, and a 50 ms delay still delivers.
TEST(FaultProxyTest, PassCutBlackholeAndDelay) {
  auto cluster = EtcdCluster::Start(Cluster("proxied"));
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto proxy = FaultProxy::Start((*cluster)->endpoint(0));
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  FaultProxy& p = **proxy;
  // A long deadline, so that failing with Unavailable shows the cut was noticed at once.
  auto client = MakeClient(ClientTo({p.address()}, 20s));
  auto short_client = MakeClient(ClientTo({p.address()}, 500ms));
  ASSERT_NE(client, nullptr);
  ASSERT_NE(short_client, nullptr);

  ASSERT_TRUE(client->Put("/p", "1").ok());
  EXPECT_EQ(Get(*client, "/p").value_or(""), "1");
  EXPECT_EQ(Get(*short_client, "/p").value_or(""), "1");
  EXPECT_GT(p.bytes_forwarded(), 0u);
  EXPECT_EQ(p.connections(), 2);

  p.SetMode(FaultProxy::Mode::kCut);
  EXPECT_EQ(p.connections(), 0);
  EXPECT_EQ(Get(*client, "/p").status().code(), absl::StatusCode::kUnavailable);

  p.SetMode(FaultProxy::Mode::kPass);
  EXPECT_TRUE(WaitFor([&] { return Get(*client, "/p").ok(); }, 10s));
  EXPECT_TRUE(WaitFor([&] { return Get(*short_client, "/p").ok(); }, 10s));

  p.SetMode(FaultProxy::Mode::kBlackhole);
  uint64_t before = p.bytes_forwarded();
  EXPECT_EQ(Get(*short_client, "/p").status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(p.bytes_forwarded(), before);

  p.SetMode(FaultProxy::Mode::kPass);
  EXPECT_TRUE(WaitFor([&] { return Get(*short_client, "/p").ok(); }, 10s));

  p.SetDelay(50ms);
  EXPECT_TRUE(WaitFor([&] { return client->Put("/p", "2").ok(); }, 10s));
  EXPECT_EQ(Get(*short_client, "/p").value_or(""), "2");
}

// A TLS cluster that requires client certificates serves a client presenting the generated
// certificate.
TEST(EtcdClusterTest, TlsClusterAcceptsClientCertificate) {
  EtcdClusterOptions options = Cluster("tls");
  options.tls = true;
  auto cluster = EtcdCluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  EtcdCluster& c = **cluster;
  EXPECT_EQ(c.endpoint(0).rfind("https://", 0), 0u);
  etcd::ClientOptions tls = ClientTo(c.endpoints());
  tls.ca_file = c.ca_file();
  tls.cert_file = c.client_cert_file();
  tls.key_file = c.client_key_file();
  auto client = MakeClient(tls);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Connect().ok()) << c.LogTails();
  ASSERT_TRUE(client->Put("/tls", "yes").ok());
  EXPECT_EQ(Get(*client, "/tls").value_or(""), "yes");
}

// With auth enabled, root with the right password can write and a wrong password fails at
// Connect with PermissionDenied.
TEST(EtcdClusterTest, AuthAcceptsRootAndRejectsWrongPassword) {
  EtcdClusterOptions options = Cluster("auth");
  options.auth_root_password = "s3cret";
  auto cluster = EtcdCluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  EtcdCluster& c = **cluster;
  etcd::ClientOptions root = ClientTo(c.endpoints());
  root.user = "root";
  root.password = "s3cret";
  auto client = MakeClient(root);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Connect().ok()) << c.LogTails();
  ASSERT_TRUE(client->Put("/auth", "ok").ok());
  EXPECT_EQ(Get(*client, "/auth").value_or(""), "ok");

  root.password = "wrong";
  auto wrong = MakeClient(root);
  ASSERT_NE(wrong, nullptr);
  EXPECT_EQ(wrong->Connect().status().code(), absl::StatusCode::kPermissionDenied);
  auto anonymous = MakeClient(ClientTo(c.endpoints()));
  ASSERT_NE(anonymous, nullptr);
  EXPECT_FALSE(anonymous->Put("/auth", "no").ok());
}

}  // namespace
}  // namespace kvsync::testing
