// `kvsync etcdwatch` against a real etcd: passes on a healthy cluster (with forced re-watches),
// names the exact property when a response is dropped (test hook) or the watch path is cut
// for good, resumes every watcher after a cut that heals, and rejects bad flags with exit 2
// (an unreachable cluster: exit 3).
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/harness/etcd_cluster.h"
#include "tests/harness/fault_proxy.h"
#include "tests/harness/kvsync_util.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/wait.h"

namespace kvsync {
namespace {

using std::chrono::seconds;
using testing::EtcdCluster;
using testing::FaultProxy;
using testing::Subprocess;
using testing::WaitFor;

// The report line of an --output json run (stdout mixed with text logs).
nlohmann::json ReportJson(const std::string& out) {
  size_t at = out.find("{\"passed\"");
  if (at == std::string::npos) return nlohmann::json();
  return nlohmann::json::parse(out.substr(at, out.find('\n', at) - at), nullptr, false);
}

bool Violated(const nlohmann::json& j, const std::string& property) {
  if (!j.contains("violated")) return false;
  for (const auto& p : j["violated"]) {
    if (p == property) return true;
  }
  return false;
}

class EtcdwatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = EtcdCluster::Start({.name = "watch"});
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = std::move(*c);
    dir_ = testing::MakeTempDir("etcdwatch");
  }

  // Runs kvsync etcdwatch to completion; returns the exit code, stdout+stderr in `out`.
  int Run(std::vector<std::string> args, std::string* out) {
    std::vector<std::string> argv = {testing::KvsyncBinary(), "etcdwatch", "--log-format", "text"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = testing::RunCommand(argv, seconds(120));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return -1;
    *out = r->out + r->err;
    return r->exit_code;
  }

  // Starts etcdwatch in the background (output in a log file).
  std::unique_ptr<Subprocess> StartWatch(std::vector<std::string> args) {
    std::vector<std::string> argv = {testing::KvsyncBinary(), "etcdwatch", "--log-format", "text"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto p = Subprocess::Start(argv, absl::StrCat(dir_, "/etcdwatch-", ++runs_, ".log"));
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }

  std::unique_ptr<EtcdCluster> cluster_;
  std::string dir_;
  int runs_ = 0;
};

// Healthy cluster, the article's single-dash flags: every property holds, forced re-watches
// happened, every write reached every watcher, and the test keys are cleaned up.
TEST_F(EtcdwatchTest, PassesAgainstHealthyCluster) {
  std::string out;
  int code = Run({"-endpoint", cluster_->endpoint(0), "-num", "20", "-span", "20", "-duration", "2",
                  "--restart-every", "4", "--connections", "2", "--output", "json"},
                 &out);
  ASSERT_EQ(code, 0) << out;
  nlohmann::json j = ReportJson(out);
  ASSERT_FALSE(j.is_discarded() || j.is_null()) << out;
  EXPECT_EQ(j["passed"], true);
  EXPECT_EQ(j["total_tasks"], 20);
  EXPECT_EQ(j["failed_tasks"], 0);
  EXPECT_EQ(j["not_synced"], 0);
  EXPECT_EQ(j["writes"], 100);
  EXPECT_EQ(j["least_revision"], j["current_revision"]);
  EXPECT_GT(j["forced_restarts"].get<int64_t>(), 0);
  // 20 watchers x 100 revisions x 2 keys.
  EXPECT_EQ(j["events"], 4000);
  auto client = testing::ConnectEtcd(cluster_->endpoints_csv());
  EXPECT_TRUE(testing::DumpPrefix(client.get(), "/kvsync-etcdwatch/").empty());
}

// A single --key and the text report: the article's fields are printed.
TEST_F(EtcdwatchTest, SingleKeyTextReport) {
  std::string out;
  int code = Run({"--endpoints", cluster_->endpoint(0), "--num", "5", "--span", "10", "--duration",
                  "1", "--key", "/etcdwatch-test/key"},
                 &out);
  ASSERT_EQ(code, 0) << out;
  for (const char* field :
       {"etcdwatch: PASSED", "total tasks:       5", "failed tasks:      0",
        "current revision:", "least revision:", "tasks not synced:  0", "delivery latency:"}) {
    EXPECT_NE(out.find(field), std::string::npos) << field << "\n" << out;
  }
}

// A watcher-side drop of one response in N (the test hook) is reported as "reliable", exit 1.
TEST_F(EtcdwatchTest, DroppedResponseIsReportedAsReliable) {
  std::string out;
  int code = Run({"-endpoint", cluster_->endpoint(0), "-num", "5", "-span", "10", "-duration", "2",
                  "--inject-drop-every", "37", "--restart-every", "0", "--output", "json"},
                 &out);
  ASSERT_EQ(code, 1) << out;
  nlohmann::json j = ReportJson(out);
  ASSERT_FALSE(j.is_discarded() || j.is_null()) << out;
  EXPECT_EQ(j["passed"], false);
  EXPECT_GT(j["injected_drops"].get<int64_t>(), 0);
  EXPECT_TRUE(Violated(j, "reliable")) << out;
  EXPECT_EQ(j["violations"]["ordered"], 0);
  EXPECT_EQ(j["violations"]["unique"], 0);
  EXPECT_EQ(j["violations"]["atomic"], 0);
  EXPECT_NE(j["samples"][0].get<std::string>().find("never delivered"), std::string::npos) << out;
}

// Watchers behind a fault proxy that cuts their path for good (the writer writes directly):
// the report names "synced" and every watcher as not synced, exit 1.
TEST_F(EtcdwatchTest, PermanentStreamCutIsReportedAsNotSynced) {
  auto proxy = FaultProxy::Start(cluster_->endpoint(0));
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto p = StartWatch({"-endpoint", (*proxy)->address(), "--write-endpoints", cluster_->endpoint(0),
                       "-num", "10", "-span", "20", "-duration", "4", "--settle", "1s", "--output",
                       "json"});
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(WaitFor([&] { return p->LogTail().find("watchers created") != std::string::npos; },
                      seconds(20)))
      << p->LogTail();
  (*proxy)->SetMode(FaultProxy::Mode::kCut);
  auto code = p->Wait(seconds(60));
  ASSERT_EQ(code, 1) << p->LogTail();
  nlohmann::json j = ReportJson(p->LogTail(20000));
  ASSERT_FALSE(j.is_discarded() || j.is_null()) << p->LogTail();
  EXPECT_TRUE(Violated(j, "synced")) << p->LogTail();
  EXPECT_EQ(j["not_synced"], 10);
  EXPECT_EQ(j["failed_tasks"], 10);
  EXPECT_GT(j["stream_restarts"].get<int64_t>(), 0);
}

// A cut that heals: every stream is re-opened, each watcher re-watches from its last
// revision + 1, and nothing is lost or repeated (exit 0).
TEST_F(EtcdwatchTest, CutThatHealsResumesEveryWatcher) {
  auto proxy = FaultProxy::Start(cluster_->endpoint(0));
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto p = StartWatch({"-endpoint", (*proxy)->address(), "--write-endpoints", cluster_->endpoint(0),
                       "-num", "10", "-span", "20", "-duration", "4", "--connections", "2",
                       "--settle", "20s", "--output", "json"});
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(WaitFor([&] { return p->LogTail().find("watchers created") != std::string::npos; },
                      seconds(20)))
      << p->LogTail();
  (*proxy)->SetMode(FaultProxy::Mode::kCut);
  ASSERT_TRUE(WaitFor([&] { return p->LogTail().find("watch stream failed") != std::string::npos; },
                      seconds(20)))
      << p->LogTail();
  (*proxy)->SetMode(FaultProxy::Mode::kPass);
  auto code = p->Wait(seconds(60));
  ASSERT_EQ(code, 0) << p->LogTail();
  nlohmann::json j = ReportJson(p->LogTail(20000));
  ASSERT_FALSE(j.is_discarded() || j.is_null()) << p->LogTail();
  EXPECT_EQ(j["passed"], true);
  EXPECT_GE(j["stream_restarts"].get<int64_t>(), 2);  // both connections
  EXPECT_EQ(j["not_synced"], 0);
}

// Bad flags: one clear line, exit 2; an unreachable cluster: one line, exit 3.
TEST_F(EtcdwatchTest, BadFlagsExitTwoWithOneLine) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  std::vector<Case> cases = {
      {{"-num", "0"}, "--num must be at least 1"},
      {{"-span", "0"}, "-span must be at least 1"},
      {{"-span", "fast"}, "span"},
      {{"-duration", "0"}, "-duration must be at least 1"},
      {{"--key", "/a", "--prefix", "/b/"}, "give exactly one of --key and --prefix"},
      {{"--key", "/a", "--keys", "3"}, "--keys needs --prefix"},
      {{"--output", "xml"}, "--output must be text or json"},
      {{"--connections", "0"}, "--connections must be 1..64"},
      {{"--restart-every", "-1"}, "restart-every"},
      {{"--bogus"}, "bogus"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"-endpoint", cluster_->endpoint(0)};
    args.insert(args.end(), c.args.begin(), c.args.end());
    std::string out;
    EXPECT_EQ(Run(args, &out), 2) << c.message << ": " << out;
    EXPECT_NE(out.find(c.message), std::string::npos) << out;
    EXPECT_NE(out.find("error"), std::string::npos) << out;
  }
  std::string out;
  EXPECT_EQ(Run({"-endpoint", "127.0.0.1:1", "--dial-timeout", "500ms"}, &out), 3) << out;
  EXPECT_NE(out.find("kvsync etcdwatch: error:"), std::string::npos) << out;
}

}  // namespace
}  // namespace kvsync
