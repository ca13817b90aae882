// Active/standby replicas of one etcd2etcd task against real etcd: takeover after kill -9,
// fencing of a paused leader, a leader cut off from the destination, SIGTERM hand-off.
// Replicas run the kvsync binary with --ha; the checkpoint records which replica wrote it, so
// the destination's watch history shows who wrote what.
#include <signal.h>

#include <atomic>
#include <fstream>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "checker/checkpoint.h"
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
using testing::Subprocess;
using testing::WaitFor;
using KvMap = std::map<std::string, std::string>;

constexpr char kElection[] = "/kvsync/meta/ha/election";

// Writes a key into the source every few milliseconds until stopped (writes continue
// throughout the takeover).
class Writer {
 public:
  explicit Writer(etcd::Client* src) : src_(src), thread_([this] { Run(); }) {}
  ~Writer() { Stop(); }
  void Stop() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int written() const { return n_.load(); }

 private:
  void Run() {
    while (!done_) {
      if (src_->Put(absl::StrFormat("/ha/k%06d", n_.load()), "v").ok()) ++n_;
      std::this_thread::sleep_for(milliseconds(5));  // pacing the load, not synchronisation
    }
  }
  etcd::Client* src_;
  std::atomic<bool> done_{false};
  std::atomic<int> n_{0};
  std::thread thread_;
};

// Every checkpoint write seen on the destination, in order: its writer.
class CheckpointHistory {
 public:
  CheckpointHistory(etcd::Client* dst, int64_t from) : recorder_(dst, Options(from)) {}
  std::vector<std::string> writers() {
    std::vector<std::string> out;
    for (const etcd::Event& e : recorder_.events()) {
      auto cp = checker::DecodeCheckpoint(e.kv.value);
      if (cp.ok()) out.push_back(cp->writer);
    }
    return out;
  }

 private:
  static etcd::WatchOptions Options(int64_t from) {
    etcd::WatchOptions wo;
    wo.key = checker::CheckpointKey("/kvsync/meta/", "ha");
    wo.start_revision = from;
    return wo;
  }
  testing::EventRecorder recorder_;
};

class HaTest : public ::testing::Test {
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
    dir_ = testing::MakeTempDir("ha");
  }

  std::unique_ptr<Subprocess> StartReplica(const std::string& id, int ttl_seconds = 2,
                                           std::string dst_endpoints = "") {
    if (admin_[id].empty()) admin_[id] = absl::StrCat("127.0.0.1:", testing::FreePort());
    std::vector<std::string> argv = {
        testing::KvsyncBinary(),
        "etcd2etcd",
        "--src-endpoints",
        src_cluster_->endpoints_csv(),
        "--dst-endpoints",
        dst_endpoints.empty() ? dst_cluster_->endpoints_csv() : dst_endpoints,
        "--prefix",
        "/ha/",
        "--ha",
        "--lease-ttl",
        absl::StrCat(ttl_seconds, "s"),
        "--instance-id",
        id,
        "--dst-command-timeout",
        "1s",
        "--log-format",
        "text",
        "--status-interval",
        "0",
        "--progress-interval",
        "300ms",
        "--admin-addr",
        admin_[id]};
    auto p = Subprocess::Start(argv, absl::StrCat(dir_, "/", id, ".log"));
    EXPECT_TRUE(p.ok()) << p.status();
    return std::move(*p);
  }

  std::string Leader() {
    auto kv = dst_->Leader(kElection);
    return kv.ok() ? kv->value : "";
  }

  bool WaitLeader(const std::string& id, milliseconds deadline) {
    return WaitFor([&] { return Leader() == id; }, deadline, milliseconds(20));
  }

  bool WaitSynced(milliseconds deadline = milliseconds(30000)) {
    return WaitFor(
        [&] {
          return testing::DumpPrefix(src_.get(), "/ha/") == testing::DumpPrefix(dst_.get(), "/ha/");
        },
        deadline, milliseconds(100));
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
  std::map<std::string, std::string> admin_;  // instance id -> admin address
};

// No write by `old_id` appears after the first write by `new_id`.
void ExpectNoWriteAfterTakeover(const std::vector<std::string>& writers, const std::string& old_id,
                                const std::string& new_id) {
  auto first_new = std::find(writers.begin(), writers.end(), new_id);
  ASSERT_NE(first_new, writers.end()) << "the new leader never wrote";
  EXPECT_EQ(std::find(first_new, writers.end(), old_id), writers.end())
      << old_id << " wrote after " << new_id << " took over";
}

// kill -9 of the leader: the standby takes over and the destination converges while the source
// keeps changing.
TEST_F(HaTest, StandbyTakesOverAfterLeaderIsKilled) {
  auto a = StartReplica("a");
  ASSERT_TRUE(WaitLeader("a", seconds(20))) << a->LogTail();
  auto b = StartReplica("b");
  Writer writer(src_.get());
  ASSERT_TRUE(WaitFor([&] { return writer.written() > 50; }, seconds(20)));
  ASSERT_TRUE(
      WaitFor([&] { return testing::DumpPrefix(dst_.get(), "/ha/").size() > 20; }, seconds(20)));
  a->Signal(SIGKILL);
  a->Wait(seconds(10));
  ASSERT_TRUE(WaitLeader("b", seconds(20))) << b->LogTail();
  int at_takeover = writer.written();
  ASSERT_TRUE(WaitFor([&] { return writer.written() > at_takeover + 50; }, seconds(20)));
  writer.Stop();
  ASSERT_TRUE(WaitSynced()) << b->LogTail();
  EXPECT_NE(b->LogTail(50000).find("became leader"), std::string::npos);
}

// A leader paused past its lease (SIGSTOP) is replaced; when it resumes, nothing it still had
// in flight reaches the destination: the fence rejects it, and it steps down.
TEST_F(HaTest, PausedLeaderIsFencedAfterResume) {
  auto a = StartReplica("a");
  ASSERT_TRUE(WaitLeader("a", seconds(20))) << a->LogTail();
  auto b = StartReplica("b");
  CheckpointHistory history(dst_.get(), DstRevision());
  Writer writer(src_.get());
  ASSERT_TRUE(
      WaitFor([&] { return testing::DumpPrefix(dst_.get(), "/ha/").size() > 20; }, seconds(20)));
  a->Signal(SIGSTOP);
  ASSERT_TRUE(WaitLeader("b", seconds(20))) << b->LogTail();
  ASSERT_TRUE(WaitFor(
      [&] {
        auto w = history.writers();
        return std::count(w.begin(), w.end(), "b") > 3;
      },
      seconds(20)));
  a->Signal(SIGCONT);
  ASSERT_TRUE(WaitFor(
      [&] {
        std::string log = a->LogTail(50000);
        return log.find("fenced") != std::string::npos ||
               log.find("lost leadership") != std::string::npos ||
               log.find("lease expired") != std::string::npos;
      },
      seconds(20)))
      << a->LogTail();
  writer.Stop();
  ASSERT_TRUE(WaitSynced()) << b->LogTail();
  EXPECT_EQ(Leader(), "b");
  ExpectNoWriteAfterTakeover(history.writers(), "a", "b");
}

// The leader loses its link to the destination: the standby takes over; once the link is back
// the old leader stays a standby (no split brain).
TEST_F(HaTest, LeaderCutFromDestinationIsReplacedWithoutSplitBrain) {
  auto proxy = FaultProxy::Start(dst_cluster_->endpoint(0));
  ASSERT_TRUE(proxy.ok());
  auto a = StartReplica("a", 2, (*proxy)->address());
  ASSERT_TRUE(WaitLeader("a", seconds(20))) << a->LogTail();
  auto b = StartReplica("b");
  CheckpointHistory history(dst_.get(), DstRevision());
  Writer writer(src_.get());
  ASSERT_TRUE(
      WaitFor([&] { return testing::DumpPrefix(dst_.get(), "/ha/").size() > 20; }, seconds(20)));
  (*proxy)->SetMode(FaultProxy::Mode::kCut);
  ASSERT_TRUE(WaitLeader("b", seconds(20))) << b->LogTail();
  ASSERT_TRUE(
      WaitFor([&] { return a->LogTail(50000).find("giving up leadership") != std::string::npos; },
              seconds(20)))
      << a->LogTail();
  (*proxy)->SetMode(FaultProxy::Mode::kPass);
  int after = writer.written();
  ASSERT_TRUE(WaitFor([&] { return writer.written() > after + 50; }, seconds(20)));
  writer.Stop();
  ASSERT_TRUE(WaitSynced()) << b->LogTail();
  EXPECT_EQ(Leader(), "b");
  ExpectNoWriteAfterTakeover(history.writers(), "a", "b");
  EXPECT_TRUE(a->Running());
}

// The admin server of each replica: /status shows its role and the leader, /readyz is 200 for
// a caught-up leader and for a healthy standby, /metrics is valid Prometheus text exposition
// (checked by promtool) with the role and the sync figures.
TEST_F(HaTest, AdminEndpointsShowRolesAndMetrics) {
  auto a = StartReplica("a");
  ASSERT_TRUE(WaitLeader("a", seconds(20))) << a->LogTail();
  auto b = StartReplica("b");
  ASSERT_TRUE(src_->Put("/ha/x", "1").ok());
  ASSERT_TRUE(WaitSynced()) << a->LogTail();
  auto get = [&](const std::string& id, const std::string& path) {
    auto r = testing::HttpGet(admin_[id], path);
    return r.ok() ? *r : testing::HttpResult{};
  };
  ASSERT_TRUE(WaitFor([&] { return get("a", "/readyz").status == 200; }, seconds(20)))
      << get("a", "/readyz").body;
  ASSERT_TRUE(WaitFor([&] { return get("b", "/readyz").status == 200; }, seconds(20)))
      << get("b", "/readyz").body;
  EXPECT_EQ(get("a", "/healthz").status, 200);
  auto status_a = nlohmann::json::parse(get("a", "/status").body);
  EXPECT_EQ(status_a["role"], "leader");
  EXPECT_EQ(status_a["leader"], "a");
  EXPECT_EQ(status_a["phase"], "incremental");
  EXPECT_GT(status_a["checkpoint_revision"].get<int64_t>(), 0);
  auto status_b = nlohmann::json::parse(get("b", "/status").body);
  EXPECT_EQ(status_b["role"], "standby");
  EXPECT_EQ(status_b["leader"], "a");

  std::string metrics = get("a", "/metrics").body;
  EXPECT_NE(metrics.find("kvsync_is_leader{task=\"ha\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(get("b", "/metrics").body.find("kvsync_is_leader{task=\"ha\"} 0"), std::string::npos);
  EXPECT_NE(metrics.find("kvsync_txn_duration_seconds_bucket"), std::string::npos);
  EXPECT_NE(metrics.find("process_resident_memory_bytes"), std::string::npos);
  std::string file = dir_ + "/scrape.txt";
  std::ofstream(file) << metrics;
  std::string cmd = "promtool check metrics < " + file + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), pipe)) out.append(buf, n);
  EXPECT_EQ(pclose(pipe), 0) << out;
  EXPECT_EQ(out, "") << out;
}

// SIGTERM: the leader resigns, so the standby leads long before the lease would have expired.
TEST_F(HaTest, SigtermHandsOverImmediately) {
  constexpr int kTtl = 20;
  auto a = StartReplica("a", kTtl);
  ASSERT_TRUE(WaitLeader("a", seconds(20))) << a->LogTail();
  auto b = StartReplica("b", kTtl);
  ASSERT_TRUE(
      WaitFor([&] { return b->LogTail().find("campaigning") != std::string::npos; }, seconds(20)));
  a->Signal(SIGTERM);
  EXPECT_EQ(a->Wait(seconds(20)), std::optional<int>(0)) << a->LogTail();
  // Without the resignation b would wait for the 20 s lease to expire.
  EXPECT_TRUE(WaitLeader("b", seconds(kTtl / 2))) << b->LogTail();
  ASSERT_TRUE(src_->Put("/ha/after", "x").ok());
  ASSERT_TRUE(WaitSynced()) << b->LogTail();
}

}  // namespace
}  // namespace kvsync
