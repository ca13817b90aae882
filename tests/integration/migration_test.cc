// Both directions of a ZooKeeper → etcd migration over one subtree, against real ZooKeeper and
// etcd processes: zk2etcd copies the providers registered in ZooKeeper into etcd, etcd2zk
// publishes the providers registered in etcd into ZooKeeper as ephemeral znodes of its own
// session, and neither ever copies the other's copies back (minutes of churn on both sides end
// with both sides equal and nothing created by echo); the reverse leader's znodes vanish with
// its session after kill -9 and the new leader publishes them again; keys it cannot publish
// are held and counted.
#include <algorithm>
#include <cstdlib>
#include <random>
#include <set>

#include "tests/integration/zk_fixture.h"

namespace kvsync {
namespace {

constexpr char kReverseTask[] = "dubbo-etcd2zk";

class MigrationTest : public Zk2EtcdTest {
 protected:
  // `kvsync etcd2zk` with the forward task's flags and its own admin address.
  std::unique_ptr<Subprocess> StartReverse(const std::string& admin,
                                           std::vector<std::string> extra = {}) {
    std::string forward_admin = admin_;  // BaseArgs() picks a new one for the forward task
    std::vector<std::string> argv = BaseArgs();
    admin_ = forward_admin;
    argv[1] = "etcd2zk";
    *(std::find(argv.begin(), argv.end(), "--admin-addr") + 1) = admin;
    argv.insert(argv.end(), extra.begin(), extra.end());
    return Start(std::move(argv));
  }

  static std::string ReverseLabel(const std::string& name, const std::string& extra = "") {
    return absl::StrCat(name, "{task=\"", kReverseTask, "\"", extra.empty() ? "" : ",", extra, "}");
  }

  // The ephemeral owner of a znode (0: persistent or absent).
  int64_t OwnerOf(const std::string& path) {
    zk::Stat stat;
    auto got = zk_->Get(path, &stat);
    return got.ok() ? stat.ephemeral_owner : 0;
  }

  // The ZooKeeper sessions the etcd2zk direction recorded in etcd.
  std::set<int64_t> RecordedSessions() {
    std::set<int64_t> out;
    for (const auto& [key, value] : testing::DumpPrefix(etcd_.get(), "/kvsync/meta/zk-sessions/")) {
      out.insert(static_cast<int64_t>(std::stoull(key.substr(key.rfind('/') + 1), nullptr, 16)));
    }
    return out;
  }
};

// What each side must hold: ZooKeeper's own tree (persistent nodes and the providers
// registered there) plus the providers registered in etcd, on both sides.
struct Registry {
  KvMap zk_native;  // znode path -> data, registered in ZooKeeper by the test
  KvMap etcd_app;   // etcd key -> value, registered in etcd by the test
};

// Two directions over /dubbo for a few minutes of churn on both sides (KVSYNC_CHURN_SECONDS,
// default 300): both sides end equal to what was registered on either, every znode of an etcd
// registration belongs to a recorded etcd2zk session, every etcd copy of a ZooKeeper provider
// carries zk2etcd's mark, and nothing more appears afterwards (no echo).
TEST_F(MigrationTest, TwoDirectionsOverOneSubtreeNeverEcho) {
  BuildDubbo(3, 4);
  Registry want;
  int etcd_registrations = 0;  // etcd keys created, each to be published once
  for (const auto& [path, data] : ZkDump("/dubbo")) want.zk_native[path] = data;
  for (int s = 0; s < 3; ++s) {
    for (int p = 0; p < 4; ++p) {
      std::string key = absl::StrCat("/dubbo/svc", s, "/providers/etcd-", p);
      ASSERT_TRUE(etcd_->Put(key, absl::StrCat("v0-", p)).ok());
      want.etcd_app[key] = absl::StrCat("v0-", p);
      ++etcd_registrations;
    }
  }
  auto forward = StartKvsync({"--fullsync-interval", "3s"});
  std::string reverse_admin = absl::StrCat("127.0.0.1:", testing::FreePort());
  auto reverse = StartReverse(reverse_admin);

  auto both_equal = [&](std::string* diff) {
    KvMap expected = want.zk_native;
    for (const auto& [k, v] : want.etcd_app) expected[k] = v;
    KvMap zk = ZkDump("/dubbo");
    KvMap etcd = EtcdDump("/dubbo");
    if (zk == expected && etcd == expected) return true;
    diff->clear();
    for (const auto& [name, got] : {std::pair{"zookeeper", &zk}, std::pair{"etcd", &etcd}}) {
      for (const auto& [k, v] : expected) {
        auto it = got->find(k);
        if (it == got->end())
          absl::StrAppend(diff, name, " misses ", k, "\n");
        else if (it->second != v)
          absl::StrAppend(diff, name, " differs ", k, "\n");
      }
      for (const auto& [k, v] : *got) {
        if (!expected.contains(k)) absl::StrAppend(diff, name, " has extra ", k, "\n");
      }
    }
    return false;
  };
  std::string diff;
  ASSERT_TRUE(WaitFor([&] { return both_equal(&diff); }, seconds(60), milliseconds(100)))
      << diff.substr(0, 3000) << forward->LogTail() << reverse->LogTail();

  // Churn on both sides: providers come and go, data and values change.
  int churn_seconds = 300;
  if (const char* env = std::getenv("KVSYNC_CHURN_SECONDS")) churn_seconds = std::atoi(env);
  std::mt19937 rng(42);
  auto deadline = std::chrono::steady_clock::now() + seconds(churn_seconds);
  int ops = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    int s = static_cast<int>(rng() % 3);
    int p = static_cast<int>(rng() % 8);
    std::string svc = absl::StrCat("/dubbo/svc", s);
    switch (rng() % 5) {
      case 0: {  // a ZooKeeper provider registers or leaves
        std::string path = absl::StrCat(svc, "/providers/zk-", p);
        if (want.zk_native.contains(path)) {
          ASSERT_TRUE(zk_->Delete(path).ok());
          want.zk_native.erase(path);
        } else {
          ASSERT_TRUE(zk_->Create(path, absl::StrCat("z", ops), true).ok());
          want.zk_native[path] = absl::StrCat("z", ops);
        }
        break;
      }
      case 1: {  // an etcd provider registers or leaves
        std::string key = absl::StrCat(svc, "/providers/etcd-", p);
        if (want.etcd_app.contains(key)) {
          ASSERT_TRUE(etcd_->Delete(key).ok());
          want.etcd_app.erase(key);
        } else {
          ASSERT_TRUE(etcd_->Put(key, absl::StrCat("e", ops)).ok());
          want.etcd_app[key] = absl::StrCat("e", ops);
          ++etcd_registrations;
        }
        break;
      }
      case 2: {  // an etcd provider changes its value
        std::string key = absl::StrCat(svc, "/providers/etcd-", p);
        if (!want.etcd_app.contains(key)) break;
        ASSERT_TRUE(etcd_->Put(key, absl::StrCat("e", ops)).ok());
        want.etcd_app[key] = absl::StrCat("e", ops);
        break;
      }
      case 3: {  // a ZooKeeper configuration changes
        ASSERT_TRUE(zk_->Set(svc + "/configurators", absl::StrCat("weight=", ops)).ok());
        want.zk_native[svc + "/configurators"] = absl::StrCat("weight=", ops);
        break;
      }
      default: {  // a ZooKeeper provider changes its data
        std::string path = absl::StrCat(svc, "/providers/zk-", p);
        if (!want.zk_native.contains(path)) break;
        ASSERT_TRUE(zk_->Set(path, absl::StrCat("z", ops)).ok());
        want.zk_native[path] = absl::StrCat("z", ops);
      }
    }
    ++ops;
    // A registry's pace, not a synchronisation: a few dozen changes a second.
    std::this_thread::sleep_for(milliseconds(20));
  }
  ASSERT_TRUE(WaitFor([&] { return both_equal(&diff); }, seconds(60), milliseconds(100)))
      << ops << " changes\n"
      << diff.substr(0, 3000) << forward->LogTail() << reverse->LogTail();

  // Ownership on both sides: the etcd registrations' znodes are the reverse session's, and
  // the ZooKeeper registrations' etcd copies carry zk2etcd's mark (the app keys carry none).
  std::set<int64_t> reverse_sessions = RecordedSessions();
  ASSERT_FALSE(reverse_sessions.empty());
  for (const auto& [key, value] : want.etcd_app) {
    EXPECT_TRUE(reverse_sessions.contains(OwnerOf(key))) << key;
    EXPECT_TRUE(etcd_->Range({.key = MarkOf(key)})->kvs.empty()) << key;
  }
  for (const auto& [path, data] : want.zk_native) {
    EXPECT_FALSE(reverse_sessions.contains(OwnerOf(path))) << path;
    EXPECT_EQ(etcd_->Range({.key = MarkOf(path)})->kvs.size(), 1u) << path;
  }
  // Stable: two more periodic full syncs of the forward direction change nothing, and the
  // reverse holds exactly the etcd registrations.
  double full_syncs = *Metric(Label("kvsync_full_syncs_total"));
  ASSERT_TRUE(
      WaitFor([&] { return MetricAtLeast(Label("kvsync_full_syncs_total"), full_syncs + 2); },
              seconds(60)));
  EXPECT_TRUE(both_equal(&diff)) << diff;
  EXPECT_EQ(Metric(ReverseLabel("kvsync_etcd2zk_published_znodes"), reverse_admin),
            static_cast<double>(want.etcd_app.size()));
  EXPECT_EQ(Metric(ReverseLabel("kvsync_etcd2zk_held_keys", "reason=\"no_parent\""), reverse_admin),
            0.0);
  // The forward direction saw the reverse's znodes and skipped them; the reverse skipped the
  // forward's copies.
  EXPECT_TRUE(MetricAtLeast(Label("kvsync_zk2etcd_reverse_skipped_total"), 1));
  EXPECT_TRUE(
      MetricAtLeast(ReverseLabel("kvsync_etcd2zk_forward_skipped_total"), 1, reverse_admin));
  // No echo on the reverse side: exactly one znode created per etcd registration, and no
  // zk2etcd copy ever wanted (it would be held, its path being the original znode's).
  EXPECT_EQ(Metric(ReverseLabel("kvsync_etcd2zk_zk_writes_total", "op=\"create\""), reverse_admin),
            static_cast<double>(etcd_registrations));
  EXPECT_EQ(Metric(ReverseLabel("kvsync_etcd2zk_held_keys", "reason=\"exists\""), reverse_admin),
            0.0);
  // The check agrees: the reverse's znodes are not differences.
  auto check = testing::RunCommand(CheckArgs({"--by-service"}), seconds(60));
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_EQ(check->exit_code, 0) << check->out << check->err;
  EXPECT_NE(check->out.find("3 services, 0 without parity"), std::string::npos) << check->out;
}

// kill -9 of the reverse leader: its znodes vanish with its session, and the standby, now
// leader, publishes them again with its own (recorded) session.
TEST_F(MigrationTest, ReverseLeaderKilledItsZnodesVanishAndComeBack) {
  BuildDubbo(2, 1);
  std::vector<std::string> keys;
  for (int p = 0; p < 5; ++p) {
    keys.push_back(absl::StrCat("/dubbo/svc", p % 2, "/providers/etcd-", p));
    ASSERT_TRUE(etcd_->Put(keys.back(), "v").ok());
  }
  std::string admin_a = absl::StrCat("127.0.0.1:", testing::FreePort());
  std::string admin_b = absl::StrCat("127.0.0.1:", testing::FreePort());
  auto a = StartReverse(admin_a, {"--ha", "--instance-id", "a", "--lease-ttl", "2s"});
  ASSERT_TRUE(WaitFor(
      [&] { return MetricAtLeast(ReverseLabel("kvsync_etcd2zk_published_znodes"), 5, admin_a); },
      seconds(60)))
      << a->LogTail();
  auto b = StartReverse(admin_b, {"--ha", "--instance-id", "b", "--lease-ttl", "2s"});
  ASSERT_TRUE(WaitFor([&] { return testing::HttpGet(admin_b, "/readyz").ok(); }, seconds(30)));
  int64_t old_session = OwnerOf(keys[0]);
  ASSERT_NE(old_session, 0);
  for (const std::string& key : keys) EXPECT_EQ(OwnerOf(key), old_session) << key;

  a->Signal(SIGKILL);
  a->Wait(seconds(10));
  // Every znode ends up owned by a new recorded session: the old one's went with it.
  std::string owners;
  ASSERT_TRUE(WaitFor(
      [&] {
        std::set<int64_t> recorded = RecordedSessions();
        owners.clear();
        for (const std::string& key : keys) {
          int64_t owner = OwnerOf(key);
          absl::StrAppend(&owners, key, "=", absl::Hex(owner), " ");
          if (owner == 0 || owner == old_session || !recorded.contains(owner)) return false;
        }
        return true;
      },
      seconds(60), milliseconds(100)))
      << owners << b->LogTail();
  EXPECT_EQ(Metric(ReverseLabel("kvsync_etcd2zk_published_znodes"), admin_b), 5.0);
  // The old session's record stays until it has long expired: a forward task that reads one
  // of its znodes late still recognises it.
  EXPECT_TRUE(RecordedSessions().contains(old_session));
}

// A key whose parent znode is missing is held (not ready, counted) until the parent appears; a
// path another znode holds is published once that znode goes; with a zk2etcd task whose
// ownership is not in etcd the reverse refuses to start.
TEST_F(MigrationTest, HeldKeysArePublishedWhenTheirPathFrees) {
  BuildDubbo(1, 0);
  ASSERT_TRUE(etcd_->Put("/dubbo/svc7/providers/etcd-0", "orphan").ok());
  ASSERT_TRUE(zk_->Create("/dubbo/svc0/providers/both", "zk", true).ok());
  ASSERT_TRUE(etcd_->Put("/dubbo/svc0/providers/both", "etcd").ok());
  std::string admin = absl::StrCat("127.0.0.1:", testing::FreePort());
  auto reverse = StartReverse(admin);
  ASSERT_TRUE(WaitFor(
      [&] {
        return Metric(ReverseLabel("kvsync_etcd2zk_held_keys", "reason=\"no_parent\""), admin) ==
                   1.0 &&
               Metric(ReverseLabel("kvsync_etcd2zk_held_keys", "reason=\"exists\""), admin) == 1.0;
      },
      seconds(60)))
      << reverse->LogTail();
  auto ready = testing::HttpGet(admin, "/readyz");
  ASSERT_TRUE(ready.ok());
  EXPECT_NE(ready->status, 200);
  EXPECT_EQ(*zk_->Get("/dubbo/svc0/providers/both"), "zk");  // another's znode: untouched

  ASSERT_TRUE(zk_->CreateAll("/dubbo/svc7/providers", "").ok());
  // A data change first: it spends the exists watch, which must be armed again.
  ASSERT_TRUE(zk_->Set("/dubbo/svc0/providers/both", "zk2").ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        return Metric(ReverseLabel("kvsync_etcd2zk_held_keys", "reason=\"no_parent\""), admin) ==
               0.0;
      },
      seconds(60)))
      << reverse->LogTail();
  ASSERT_TRUE(zk_->Delete("/dubbo/svc0/providers/both").ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        auto orphan = zk_->Get("/dubbo/svc7/providers/etcd-0");
        auto both = zk_->Get("/dubbo/svc0/providers/both");
        return orphan.ok() && *orphan == "orphan" && both.ok() && *both == "etcd";
      },
      seconds(60)))
      << reverse->LogTail();
  EXPECT_TRUE(WaitFor(
      [&] {
        auto r = testing::HttpGet(admin, "/readyz");
        return r.ok() && r->status == 200;
      },
      seconds(30)));
  reverse->Stop();

  auto refused = testing::RunCommand(
      {testing::KvsyncBinary(), "etcd2zk", "--zk-servers", zk_server_->connect_string(),
       "--zk-prefix", "/dubbo", "--etcd-endpoints", etcd_cluster_->endpoints_csv(), "--ownership",
       "none"},
      seconds(30));
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(refused->exit_code, 2) << refused->err;
  EXPECT_NE(refused->err.find("--ownership etcd"), std::string::npos) << refused->err;
}

// A published znode that another client changes or deletes is restored from etcd (counted),
// and a znode another client re-creates at that path is left alone (held, exists).
TEST_F(MigrationTest, PublishedZnodesChangedByAnotherClientAreRestored) {
  BuildDubbo(1, 0);
  const std::string path = "/dubbo/svc0/providers/etcd-0";
  ASSERT_TRUE(etcd_->Put(path, "from-etcd").ok());
  std::string admin = absl::StrCat("127.0.0.1:", testing::FreePort());
  auto reverse = StartReverse(admin);
  ASSERT_TRUE(WaitFor([&] { return OwnerOf(path) != 0; }, seconds(60))) << reverse->LogTail();
  const int64_t owner = OwnerOf(path);
  auto restored = [&] {
    return WaitFor(
        [&] {
          auto got = zk_->Get(path);
          return got.ok() && *got == "from-etcd" && OwnerOf(path) == owner;
        },
        seconds(60));
  };
  ASSERT_TRUE(zk_->Set(path, "tampered").ok());
  ASSERT_TRUE(restored()) << reverse->LogTail();
  ASSERT_TRUE(zk_->Set(path, "tampered-again").ok());  // the watch was armed again
  ASSERT_TRUE(restored()) << reverse->LogTail();
  ASSERT_TRUE(zk_->Delete(path).ok());
  ASSERT_TRUE(restored()) << reverse->LogTail();
  EXPECT_TRUE(
      WaitFor([&] { return Metric(ReverseLabel("kvsync_etcd2zk_repairs_total"), admin) == 3.0; },
              seconds(30)))
      << reverse->LogTail();
  // An etcd change still goes through (kvsync's own write fires its own watch: no repair).
  ASSERT_TRUE(etcd_->Put(path, "from-etcd-2").ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        auto got = zk_->Get(path);
        return got.ok() && *got == "from-etcd-2";
      },
      seconds(60)));
  // Someone else's znode at that path is never touched: deleted and re-created by another
  // session, it is held until it goes.
  ASSERT_TRUE(zk_->Delete(path).ok());
  // Either this create or kvsync's comes first; both outcomes are checked below.
  absl::Status someone_else = zk_->Create(path, "someone-else", true);
  EXPECT_TRUE(someone_else.ok() || absl::IsAlreadyExists(someone_else)) << someone_else;
  ASSERT_TRUE(WaitFor(
      [&] {
        return Metric(ReverseLabel("kvsync_etcd2zk_held_keys", "reason=\"exists\""), admin) ==
                   1.0 ||
               OwnerOf(path) == owner;
      },
      seconds(60)))
      << reverse->LogTail();
  if (OwnerOf(path) != owner) {
    EXPECT_EQ(*zk_->Get(path), "someone-else");
    EXPECT_EQ(OwnerOf(path), zk_->session_id());
  }
  EXPECT_EQ(Metric(ReverseLabel("kvsync_etcd2zk_repairs_total"), admin), 4.0);
}

// More etcd changes than --queue-bytes queued for ZooKeeper: the queue is dropped for one
// re-read of the scope (memory stays bounded), and nothing is lost.
TEST_F(MigrationTest, AQueueOverflowIsReplacedByARereadAndLosesNothing) {
  BuildDubbo(1, 0);
  std::string admin = absl::StrCat("127.0.0.1:", testing::FreePort());
  auto reverse = StartReverse(admin, {"--queue-bytes", "65536"});
  auto ready = [&] {
    auto r = testing::HttpGet(admin, "/readyz");
    return r.ok() && r->status == 200;
  };
  ASSERT_TRUE(WaitFor(ready, seconds(60))) << reverse->LogTail();  // watching
  // One revision of 100 keys of 1 KiB: larger than the bound on its own.
  etcd::TxnRequest txn;
  for (int i = 0; i < 100; ++i) {
    txn.success.push_back(etcd::Op::Put(absl::StrCat("/dubbo/svc0/providers/bulk-", i),
                                        std::string(1024, static_cast<char>('a' + i % 26))));
  }
  ASSERT_TRUE(etcd_->Txn(txn).ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        return MetricAtLeast(ReverseLabel("kvsync_etcd2zk_queue_overflows_total"), 1, admin) &&
               Metric(ReverseLabel("kvsync_etcd2zk_published_znodes"), admin) == 100.0;
      },
      seconds(60)))
      << reverse->LogTail() << testing::HttpGet(admin, "/metrics")->body;
  for (int i = 0; i < 100; ++i) {
    auto got = zk_->Get(absl::StrCat("/dubbo/svc0/providers/bulk-", i));
    ASSERT_TRUE(got.ok()) << i << ": " << got.status();
    EXPECT_EQ(*got, std::string(1024, static_cast<char>('a' + i % 26))) << i;
  }
  EXPECT_TRUE(WaitFor(ready, seconds(30)));
}

// The phases: one step at a time, each forward step refused (exit 2, nothing written) while
// its precondition fails, and each direction stops in the phases it does not run in.
TEST_F(MigrationTest, PhaseTransitionsRefuseWhenParityIsBroken) {
  BuildDubbo(2, 2);
  auto migrate = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = CheckArgs({});
    argv.erase(argv.begin() + 1, argv.begin() + 3);  // "check", "zk2etcd"
    argv.insert(argv.begin() + 1, "migrate");
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto r = testing::RunCommand(argv, seconds(60));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : testing::CommandResult{};
  };
  auto shown = migrate({});
  EXPECT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_NE(shown.out.find("no migration phase recorded"), std::string::npos) << shown.out;
  auto started = migrate({"--to", "mirroring"});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  auto skip = migrate({"--to", "etcd-primary"});
  EXPECT_EQ(skip.exit_code, 2);
  EXPECT_NE(skip.err.find("one step at a time"), std::string::npos) << skip.err;

  // A difference (a znode created while zk2etcd is stopped) blocks dual for its service only.
  SyncOnce();
  ASSERT_TRUE(zk_->Create("/dubbo/svc1/providers/late", "l", false).ok());
  auto refused = migrate({"--to", "dual"});
  EXPECT_EQ(refused.exit_code, 2) << refused.out;
  EXPECT_NE(refused.err.find("/dubbo/svc1"), std::string::npos) << refused.err;
  EXPECT_NE(migrate({}).out.find("phase mirroring"), std::string::npos);  // nothing written
  auto one = migrate({"--to", "dual", "--service", "/dubbo/svc0"});
  EXPECT_EQ(one.exit_code, 0) << one.err;
  ASSERT_EQ(migrate({"--to", "mirroring"}).exit_code, 0);  // one step back
  auto forward = StartKvsync({"--fullsync-interval", "1s"});
  ExpectSynced(forward.get());
  EXPECT_EQ(Metric(Label("kvsync_migration_phase", "phase=\"mirroring\"")), 1.0);
  // A provider that registers in etcd only: expected before dual (etcd2zk publishes it), not
  // before etcd-primary until ZooKeeper sees it.
  ASSERT_TRUE(etcd_->Put("/dubbo/svc0/providers/etcd-only", "e").ok());
  ASSERT_EQ(migrate({"--to", "dual"}).exit_code, 0);
  auto early = migrate({"--to", "etcd-primary"});
  EXPECT_EQ(early.exit_code, 2);
  EXPECT_NE(early.err.find("without parity"), std::string::npos) << early.err;
  std::string reverse_admin = absl::StrCat("127.0.0.1:", testing::FreePort());
  auto reverse = StartReverse(reverse_admin);
  ASSERT_TRUE(WaitFor([&] { return OwnerOf("/dubbo/svc0/providers/etcd-only") != 0; }, seconds(60)))
      << reverse->LogTail();
  auto primary = migrate({"--to", "etcd-primary"});
  ASSERT_EQ(primary.exit_code, 0) << primary.err;
  EXPECT_NE(primary.out.find("parity ok"), std::string::npos) << primary.out;
  // etcd2zk reads the phase every 10 s and shows it.
  EXPECT_TRUE(WaitFor(
      [&] {
        return Metric(ReverseLabel("kvsync_migration_phase", "phase=\"etcd-primary\""),
                      reverse_admin) == 1.0;
      },
      seconds(60)))
      << testing::HttpGet(reverse_admin, "/metrics")->body;
  // zk2etcd stops at its next full sync and refuses to start again; etcd2zk keeps publishing.
  EXPECT_EQ(forward->Wait(seconds(60)), std::optional<int>(2)) << forward->LogTail();
  EXPECT_NE(forward->LogTail().find("phase etcd-primary"), std::string::npos) << forward->LogTail();
  auto again = StartKvsync();
  EXPECT_EQ(again->Wait(seconds(60)), std::optional<int>(2)) << again->LogTail();
  EXPECT_TRUE(reverse->Running());

  // done: confirmed, and only without consumers left in ZooKeeper.
  auto unconfirmed = migrate({"--to", "done"});
  EXPECT_EQ(unconfirmed.exit_code, 2);
  EXPECT_NE(unconfirmed.err.find("--point-of-no-return"), std::string::npos) << unconfirmed.err;
  ASSERT_TRUE(zk_->Create("/dubbo/svc1/consumers/c1", "", true).ok());
  auto consumers = migrate({"--to", "done", "--point-of-no-return"});
  EXPECT_EQ(consumers.exit_code, 2);
  EXPECT_NE(consumers.err.find("/dubbo/svc1/consumers/c1"), std::string::npos) << consumers.err;
  ASSERT_TRUE(zk_->Delete("/dubbo/svc1/consumers/c1").ok());
  ASSERT_EQ(migrate({"--to", "done", "--point-of-no-return"}).exit_code, 0);
  // etcd2zk stops (its znodes go with its session); nothing leaves done.
  EXPECT_EQ(reverse->Wait(seconds(60)), std::optional<int>(2)) << reverse->LogTail();
  EXPECT_TRUE(
      WaitFor([&] { return !zk_->Get("/dubbo/svc0/providers/etcd-only").ok(); }, seconds(30)));
  auto back = migrate({"--to", "etcd-primary"});
  EXPECT_EQ(back.exit_code, 2);
  EXPECT_NE(back.err.find("point of no return"), std::string::npos) << back.err;
  auto status = testing::RunCommand(
      {testing::KvsyncBinary(), "status", "--dst-endpoints", etcd_cluster_->endpoints_csv()},
      seconds(60));
  ASSERT_TRUE(status.ok());
  EXPECT_NE(status->out.find("migration dubbo: phase done"), std::string::npos) << status->out;
}

}  // namespace
}  // namespace kvsync
