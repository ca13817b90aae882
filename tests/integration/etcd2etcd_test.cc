// End-to-end tests of `kvsync etcd2etcd` against real etcd servers on loopback. Each test
// starts its own clusters and runs the kvsync binary (KVSYNC_BINARY) as a subprocess.
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "checker/checkpoint.h"
#include "etcd/client.h"
#include "gtest/gtest.h"
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
using testing::EtcdClusterOptions;
using testing::FaultProxy;
using testing::Subprocess;
using testing::WaitFor;
using KvMap = std::map<std::string, std::string>;

// Rewrites the keys of `m` from prefix `from` to prefix `to`.
KvMap Rewrite(const KvMap& m, const std::string& from, const std::string& to) {
  KvMap out;
  for (auto& [k, v] : m) out[to + k.substr(from.size())] = v;
  return out;
}

int64_t Revision(etcd::Client* c) {
  etcd::RangeRequest r;
  r.key = "/";
  auto resp = c->Range(r);
  return resp.ok() ? resp->header.revision : -1;
}

std::optional<checker::Checkpoint> ReadCheckpoint(etcd::Client* dst, const std::string& name) {
  etcd::RangeRequest r;
  r.key = checker::CheckpointKey("/kvsync/meta/", name);
  auto resp = dst->Range(r);
  if (!resp.ok() || resp->kvs.empty()) return std::nullopt;
  auto cp = checker::DecodeCheckpoint(resp->kvs[0].value);
  if (!cp.ok()) return std::nullopt;
  return *cp;
}

void PutMany(etcd::Client* c, const std::string& prefix, int n, const std::string& value_tag) {
  for (int i = 0; i < n; i += 100) {
    etcd::TxnRequest t;
    for (int j = i; j < std::min(n, i + 100); ++j) {
      t.success.push_back(
          etcd::Op::Put(absl::StrFormat("%s%05d", prefix, j), absl::StrCat(value_tag, "-", j)));
    }
    // The puts are idempotent: retry through leader changes and failover.
    ASSERT_TRUE(WaitFor([&] { return c->Txn(t).ok(); }, seconds(20)));
  }
}

class Etcd2EtcdTest : public ::testing::Test {
 protected:
  void StartClusters(EtcdClusterOptions src_opts = {}, EtcdClusterOptions dst_opts = {}) {
    src_opts.name = "src";
    dst_opts.name = "dst";
    auto s = EtcdCluster::Start(src_opts);
    ASSERT_TRUE(s.ok()) << s.status();
    src_cluster_ = std::move(*s);
    auto d = EtcdCluster::Start(dst_opts);
    ASSERT_TRUE(d.ok()) << d.status();
    dst_cluster_ = std::move(*d);
    src_ = testing::ConnectEtcd(src_cluster_->endpoints_csv());
    dst_ = testing::ConnectEtcd(dst_cluster_->endpoints_csv());
    dir_ = testing::MakeTempDir("e2e");
  }

  // Starts kvsync etcd2etcd with the clusters' endpoints (unless overridden) and `extra`.
  std::unique_ptr<Subprocess> StartKvsync(std::vector<std::string> extra,
                                          std::string src_endpoints = "",
                                          std::string dst_endpoints = "") {
    std::vector<std::string> argv = {
        testing::KvsyncBinary(),
        "etcd2etcd",
        "--src-endpoints",
        src_endpoints.empty() ? src_cluster_->endpoints_csv() : src_endpoints,
        "--dst-endpoints",
        dst_endpoints.empty() ? dst_cluster_->endpoints_csv() : dst_endpoints,
        "--log-format",
        "text",
        "--progress-interval",
        "300ms",
        "--status-interval",
        "0"};
    // An admin server on a free port unless the test picks one.
    if (std::find(extra.begin(), extra.end(), "--admin-addr") == extra.end()) {
      argv.insert(argv.end(), {"--admin-addr", "127.0.0.1:0"});
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto p = Subprocess::Start(argv, absl::StrCat(dir_, "/kvsync-", ++runs_, ".log"));
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }

  // Runs kvsync to completion (for --once and error cases); returns exit code and log.
  int RunKvsync(std::vector<std::string> extra, std::string* log = nullptr,
                std::string src_endpoints = "", std::string dst_endpoints = "") {
    auto p = StartKvsync(std::move(extra), src_endpoints, dst_endpoints);
    if (!p) return -1;
    auto code = p->Wait(seconds(60));
    if (log) *log = p->LogTail(20000);
    EXPECT_TRUE(code.has_value()) << p->LogTail();
    return code.value_or(-1);
  }

  bool WaitSynced(const std::string& src_prefix, const std::string& dst_prefix,
                  milliseconds deadline = milliseconds(30000)) {
    return WaitFor(
        [&] {
          return Rewrite(testing::DumpPrefix(src_.get(), src_prefix), src_prefix, dst_prefix) ==
                 testing::DumpPrefix(dst_.get(), dst_prefix);
        },
        deadline, milliseconds(100));
  }

  void ExpectSynced(const std::string& prefix, Subprocess* kvsync = nullptr) {
    ASSERT_TRUE(WaitSynced(prefix, prefix)) << (kvsync ? kvsync->LogTail() : "");
  }

  std::unique_ptr<EtcdCluster> src_cluster_;
  std::unique_ptr<EtcdCluster> dst_cluster_;
  std::unique_ptr<etcd::Client> src_;
  std::unique_ptr<etcd::Client> dst_;
  std::string dir_;
  int runs_ = 0;
};

// Full sync writes only the differences: missing and different keys are put, extra destination
// keys are deleted; keys outside the prefix, excluded keys and other tasks' meta keys stay.
TEST_F(Etcd2EtcdTest, FullSyncRepairsMissingDifferentAndExtraKeys) {
  StartClusters();
  PutMany(src_.get(), "/reg/svc/", 200, "v");
  ASSERT_TRUE(src_->Put("/reg/ex/keep-src", "s").ok());
  ASSERT_TRUE(src_->Put("/kvsync/meta/other/checkpoint", "{}").ok());
  PutMany(dst_.get(), "/reg/svc/", 50, "stale");           // 50 different values
  ASSERT_TRUE(dst_->Put("/reg/svc/zzz-extra", "x").ok());  // extra: deleted
  ASSERT_TRUE(dst_->Put("/reg/ex/keep-dst", "d").ok());    // excluded: untouched
  ASSERT_TRUE(dst_->Put("/outside", "o").ok());            // outside the prefix: untouched
  ASSERT_TRUE(dst_->Put("/kvsync/meta/another/checkpoint", "{}").ok());
  int64_t before = Revision(dst_.get());

  std::string log;
  ASSERT_EQ(RunKvsync({"--prefix", "/reg/", "--exclude-prefix", "/reg/ex/", "--once",
                       "--max-txn-ops", "16"},
                      &log),
            0)
      << log;
  EXPECT_EQ(testing::DumpPrefix(dst_.get(), "/reg/svc/"),
            testing::DumpPrefix(src_.get(), "/reg/svc/"));
  EXPECT_EQ(testing::DumpPrefix(dst_.get(), "/reg/ex/"), (KvMap{{"/reg/ex/keep-dst", "d"}}));
  EXPECT_EQ(testing::DumpPrefix(dst_.get(), "/outside"), (KvMap{{"/outside", "o"}}));
  EXPECT_EQ(testing::DumpPrefix(dst_.get(), "/kvsync/meta/another/").size(), 1u);
  EXPECT_TRUE(
      testing::DumpPrefix(dst_.get(), "/kvsync/meta/other/").empty());  // source meta never synced
  EXPECT_NE(log.find("dst_miss_put=150 mismatch_put=50 src_miss_deleted=1"), std::string::npos)
      << log;
  // 201 writes in txns of at most 15 data ops: far fewer revisions than keys written.
  int64_t txns = Revision(dst_.get()) - before;
  EXPECT_GE(txns, 201 / 15);
  EXPECT_LT(txns, 40);
  auto cp = ReadCheckpoint(dst_.get(), "reg");
  ASSERT_TRUE(cp.has_value());
  EXPECT_FALSE(cp->full_sync_pending);
  EXPECT_EQ(cp->revision, Revision(src_.get()));
}

// --dst-prefix rewrites keys both in the full sync and in the live sync.
TEST_F(Etcd2EtcdTest, PrefixRewriteInFullAndIncrementalSync) {
  StartClusters();
  PutMany(src_.get(), "/a/", 30, "v");
  auto kvsync = StartKvsync({"--prefix", "/a/", "--dst-prefix", "/b/", "--name", "rw"});
  ASSERT_TRUE(WaitSynced("/a/", "/b/")) << kvsync->LogTail();
  ASSERT_TRUE(src_->Put("/a/new", "n").ok());
  ASSERT_TRUE(src_->Delete("/a/00001").ok());
  ASSERT_TRUE(WaitSynced("/a/", "/b/")) << kvsync->LogTail();
  EXPECT_EQ(testing::DumpPrefix(dst_.get(), "/b/").count("/b/new"), 1u);
  EXPECT_TRUE(testing::DumpPrefix(dst_.get(), "/a/").empty());
}

// Excluded keys are not synced live either.
TEST_F(Etcd2EtcdTest, ExcludedKeysAreNotSyncedLive) {
  StartClusters();
  auto kvsync = StartKvsync({"--prefix", "/p/", "--exclude-prefix", "/p/private/"});
  ASSERT_TRUE(WaitFor([&] { return ReadCheckpoint(dst_.get(), "p").has_value(); }, seconds(20)));
  ASSERT_TRUE(src_->Put("/p/private/secret", "s").ok());
  ASSERT_TRUE(src_->Put("/p/public", "v").ok());
  ASSERT_TRUE(WaitFor(
      [&] { return testing::DumpPrefix(dst_.get(), "/p/").count("/p/public") == 1; }, seconds(20)));
  EXPECT_EQ(testing::DumpPrefix(dst_.get(), "/p/"), (KvMap{{"/p/public", "v"}}));
}

// A value close to etcd's 1.5 MiB request limit is copied, in both paths.
TEST_F(Etcd2EtcdTest, ValuesNearRequestLimitAreCopied) {
  StartClusters();
  std::string big(1536 * 1024 - 512, 'x');
  ASSERT_TRUE(src_->Put("/big/1", big).ok());
  ASSERT_TRUE(src_->Put("/big/2", big).ok());
  auto kvsync = StartKvsync({"--prefix", "/big/"});
  ExpectSynced("/big/", kvsync.get());
  std::string big2(1536 * 1024 - 400, 'y');
  ASSERT_TRUE(src_->Put("/big/3", big2).ok());
  ExpectSynced("/big/", kvsync.get());
}

// A source txn of 300 keys is applied as one destination txn: a destination watcher sees all
// 300 changes at one revision. With a smaller --max-txn-ops it is split, counted and logged.
TEST_F(Etcd2EtcdTest, SourceTransactionArrivesAtomically) {
  EtcdClusterOptions big_txn;
  big_txn.extra_flags = {"--max-txn-ops", "1000"};
  StartClusters(big_txn, big_txn);
  auto kvsync = StartKvsync({"--prefix", "/t/", "--max-txn-ops", "1000"});
  ASSERT_TRUE(WaitFor([&] { return ReadCheckpoint(dst_.get(), "t").has_value(); }, seconds(20)));

  etcd::Client::WatchOptions wo;
  wo.key = "/t/";
  wo.range_end = "/t0";
  wo.start_revision = Revision(dst_.get()) + 1;
  auto watch = dst_->Watch(wo);
  ASSERT_TRUE(watch.ok());
  etcd::TxnRequest t;
  for (int i = 0; i < 300; ++i) t.success.push_back(etcd::Op::Put(absl::StrCat("/t/", i), "v"));
  ASSERT_TRUE(src_->Txn(t).ok());

  std::map<int64_t, int> per_revision;
  int seen = 0;
  while (seen < 300) {
    auto resp = (*watch)->Next();
    ASSERT_TRUE(resp.ok()) << resp.status();
    for (auto& e : resp->events) {
      ++per_revision[e.kv.mod_revision];
      ++seen;
    }
  }
  ASSERT_EQ(per_revision.size(), 1u);
  EXPECT_EQ(per_revision.begin()->second, 300);
  kvsync->Stop();

  // Same source revision size, but the destination txn limit is 128: split into parts.
  auto split = StartKvsync({"--prefix", "/t/", "--max-txn-ops", "128"});
  etcd::TxnRequest t2;
  for (int i = 0; i < 300; ++i) t2.success.push_back(etcd::Op::Put(absl::StrCat("/t/", i), "w"));
  ASSERT_TRUE(src_->Txn(t2).ok());
  ExpectSynced("/t/", split.get());
  split->Stop();
  EXPECT_NE(split->LogTail(20000).find("source revision larger than one txn, splitting"),
            std::string::npos);
}

// kill -9 and restart resumes from the checkpoint: no full copy, only the new changes written.
TEST_F(Etcd2EtcdTest, KillAndRestartResumesWithoutFullCopy) {
  StartClusters();
  PutMany(src_.get(), "/r/", 2000, "v");
  auto kvsync = StartKvsync({"--prefix", "/r/"});
  ExpectSynced("/r/", kvsync.get());
  kvsync->Signal(SIGKILL);
  kvsync->Wait(seconds(10));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(src_->Put(absl::StrCat("/r/new", i), "n").ok());
  ASSERT_TRUE(src_->Delete("/r/00007").ok());
  int64_t before = Revision(dst_.get());

  auto again = StartKvsync({"--prefix", "/r/"});
  ExpectSynced("/r/", again.get());
  again->Stop();
  std::string log = again->LogTail(20000);
  EXPECT_NE(log.find("fast path chosen"), std::string::npos) << log;
  EXPECT_EQ(log.find("full sync started"), std::string::npos) << log;
  EXPECT_NE(log.find("caught up"), std::string::npos) << log;
  // 11 changes: at most 11 data txns plus a few checkpoint-only writes, never 2000.
  EXPECT_LT(Revision(dst_.get()) - before, 30);
}

// Writes `n` source txns, one by one, the i-th putting <prefix>a and <prefix>b to i (1..n)
// and 4 keys of its own (<prefix>k<i>-<j>), so that replaying many of them takes many
// destination txns (a and b alone would coalesce into a few).
void WriteCounterPairs(etcd::Client* src, const std::string& prefix, int n) {
  for (int i = 1; i <= n; ++i) {
    etcd::TxnRequest t;
    t.success = {etcd::Op::Put(prefix + "a", std::to_string(i)),
                 etcd::Op::Put(prefix + "b", std::to_string(i))};
    for (int j = 0; j < 4; ++j) {
      t.success.push_back(etcd::Op::Put(absl::StrCat(prefix, "k", i, "-", j), "v"));
    }
    ASSERT_TRUE(WaitFor([&] { return src->Txn(t).ok(); }, seconds(20)));
  }
}

// Every event the destination ever applied under `key`..`range_end`, in revision order (read
// by a watch from revision 1: the test clusters never compact).
std::vector<etcd::Event> History(etcd::Client* c, const std::string& key,
                                 const std::string& range_end) {
  etcd::RangeRequest r;
  r.key = key;
  r.range_end = range_end;
  auto now = c->Range(r);
  EXPECT_TRUE(now.ok()) << now.status();
  int64_t last = 0;
  if (now.ok()) {
    for (const auto& kv : now->kvs) last = std::max(last, kv.mod_revision);
  }
  std::vector<etcd::Event> events;
  etcd::Client::WatchOptions wo;
  wo.key = key;
  wo.range_end = range_end;
  wo.start_revision = 1;
  auto watch = c->Watch(wo);
  EXPECT_TRUE(watch.ok()) << watch.status();
  if (!watch.ok()) return events;
  while (events.empty() || events.back().kv.mod_revision < last) {
    auto resp = (*watch)->Next();
    EXPECT_TRUE(resp.ok()) << resp.status();
    if (!resp.ok()) break;
    events.insert(events.end(), resp->events.begin(), resp->events.end());
  }
  return events;
}

// The destination went through the source's states in source order only: every destination
// revision that touched <prefix>a or b wrote both with one counter value, the values only grew,
// and the last one is `n`. Its checkpoint never moved back either.
void ExpectAppliedInSourceOrder(etcd::Client* dst, const std::string& prefix, int n,
                                const std::string& task) {
  std::map<int64_t, std::map<std::string, std::string>> per_revision;
  for (const auto& e : History(dst, prefix + "a", prefix + "c")) {  // <prefix>a and b
    per_revision[e.kv.mod_revision][e.kv.key] = e.kv.value;
  }
  int64_t last = 0;
  for (const auto& [revision, writes] : per_revision) {
    ASSERT_EQ(writes.size(), 2u) << "destination revision " << revision << " half-applied";
    int64_t a = 0;
    int64_t b = 0;
    ASSERT_TRUE(absl::SimpleAtoi(writes.at(prefix + "a"), &a));
    ASSERT_TRUE(absl::SimpleAtoi(writes.at(prefix + "b"), &b));
    ASSERT_EQ(a, b) << "destination revision " << revision << " mixes source revisions";
    ASSERT_GT(a, last) << "destination revision " << revision << " went back from " << last;
    last = a;
  }
  EXPECT_EQ(last, n);
  const std::string cp_key = checker::CheckpointKey("/kvsync/meta/", task);
  int64_t cp_last = 0;
  for (const auto& e : History(dst, cp_key, "")) {
    auto cp = checker::DecodeCheckpoint(e.kv.value);
    ASSERT_TRUE(cp.ok()) << cp.status();
    EXPECT_GE(cp->revision, cp_last) << "checkpoint moved back at " << e.kv.mod_revision;
    cp_last = std::max(cp_last, cp->revision);
  }
}

// Incremental txns are pipelined (--inflight) over two destination connections, one of them
// 25 ms slower: txns overtake each other on the way. The compare chain makes each one that
// arrives early write nothing, and it is sent again in order. A backlog (written while kvsync
// is stopped, replayed from its checkpoint) fills many txns at once, so several are in flight.
TEST_F(Etcd2EtcdTest, PipelinedTxnsThatOvertakeEachOtherApplyInSourceOrder) {
  StartClusters();
  const std::string admin = absl::StrCat("127.0.0.1:", testing::FreePort());
  const std::vector<std::string> flags = {"--prefix",   "/o/", "--dst-connections", "2",
                                          "--inflight", "8",   "--admin-addr",      admin};
  // A key in scope, so that the first run's checkpoint has a history anchor to resume from.
  ASSERT_TRUE(src_->Put("/o/seed", "x").ok());
  auto first = StartKvsync(flags);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto cp = ReadCheckpoint(dst_.get(), "o");
        return cp.has_value() && !cp->full_sync_pending;
      },
      seconds(30)))
      << first->LogTail();
  first->Stop();
  WriteCounterPairs(src_.get(), "/o/", 1500);
  // The second run's two destination connections, the second one (index 1) slower.
  auto proxy = FaultProxy::Start(dst_cluster_->endpoint(0));
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  (*proxy)->SetConnectionDelay(1, milliseconds(25));
  auto kvsync = StartKvsync(flags, "", (*proxy)->address());
  ExpectSynced("/o/", kvsync.get());
  auto metrics = testing::HttpGet(admin, "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_GT(testing::MetricSample(metrics->body, "kvsync_txn_resends_total{task=\"o\"}"), 0)
      << "no txn overtook another: the test did not exercise reordering ("
      << (*proxy)->connections() << " connections, "
      << testing::MetricSample(metrics->body, "kvsync_txns_total{task=\"o\"}") << " txns)";
  kvsync->Stop();
  EXPECT_NE(kvsync->LogTail(20000).find("fast path chosen"), std::string::npos);
  ExpectAppliedInSourceOrder(dst_.get(), "/o/", 1500, "o");
}

// kill -9 while up to 16 txns are on their way through a 30 ms RTT link, three times, while the
// source keeps writing: each restart resumes from the checkpoint (no full copy), and the
// destination never lost, repeated or reordered a source revision.
TEST_F(Etcd2EtcdTest, CrashesMidPipelineNeverLoseOrReorderWrites) {
  StartClusters();
  auto proxy = FaultProxy::Start(dst_cluster_->endpoint(0));
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  (*proxy)->SetDelay(milliseconds(15));
  const std::vector<std::string> flags = {"--prefix", "/c/", "--inflight", "16"};
  auto kvsync = StartKvsync(flags, "", (*proxy)->address());
  ASSERT_TRUE(WaitFor([&] { return ReadCheckpoint(dst_.get(), "c").has_value(); }, seconds(30)))
      << kvsync->LogTail();
  constexpr int kTxns = 3000;
  std::thread writer([&] { WriteCounterPairs(src_.get(), "/c/", kTxns); });
  auto destination_counter = [&] {
    auto kvs = testing::DumpPrefix(dst_.get(), "/c/");
    int64_t v = 0;
    return kvs.count("/c/a") && absl::SimpleAtoi(kvs["/c/a"], &v) ? v : int64_t{0};
  };
  auto source_counter = [&] {
    auto kvs = testing::DumpPrefix(src_.get(), "/c/");
    int64_t v = 0;
    return kvs.count("/c/a") && absl::SimpleAtoi(kvs["/c/a"], &v) ? v : int64_t{0};
  };
  for (int crash = 1; crash <= 3; ++crash) {
    // A backlog builds while kvsync is paused; the crash comes while it is being replayed,
    // with many txns in flight.
    ASSERT_TRUE(WaitFor([&] { return destination_counter() > 0; }, seconds(60)))
        << kvsync->LogTail();
    kvsync->Signal(SIGSTOP);
    const int64_t paused_at = source_counter();
    ASSERT_TRUE(
        WaitFor([&] { return source_counter() >= std::min<int64_t>(paused_at + 400, kTxns); },
                seconds(60)));
    const int64_t reached = destination_counter();
    kvsync->Signal(SIGCONT);
    ASSERT_TRUE(WaitFor([&] { return destination_counter() > reached; }, seconds(60)))
        << kvsync->LogTail();
    kvsync->Signal(SIGKILL);
    kvsync->Wait(seconds(10));
    kvsync = StartKvsync(flags, "", (*proxy)->address());
  }
  writer.join();
  ExpectSynced("/c/", kvsync.get());
  kvsync->Stop();
  const std::string log = kvsync->LogTail(20000);
  EXPECT_NE(log.find("fast path chosen"), std::string::npos) << log;
  EXPECT_EQ(log.find("full sync started"), std::string::npos) << log;
  ExpectAppliedInSourceOrder(dst_.get(), "/c/", kTxns, "c");
}

// Compaction while kvsync is down: the slow path repairs missed puts and deletes.
TEST_F(Etcd2EtcdTest, CompactionWhileDownTriggersRepairingFullSync) {
  StartClusters();
  PutMany(src_.get(), "/c/", 100, "v");
  auto kvsync = StartKvsync({"--prefix", "/c/"});
  ExpectSynced("/c/", kvsync.get());
  kvsync->Stop();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(src_->Delete(absl::StrFormat("/c/%05d", i)).ok());
  ASSERT_TRUE(src_->Put("/c/added", "a").ok());
  ASSERT_TRUE(src_->Put("/c/00050", "changed").ok());
  ASSERT_TRUE(src_->Compact(Revision(src_.get())).ok());

  auto again = StartKvsync({"--prefix", "/c/"});
  ExpectSynced("/c/", again.get());
  again->Stop();
  std::string log = again->LogTail(20000);
  EXPECT_NE(log.find("slow path chosen reason=\"source compacted past the checkpoint"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("src_miss_deleted=20"), std::string::npos) << log;
}

// --reset-last-synced-rev forces a full sync even with a usable checkpoint.
TEST_F(Etcd2EtcdTest, ResetLastSyncedRevForcesFullSync) {
  StartClusters();
  PutMany(src_.get(), "/x/", 10, "v");
  std::string log;
  ASSERT_EQ(RunKvsync({"--prefix", "/x/", "--once"}, &log), 0) << log;
  ASSERT_TRUE(dst_->Put("/x/drift", "d").ok());
  ASSERT_EQ(RunKvsync({"--prefix", "/x/", "--once"}, &log), 0) << log;
  EXPECT_NE(log.find("fast path chosen"), std::string::npos) << log;
  EXPECT_EQ(testing::DumpPrefix(dst_.get(), "/x/").count("/x/drift"),
            1u);  // fast path does not diff
  ASSERT_EQ(RunKvsync({"--prefix", "/x/", "--once", "--reset-last-synced-rev"}, &log), 0) << log;
  EXPECT_NE(log.find("slow path chosen reason=\"--reset-last-synced-rev given\""),
            std::string::npos)
      << log;
  EXPECT_EQ(testing::DumpPrefix(dst_.get(), "/x/"), testing::DumpPrefix(src_.get(), "/x/"));
}

// Source and destination links cut and blackholed by the fault proxy: kvsync retries, keeps
// running, and converges once the links are back.
TEST_F(Etcd2EtcdTest, SurvivesSourceAndDestinationOutages) {
  StartClusters();
  auto src_proxy = FaultProxy::Start(src_cluster_->endpoint(0));
  auto dst_proxy = FaultProxy::Start(dst_cluster_->endpoint(0));
  ASSERT_TRUE(src_proxy.ok() && dst_proxy.ok());
  auto kvsync =
      StartKvsync({"--prefix", "/o/", "--src-command-timeout", "2s", "--dst-command-timeout", "2s"},
                  (*src_proxy)->address(), (*dst_proxy)->address());
  PutMany(src_.get(), "/o/a", 50, "v");
  ExpectSynced("/o/", kvsync.get());

  (*dst_proxy)->SetMode(FaultProxy::Mode::kCut);
  PutMany(src_.get(), "/o/b", 50, "v");
  ASSERT_TRUE(WaitFor([&] { return kvsync->LogTail().find("retrying") != std::string::npos; },
                      seconds(20)));
  (*dst_proxy)->SetMode(FaultProxy::Mode::kPass);
  ExpectSynced("/o/", kvsync.get());

  (*src_proxy)->SetMode(FaultProxy::Mode::kCut);
  PutMany(src_.get(), "/o/c", 50, "v");
  ASSERT_TRUE(src_->Delete("/o/a00003").ok());
  ASSERT_TRUE(
      WaitFor([&] { return kvsync->LogTail().find("watch interrupted") != std::string::npos; },
              seconds(30)));
  (*src_proxy)->SetMode(FaultProxy::Mode::kPass);
  ExpectSynced("/o/", kvsync.get());

  // Blackhole: nothing is refused, requests just hang until their 2 s deadline.
  auto count_retries = [&] {
    std::string log = kvsync->LogTail(1 << 20);
    size_t n = 0;
    for (size_t at = log.find("DEADLINE_EXCEEDED"); at != std::string::npos;
         at = log.find("DEADLINE_EXCEEDED", at + 1)) {
      ++n;
    }
    return n;
  };
  size_t deadlines_before = count_retries();
  (*dst_proxy)->SetMode(FaultProxy::Mode::kBlackhole);
  PutMany(src_.get(), "/o/d", 50, "v");
  ASSERT_TRUE(WaitFor([&] { return count_retries() > deadlines_before; }, seconds(30)))
      << kvsync->LogTail();
  (*dst_proxy)->SetMode(FaultProxy::Mode::kPass);
  ExpectSynced("/o/", kvsync.get());
  EXPECT_TRUE(kvsync->Running());
  kvsync->Signal(SIGTERM);
  EXPECT_EQ(kvsync->Wait(seconds(20)), std::optional<int>(0)) << kvsync->LogTail();
}

// A 3-member source cluster losing its leader: kvsync follows the surviving members.
TEST_F(Etcd2EtcdTest, ThreeMemberSourceLosesLeader) {
  EtcdClusterOptions three;
  three.members = 3;
  StartClusters(three);
  PutMany(src_.get(), "/l/a", 100, "v");
  auto kvsync = StartKvsync({"--prefix", "/l/"});
  ExpectSynced("/l/", kvsync.get());
  auto leader = src_cluster_->LeaderIndex();
  ASSERT_TRUE(leader.ok());
  src_cluster_->Kill(*leader);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto l = src_cluster_->LeaderIndex();
        return l.ok() && *l != *leader;
      },
      seconds(20)));
  PutMany(src_.get(), "/l/b", 100, "v");
  ExpectSynced("/l/", kvsync.get());
}

// Every flag can come from a YAML --config file (nested maps flatten); flags given on the
// command line win over the file.
TEST_F(Etcd2EtcdTest, ConfigFileSetsFlags) {
  StartClusters();
  PutMany(src_.get(), "/y/", 10, "v");
  std::string path = dir_ + "/task.yaml";
  {
    std::ofstream f(path);
    f << "name: from-yaml\nprefix: /y/\ndst-prefix: /wrong/\nonce: true\n"
      << "src:\n  endpoints: " << src_cluster_->endpoints_csv() << "\n"
      << "dst_endpoints: " << dst_cluster_->endpoints_csv() << "\n"
      << "exclude-prefix: [/y/00001, /y/00002]\n";
  }
  auto p = Subprocess::Start({testing::KvsyncBinary(), "etcd2etcd", "--config", path,
                              "--dst-prefix", "/z/", "--admin-addr", "127.0.0.1:0"},
                             dir_ + "/yaml.log");
  ASSERT_TRUE(p.ok());
  ASSERT_EQ((*p)->Wait(seconds(60)), std::optional<int>(0)) << (*p)->LogTail();
  KvMap expected = Rewrite(testing::DumpPrefix(src_.get(), "/y/"), "/y/", "/z/");
  expected.erase("/z/00001");
  expected.erase("/z/00002");
  EXPECT_EQ(testing::DumpPrefix(dst_.get(), "/z/"), expected);
  EXPECT_TRUE(ReadCheckpoint(dst_.get(), "from-yaml").has_value());

  std::ofstream(dir_ + "/bad.yaml") << "prefix: [unclosed\n";
  auto bad = Subprocess::Start(
      {testing::KvsyncBinary(), "etcd2etcd", "--config", dir_ + "/bad.yaml"}, dir_ + "/bad.log");
  ASSERT_TRUE(bad.ok());
  EXPECT_EQ((*bad)->Wait(seconds(20)), std::optional<int>(2)) << (*bad)->LogTail();
  EXPECT_NE((*bad)->LogTail().find("not valid YAML"), std::string::npos) << (*bad)->LogTail();
}

// On a quiet prefix, progress notifications advance the checkpoint past writes elsewhere, so
// a later compaction of those revisions does not force a full sync on restart.
TEST_F(Etcd2EtcdTest, ProgressAdvancesCheckpointOfQuietPrefix) {
  StartClusters();
  ASSERT_TRUE(src_->Put("/quiet/k", "v").ok());
  auto kvsync = StartKvsync({"--prefix", "/quiet/"});
  ExpectSynced("/quiet/", kvsync.get());
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(src_->Put(absl::StrCat("/busy/", i), "v").ok());
  int64_t head = Revision(src_.get());
  ASSERT_TRUE(WaitFor(
      [&] {
        auto cp = ReadCheckpoint(dst_.get(), "quiet");
        return cp && cp->revision >= head;
      },
      seconds(20)))
      << kvsync->LogTail();
  kvsync->Stop();
  ASSERT_TRUE(src_->Compact(head).ok());
  auto again = StartKvsync({"--prefix", "/quiet/"});
  ASSERT_TRUE(src_->Put("/quiet/k2", "v").ok());
  ExpectSynced("/quiet/", again.get());
  again->Stop();
  EXPECT_NE(again->LogTail(20000).find("fast path chosen"), std::string::npos);
  EXPECT_EQ(again->LogTail(20000).find("full sync started"), std::string::npos);
}

// Chained mirrors A -> B -> C over the whole keyspace: B holds the A->B task's meta keys
// (checkpoint, freshness record), which the B->C task must neither copy to C nor delete; C ends
// up with A's data and the B->C task's own records only.
TEST_F(Etcd2EtcdTest, ChainedMirrorsNeverCopyMetaKeys) {
  StartClusters();
  auto c_cluster = EtcdCluster::Start({.name = "third"});
  ASSERT_TRUE(c_cluster.ok()) << c_cluster.status();
  auto c = testing::ConnectEtcd((*c_cluster)->endpoints_csv());
  PutMany(src_.get(), "/svc/", 30, "v");
  auto ab = StartKvsync({"--prefix", "/", "--name", "ab"});
  auto bc = StartKvsync({"--prefix", "/", "--name", "bc"}, dst_cluster_->endpoints_csv(),
                        (*c_cluster)->endpoints_csv());
  ASSERT_TRUE(WaitFor(
      [&] {
        return testing::DumpPrefix(c.get(), "/svc/") == testing::DumpPrefix(src_.get(), "/svc/");
      },
      seconds(30)))
      << ab->LogTail() << bc->LogTail();
  ASSERT_TRUE(src_->Put("/svc/late", "l").ok());
  ASSERT_TRUE(WaitFor([&] { return testing::DumpPrefix(c.get(), "/svc/").count("/svc/late") == 1; },
                      seconds(30)));
  // The freshness record is written by its own thread: wait for it, then nothing else.
  const std::set<std::string> want = {"/kvsync/meta/bc/checkpoint", "/kvsync/meta/bc/freshness"};
  std::set<std::string> meta_keys;
  EXPECT_TRUE(WaitFor(
      [&] {
        meta_keys.clear();
        for (const auto& [key, value] : testing::DumpPrefix(c.get(), "/kvsync/meta/")) {
          meta_keys.insert(key);
        }
        return meta_keys == want;
      },
      seconds(30)))
      << absl::StrJoin(meta_keys, ", ");
  KvMap meta_b = testing::DumpPrefix(dst_.get(), "/kvsync/meta/");
  EXPECT_EQ(meta_b.count("/kvsync/meta/ab/checkpoint"), 1u);
  EXPECT_EQ(meta_b.count("/kvsync/meta/ab/freshness"), 1u);
}

// The running syncer checks itself: a destination key the source does not have (src miss) is
// confirmed and deleted by the default --auto-repair src-miss; a missing key (dst miss) is
// confirmed and reported in the kvsync_check_* metrics but left to --auto-repair all.
TEST_F(Etcd2EtcdTest, ContinuousCheckReportsAndRepairsSrcMiss) {
  StartClusters();
  PutMany(src_.get(), "/cc/", 50, "v");
  std::string admin = absl::StrCat("127.0.0.1:", testing::FreePort());
  auto kvsync = StartKvsync({"--prefix", "/cc/", "--check-interval", "1s", "--admin-addr", admin});
  ExpectSynced("/cc/", kvsync.get());
  ASSERT_TRUE(dst_->Put("/cc/zz-left-behind", "x").ok());
  ASSERT_TRUE(dst_->Delete("/cc/00007").ok());
  ASSERT_TRUE(WaitFor(
      [&] { return testing::DumpPrefix(dst_.get(), "/cc/").count("/cc/zz-left-behind") == 0; },
      seconds(30)))
      << kvsync->LogTail();
  auto metric = [&](const std::string& line) {
    auto r = testing::HttpGet(admin, "/metrics");
    return r.ok() && r->body.find(line) != std::string::npos;
  };
  ASSERT_TRUE(
      WaitFor([&] { return metric("kvsync_check_dst_miss{task=\"cc\"} 1\n"); }, seconds(30)))
      << testing::HttpGet(admin, "/metrics")->body;
  // The counter is bumped when the repair call returns, just after the delete became visible.
  EXPECT_TRUE(
      WaitFor([&] { return metric("kvsync_check_repairs_total{task=\"cc\"} 1\n"); }, seconds(30)))
      << testing::HttpGet(admin, "/metrics")->body;
  EXPECT_EQ(testing::DumpPrefix(dst_.get(), "/cc/").count("/cc/00007"), 0u);  // not repaired
  EXPECT_NE(kvsync->LogTail(50000).find("consistency differences confirmed"), std::string::npos);
}

// SIGTERM finishes the in-flight work and exits 0.
TEST_F(Etcd2EtcdTest, SigtermExitsZero) {
  StartClusters();
  auto kvsync = StartKvsync({"--prefix", "/s/"});
  ASSERT_TRUE(WaitFor([&] { return ReadCheckpoint(dst_.get(), "s").has_value(); }, seconds(20)));
  kvsync->Signal(SIGTERM);
  EXPECT_EQ(kvsync->Wait(seconds(20)), std::optional<int>(0)) << kvsync->LogTail();
}

// A checkpoint from another source cluster is refused with one clear line and exit 2.
TEST_F(Etcd2EtcdTest, RefusesCheckpointFromAnotherSourceCluster) {
  StartClusters();
  checker::Checkpoint foreign{5, 0x1234, false};
  ASSERT_TRUE(
      dst_->Put(checker::CheckpointKey("/kvsync/meta/", "id"), checker::EncodeCheckpoint(foreign))
          .ok());
  std::string log;
  EXPECT_EQ(RunKvsync({"--prefix", "/id/", "--once"}, &log), 2);
  EXPECT_NE(log.find("error: checkpoint of task \"id\" was taken from source cluster 1234"),
            std::string::npos)
      << log;
}

// Flag mistakes and unreachable servers give one clear error line and the documented codes.
// The destination is reached first (a promoted destination refuses the task before anything
// else), so an unreachable source is named with a reachable destination.
TEST_F(Etcd2EtcdTest, BadFlagsAndUnreachableEndpointsGiveClearErrors) {
  StartClusters();
  struct Case {
    std::vector<std::string> argv;
    int code;
    std::string message;
  };
  int dead = testing::FreePort();
  std::vector<Case> cases = {
      {{"etcd2etcd", "--dst-endpoints", "127.0.0.1:1", "--prefix", "/a/"},
       2,
       "--src-endpoints is required"},
      {{"etcd2etcd", "--src-endpoints", "127.0.0.1:1", "--dst-endpoints", "127.0.0.1:2"},
       2,
       "--prefix is required"},
      {{"etcd2etcd", "--bogus"}, 2, "bogus"},
      {{"etcd2etcd", "--src-endpoints", "127.0.0.1:1", "--dst-endpoints", "127.0.0.1:2", "--prefix",
        "/a/", "--src-cacert", "/nonexistent/ca.pem"},
       2,
       "--src-cacert \"/nonexistent/ca.pem\" cannot be read"},
      {{"etcd2etcd", "--src-endpoints", "127.0.0.1:1", "--dst-endpoints", "127.0.0.1:2", "--prefix",
        "/a/", "--max-txn-ops", "zero"},
       2,
       "--max-txn-ops"},
      {{"etcd2etcd", "--src-endpoints", absl::StrCat("127.0.0.1:", dead), "--dst-endpoints",
        dst_cluster_->endpoints_csv(), "--prefix", "/a/", "--src-dial-timeout", "500ms",
        "--admin-addr", "127.0.0.1:0"},
       3,
       absl::StrCat("cannot reach source etcd at 127.0.0.1:", dead)},
      {{"etcd2etcd", "--src-endpoints", src_cluster_->endpoints_csv(), "--dst-endpoints",
        absl::StrCat("127.0.0.1:", dead), "--prefix", "/a/", "--dst-dial-timeout", "500ms",
        "--admin-addr", "127.0.0.1:0"},
       3,
       absl::StrCat("cannot reach destination etcd at 127.0.0.1:", dead)},
  };
  cases.push_back({{"etcd2etcd", "--src-endpoints", "127.0.0.1:1", "--dst-endpoints", "127.0.0.1:2",
                    "--prefix", "/a/", "--admin-addr", "nonsense"},
                   2,
                   "--admin-addr \"nonsense\" is not host:port"});
  cases.push_back({{"etcd2etcd", "--src-endpoints", "127.0.0.1:1", "--dst-endpoints", "127.0.0.1:2",
                    "--prefix", "/a/", "--lease-ttl", "soon"},
                   2,
                   "--lease-ttl must be a duration"});
  std::string dir = testing::MakeTempDir("flags");
  int n = 0;
  for (const auto& c : cases) {
    std::vector<std::string> argv = {testing::KvsyncBinary()};
    argv.insert(argv.end(), c.argv.begin(), c.argv.end());
    std::string log_path = absl::StrCat(dir, "/", ++n, ".log");
    auto p = Subprocess::Start(argv, log_path);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ((*p)->Wait(seconds(20)), std::optional<int>(c.code)) << (*p)->LogTail();
    std::string out = (*p)->LogTail();
    EXPECT_NE(out.find(c.message), std::string::npos) << out;
    EXPECT_NE(out.find("error"), std::string::npos) << out;
  }
}

// TLS with client certificates and username/password auth on both sides.
TEST_F(Etcd2EtcdTest, SyncsOverTlsWithAuth) {
  EtcdClusterOptions secure;
  secure.tls = true;
  secure.auth_root_password = "s3cret";
  StartClusters(secure, secure);
  auto tls_client = [](EtcdCluster* c) {
    etcd::ClientOptions o;
    o.endpoints = c->endpoints();
    o.ca_file = c->ca_file();
    o.cert_file = c->client_cert_file();
    o.key_file = c->client_key_file();
    o.user = "root";
    o.password = "s3cret";
    return std::move(*etcd::Client::Create(o));
  };
  src_ = tls_client(src_cluster_.get());
  dst_ = tls_client(dst_cluster_.get());
  PutMany(src_.get(), "/sec/", 20, "v");
  auto flags = [](const std::string& side, EtcdCluster* c) {
    return std::vector<std::string>{
        "--" + side + "-cacert", c->ca_file(),         "--" + side + "-cert", c->client_cert_file(),
        "--" + side + "-key",    c->client_key_file(), "--" + side + "-user", "root:s3cret"};
  };
  std::vector<std::string> extra = {"--prefix", "/sec/"};
  for (auto& f : flags("src", src_cluster_.get())) extra.push_back(f);
  for (auto& f : flags("dst", dst_cluster_.get())) extra.push_back(f);
  auto kvsync = StartKvsync(extra);
  ExpectSynced("/sec/", kvsync.get());
  ASSERT_TRUE(src_->Put("/sec/live", "l").ok());
  ExpectSynced("/sec/", kvsync.get());

  // A wrong password is a configuration error.
  std::vector<std::string> wrong = {"--prefix", "/sec/", "--once"};
  for (auto& f : flags("src", src_cluster_.get()))
    wrong.push_back(f == "root:s3cret" ? "root:bad" : f);
  for (auto& f : flags("dst", dst_cluster_.get())) wrong.push_back(f);
  std::string log;
  EXPECT_EQ(RunKvsync(wrong, &log), 2) << log;
  EXPECT_NE(log.find("source etcd rejected user \"root\""), std::string::npos) << log;
}

}  // namespace
}  // namespace kvsync
