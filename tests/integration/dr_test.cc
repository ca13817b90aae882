// The disaster-recovery day against real etcd (mirror/dr.h, docs/runbook.md "The primary city
// is gone"): the article's city-loss drill through TLS with auth on both sides (promote --force
// prints the exact RPO, fences the running mirror, ends its lease hold, refuses a restart;
// failback saves exactly the writes the standby never saw and makes the old primary equal to
// the promoted cluster), and a switchover that loses nothing while a writer keeps writing.
#include <signal.h>

#include <atomic>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "etcd/client.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/harness/etcd_cluster.h"
#include "tests/harness/fault_proxy.h"
#include "tests/harness/kvsync_util.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/wait.h"

namespace kvsync {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::EtcdCluster;
using testing::FaultProxy;
using testing::Provider;
using testing::Subprocess;
using testing::WaitFor;

constexpr char kMeta[] = "/kvsync/meta/registry/";
constexpr char kPassword[] = "s3cret";

class DrTest : public ::testing::Test {
 protected:
  void StartClusters(bool secure) {
    secure_ = secure;
    testing::EtcdClusterOptions options;
    options.tls = secure;
    if (secure) options.auth_root_password = kPassword;
    options.name = "primary";
    auto s = EtcdCluster::Start(options);
    ASSERT_TRUE(s.ok()) << s.status();
    src_cluster_ = std::move(*s);
    options.name = "standby";
    auto d = EtcdCluster::Start(options);
    ASSERT_TRUE(d.ok()) << d.status();
    dst_cluster_ = std::move(*d);
    src_ = Connect(src_cluster_.get());
    dst_ = Connect(dst_cluster_.get());
    dir_ = testing::MakeTempDir("dr");
  }

  std::unique_ptr<etcd::Client> Connect(EtcdCluster* c) const {
    etcd::ClientOptions o;
    o.endpoints = c->endpoints();
    o.request_timeout = seconds(3);
    if (secure_) {
      o.ca_file = c->ca_file();
      o.cert_file = c->client_cert_file();
      o.key_file = c->client_key_file();
      o.user = "root";
      o.password = kPassword;
    }
    auto client = etcd::Client::Create(o);
    EXPECT_TRUE(client.ok()) << client.status();
    return std::move(*client);
  }

  // --<side>-endpoints and, when secure, its TLS and auth flags.
  std::vector<std::string> SideFlags(const std::string& side, EtcdCluster* c,
                                     const std::string& endpoints = "") const {
    std::vector<std::string> f = {"--" + side + "-endpoints",
                                  endpoints.empty() ? c->endpoints_csv() : endpoints};
    if (secure_) {
      for (const std::string& x :
           {"--" + side + "-cacert", c->ca_file(), "--" + side + "-cert", c->client_cert_file(),
            "--" + side + "-key", c->client_key_file(), "--" + side + "-user",
            std::string("root:") + kPassword}) {
        f.push_back(x);
      }
    }
    return f;
  }

  // The task's flags, as every command of it takes them.
  std::vector<std::string> TaskFlags(const std::string& src_endpoints = "") const {
    std::vector<std::string> f = SideFlags("src", src_cluster_.get(), src_endpoints);
    for (const std::string& x : SideFlags("dst", dst_cluster_.get())) f.push_back(x);
    for (const char* x : {"--prefix", "/registry/", "--log-format", "text"}) f.emplace_back(x);
    return f;
  }

  std::unique_ptr<Subprocess> Start(const std::string& command, std::vector<std::string> flags) {
    std::vector<std::string> argv = {testing::KvsyncBinary(), command};
    argv.insert(argv.end(), flags.begin(), flags.end());
    for (const char* x :
         {"--progress-interval", "300ms", "--status-interval", "0", "--admin-addr", ""}) {
      argv.emplace_back(x);
    }
    auto p = Subprocess::Start(argv, absl::StrCat(dir_, "/", command, "-", ++runs_, ".log"));
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }

  testing::CommandResult Run(const std::string& command, std::vector<std::string> flags) {
    std::vector<std::string> argv = {testing::KvsyncBinary(), command};
    argv.insert(argv.end(), flags.begin(), flags.end());
    auto r = testing::RunCommand(argv, seconds(120));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : testing::CommandResult{};
  }

  static nlohmann::json Json(const testing::CommandResult& r) {
    nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.out << r.err;
    return j;
  }

  static bool Exists(etcd::Client* cluster, const std::string& key) {
    return LeaseOf(cluster, key) != -1;
  }

  // The lease a key is attached to (-1: no such key).
  static int64_t LeaseOf(etcd::Client* cluster, const std::string& key) {
    etcd::RangeRequest req;
    req.key = key;
    auto resp = cluster->Range(req);
    return resp.ok() && !resp->kvs.empty() ? resp->kvs[0].lease : -1;
  }

  int64_t Grant(etcd::Client* cluster, int ttl) {
    auto id = cluster->LeaseGrant(0, seconds(ttl));
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : 0;
  }

  int64_t Put(etcd::Client* cluster, const std::string& key, const std::string& value,
              int64_t lease = 0) {
    auto r = cluster->Put(key, value, lease);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->revision : 0;
  }

  std::map<std::string, std::string> Dump(etcd::Client* c) {
    return testing::DumpPrefix(c, "/registry/");
  }

  bool secure_ = false;
  std::unique_ptr<EtcdCluster> src_cluster_;
  std::unique_ptr<EtcdCluster> dst_cluster_;
  std::unique_ptr<etcd::Client> src_;
  std::unique_ptr<etcd::Client> dst_;
  std::string dir_;
  int runs_ = 0;
};

TEST_F(DrTest, CityLossDrill) {
  StartClusters(/*secure=*/true);
  // Providers registered with leases at the primary; two die with the primary's city, one
  // lives on and re-attaches to the promoted cluster with the same lease ID.
  const int64_t dead1 = Grant(src_.get(), 5);
  const int64_t dead2 = Grant(src_.get(), 5);
  const int64_t live = Grant(src_.get(), 5);
  Put(src_.get(), "/registry/svc/dead-1", "10.0.0.1:80", dead1);
  Put(src_.get(), "/registry/svc/dead-2", "10.0.0.2:80", dead2);
  Put(src_.get(), "/registry/svc/live-1", "10.1.0.1:80", live);
  for (const char* k : {"a", "b", "c"}) Put(src_.get(), absl::StrCat("/registry/config/", k), k);
  auto dead_providers = std::make_unique<Provider>(src_.get(), std::vector<int64_t>{dead1, dead2});
  auto live_at_primary = std::make_unique<Provider>(src_.get(), std::vector<int64_t>{live});

  auto proxy = FaultProxy::Start(src_cluster_->endpoint(0));
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  std::vector<std::string> mirror_flags = TaskFlags("https://" + (*proxy)->address());
  for (const char* x : {"--ha", "--lease-min-ttl", "0s", "--src-command-timeout", "2s"}) {
    mirror_flags.emplace_back(x);
  }
  auto mirror = Start("etcd2etcd", mirror_flags);
  const int64_t last_seen = Put(src_.get(), "/registry/config/d", "d");
  ASSERT_TRUE(WaitFor(
      [&] {
        return Dump(dst_.get()) == Dump(src_.get()) &&
               LeaseOf(dst_.get(), "/registry/svc/dead-1") == dead1;
      },
      seconds(60)))
      << mirror->LogTail();
  // The freshness record says so before the city goes dark: streaming (its record names the
  // time the standby was last seen caught up), with everything applied. Right after the full
  // sync the checkpoint can say so before the freshness record does; the city is lost
  // mid-stream, not in that instant (where the RPO's time is honestly "unknown").
  std::vector<std::string> status_flags = SideFlags("dst", dst_cluster_.get());
  status_flags.insert(status_flags.end(), {"--output", "json"});
  ASSERT_TRUE(WaitFor(
      [&] {
        nlohmann::json st = Json(Run("status", status_flags));
        return st.contains("tasks") && st["tasks"].size() == 1 &&
               st["tasks"][0]["checkpoint_revision"] == last_seen &&
               st["tasks"][0]["state"] == "streaming";
      },
      seconds(30)));

  // The link to the primary goes first; the primary then takes writes the standby never
  // sees, and dies for good.
  (*proxy)->SetMode(FaultProxy::Mode::kBlackhole);
  std::map<std::string, std::string> unseen = {{"/registry/config/e", "e"},
                                               {"/registry/config/f", "f"},
                                               {"/registry/svc/late", "10.0.0.9:80"}};
  for (const auto& [k, v] : unseen) Put(src_.get(), k, v);
  ASSERT_TRUE(src_->Delete("/registry/config/a").ok());
  src_cluster_->Kill(0);
  dead_providers->Stop();
  live_at_primary->Stop();

  auto status = Run("status", status_flags);
  nlohmann::json st = Json(status);
  ASSERT_EQ(st["tasks"].size(), 1u) << status.out;
  EXPECT_EQ(st["tasks"][0]["task"], "registry");
  EXPECT_EQ(st["tasks"][0]["role"], "standby");
  EXPECT_EQ(st["tasks"][0]["checkpoint_revision"], last_seen);

  // Failover: at once, with the exact RPO figure.
  std::vector<std::string> promote = TaskFlags();
  for (const char* x : {"--force", "--compact", "--output", "json"}) promote.emplace_back(x);
  auto promoted = Run("promote", promote);
  ASSERT_EQ(promoted.exit_code, 0) << promoted.out << promoted.err;
  nlohmann::json rpo = Json(promoted);
  EXPECT_EQ(rpo["mode"], "failover");
  EXPECT_EQ(rpo["applied_revision"], last_seen) << promoted.out;
  EXPECT_GE(rpo["source_head"].get<int64_t>(), last_seen);
  EXPECT_GT(rpo["applied_current_ms"].get<int64_t>(), 0) << promoted.out;
  EXPECT_EQ(rpo["mirrored_leases"], 3);
  // --compact: a watcher resuming with an old revision is told "compacted" and re-lists.
  etcd::RangeRequest old;
  old.key = "/registry/config/b";
  old.revision = 2;
  EXPECT_TRUE(etcd::IsCompacted(dst_->Range(old).status())) << dst_->Range(old).status();

  // The running mirror is fenced and ends (its lease hold with it); the dead providers'
  // registrations expire within their TTL; the live one keeps its key on the same lease ID.
  auto live_at_standby = std::make_unique<Provider>(dst_.get(), std::vector<int64_t>{live});
  auto code = mirror->Wait(seconds(30));
  ASSERT_TRUE(code.has_value()) << mirror->LogTail();
  EXPECT_EQ(*code, 2) << mirror->LogTail();
  EXPECT_NE(mirror->LogTail().find("promoted by"), std::string::npos) << mirror->LogTail();
  EXPECT_TRUE(WaitFor(
      [&] {
        return LeaseOf(dst_.get(), "/registry/svc/dead-1") == -1 &&
               LeaseOf(dst_.get(), "/registry/svc/dead-2") == -1;
      },
      seconds(5 + 25)));
  EXPECT_EQ(LeaseOf(dst_.get(), "/registry/svc/live-1"), live);

  // The old task, started again, refuses to write into the promoted cluster.
  auto again = Start("etcd2etcd", TaskFlags());
  code = again->Wait(seconds(60));
  ASSERT_TRUE(code.has_value()) << again->LogTail();
  EXPECT_EQ(*code, 2);
  EXPECT_NE(again->LogTail().find("kvsync demote"), std::string::npos) << again->LogTail();
  auto promoted_status = Run("status", SideFlags("dst", dst_cluster_.get()));
  EXPECT_EQ(promoted_status.exit_code, 0) << promoted_status.out;
  EXPECT_TRUE(absl::StrContains(promoted_status.out, "promoted")) << promoted_status.out;

  // Life goes on at the promoted cluster; then the old primary comes back.
  Put(dst_.get(), "/registry/config/new-at-dr", "n");
  ASSERT_TRUE(src_cluster_->Restart(0).ok());
  const std::string lost_file = dir_ + "/lost-writes.jsonl";
  std::vector<std::string> failback = TaskFlags();
  for (const std::string& x : {std::string("--lost-writes"), lost_file}) failback.push_back(x);
  auto back = Start("failback", failback);
  EXPECT_TRUE(WaitFor([&] { return Dump(src_.get()) == Dump(dst_.get()); }, seconds(90)))
      << back->LogTail();
  EXPECT_EQ(LeaseOf(src_.get(), "/registry/svc/live-1"), live);

  // The lost-writes file holds exactly the writes the standby never saw. The primary's own
  // lease expiries after its restart are writes after the promotion point too: they may
  // appear as deletes of those registrations.
  std::ifstream in(lost_file);
  ASSERT_TRUE(in.good()) << back->LogTail();
  std::map<std::string, std::string> puts;
  std::set<std::string> deletes;
  for (std::string line; std::getline(in, line);) {
    nlohmann::json w = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(w.is_object()) << line;
    if (w.value("deleted", false)) {
      deletes.insert(w["key"].get<std::string>());
    } else {
      puts[w["key"].get<std::string>()] = w["value"].get<std::string>();
      EXPECT_GT(w["revision"].get<int64_t>(), last_seen) << line;
    }
  }
  EXPECT_EQ(puts, unseen);
  EXPECT_TRUE(deletes.contains("/registry/config/a"));
  for (const std::string& k : deletes) {
    EXPECT_TRUE(k == "/registry/config/a" || absl::StartsWith(k, "/registry/svc/")) << k;
  }

  // The switchover back: the reversed task is promoted (the old primary is primary again), the
  // failback stops, and the original task, demoted, mirrors into the standby again.
  Put(dst_.get(), "/registry/config/last-at-dr", "l");
  std::vector<std::string> back_over = TaskFlags();
  back_over.insert(back_over.end(), {"--reverse", "--output", "json"});
  auto switched = Run("promote", back_over);
  ASSERT_EQ(switched.exit_code, 0) << switched.out << switched.err << back->LogTail();
  EXPECT_EQ(Json(switched)["late_writes"], false) << switched.out;
  // The live provider re-registers at the primary, keeping the same lease ID alive there.
  Provider back_at_primary(src_.get(), {live});
  code = back->Wait(seconds(30));
  ASSERT_TRUE(code.has_value()) << back->LogTail();
  EXPECT_EQ(*code, 2);
  EXPECT_TRUE(Exists(src_.get(), "/registry/config/last-at-dr"));
  auto demoted = Run("demote", TaskFlags());
  ASSERT_EQ(demoted.exit_code, 0) << demoted.out << demoted.err;
  Put(src_.get(), "/registry/config/primary-again", "p");
  std::vector<std::string> once = TaskFlags();
  once.insert(once.end(), {"--once", "--admin-addr", ""});
  auto resync = Run("etcd2etcd", once);
  EXPECT_EQ(resync.exit_code, 0) << resync.err;
  EXPECT_EQ(Dump(dst_.get()), Dump(src_.get()));
}

// Switchover with the source reachable while a writer keeps writing: the writer writes at the
// primary with the source's role record in its compare, as the runbook recommends, and moves
// to the promoted cluster when that compare fails. Every acknowledged write is at the promoted
// cluster (RPO 0). Then demote makes it a standby again.
TEST_F(DrTest, SwitchoverLosesNothingWhileAWriterKeepsWriting) {
  StartClusters(/*secure=*/false);
  auto mirror = Start("etcd2etcd", TaskFlags());
  // The task's role record: "demoted" at the source from the cutover, "promoted" here after.
  const std::string role_key = std::string(kMeta) + "role";
  std::atomic<bool> stop{false};
  std::atomic<int> acknowledged{0};
  std::atomic<bool> moved{false};
  std::vector<std::string> written;
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      std::string key = absl::StrCat("/registry/w/", 100000 + i);
      if (!moved) {
        etcd::TxnRequest txn;
        etcd::Compare not_demoted;
        not_demoted.key = role_key;
        not_demoted.target = etcd::Compare::Target::kVersion;
        not_demoted.number = 0;
        txn.compares.push_back(not_demoted);
        txn.success.push_back(etcd::Op::Put(key, "v"));
        auto r = src_->Txn(txn);
        if (!r.ok()) continue;
        if (r->succeeded) {
          written.push_back(key);
          ++acknowledged;
          continue;
        }
        // Demoted: writes go to the promoted cluster once it is one.
        WaitFor([&] { return Exists(dst_.get(), role_key) || stop; }, seconds(60));
        moved = true;
      }
      if (dst_->Put(key, "v").ok()) {
        written.push_back(key);
        ++acknowledged;
      }
    }
  });
  // A failed assertion below must not leave the writer running (std::terminate).
  absl::Cleanup join_writer = [&] {
    stop = true;
    if (writer.joinable()) writer.join();
  };
  // As the runbook says: a switchover starts from a healthy standby (kvsync status exit 0).
  ASSERT_TRUE(WaitFor([&] { return acknowledged >= 50; }, seconds(60)));
  ASSERT_TRUE(WaitFor([&] { return Run("status", TaskFlags()).exit_code == 0; }, seconds(60)))
      << mirror->LogTail();
  std::vector<std::string> promote = TaskFlags();
  for (const char* x : {"--output", "json"}) promote.emplace_back(x);
  auto promoted = Run("promote", promote);
  ASSERT_EQ(promoted.exit_code, 0) << promoted.out << promoted.err << mirror->LogTail();
  nlohmann::json report = Json(promoted);
  EXPECT_EQ(report["mode"], "switchover");
  EXPECT_EQ(report["source_fenced"], true);
  EXPECT_EQ(report["late_writes"], false) << promoted.out;
  const int at_promotion = acknowledged;
  EXPECT_TRUE(WaitFor([&] { return moved && acknowledged >= at_promotion + 20; }, seconds(60)));
  std::move(join_writer).Invoke();
  auto at_dst = Dump(dst_.get());
  for (const std::string& k : written) EXPECT_TRUE(at_dst.contains(k)) << k << " lost";
  auto code = mirror->Wait(seconds(30));
  ASSERT_TRUE(code.has_value()) << mirror->LogTail();
  EXPECT_EQ(*code, 2);

  // A repair is a write of the task too: refused at a promoted destination.
  std::vector<std::string> fix = {"etcd2etcd"};
  for (const std::string& x : TaskFlags()) fix.push_back(x);
  fix.insert(fix.end(), {"--fix", "--single-round"});
  auto fixed = Run("check", fix);
  EXPECT_EQ(fixed.exit_code, 2) << fixed.out << fixed.err;
  EXPECT_TRUE(absl::StrContains(fixed.err, "was promoted")) << fixed.err;
  EXPECT_EQ(Dump(dst_.get()), at_dst);

  // A second promotion is refused; demote makes the destination a standby again, and the
  // task's next run brings it back to the source.
  auto twice = Run("promote", TaskFlags());
  EXPECT_EQ(twice.exit_code, 2) << twice.out << twice.err;
  EXPECT_TRUE(absl::StrContains(twice.err, "already promoted")) << twice.err;
  auto demoted = Run("demote", TaskFlags());
  ASSERT_EQ(demoted.exit_code, 0) << demoted.out << demoted.err;
  std::vector<std::string> once = TaskFlags();
  once.insert(once.end(), {"--once", "--admin-addr", ""});
  auto resync = Run("etcd2etcd", once);
  EXPECT_EQ(resync.exit_code, 0) << resync.err;
  EXPECT_EQ(Dump(dst_.get()), Dump(src_.get()));
  EXPECT_FALSE(Exists(src_.get(), role_key)) << "demote leaves the source fenced";
}

}  // namespace
}  // namespace kvsync
