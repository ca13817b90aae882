// A randomized fault test of etcd2etcd: two --ha replicas mirror /r/ from a source to a
// destination, each cluster reached through a TCP fault proxy, while a writer makes puts,
// deletes, delete-ranges, multi-op txns and lease-bound puts (leases of a few seconds that
// expire at the source). A seeded sequence of faults is injected: kill -9 or SIGSTOP of the
// leading replica, cut or blackhole of each link, compaction of the source, kill -9 and
// restart of each etcd. Afterwards the sync must converge with 0 lost, 0 resurrected and 0
// mismatched keys, judged by dumping both clusters (not by kvsync), and the checkpoint
// history on the destination must never go backwards (a deposed leader's write landing after
// its successor's would show as one).
//
// Environment: KVSYNC_FAULT_SEED (default 1), KVSYNC_FAULT_ROUNDS (default 10) or
// KVSYNC_FAULT_MINUTES (run rounds until that much time has passed; bench/faults.sh).
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
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

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  int64_t out = 0;
  return v != nullptr && absl::SimpleAtoi(v, &out) ? out : fallback;
}

// Random writes to the source until stopped; failures (the source is down) are skipped.
class Writer {
 public:
  Writer(const std::string& endpoints, uint64_t seed) : rng_(seed) {
    etcd::ClientOptions o;
    o.endpoints = etcd::SplitEndpoints(endpoints);
    o.request_timeout = milliseconds(2000);
    client_ = std::move(*etcd::Client::Create(o));
    thread_ = std::thread([this] { Run(); });
  }
  ~Writer() { Stop(); }
  void Stop() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int64_t done() const { return ops_.load(); }

 private:
  std::string Key() { return absl::StrFormat("/r/k%03d", Pick(400)); }
  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  void Run() {
    while (!done_) {
      int op = Pick(100);
      bool ok = false;
      std::string value = absl::StrCat("v", ops_.load(), "-", std::string(Pick(200), 'x'));
      if (op < 45) {
        ok = client_->Put(Key(), value).ok();
      } else if (op < 60) {
        ok = client_->Delete(Key()).ok();
      } else if (op < 65) {
        int from = Pick(400);
        ok = client_
                 ->Delete(absl::StrFormat("/r/k%03d", from),
                          absl::StrFormat("/r/k%03d", std::min(400, from + 1 + Pick(8))))
                 .ok();
      } else if (op < 85) {
        etcd::TxnRequest t;
        std::map<std::string, bool> keys;
        for (int i = 0, n = 2 + Pick(5); i < n; ++i) keys[Key()] = Pick(4) != 0;
        for (const auto& [k, put] : keys) {
          t.success.push_back(put ? etcd::Op::Put(k, value) : etcd::Op::Delete(k));
        }
        ok = client_->Txn(t).ok();
      } else {
        auto lease = client_->LeaseGrant(seconds(2 + Pick(4)));
        ok = lease.ok() &&
             client_->Put(absl::StrFormat("/r/lease%03d", Pick(100)), value, *lease).ok();
      }
      if (ok) ops_.fetch_add(1);
      // Pacing the load (about a few hundred writes a second), not synchronisation.
      std::this_thread::sleep_for(milliseconds(ok ? 2 : 50));
    }
  }

  std::mt19937_64 rng_;
  std::unique_ptr<etcd::Client> client_;
  std::atomic<bool> done_{false};
  std::atomic<int64_t> ops_{0};
  std::thread thread_;
};

class FaultTest : public ::testing::Test {
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
    auto sl = FaultProxy::Start(src_cluster_->endpoint(0));
    ASSERT_TRUE(sl.ok()) << sl.status();
    src_link_ = std::move(*sl);
    auto dl = FaultProxy::Start(dst_cluster_->endpoint(0));
    ASSERT_TRUE(dl.ok()) << dl.status();
    dst_link_ = std::move(*dl);
    dir_ = testing::MakeTempDir("faults");
  }

  void StartReplica(int i) {
    if (admin_[i].empty()) admin_[i] = absl::StrCat("127.0.0.1:", testing::FreePort());
    auto p = Subprocess::Start({testing::KvsyncBinary(),
                                "etcd2etcd",
                                "--src-endpoints",
                                src_link_->address(),
                                "--dst-endpoints",
                                dst_link_->address(),
                                "--prefix",
                                "/r/",
                                "--ha",
                                "--lease-ttl",
                                "2s",
                                "--instance-id",
                                absl::StrCat("r", i),
                                "--progress-interval",
                                "300ms",
                                "--status-interval",
                                "0",
                                "--check-interval",
                                "0",
                                "--src-command-timeout",
                                "5s",
                                "--dst-command-timeout",
                                "5s",
                                "--log-format",
                                "text",
                                "--admin-addr",
                                admin_[i]},
                               absl::StrCat(dir_, "/replica-", i, ".log"));
    ASSERT_TRUE(p.ok()) << p.status();
    replicas_[i] = std::move(*p);
  }

  // The replica whose /status says it leads, or a random one.
  int Leader(std::mt19937_64& rng) {
    for (int i = 0; i < 2; ++i) {
      auto r = testing::HttpGet(admin_[i], "/status");
      if (!r.ok() || r->status != 200) continue;
      auto j = nlohmann::json::parse(r->body, nullptr, false);
      if (!j.is_discarded() && j.value("role", "") == "leader") return i;
    }
    return static_cast<int>(rng() % 2);
  }

  // Holds a fault until the writer has made `ops` more writes (or 8 s passed, e.g. while
  // the source itself is down).
  void Hold(const Writer& writer, int64_t ops) {
    int64_t target = writer.done() + ops;
    WaitFor([&] { return writer.done() >= target; }, seconds(8), milliseconds(50));
  }

  std::string Logs() {
    return absl::StrCat(replicas_[0]->LogTail(6000), "\n---- replica 1\n",
                        replicas_[1]->LogTail(6000));
  }

  std::unique_ptr<EtcdCluster> src_cluster_;
  std::unique_ptr<EtcdCluster> dst_cluster_;
  std::unique_ptr<etcd::Client> src_;
  std::unique_ptr<etcd::Client> dst_;
  std::unique_ptr<FaultProxy> src_link_;
  std::unique_ptr<FaultProxy> dst_link_;
  std::unique_ptr<Subprocess> replicas_[2];
  std::string admin_[2];
  std::string dir_;
};

// Converges with nothing lost, resurrected or mismatched after a seeded run of faults, and
// the checkpoint never goes backwards.
TEST_F(FaultTest, ConvergesAfterRandomFaults) {
  const uint64_t seed = static_cast<uint64_t>(EnvInt("KVSYNC_FAULT_SEED", 1));
  const int64_t rounds = EnvInt("KVSYNC_FAULT_ROUNDS", 10);
  const int64_t minutes = EnvInt("KVSYNC_FAULT_MINUTES", 0);
  std::mt19937_64 rng(seed);
  StartReplica(0);
  StartReplica(1);
  Writer writer(src_cluster_->endpoints_csv(), seed + 1);
  Hold(writer, 200);

  static const char* kFaults[] = {"kill-leader",   "stop-leader", "cut-src",
                                  "blackhole-src", "cut-dst",     "blackhole-dst",
                                  "compact-src",   "restart-src", "restart-dst"};
  std::map<std::string, int> injected;
  auto started = std::chrono::steady_clock::now();
  for (int64_t round = 0;; ++round) {
    if (minutes > 0 ? std::chrono::steady_clock::now() - started >= std::chrono::minutes(minutes)
                    : round >= rounds) {
      break;
    }
    int fault = static_cast<int>(rng() % std::size(kFaults));
    ++injected[kFaults[fault]];
    std::printf("round %lld: %s\n", static_cast<long long>(round), kFaults[fault]);
    std::fflush(stdout);
    switch (fault) {
      case 0: {
        int leader = Leader(rng);
        replicas_[leader]->Signal(SIGKILL);
        replicas_[leader]->Wait(seconds(10));
        Hold(writer, 300);
        StartReplica(leader);
        break;
      }
      case 1: {
        int leader = Leader(rng);
        replicas_[leader]->Signal(SIGSTOP);
        Hold(writer, 300 + static_cast<int64_t>(rng() % 900));
        replicas_[leader]->Signal(SIGCONT);
        break;
      }
      case 2:
      case 3:
      case 4:
      case 5: {
        FaultProxy* link = fault < 4 ? src_link_.get() : dst_link_.get();
        link->SetMode(fault % 2 == 0 ? FaultProxy::Mode::kCut : FaultProxy::Mode::kBlackhole);
        Hold(writer, 300 + static_cast<int64_t>(rng() % 1500));
        link->SetMode(FaultProxy::Mode::kPass);
        break;
      }
      case 6: {
        etcd::RangeRequest head;
        head.key = "/r/";
        auto resp = src_->Range(head);
        if (resp.ok()) src_->Compact(resp->header.revision).IgnoreError();
        break;
      }
      case 7:
      case 8: {
        EtcdCluster* cluster = fault == 7 ? src_cluster_.get() : dst_cluster_.get();
        cluster->Kill(0);
        Hold(writer, 100);
        ASSERT_TRUE(cluster->Restart(0).ok()) << cluster->LogTails();
        break;
      }
    }
    Hold(writer, 300);
  }
  writer.Stop();
  src_link_->SetMode(FaultProxy::Mode::kPass);
  dst_link_->SetMode(FaultProxy::Mode::kPass);
  for (auto& r : replicas_) r->Signal(SIGCONT);

  KvMap src_dump;
  KvMap dst_dump;
  bool converged = WaitFor(
      [&] {
        src_dump = testing::DumpPrefix(src_.get(), "/r/");
        dst_dump = testing::DumpPrefix(dst_.get(), "/r/");
        return !src_dump.empty() && src_dump == dst_dump;
      },
      seconds(180), milliseconds(250));
  int lost = 0;
  int resurrected = 0;
  int mismatched = 0;
  for (const auto& [k, v] : src_dump) {
    auto it = dst_dump.find(k);
    if (it == dst_dump.end()) {
      ++lost;
    } else if (it->second != v) {
      ++mismatched;
    }
  }
  for (const auto& [k, v] : dst_dump) resurrected += src_dump.count(k) == 0;
  std::string summary;
  for (const auto& [name, n] : injected) absl::StrAppend(&summary, name, "=", n, " ");
  std::printf("seed %llu, %lld writes, faults: %s; lost %d resurrected %d mismatched %d\n",
              static_cast<unsigned long long>(seed), static_cast<long long>(writer.done()),
              summary.c_str(), lost, resurrected, mismatched);
  EXPECT_TRUE(converged) << Logs();
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(resurrected, 0);
  EXPECT_EQ(mismatched, 0);

  // The checkpoint history, read back from the destination's MVCC history.
  etcd::Client::WatchOptions wo;
  wo.key = checker::CheckpointKey("/kvsync/meta/", "r");
  wo.start_revision = 1;
  wo.progress_notify = false;
  auto watch = dst_->Watch(wo);
  ASSERT_TRUE(watch.ok()) << watch.status();
  etcd::RangeRequest head;
  head.key = wo.key;
  auto now = dst_->Range(head);
  ASSERT_TRUE(now.ok());
  int64_t last = 0;
  int64_t writes = 0;
  int64_t last_mod = 0;
  while (last_mod < now->kvs.at(0).mod_revision) {
    auto resp = (*watch)->Next();
    ASSERT_TRUE(resp.ok()) << resp.status();
    for (const auto& e : resp->events) {
      last_mod = e.kv.mod_revision;
      auto cp = checker::DecodeCheckpoint(e.kv.value);
      ASSERT_TRUE(cp.ok());
      ++writes;
      EXPECT_GE(cp->revision, last) << "checkpoint went backwards at destination revision "
                                    << e.kv.mod_revision << " (writer " << cp->writer << ")";
      last = std::max(last, cp->revision);
    }
  }
  EXPECT_GT(writes, 0);
}

}  // namespace
}  // namespace kvsync
