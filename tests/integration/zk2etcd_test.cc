// zk2etcd against real ZooKeeper 3.8, etcd and Redis processes: a Dubbo-like tree is synced
// and followed (creates, deletes, data changes, subtree deletes), excludes and other writers'
// keys are left alone with both ownership backends, Redis outages defer deletes, ZooKeeper
// restarts and session expiry are reconciled, lost changes are repaired by the periodic full
// sync in two rounds, kill -9 and HA takeover lose nothing, and bad input fails clearly.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/integration/zk_fixture.h"

namespace kvsync {
namespace {

// Runs a ZooKeeper four-letter command ("mntr") and returns the answer.
std::string FourLetter(int port, const std::string& cmd) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      write(fd, cmd.data(), cmd.size()) == static_cast<ssize_t>(cmd.size())) {
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

// Creates, deletes, data changes and subtree deletes propagate; excluded subtrees, a sibling
// prefix (/dubbo2) and keys of other writers are left alone.
TEST_F(Zk2EtcdTest, SyncsDubboTreeAndFollowsChanges) {
  BuildDubbo(4, 25);
  ASSERT_TRUE(zk_->CreateAll("/dubbo/svc0/skip/inner", "x").ok());
  ASSERT_TRUE(zk_->CreateAll("/dubbo2/other", "y").ok());
  ASSERT_TRUE(etcd_->Put("/dubbo/written-by-someone-else", "keep").ok());
  ASSERT_TRUE(etcd_->Put("/dubbo/svc0/skip/etcd-only", "keep").ok());
  auto kvsync = StartKvsync({"--zk-exclude-prefix", "/dubbo/svc0/skip"});
  KvMap extra = {{"/dubbo/written-by-someone-else", "keep"},
                 {"/dubbo/svc0/skip/etcd-only", "keep"}};
  ExpectSynced(kvsync.get(), extra, "/dubbo/svc0/skip");

  // Creates (a provider, a whole new service), a data change, a delete, a subtree delete.
  ASSERT_TRUE(zk_->Create("/dubbo/svc2/providers/" + ProviderName(2, 999), "", true).ok());
  ASSERT_TRUE(zk_->CreateAll("/dubbo/svc9/providers/" + ProviderName(9, 1), "new").ok());
  ASSERT_TRUE(zk_->Set("/dubbo/svc3/configurators", "weight=50").ok());
  ASSERT_TRUE(zk_->Delete("/dubbo/svc3/providers/" + ProviderName(3, 7)).ok());
  ASSERT_TRUE(zk_->DeleteAll("/dubbo/svc1").ok());
  ASSERT_TRUE(zk_->Create("/dubbo/svc0/skip/late", "z").ok());
  ExpectSynced(kvsync.get(), extra, "/dubbo/svc0/skip");
  EXPECT_EQ(etcd_->Range({.key = "/dubbo/svc3/configurators"})->kvs[0].value, "weight=50");
  EXPECT_TRUE(EtcdDump("/dubbo2").empty());
  EXPECT_TRUE(EtcdDump("/dubbo/svc1").empty());
  EXPECT_EQ(EtcdDump("/dubbo/svc0/skip").size(), 1u);  // only the etcd-only key
  // The subtree delete's guarded deletes (nested txns) never overflow etcd's --max-txn-ops.
  EXPECT_EQ(kvsync->LogTail(200000).find("too large"), std::string::npos);
  double watched = static_cast<double>(ZkDump("/dubbo", "/dubbo/svc0/skip").size());
  EXPECT_TRUE(WaitFor([&] { return Metric(Label("kvsync_zk2etcd_znodes_watched")) == watched; },
                      seconds(10)))
      << watched;
  EXPECT_EQ(Metric(Label("kvsync_zk2etcd_session_state", "state=\"connected\"")), 1.0);
}

// Redis ownership: kvsync's keys are recorded in the task's set; a key of another writer is
// never deleted; during a Redis outage syncing goes on, deletes of keys whose ownership is
// unknown wait, and everything resumes when Redis returns.
TEST_F(Zk2EtcdTest, RedisOwnershipSurvivesAnOutage) {
  // Redis keeps its data across the outage (append-only file), as a production Redis would.
  auto r = testing::RedisServer::Start(
      {.extra_flags = {"--appendonly", "yes", "--appendfsync", "always"}});
  ASSERT_TRUE(r.ok()) << r.status();
  auto redis_server = std::move(*r);
  BuildDubbo(2, 10);
  ASSERT_TRUE(etcd_->Put("/dubbo/svc0/providers/foreign", "keep").ok());
  auto kvsync = StartKvsync(
      {"--ownership", "redis", "--redis-addr", redis_server->addr(), "--fullsync-interval", "1s"});
  KvMap extra = {{"/dubbo/svc0/providers/foreign", "keep"}};
  ExpectSynced(kvsync.get(), extra);
  auto redis = redis::Client::Connect({.addr = redis_server->addr()});
  ASSERT_TRUE(redis.ok()) << redis.status();
  std::string set = absl::StrCat("kvsync:", kTask, ":owned");
  std::string owned_key = "/dubbo/svc1/providers/" + ProviderName(1, 3);
  EXPECT_EQ((*redis)->Command({"SISMEMBER", set, owned_key})->integer, 1);
  EXPECT_EQ((*redis)->Command({"SISMEMBER", set, "/dubbo/svc0/providers/foreign"})->integer, 0);

  redis_server->Kill();
  ASSERT_TRUE(WaitFor([&] { return Metric(Label("kvsync_zk2etcd_ownership_available")) == 0.0; },
                      seconds(30)))
      << kvsync->LogTail();
  // Syncing continues: a new znode appears in etcd.
  std::string during = "/dubbo/svc1/providers/" + ProviderName(1, 50);
  ASSERT_TRUE(zk_->Create(during, "", true).ok());
  // A delete of a key recorded before the outage waits for Redis.
  ASSERT_TRUE(zk_->Delete(owned_key).ok());
  ASSERT_TRUE(WaitFor([&] { return EtcdDump("/dubbo").count(during) == 1; }, seconds(30)));
  ASSERT_TRUE(WaitFor([&] { return MetricAtLeast(Label("kvsync_zk2etcd_deletes_deferred"), 1); },
                      seconds(30)))
      << kvsync->LogTail();
  EXPECT_EQ(EtcdDump("/dubbo").count(owned_key), 1u);

  ASSERT_TRUE(redis_server->Restart().ok());
  ExpectSynced(kvsync.get(), extra);
  EXPECT_EQ(Metric(Label("kvsync_zk2etcd_ownership_available")), 1.0);
  // The key written during the outage was recorded once Redis returned, so it is deletable.
  auto again = redis::Client::Connect({.addr = redis_server->addr()});
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        return (*again)->Command({"SISMEMBER", set, during})->integer == 1;
      },
      seconds(30)));
  ASSERT_TRUE(zk_->Delete(during).ok());
  ExpectSynced(kvsync.get(), extra);
}

// A ZooKeeper restart keeps the session; changes after it propagate and nothing is deleted
// while ZooKeeper is down.
TEST_F(Zk2EtcdTest, ZooKeeperRestartIsReconciled) {
  BuildDubbo(2, 10);
  ASSERT_TRUE(zk_->CreateAll("/dubbo/persistent/a", "1").ok());
  auto kvsync = StartKvsync();
  ExpectSynced(kvsync.get());
  size_t before = EtcdDump("/dubbo").size();
  zk_server_->Kill();
  ASSERT_TRUE(WaitFor(
      [&] { return Metric(Label("kvsync_zk2etcd_session_state", "state=\"connecting\"")) == 1.0; },
      seconds(30)))
      << kvsync->LogTail();
  EXPECT_EQ(EtcdDump("/dubbo").size(), before);  // unreachable ZooKeeper deletes nothing
  ASSERT_TRUE(zk_server_->Restart().ok());
  // Both sessions survive the restart (our ephemeral providers with ours).
  ASSERT_TRUE(WaitFor([&] { return zk_->state() == zk::SessionState::kConnected; }, seconds(30)));
  ASSERT_TRUE(zk_->Create("/dubbo/persistent/b", "2").ok());
  ASSERT_TRUE(zk_->Set("/dubbo/persistent/a", "1b").ok());
  ExpectSynced(kvsync.get());
  EXPECT_TRUE(MetricAtLeast(Label("kvsync_zk2etcd_reconnects_total"), 1));
}

// The session expires while kvsync is cut off (a blackholed proxy); changes made meanwhile
// (including deletes) are applied by the full reconcile of the new session, and nothing is
// deleted while ZooKeeper is unreachable.
TEST_F(Zk2EtcdTest, SessionExpiryGetsANewSessionAndReconciles) {
  BuildDubbo(2, 10);
  ASSERT_TRUE(zk_->CreateAll("/dubbo/persistent/a", "1").ok());
  auto proxy = testing::FaultProxy::Start(absl::StrCat("127.0.0.1:", zk_server_->port()));
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto argv = BaseArgs();
  argv[3] = (*proxy)->address();
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == "--zk-session-timeout") argv[i + 1] = "2s";
  }
  auto kvsync = Start(argv);
  ExpectSynced(kvsync.get());
  (*proxy)->SetMode(testing::FaultProxy::Mode::kBlackhole);
  // Wait until the server expired kvsync's session (its id leaves the session dump).
  auto status = testing::HttpGet(admin_, "/status");
  ASSERT_TRUE(status.ok());
  std::string id = nlohmann::json::parse(status->body)["zk_session_id"];
  ASSERT_NE(FourLetter(zk_server_->port(), "dump").find(id), std::string::npos)
      << id << FourLetter(zk_server_->port(), "dump");
  ASSERT_TRUE(
      WaitFor([&] { return FourLetter(zk_server_->port(), "dump").find(id) == std::string::npos; },
              seconds(30)))
      << FourLetter(zk_server_->port(), "dump");
  std::string gone = "/dubbo/svc0/providers/" + ProviderName(0, 4);
  ASSERT_TRUE(zk_->Delete(gone).ok());
  ASSERT_TRUE(zk_->Create("/dubbo/persistent/while-expired", "x").ok());
  ASSERT_TRUE(zk_->Set("/dubbo/persistent/a", "changed").ok());
  EXPECT_EQ(EtcdDump("/dubbo").count(gone), 1u);  // nothing deleted while cut off
  (*proxy)->SetMode(testing::FaultProxy::Mode::kPass);
  ExpectSynced(kvsync.get());
  EXPECT_TRUE(MetricAtLeast(Label("kvsync_zk2etcd_session_expirations_total"), 1));
  // The new session watches again.
  ASSERT_TRUE(zk_->Create("/dubbo/persistent/after", "y").ok());
  ExpectSynced(kvsync.get());
}

// Changes no watch delivered (made in etcd behind kvsync's back: a deleted key, a changed
// value, a leftover key kvsync owns) are repaired by the periodic full sync once two rounds
// have seen them; a key of another writer stays.
TEST_F(Zk2EtcdTest, PeriodicFullSyncRepairsInTwoRounds) {
  BuildDubbo(2, 10);
  auto kvsync = StartKvsync({"--fullsync-interval", "1s"});
  ExpectSynced(kvsync.get());
  // The initial copy is not a repair: nothing counted yet.
  for (const char* kind : {"dst_miss", "mismatch", "src_miss"}) {
    EXPECT_EQ(Metric(Label("kvsync_zk2etcd_fixed_total", absl::StrCat("kind=\"", kind, "\""))),
              0.0);
  }
  std::string a = "/dubbo/svc0/providers/" + ProviderName(0, 1);
  ASSERT_TRUE(etcd_->Delete(a).ok());
  ASSERT_TRUE(etcd_->Put("/dubbo/svc1/configurators", "tampered").ok());
  std::string orphan = "/dubbo/svc1/providers/orphan";
  ASSERT_TRUE(etcd_->Put(orphan, "").ok());
  ASSERT_TRUE(etcd_->Put(MarkOf(orphan), "").ok());
  ASSERT_TRUE(etcd_->Put("/dubbo/svc1/providers/foreign", "keep").ok());
  ExpectSynced(kvsync.get(), {{"/dubbo/svc1/providers/foreign", "keep"}});
  for (const char* kind : {"dst_miss", "mismatch", "src_miss"}) {
    std::string label = absl::StrCat("kind=\"", kind, "\"");
    EXPECT_EQ(Metric(Label("kvsync_zk2etcd_fixed_total", label)), 1.0) << kind;
    EXPECT_TRUE(MetricAtLeast(Label("kvsync_zk2etcd_diffs_total", label), 2)) << kind;
  }
  EXPECT_NE(kvsync->LogTail(100000).find("round2"), std::string::npos);
}

// kill -9, changes while down, restart: the start-up full sync applies them.
TEST_F(Zk2EtcdTest, KillAndRestartLosesNothing) {
  BuildDubbo(3, 10);
  ASSERT_TRUE(zk_->CreateAll("/dubbo/persistent/a", "1").ok());
  auto kvsync = StartKvsync();
  ExpectSynced(kvsync.get());
  kvsync->Signal(SIGKILL);
  kvsync->Wait(seconds(10));
  ASSERT_TRUE(zk_->Delete("/dubbo/svc0/providers/" + ProviderName(0, 0)).ok());
  ASSERT_TRUE(zk_->DeleteAll("/dubbo/svc2").ok());
  ASSERT_TRUE(zk_->Set("/dubbo/persistent/a", "2").ok());
  ASSERT_TRUE(zk_->CreateAll("/dubbo/svc7/providers/" + ProviderName(7, 0), "").ok());
  // A whole service went while kvsync was down: a third of this small tree, above the default
  // deletion guard (tested in MassDeleteIsHeldUntilConfirmed).
  kvsync = StartKvsync({"--max-delete-fraction", "0.5"});
  ExpectSynced(kvsync.get());
}

// --ephemeral-lease-ttl: the copies of ephemeral znodes (and their ownership marks) share one
// lease and persistent ones have none; turning the option on re-attaches existing copies; a
// kvsync restarted within the TTL adopts the same lease (nothing expires); a kvsync gone for
// longer lets the copies expire like their sessions would, persistent keys stay; when it comes
// back its full sync puts them back on a new lease.
TEST_F(Zk2EtcdTest, EphemeralCopiesLiveOnKvsyncsLease) {
  BuildDubbo(2, 3);
  ASSERT_TRUE(zk_->CreateAll("/dubbo/persistent/a", "1").ok());
  auto lease_of = [&](const std::string& key) -> int64_t {
    auto r = etcd_->Range({.key = key});
    return r.ok() && !r->kvs.empty() ? r->kvs[0].lease : -1;
  };
  std::string provider = "/dubbo/svc0/providers/" + ProviderName(0, 0);
  auto kvsync = StartKvsync();
  ExpectSynced(kvsync.get());
  EXPECT_EQ(lease_of(provider), 0);
  kvsync->Signal(SIGTERM);
  kvsync->Wait(seconds(30));

  const std::vector<std::string> flags = {"--ephemeral-lease-ttl", "15s"};
  kvsync = StartKvsync(flags);
  ASSERT_TRUE(WaitFor([&] { return lease_of(provider) > 0; }, seconds(60))) << kvsync->LogTail();
  ExpectSynced(kvsync.get());
  int64_t lease = lease_of(provider);
  EXPECT_EQ(lease_of(MarkOf(provider)), lease);
  EXPECT_EQ(lease_of("/dubbo/svc1/providers/" + ProviderName(1, 2)), lease);
  EXPECT_EQ(lease_of("/dubbo/persistent/a"), 0);
  EXPECT_EQ(lease_of("/dubbo/svc0/providers"), 0);
  EXPECT_TRUE(WaitFor(
      [&] { return MetricAtLeast(Label("kvsync_zk2etcd_ephemeral_lease_remaining_seconds"), 1); },
      seconds(30)));

  kvsync->Signal(SIGKILL);
  kvsync->Wait(seconds(10));
  kvsync = StartKvsync(flags);
  // The copies are still there: wait for the new process to have taken the lease over.
  ASSERT_TRUE(WaitFor(
      [&] { return MetricAtLeast(Label("kvsync_zk2etcd_ephemeral_lease_remaining_seconds"), 1); },
      seconds(60)))
      << kvsync->LogTail();
  auto status = testing::HttpGet(admin_, "/status");
  ASSERT_TRUE(status.ok());
  EXPECT_NE(status->body.find(absl::StrCat("\"id\":\"", absl::Hex(lease), "\"")), std::string::npos)
      << "a restart within the TTL keeps the lease: " << status->body;
  ExpectSynced(kvsync.get());
  EXPECT_EQ(lease_of(provider), lease);
  EXPECT_EQ(Metric(Label("kvsync_zk2etcd_ephemeral_lease_replaced_total")), 0.0);

  // The lease revoked behind kvsync's back (as if it expired during a long etcd outage): the
  // copies go with it; kvsync grants a new lease and a fixing full sync puts them back.
  ASSERT_TRUE(etcd_->LeaseRevoke(lease).ok());
  ASSERT_TRUE(
      WaitFor([&] { return Metric(Label("kvsync_zk2etcd_ephemeral_lease_replaced_total")) == 1.0; },
              seconds(60)))
      << kvsync->LogTail();
  ExpectSynced(kvsync.get());
  int64_t replaced = lease_of(provider);
  EXPECT_GT(replaced, 0);
  EXPECT_NE(replaced, lease);
  lease = replaced;

  kvsync->Signal(SIGKILL);
  kvsync->Wait(seconds(10));
  ASSERT_TRUE(WaitFor([&] { return lease_of(provider) == -1; }, seconds(90)));
  KvMap left = EtcdDump("/dubbo");
  EXPECT_EQ(left.count("/dubbo/persistent/a"), 1u);
  EXPECT_EQ(left.count("/dubbo/svc0/providers"), 1u);
  for (const auto& [key, value] : left) {
    EXPECT_FALSE(absl::StrContains(key, "/providers/")) << key << " outlived kvsync's lease";
  }
  EXPECT_EQ(lease_of(MarkOf(provider)), -1);

  kvsync = StartKvsync(flags);
  ExpectSynced(kvsync.get());
  EXPECT_GT(lease_of(provider), 0);
  EXPECT_NE(lease_of(provider), lease);
}

// Two replicas with --ha: one leads; kill -9 of the leader hands over and syncing goes on.
TEST_F(Zk2EtcdTest, LeaderTakeover) {
  BuildDubbo(2, 10);
  std::vector<std::string> admins;
  std::vector<std::unique_ptr<Subprocess>> replicas;
  for (const char* id : {"a", "b"}) {
    auto argv = BaseArgs();
    admins.push_back(admin_);
    argv.insert(argv.end(), {"--ha", "--lease-ttl", "2s", "--instance-id", id});
    replicas.push_back(Start(argv));
  }
  auto leading = [&](int i) { return Metric(Label("kvsync_is_leader"), admins[i]) == 1.0; };
  ASSERT_TRUE(WaitFor([&] { return leading(0) || leading(1); }, seconds(30)));
  ExpectSynced(replicas[0].get());
  int leader = leading(0) ? 0 : 1;
  EXPECT_FALSE(leading(1 - leader));
  replicas[leader]->Signal(SIGKILL);
  replicas[leader]->Wait(seconds(10));
  ASSERT_TRUE(zk_->Delete("/dubbo/svc1/providers/" + ProviderName(1, 2)).ok());
  ASSERT_TRUE(zk_->CreateAll("/dubbo/svc5/providers/" + ProviderName(5, 5), "").ok());
  ASSERT_TRUE(WaitFor([&] { return leading(1 - leader); }, seconds(30)))
      << replicas[1 - leader]->LogTail();
  ExpectSynced(replicas[1 - leader].get());
}

// Two --ha replicas; the etcd cluster holding both the election and the data is killed and
// restarted on the same data dir: a replica leads again and syncing resumes (issue 10, obs. 8:
// both used to stay standby for good).
TEST_F(Zk2EtcdTest, HaReplicasLeadAgainAfterEtcdRestarts) {
  BuildDubbo(2, 5);
  std::vector<std::string> admins;
  std::vector<std::unique_ptr<Subprocess>> replicas;
  for (const char* id : {"a", "b"}) {
    auto argv = BaseArgs();
    admins.push_back(admin_);
    argv.insert(argv.end(), {"--ha", "--lease-ttl", "3s", "--instance-id", id});
    replicas.push_back(Start(argv));
  }
  auto leading = [&](int i) { return Metric(Label("kvsync_is_leader"), admins[i]) == 1.0; };
  ASSERT_TRUE(WaitFor([&] { return leading(0) || leading(1); }, seconds(30)));
  ExpectSynced(replicas[0].get());
  etcd_cluster_->Kill(0);
  // Down long enough for both replicas to give leadership up (keep-alives failed for a TTL),
  // so leading again needs a fresh connection to the restarted etcd.
  ASSERT_TRUE(WaitFor([&] { return !leading(0) && !leading(1); }, seconds(30)));
  ASSERT_TRUE(etcd_cluster_->Restart(0).ok()) << etcd_cluster_->LogTails();
  etcd_ = testing::ConnectEtcd(etcd_cluster_->endpoints_csv());
  ASSERT_TRUE(zk_->CreateAll("/dubbo/svc9/providers/" + ProviderName(9, 1), "").ok());
  ASSERT_TRUE(WaitFor([&] { return leading(0) || leading(1); }, seconds(60)))
      << replicas[0]->LogTail() << "\n----\n"
      << replicas[1]->LogTail();
  ExpectSynced(replicas[0].get());
}

// --once syncs and exits; `kvsync check zk2etcd` (with the open-source tool's flag names)
// reports drift with exit 1 and JSON counts, --fix repairs it, and a consistent tree exits 0.
TEST_F(Zk2EtcdTest, OnceAndCheck) {
  BuildDubbo(2, 10);
  SyncOnce();
  ExpectSynced(nullptr);
  std::vector<std::string> check = {testing::KvsyncBinary(),
                                    "check",
                                    "zk2etcd",
                                    "--zookeeper-servers",
                                    zk_server_->connect_string(),
                                    "--zookeeper-prefix",
                                    "/dubbo",
                                    "--etcd-servers",
                                    etcd_cluster_->endpoints_csv(),
                                    "--name",
                                    kTask,
                                    "--single-round"};
  auto clean = testing::RunCommand(check, seconds(60));
  ASSERT_TRUE(clean.ok());
  EXPECT_EQ(clean->exit_code, 0) << clean->out << clean->err;
  EXPECT_NE(clean->out.find("CONSISTENT"), std::string::npos) << clean->out;

  ASSERT_TRUE(etcd_->Delete("/dubbo/svc0/configurators").ok());
  ASSERT_TRUE(etcd_->Put("/dubbo/svc1/configurators", "tampered").ok());
  ASSERT_TRUE(etcd_->Put("/dubbo/svc1/providers/orphan", "").ok());
  ASSERT_TRUE(etcd_->Put(MarkOf("/dubbo/svc1/providers/orphan"), "").ok());
  ASSERT_TRUE(etcd_->Put("/dubbo/svc1/providers/foreign", "").ok());
  auto json_args = check;
  json_args.insert(json_args.end(), {"--output", "json"});
  auto drift = testing::RunCommand(json_args, seconds(60));
  ASSERT_TRUE(drift.ok());
  EXPECT_EQ(drift->exit_code, 1) << drift->err;
  auto j = nlohmann::json::parse(drift->out);
  EXPECT_EQ(j["dst_miss"], 1);
  EXPECT_EQ(j["mismatch"], 1);
  EXPECT_EQ(j["src_miss"], 1);
  EXPECT_EQ(j["not_owned"], 1);
  EXPECT_EQ(j["consistent"], false);

  auto fix_args = check;
  fix_args.push_back("--fix");
  auto fixed = testing::RunCommand(fix_args, seconds(60));
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(fixed->exit_code, 1) << fixed->out;  // reports what it found, then repairs
  auto after = testing::RunCommand(check, seconds(60));
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->exit_code, 0) << after->out;
  EXPECT_EQ(EtcdDump("/dubbo").count("/dubbo/svc1/providers/foreign"), 1u);
}

// Per-service parity (check --by-service): exact provider and znode counts on both sides and
// the confirmed differences of each service, on a Dubbo tree with one kind of injected
// difference per service.
TEST_F(Zk2EtcdTest, ParityByServiceIsExact) {
  BuildDubbo(4, 5);
  SyncOnce();
  ASSERT_TRUE(etcd_->Delete("/dubbo/svc1/providers/" + ProviderName(1, 0)).ok());  // dst miss
  ASSERT_TRUE(etcd_->Put("/dubbo/svc2/providers/orphan", "").ok());                // src miss
  ASSERT_TRUE(etcd_->Put(MarkOf("/dubbo/svc2/providers/orphan"), "").ok());
  ASSERT_TRUE(etcd_->Put("/dubbo/svc3/configurators", "weight=1").ok());  // mismatch
  auto json = testing::RunCommand(CheckArgs({"--by-service", "--single-round", "--output", "json"}),
                                  seconds(60));
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(json->exit_code, 1) << json->out << json->err;
  auto j = nlohmann::json::parse(json->out, nullptr, false);
  ASSERT_TRUE(j.contains("services")) << json->out;
  std::map<std::string, nlohmann::json> by_name;
  for (const auto& svc : j["services"]) by_name[svc["service"].get<std::string>()] = svc;
  ASSERT_EQ(by_name.size(), 4u) << json->out;
  auto expect = [&](const std::string& svc, int zk, int etcd, int dst_miss, int src_miss,
                    int mismatch, bool parity) {
    const nlohmann::json& s = by_name["/dubbo/" + svc];
    EXPECT_EQ(s["zk_providers"], zk) << svc;
    EXPECT_EQ(s["etcd_providers"], etcd) << svc;
    EXPECT_EQ(s["zk_nodes"], 9) << svc;  // service, 3 folders, 5 providers
    EXPECT_EQ(s["dst_miss"], dst_miss) << svc;
    EXPECT_EQ(s["src_miss"], src_miss) << svc;
    EXPECT_EQ(s["mismatch"], mismatch) << svc;
    EXPECT_EQ(s["parity"], parity) << svc;
  };
  expect("svc0", 5, 5, 0, 0, 0, true);
  expect("svc1", 5, 4, 1, 0, 0, false);
  expect("svc2", 5, 6, 0, 1, 0, false);
  expect("svc3", 5, 5, 0, 0, 1, false);
  EXPECT_EQ(by_name["/dubbo/svc2"]["etcd_keys"], 10);
  auto text = testing::RunCommand(CheckArgs({"--by-service", "--single-round"}), seconds(60));
  ASSERT_TRUE(text.ok());
  EXPECT_NE(text->out.find("4 services, 3 without parity"), std::string::npos) << text->out;
}

// The running task's parity metrics: a provider registered in etcd by another writer (never
// deleted by kvsync) breaks its service's parity; the periodic full sync exports the totals
// and that service's provider counts on both sides, and clears them once parity is back.
TEST_F(Zk2EtcdTest, ParityMetricsShowABrokenService) {
  BuildDubbo(3, 4);
  auto kvsync = StartKvsync({"--fullsync-interval", "1s"});
  ExpectSynced(kvsync.get());
  ASSERT_TRUE(
      WaitFor([&] { return Metric(Label("kvsync_zk2etcd_parity_services")) == 3.0; }, seconds(60)))
      << DebugMetrics();
  EXPECT_EQ(Metric(Label("kvsync_zk2etcd_parity_services_broken")), 0.0);
  std::string foreign = "/dubbo/svc1/providers/foreign";
  ASSERT_TRUE(etcd_->Put(foreign, "not kvsync's").ok());
  std::string svc = "service=\"/dubbo/svc1\"";
  ASSERT_TRUE(WaitFor([&] { return Metric(Label("kvsync_zk2etcd_parity_services_broken")) == 1.0; },
                      seconds(60)))
      << DebugMetrics();
  EXPECT_EQ(Metric(Label("kvsync_zk2etcd_service_providers", svc + ",side=\"zookeeper\"")), 4.0)
      << DebugMetrics();
  EXPECT_EQ(Metric(Label("kvsync_zk2etcd_service_providers", svc + ",side=\"etcd\"")), 5.0);
  EXPECT_EQ(Metric(Label("kvsync_zk2etcd_service_differences", svc)), 1.0);  // the foreign key
  EXPECT_EQ(
      Metric(Label("kvsync_zk2etcd_service_providers", "service=\"/dubbo/svc0\",side=\"etcd\"")),
      std::nullopt);  // services with parity are not exported
  auto status = testing::HttpGet(admin_, "/status");
  ASSERT_TRUE(status.ok());
  EXPECT_NE(status->body.find("\"without_parity\":1"), std::string::npos) << status->body;
  ASSERT_TRUE(etcd_->Delete(foreign).ok());
  ASSERT_TRUE(WaitFor([&] { return Metric(Label("kvsync_zk2etcd_parity_services_broken")) == 0.0; },
                      seconds(60)))
      << DebugMetrics();
  EXPECT_EQ(Metric(Label("kvsync_zk2etcd_service_providers", svc + ",side=\"etcd\"")),
            std::nullopt);
}

// Bad flags exit 2 with one line; unreachable servers exit 3 (runtime failure) naming them.
TEST_F(Zk2EtcdTest, BadInputFailsClearly) {
  auto run = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {testing::KvsyncBinary(), "zk2etcd"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = testing::RunCommand(argv, seconds(60));
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : testing::CommandResult{};
  };
  std::string zk = zk_server_->connect_string();
  std::string etcd = etcd_cluster_->endpoints_csv();
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  std::vector<Case> cases = {
      {{"--zk-prefix", "/dubbo", "--etcd-endpoints", etcd}, "--zk-servers is required"},
      {{"--zk-servers", zk, "--etcd-endpoints", etcd}, "--zk-prefix is required"},
      {{"--zk-servers", zk, "--zk-prefix", "dubbo", "--etcd-endpoints", etcd},
       "not a ZooKeeper path"},
      {{"--zk-servers", zk, "--zk-prefix", "/dubbo", "--zk-exclude-prefix", "/dubbo2/x",
        "--etcd-endpoints", etcd},
       "is not under any --zk-prefix"},
      {{"--zk-servers", zk, "--zk-prefix", "/dubbo", "--etcd-endpoints", etcd, "--ownership",
        "mysql"},
       "--ownership must be"},
      {{"--zk-servers", zk, "--zk-prefix", "/dubbo", "--etcd-endpoints", etcd, "--ownership",
        "redis"},
       "--redis-addr"},
      {{"--zk-servers", zk, "--zk-prefix", "/dubbo", "--etcd-endpoints", etcd, "--bogus"}, "bogus"},
      {{"--zk-servers", zk, "--zk-prefix", "/dubbo", "--etcd-endpoints", etcd, "--once",
        "--ephemeral-lease-ttl", "5s"},
       "--ephemeral-lease-ttl needs a running task"},
      {{"--zk-servers", zk, "--zk-prefix", "/dubbo", "--etcd-endpoints", etcd,
        "--ephemeral-lease-ttl", "1s"},
       "--ephemeral-lease-ttl"},
      {{"--zk-servers", zk, "--zk-prefix", "/dubbo", "--etcd-endpoints", etcd,
        "--zk-session-timeout", "soon"},
       "duration"},
  };
  for (const auto& c : cases) {
    auto r = run(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.message << ": " << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
  }
  int dead = testing::FreePort();
  auto no_zk = run({"--zk-servers", absl::StrCat("127.0.0.1:", dead), "--zk-prefix", "/dubbo",
                    "--etcd-endpoints", etcd, "--zk-session-timeout", "2s", "--admin-addr", ""});
  EXPECT_EQ(no_zk.exit_code, 3) << no_zk.err;
  EXPECT_NE(no_zk.err.find(absl::StrCat("127.0.0.1:", dead)), std::string::npos) << no_zk.err;
  auto no_etcd =
      run({"--zk-servers", zk, "--zk-prefix", "/dubbo", "--etcd-endpoints",
           absl::StrCat("127.0.0.1:", dead), "--etcd-dial-timeout", "1s", "--admin-addr", ""});
  EXPECT_EQ(no_etcd.exit_code, 3) << no_etcd.err;
  EXPECT_EQ(no_etcd.err.find("etcd etcd"), std::string::npos) << no_etcd.err;
  EXPECT_NE(no_etcd.err.find(absl::StrCat("127.0.0.1:", dead)), std::string::npos) << no_etcd.err;
}

// A chroot typo (or an ensemble without the tree) is refused at start-up, before anything is
// written; with --zk-allow-missing-prefix the task runs but a walk that finds a root missing
// deletes nothing under it.
TEST_F(Zk2EtcdTest, MissingChrootOrRootDeletesNothing) {
  BuildDubbo(2, 3);
  SyncOnce();
  KvMap synced = EtcdDump("/dubbo");
  ASSERT_GT(synced.size(), 8u);

  auto with_servers = [&](const std::string& servers, std::vector<std::string> extra) {
    auto args = BaseArgs();
    args[3] = servers;
    args.push_back("--once");
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = testing::RunCommand(args, seconds(60));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : testing::CommandResult{};
  };
  std::string chrooted = zk_server_->connect_string() + "/nonexistent";
  auto typo = with_servers(chrooted, {});
  EXPECT_EQ(typo.exit_code, 2) << typo.err;
  EXPECT_NE(typo.err.find("/nonexistent"), std::string::npos) << typo.err;
  EXPECT_EQ(EtcdDump("/dubbo"), synced);

  // The same check guards `check zk2etcd --fix`.
  std::vector<std::string> check = CheckArgs({"--fix"}, chrooted);
  auto checked = testing::RunCommand(check, seconds(60));
  ASSERT_TRUE(checked.ok());
  EXPECT_EQ(checked->exit_code, 2) << checked->out << checked->err;
  EXPECT_EQ(EtcdDump("/dubbo"), synced);

  // Allowed to be missing: the walk finds the root missing and deletes nothing under it.
  auto allowed = with_servers(chrooted, {"--zk-allow-missing-prefix"});
  EXPECT_EQ(allowed.exit_code, 2) << allowed.err;
  EXPECT_NE(allowed.err.find("missing"), std::string::npos) << allowed.err;
  EXPECT_EQ(EtcdDump("/dubbo"), synced);
}

// A ZooKeeper that lost most of the tree (restored empty, wrong ensemble with the same root)
// would make one round delete most owned keys: held, loudly, until an operator confirms.
TEST_F(Zk2EtcdTest, MassDeleteIsHeldUntilConfirmed) {
  BuildDubbo(2, 3);
  ASSERT_TRUE(zk_->CreateAll("/dubbo/persistent/a", "1").ok());
  auto argv = BaseArgs();
  argv.push_back("--once");
  auto once = testing::RunCommand(argv, seconds(60));
  ASSERT_TRUE(once.ok()) << once.status();
  ASSERT_EQ(once->exit_code, 0) << once->err;
  KvMap synced = EtcdDump("/dubbo");
  // ZooKeeper loses everything under /dubbo but an empty root.
  ASSERT_TRUE(zk_->DeleteAll("/dubbo").ok());
  ASSERT_TRUE(zk_->CreateAll("/dubbo", "").ok());

  auto kvsync = StartKvsync({"--fullsync-interval", "1s"});
  ASSERT_TRUE(
      WaitFor([&] { return MetricAtLeast(Label("kvsync_zk2etcd_deletes_held"), 1); }, seconds(60)))
      << kvsync->LogTail();
  // Several rounds later nothing was deleted, and the task says it is not ready.
  double syncs = Metric(Label("kvsync_full_syncs_total")).value_or(0);
  ASSERT_TRUE(WaitFor([&] { return MetricAtLeast(Label("kvsync_full_syncs_total"), syncs + 2); },
                      seconds(60)))
      << kvsync->LogTail();
  EXPECT_EQ(EtcdDump("/dubbo"), synced);
  auto ready = testing::HttpGet(admin_, "/readyz");
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->status, 503) << ready->body;
  EXPECT_NE(ready->body.find("held"), std::string::npos) << ready->body;
  EXPECT_EQ(kvsync->Stop(), 0);

  auto refused = testing::RunCommand(argv, seconds(60));
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->exit_code, 2) << refused->err;
  EXPECT_NE(refused->err.find("--confirm-mass-delete"), std::string::npos) << refused->err;
  EXPECT_EQ(EtcdDump("/dubbo"), synced);

  auto confirmed_args = argv;
  confirmed_args.push_back("--confirm-mass-delete");
  auto confirmed = testing::RunCommand(confirmed_args, seconds(60));
  ASSERT_TRUE(confirmed.ok());
  EXPECT_EQ(confirmed->exit_code, 0) << confirmed->err;
  ExpectSynced(nullptr);
}

// A znode another client protected with a digest ACL is skipped, counted and logged; the task
// keeps running and the etcd keys of the unreadable subtree are kept.
TEST_F(Zk2EtcdTest, UnreadableZnodeIsSkippedAndItsKeysKept) {
  BuildDubbo(2, 3);
  ASSERT_TRUE(zk_->CreateAll("/dubbo/secret/child", "old").ok());
  SyncOnce();
  ASSERT_EQ(EtcdDump("/dubbo").count("/dubbo/secret/child"), 1u);

  // While kvsync is down another client re-creates the subtree readable only by itself.
  ASSERT_TRUE(zk_->DeleteAll("/dubbo/secret").ok());
  zk::SessionOptions o;
  o.servers = zk_server_->connect_string();
  o.session_timeout = seconds(10);
  o.digest_auth = "alice:secret";
  auto alice = zk::Session::Open(o, [](const zk::WatchEvent&) {});
  ASSERT_TRUE(alice.ok()) << alice.status();
  zk::CreateOptions acl;
  acl.creator_only_acl = true;
  ASSERT_TRUE((*alice)->Create("/dubbo/secret", "new", acl).ok());
  ASSERT_TRUE((*alice)->Create("/dubbo/secret/child", "new", acl).ok());

  auto kvsync = StartKvsync({"--fullsync-interval", "1s"});
  ASSERT_TRUE(WaitFor([&] { return Metric(Label("kvsync_zk2etcd_unreadable_znodes")) == 1.0; },
                      seconds(60)))
      << kvsync->LogTail();
  double syncs = Metric(Label("kvsync_full_syncs_total")).value_or(0);
  // A new protected znode appears while running: read by the live path, skipped as well.
  ASSERT_TRUE((*alice)->Create("/dubbo/svc0/private", "x", acl).ok());
  ASSERT_TRUE(WaitFor([&] { return MetricAtLeast(Label("kvsync_full_syncs_total"), syncs + 3); },
                      seconds(60)))
      << kvsync->LogTail();
  EXPECT_FALSE(kvsync->Wait(milliseconds(0)).has_value()) << kvsync->LogTail();
  EXPECT_EQ(Metric(Label("kvsync_zk2etcd_unreadable_znodes")), 2.0);
  KvMap etcd = EtcdDump("/dubbo");
  EXPECT_EQ(etcd.count("/dubbo/secret"), 1u);
  EXPECT_EQ(etcd.count("/dubbo/secret/child"), 1u);
  EXPECT_EQ(etcd.count("/dubbo/svc0/private"), 0u);
  // Logged once each, however many rounds saw it.
  std::string log = kvsync->LogTail(1 << 20);
  size_t first = log.find("unreadable znode skipped path=/dubbo/secret ");
  ASSERT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find("unreadable znode skipped path=/dubbo/secret ", first + 1), std::string::npos);
  // Everything readable is still mirrored.
  ASSERT_TRUE(zk_->Create("/dubbo/svc1/providers/late", "", true).ok());
  ASSERT_TRUE(WaitFor([&] { return EtcdDump("/dubbo").count("/dubbo/svc1/providers/late") == 1; },
                      seconds(30)));
}

// `check zk2etcd --fix` with Redis ownership while Redis is down: a key whose ownership cannot
// be read is reported, never deleted (and the running syncer defers the same delete).
TEST_F(Zk2EtcdTest, UnknownOwnershipNeverLeadsToADelete) {
  auto r = testing::RedisServer::Start({});
  ASSERT_TRUE(r.ok()) << r.status();
  auto redis_server = std::move(*r);
  BuildDubbo(2, 3);
  ASSERT_TRUE(zk_->CreateAll("/dubbo/persistent/a", "1").ok());
  auto argv = BaseArgs();
  argv.insert(argv.end(), {"--ownership", "redis", "--redis-addr", redis_server->addr()});
  auto once_args = argv;
  once_args.push_back("--once");
  auto once = testing::RunCommand(once_args, seconds(60));
  ASSERT_TRUE(once.ok()) << once.status();
  ASSERT_EQ(once->exit_code, 0) << once->err;
  ASSERT_EQ(EtcdDump("/dubbo").count("/dubbo/persistent/a"), 1u);
  // The znode goes while nothing runs: its key is an owned src miss, but Redis is down.
  ASSERT_TRUE(zk_->Delete("/dubbo/persistent/a").ok());
  redis_server->Kill();

  std::vector<std::string> check = CheckArgs(
      {"--ownership", "redis", "--redis-addr", redis_server->addr(), "--fix", "--output", "json"});
  auto fixed = testing::RunCommand(check, seconds(60));
  ASSERT_TRUE(fixed.ok());
  // Inconclusive (ownership unknown) is a finding, exit 1: the report says what to look at.
  EXPECT_EQ(fixed->exit_code, 1) << fixed->out << fixed->err;
  EXPECT_EQ(EtcdDump("/dubbo").count("/dubbo/persistent/a"), 1u) << fixed->out;
  auto j = nlohmann::json::parse(fixed->out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << fixed->out;
  EXPECT_EQ(j["ownership_unknown"], 1) << fixed->out;
  EXPECT_EQ(j["src_miss"], 0) << fixed->out;

  // The syncer, started while Redis is down, defers the same delete.
  auto kvsync = Start(argv);
  ASSERT_TRUE(WaitFor(
      [&] { return MetricAtLeast(Label("kvsync_zk2etcd_repairs_paused_total"), 1); }, seconds(60)))
      << kvsync->LogTail();
  EXPECT_EQ(EtcdDump("/dubbo").count("/dubbo/persistent/a"), 1u);
}

// Memory stays bounded while etcd is frozen and ZooKeeper keeps changing: the writer's queue
// fills, the applier waits on it, and ZooKeeper results that find the (small) inbox full are
// dropped rather than queued without bound — the session itself never stalls. The task says so
// (metric, readiness) until etcd returns and a full sync has repaired what was dropped.
TEST_F(Zk2EtcdTest, FullInboxDropsChangesThenAFullSyncRepairsThem) {
  BuildDubbo(1, 5);
  std::string big(1000, 'x');
  auto rule = [](int i) {
    return absl::StrCat("/dubbo/svc0/configurators/rule", i, "-", std::string(300, 'r'));
  };
  for (int i = 0; i < 400; ++i) ASSERT_TRUE(zk_->CreateAll(rule(i), big).ok());
  auto kvsync = StartKvsync({"--queue-bytes", "65536"});
  ExpectSynced(kvsync.get());
  etcd_cluster_->Pause(0);
  // 400 data changes, each firing its own watch: about 250 KB of events alone, far more than
  // the 64 KiB inbox and the 32 KiB writer queue.
  for (int i = 0; i < 400; ++i) ASSERT_TRUE(zk_->Set(rule(i), big + "2").ok());
  ASSERT_TRUE(WaitFor(
      [&] { return MetricAtLeast(Label("kvsync_zk2etcd_inbox_overflows_total"), 1); }, seconds(60)))
      << kvsync->LogTail() << DebugMetrics();
  EXPECT_EQ(Metric(Label("kvsync_zk2etcd_resync_pending")), 1.0);
  EXPECT_EQ(Metric(Label("kvsync_zk2etcd_session_state", "state=\"connected\"")), 1.0);
  auto ready = testing::HttpGet(admin_, "/readyz");
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->status, 503) << ready->body;
  EXPECT_NE(ready->body.find("dropped"), std::string::npos) << ready->body;
  // A delete while frozen: dropped or not, it must arrive.
  ASSERT_TRUE(zk_->Delete("/dubbo/svc0/providers/" + ProviderName(0, 1)).ok());

  etcd_cluster_->Resume(0);
  ExpectSynced(kvsync.get());
  ASSERT_TRUE(
      WaitFor([&] { return Metric(Label("kvsync_zk2etcd_resync_pending")) == 0.0; }, seconds(60)))
      << kvsync->LogTail();
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = testing::HttpGet(admin_, "/readyz");
        return r.ok() && r->status == 200;
      },
      seconds(60)))
      << kvsync->LogTail();
  EXPECT_EQ(kvsync->Stop(), 0);
}

}  // namespace
}  // namespace kvsync
