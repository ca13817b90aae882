// Lease-aware mirroring against real etcd (mirror/lease_keeper.h): a provider's registration at
// the destination lives and dies with its lease at the source, on the same lease ID; a restart
// and HA takeovers keep the destination leases alive; an unreachable source holds them; after
// the mirror stops, clients keep their own leases alive at the destination; a lease ID someone
// else holds at the destination is a conflict, never adopted; checks compare lease attachment.
#include <signal.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "etcd/client.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/harness/etcd_cluster.h"
#include "tests/harness/fault_proxy.h"
#include "tests/harness/http_get.h"
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

constexpr char kElection[] = "/kvsync/meta/registry/election";

// Keys deleted under a prefix of a cluster from a revision on.
std::vector<std::string> Deleted(testing::EventRecorder* recorder) {
  std::vector<std::string> out;
  for (const etcd::Event& e : recorder->events()) {
    if (e.type == etcd::Event::Type::kDelete) out.push_back(e.kv.key);
  }
  return out;
}

class LeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = EtcdCluster::Start({.name = "src"});
    ASSERT_TRUE(s.ok()) << s.status();
    src_cluster_ = std::move(*s);
    auto d = EtcdCluster::Start({.name = "dst"});
    ASSERT_TRUE(d.ok()) << d.status();
    dst_cluster_ = std::move(*d);
    src_ = testing::ConnectEtcd(src_cluster_->endpoints_csv());
    dst_ = testing::ConnectEtcd(dst_cluster_->endpoints_csv());
    dir_ = testing::MakeTempDir("lease");
  }

  std::unique_ptr<Subprocess> StartKvsync(std::vector<std::string> extra,
                                          const std::string& src_endpoints = "") {
    admin_ = absl::StrCat("127.0.0.1:", testing::FreePort());
    std::vector<std::string> argv = {
        testing::KvsyncBinary(),
        "etcd2etcd",
        "--src-endpoints",
        src_endpoints.empty() ? src_cluster_->endpoints_csv() : src_endpoints,
        "--dst-endpoints",
        dst_cluster_->endpoints_csv(),
        "--prefix",
        "/registry/",
        "--log-format",
        "text",
        "--progress-interval",
        "300ms",
        "--status-interval",
        "0",
        "--admin-addr",
        admin_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto p = Subprocess::Start(argv, absl::StrCat(dir_, "/kvsync-", ++runs_, ".log"));
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }

  // Runs `kvsync check etcd2etcd` with JSON output; returns its exit code.
  int Check(std::vector<std::string> extra, nlohmann::json* report) {
    std::vector<std::string> argv = {testing::KvsyncBinary(),
                                     "check",
                                     "etcd2etcd",
                                     "--src-endpoints",
                                     src_cluster_->endpoints_csv(),
                                     "--dst-endpoints",
                                     dst_cluster_->endpoints_csv(),
                                     "--prefix",
                                     "/registry/",
                                     "--output",
                                     "json",
                                     "--confirm-timeout",
                                     "500ms",
                                     "--log-format",
                                     "text"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto r = testing::RunCommand(argv, seconds(60));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return -1;
    *report = nlohmann::json::parse(r->out.substr(0, r->out.find('\n')), nullptr, false);
    EXPECT_FALSE(report->is_discarded()) << r->out << r->err;
    return r->exit_code;
  }

  // The lease a key is attached to (-1: no such key).
  static int64_t LeaseOf(etcd::Client* cluster, const std::string& key) {
    etcd::RangeRequest req;
    req.key = key;
    auto resp = cluster->Range(req);
    return resp.ok() && !resp->kvs.empty() ? resp->kvs[0].lease : -1;
  }
  static int64_t GrantedTtl(etcd::Client* cluster, int64_t lease) {
    auto info = cluster->LeaseTimeToLive(lease);
    return info.ok() && info->exists() ? info->granted_ttl : -1;
  }
  int64_t Grant(int64_t ttl_seconds, int64_t id = 0) {
    auto lease = src_->LeaseGrant(id, seconds(ttl_seconds));
    EXPECT_TRUE(lease.ok()) << lease.status();
    return lease.value_or(0);
  }
  double Metric(const std::string& sample) {
    auto page = testing::HttpGet(admin_, "/metrics");
    return page.ok() ? testing::MetricSample(page->body, sample) : -1;
  }
  int64_t DstRevision() {
    etcd::RangeRequest r;
    r.key = "/";
    return dst_->Range(r)->header.revision;
  }

  std::unique_ptr<EtcdCluster> src_cluster_;
  std::unique_ptr<EtcdCluster> dst_cluster_;
  std::unique_ptr<etcd::Client> src_;
  std::unique_ptr<etcd::Client> dst_;
  std::string dir_;
  std::string admin_;
  int runs_ = 0;
};

// A provider registers with a 10 s lease: the destination key carries the same lease ID with a
// TTL of at most 10 s (no floor); while the provider keeps its source lease alive for a minute
// the destination key stays; revoked at the source, gone at the destination (with its lease);
// a lease left to expire at the source takes its destination key with it.
TEST_F(LeaseTest, ARegistrationLivesAndDiesWithItsSourceLease) {
  const int64_t kept = Grant(10);
  const int64_t left = Grant(5);
  ASSERT_TRUE(src_->Put("/registry/svc/10.0.0.1:80", "kept", kept).ok());
  ASSERT_TRUE(src_->Put("/registry/svc/10.0.0.2:80", "left", left).ok());
  Provider provider(src_.get(), {kept});
  auto kvsync = StartKvsync({"--lease-min-ttl", "0s"});
  ASSERT_TRUE(WaitFor([&] { return LeaseOf(dst_.get(), "/registry/svc/10.0.0.1:80") == kept; },
                      seconds(30)))
      << kvsync->LogTail();
  const int64_t ttl = GrantedTtl(dst_.get(), kept);
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, 10);
  // Nobody keeps `left` alive: it expires at the source, and its key goes at the destination.
  ASSERT_TRUE(
      WaitFor([&] { return LeaseOf(dst_.get(), "/registry/svc/10.0.0.2:80") == -1; }, seconds(30)))
      << kvsync->LogTail();
  // A minute of the provider keeping its lease alive: the destination key never goes.
  EXPECT_FALSE(WaitFor([&] { return LeaseOf(dst_.get(), "/registry/svc/10.0.0.1:80") != kept; },
                       seconds(60), milliseconds(200)))
      << kvsync->LogTail();
  EXPECT_GT(Metric("kvsync_lease_keepalives_total{task=\"registry\"}"), 5);
  EXPECT_EQ(Metric("kvsync_leases_mirrored{task=\"registry\"}"), 1);
  provider.Stop();
  ASSERT_TRUE(src_->LeaseRevoke(kept).ok());
  ASSERT_TRUE(
      WaitFor([&] { return LeaseOf(dst_.get(), "/registry/svc/10.0.0.1:80") == -1; }, seconds(20)))
      << kvsync->LogTail();
  ASSERT_TRUE(WaitFor([&] { return GrantedTtl(dst_.get(), kept) == -1; }, seconds(20)))
      << kvsync->LogTail();
  EXPECT_TRUE(WaitFor([&] { return Metric("kvsync_leases_mirrored{task=\"registry\"}") == 0; },
                      seconds(10)));
}

// A full sync of leased keys into an empty destination puts every key on its source lease's
// ID; a kill -9 takeover, a restarted replica and a SIGTERM hand-off keep those destination
// leases alive (a 15 s floor, longer than any hand-off here but shorter than the test), and no
// destination key is ever deleted.
TEST_F(LeaseTest, FullSyncRestartAndTakeoversKeepTheSameLeases) {
  std::vector<int64_t> leases;
  std::map<std::string, int64_t> expected;
  for (int p = 0; p < 3; ++p) {
    leases.push_back(Grant(10));
    for (int k = 0; k < 3; ++k) {
      std::string key = absl::StrCat("/registry/svc", p, "/10.0.0.", k, ":80");
      ASSERT_TRUE(src_->Put(key, "up", leases.back()).ok());
      expected[key] = leases.back();
    }
  }
  Provider provider(src_.get(), leases);
  auto all_on_their_leases = [&] {
    for (const auto& [key, lease] : expected) {
      if (LeaseOf(dst_.get(), key) != lease) return false;
    }
    return true;
  };
  etcd::WatchOptions watch;
  watch.key = "/registry/";
  watch.range_end = "/registry0";
  watch.start_revision = DstRevision() + 1;
  testing::EventRecorder events(dst_.get(), watch);
  auto replica = [&](const std::string& id) {
    return StartKvsync(
        {"--ha", "--lease-ttl", "2s", "--instance-id", id, "--lease-min-ttl", "15s"});
  };
  auto leader = [&] {
    auto kv = dst_->Leader(kElection);
    return kv.ok() ? kv->value : std::string();
  };
  auto a = replica("a");
  ASSERT_TRUE(WaitFor([&] { return leader() == "a"; }, seconds(20))) << a->LogTail();
  auto b = replica("b");
  ASSERT_TRUE(WaitFor(all_on_their_leases, seconds(30))) << a->LogTail();
  EXPECT_EQ(GrantedTtl(dst_.get(), leases[0]), 15);

  a->Signal(SIGKILL);
  a->Wait(seconds(10));
  ASSERT_TRUE(WaitFor([&] { return leader() == "b"; }, seconds(20))) << b->LogTail();
  a = replica("a");  // the restarted replica stands by
  // Longer than the destination TTL after the kill: only b's keep-alives keep them.
  EXPECT_FALSE(WaitFor([&] { return !all_on_their_leases(); }, seconds(20), milliseconds(200)))
      << b->LogTail();
  b->Stop();  // SIGTERM: b resigns, a takes over
  ASSERT_TRUE(WaitFor([&] { return leader() == "a"; }, seconds(20))) << a->LogTail();
  EXPECT_FALSE(WaitFor([&] { return !all_on_their_leases(); }, seconds(20), milliseconds(200)))
      << a->LogTail();
  EXPECT_TRUE(Deleted(&events).empty()) << Deleted(&events).front();
  EXPECT_NE(a->LogTail(200000).find("lease records loaded"), std::string::npos);
}

// The source unreachable for three times its leases' TTL: the destination keys stay (the
// leases are held), and the mirror resumes when the source comes back.
TEST_F(LeaseTest, AnUnreachableSourceHoldsTheDestinationLeases) {
  auto proxy = FaultProxy::Start(src_cluster_->endpoint(0));
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  const int64_t lease = Grant(10);
  ASSERT_TRUE(src_->Put("/registry/svc/10.0.0.1:80", "up", lease).ok());
  Provider provider(src_.get(), {lease});
  auto kvsync =
      StartKvsync({"--lease-min-ttl", "0s", "--src-command-timeout", "2s"}, (*proxy)->address());
  ASSERT_TRUE(WaitFor([&] { return LeaseOf(dst_.get(), "/registry/svc/10.0.0.1:80") == lease; },
                      seconds(30)))
      << kvsync->LogTail();
  (*proxy)->SetMode(FaultProxy::Mode::kBlackhole);
  EXPECT_TRUE(
      WaitFor([&] { return Metric("kvsync_leases_held{task=\"registry\"}") == 1; }, seconds(20)))
      << kvsync->LogTail();
  EXPECT_FALSE(WaitFor([&] { return LeaseOf(dst_.get(), "/registry/svc/10.0.0.1:80") != lease; },
                       seconds(30), milliseconds(200)))
      << kvsync->LogTail();
  (*proxy)->SetMode(FaultProxy::Mode::kPass);
  ASSERT_TRUE(src_->Put("/registry/svc/10.0.0.9:80", "after", lease).ok());
  ASSERT_TRUE(WaitFor([&] { return LeaseOf(dst_.get(), "/registry/svc/10.0.0.9:80") == lease; },
                      seconds(60)))
      << kvsync->LogTail();
  EXPECT_TRUE(
      WaitFor([&] { return Metric("kvsync_leases_held{task=\"registry\"}") == 0; }, seconds(20)));
  EXPECT_EQ(LeaseOf(dst_.get(), "/registry/svc/10.0.0.1:80"), lease);
}

// After the mirror stops, a client that keeps its lease ID alive against the destination keeps
// its key (the failover story), while a lease nobody keeps alive expires within its TTL.
TEST_F(LeaseTest, AfterTheMirrorStopsClientsKeepTheirLeasesAtTheDestination) {
  const int64_t live = Grant(6);
  const int64_t dead = Grant(6);
  ASSERT_TRUE(src_->Put("/registry/svc/live", "up", live).ok());
  ASSERT_TRUE(src_->Put("/registry/svc/dead", "up", dead).ok());
  Provider at_source(src_.get(), {live, dead});
  auto kvsync = StartKvsync({"--lease-min-ttl", "0s"});
  ASSERT_TRUE(WaitFor(
      [&] {
        return LeaseOf(dst_.get(), "/registry/svc/live") == live &&
               LeaseOf(dst_.get(), "/registry/svc/dead") == dead;
      },
      seconds(30)))
      << kvsync->LogTail();
  ASSERT_EQ(kvsync->Stop(), 0) << kvsync->LogTail();
  Provider at_destination(dst_.get(), {live});
  // Its TTL (6 s, no floor) plus etcd's expiry sweep and a loaded machine's slack.
  ASSERT_TRUE(
      WaitFor([&] { return LeaseOf(dst_.get(), "/registry/svc/dead") == -1; }, seconds(15)));
  EXPECT_FALSE(WaitFor([&] { return LeaseOf(dst_.get(), "/registry/svc/live") != live; },
                       seconds(15), milliseconds(200)));
}

// A lease ID that someone else holds at the destination is a conflict: the mirrored key is
// written without a lease, never on the foreign lease; the conflict shows in the metric,
// /readyz, the log and `check`; the foreign lease and its key are left alone, also after the
// source lease is revoked.
TEST_F(LeaseTest, ALeaseIdConflictIsReportedAndNeverAdopted) {
  constexpr int64_t kId = 0x7e57000000000001;
  ASSERT_TRUE(dst_->LeaseGrant(kId, seconds(120)).ok());
  ASSERT_TRUE(dst_->Put("/elsewhere/theirs", "theirs", kId).ok());
  ASSERT_EQ(Grant(30, kId), kId);
  ASSERT_TRUE(src_->Put("/registry/svc/x", "up", kId).ok());
  auto kvsync = StartKvsync({});
  ASSERT_TRUE(WaitFor([&] { return LeaseOf(dst_.get(), "/registry/svc/x") == 0; }, seconds(30)))
      << kvsync->LogTail();
  EXPECT_TRUE(WaitFor([&] { return Metric("kvsync_lease_conflicts{task=\"registry\"}") == 1; },
                      seconds(10)));
  // /readyz names the first reason: until the full sync ends that is the full sync itself.
  std::string ready_body;
  EXPECT_TRUE(WaitFor(
      [&] {
        auto ready = testing::HttpGet(admin_, "/readyz");
        ready_body = ready.ok() ? ready->body : ready.status().ToString();
        return ready.ok() && ready->status == 503 &&
               ready->body.find("lease ID conflict") != std::string::npos;
      },
      seconds(30)))
      << ready_body;
  EXPECT_NE(kvsync->LogTail(100000).find("lease ID conflict"), std::string::npos);
  nlohmann::json report;
  EXPECT_EQ(Check({"--single-round"}, &report), 1);
  EXPECT_EQ(report.value("lease_mismatch", -1), 1) << report.dump();
  ASSERT_TRUE(src_->LeaseRevoke(kId).ok());
  ASSERT_TRUE(WaitFor([&] { return LeaseOf(dst_.get(), "/registry/svc/x") == -1; }, seconds(20)));
  EXPECT_EQ(LeaseOf(dst_.get(), "/elsewhere/theirs"), kId);
  EXPECT_GT(GrantedTtl(dst_.get(), kId), 0);
}

// `check` reports a key detached from its lease as a lease mismatch (not with --no-leases),
// `check --fix` puts it back on the task's lease, and a full sync repairs one too.
TEST_F(LeaseTest, CheckReportsAndRepairsLeaseMismatches) {
  const int64_t lease = Grant(30);
  ASSERT_TRUE(src_->Put("/registry/svc/a", "up", lease).ok());
  ASSERT_TRUE(src_->Put("/registry/svc/b", "up", lease).ok());
  Provider provider(src_.get(), {lease});
  auto kvsync = StartKvsync({});
  ASSERT_TRUE(WaitFor([&] { return LeaseOf(dst_.get(), "/registry/svc/b") == lease; }, seconds(30)))
      << kvsync->LogTail();
  ASSERT_EQ(kvsync->Stop(), 0);
  ASSERT_TRUE(dst_->Put("/registry/svc/a", "up").ok());  // same value, no lease
  nlohmann::json report;
  EXPECT_EQ(Check({"--single-round"}, &report), 1);
  EXPECT_EQ(report.value("lease_mismatch", -1), 1) << report.dump();
  EXPECT_EQ(Check({"--single-round", "--no-leases"}, &report), 0) << report.dump();
  EXPECT_EQ(Check({"--single-round", "--fix"}, &report), 1);
  EXPECT_EQ(report.value("fixed", -1), 1) << report.dump();
  EXPECT_EQ(LeaseOf(dst_.get(), "/registry/svc/a"), lease);
  EXPECT_EQ(Check({"--single-round"}, &report), 0) << report.dump();

  ASSERT_TRUE(dst_->Put("/registry/svc/b", "up").ok());
  kvsync = StartKvsync({"--reset-last-synced-rev"});
  // The key is re-attached before the full sync logs its counts: wait for the log line.
  ASSERT_TRUE(
      WaitFor([&] { return kvsync->LogTail(100000).find("full sync done") != std::string::npos; },
              seconds(30)))
      << kvsync->LogTail();
  EXPECT_EQ(LeaseOf(dst_.get(), "/registry/svc/b"), lease);
  EXPECT_NE(kvsync->LogTail(100000).find("lease_mismatch_put=1"), std::string::npos)
      << kvsync->LogTail();
}

}  // namespace
}  // namespace kvsync
