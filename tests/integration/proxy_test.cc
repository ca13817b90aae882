// kvsync through etcd's grpc-proxy (`etcd grpc-proxy start`): etcdwatch's checks hold through
// a proxy, etcd2etcd syncs with the source behind one proxy and the destination behind
// another (and resumes after the task and a proxy restart), and the consistency check passes
// (and still finds drift) through proxies.
#include <csignal>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/harness/etcd_cluster.h"
#include "tests/harness/grpc_proxy.h"
#include "tests/harness/kvsync_util.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/wait.h"

namespace kvsync {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::EtcdCluster;
using testing::GrpcProxy;
using testing::Subprocess;
using testing::WaitFor;

// The first JSON object line of `out` that has `key` (stdout is mixed with text logs).
nlohmann::json JsonLine(const std::string& out, const std::string& key) {
  size_t start = 0;
  while (start < out.size()) {
    size_t end = out.find('\n', start);
    if (end == std::string::npos) end = out.size();
    if (out[start] == '{') {
      auto j = nlohmann::json::parse(out.substr(start, end - start), nullptr, false);
      if (!j.is_discarded() && j.contains(key)) return j;
    }
    start = end + 1;
  }
  return nlohmann::json();
}

class ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = EtcdCluster::Start({.name = "src"});
    ASSERT_TRUE(s.ok()) << s.status();
    src_cluster_ = std::move(*s);
    auto d = EtcdCluster::Start({.name = "dst"});
    ASSERT_TRUE(d.ok()) << d.status();
    dst_cluster_ = std::move(*d);
    auto sp = GrpcProxy::Start({.endpoints = src_cluster_->endpoints(), .name = "src-proxy"});
    ASSERT_TRUE(sp.ok()) << sp.status();
    src_proxy_ = std::move(*sp);
    auto dp = GrpcProxy::Start({.endpoints = dst_cluster_->endpoints(), .name = "dst-proxy"});
    ASSERT_TRUE(dp.ok()) << dp.status();
    dst_proxy_ = std::move(*dp);
    src_ = testing::ConnectEtcd(src_cluster_->endpoints_csv());
    dst_ = testing::ConnectEtcd(dst_cluster_->endpoints_csv());
    dir_ = testing::MakeTempDir("proxy");
  }

  int RunKvsync(std::vector<std::string> args, std::string* out) {
    std::vector<std::string> argv = {testing::KvsyncBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = testing::RunCommand(argv, seconds(120));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return -1;
    *out = r->out + r->err;
    return r->exit_code;
  }

  std::unique_ptr<Subprocess> StartSync() {
    auto p = Subprocess::Start(
        {testing::KvsyncBinary(), "etcd2etcd", "--src-endpoints", src_proxy_->address(),
         "--dst-endpoints", dst_proxy_->address(), "--prefix", "/p/", "--log-format", "text",
         "--admin-addr", "127.0.0.1:0", "--progress-interval", "300ms", "--status-interval", "0"},
        absl::StrCat(dir_, "/kvsync-", ++runs_, ".log"));
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }

  bool WaitSynced(Subprocess* kvsync) {
    bool ok = WaitFor(
        [&] {
          auto s = testing::DumpPrefix(src_.get(), "/p/");
          return !s.empty() && s == testing::DumpPrefix(dst_.get(), "/p/");
        },
        seconds(30), milliseconds(100));
    if (!ok && kvsync) ADD_FAILURE() << kvsync->LogTail();
    return ok;
  }

  std::unique_ptr<EtcdCluster> src_cluster_;
  std::unique_ptr<EtcdCluster> dst_cluster_;
  std::unique_ptr<GrpcProxy> src_proxy_;
  std::unique_ptr<GrpcProxy> dst_proxy_;
  std::unique_ptr<etcd::Client> src_;
  std::unique_ptr<etcd::Client> dst_;
  std::string dir_;
  int runs_ = 0;
};

// Every etcdwatch property holds with writer and watchers going through the proxy, and with
// watchers through the proxy while the writer writes to the member directly.
TEST_F(ProxyTest, EtcdwatchPassesThroughGrpcProxy) {
  for (bool direct_writer : {false, true}) {
    std::vector<std::string> args = {"etcdwatch", "-endpoint",    src_proxy_->address(),
                                     "-num",      "20",           "-span",
                                     "20",        "-duration",    "2",
                                     "--output",  "json",         "--restart-every",
                                     "4",         "--log-format", "text"};
    if (direct_writer) {
      args.insert(args.end(), {"--write-endpoints", src_cluster_->endpoint(0)});
    }
    std::string out;
    ASSERT_EQ(RunKvsync(args, &out), 0) << out;
    nlohmann::json j = JsonLine(out, "passed");
    ASSERT_FALSE(j.is_null() || j.is_discarded()) << out;
    EXPECT_EQ(j["passed"], true);
    EXPECT_EQ(j["not_synced"], 0);
    EXPECT_EQ(j["writes"], 100);
    EXPECT_GT(j["forced_restarts"].get<int64_t>(), 0);
  }
}

// etcd2etcd with the source behind one proxy and the destination behind another: full sync,
// live changes, a source-proxy restart mid-run, and a task restart that resumes from its
// checkpoint (no full copy).
TEST_F(ProxyTest, Etcd2EtcdThroughTwoProxiesResumesAfterRestart) {
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(src_->Put(absl::StrFormat("/p/%04d", i), "v").ok());
  auto kvsync = StartSync();
  ASSERT_NE(kvsync, nullptr);
  ASSERT_TRUE(WaitSynced(kvsync.get()));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(src_->Put(absl::StrCat("/p/live", i), "l").ok());
  ASSERT_TRUE(WaitSynced(kvsync.get()));

  ASSERT_TRUE(src_proxy_->Restart().ok()) << src_proxy_->LogTail();
  ASSERT_TRUE(src_->Put("/p/after-proxy-restart", "x").ok());
  ASSERT_TRUE(src_->Delete("/p/0001").ok());
  ASSERT_TRUE(WaitSynced(kvsync.get()));

  EXPECT_EQ(kvsync->Stop(), 0) << kvsync->LogTail();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(src_->Put(absl::StrCat("/p/down", i), "d").ok());
  ASSERT_TRUE(src_->Delete("/p/0002").ok());
  auto again = StartSync();
  ASSERT_NE(again, nullptr);
  ASSERT_TRUE(WaitSynced(again.get()));
  again->Stop();
  std::string log = again->LogTail(20000);
  EXPECT_NE(log.find("fast path chosen"), std::string::npos) << log;
  EXPECT_EQ(log.find("full sync started"), std::string::npos) << log;
  EXPECT_EQ(testing::DumpPrefix(dst_.get(), "/p/").count("/p/0002"), 0u);
}

// The consistency check through both proxies: consistent after a sync, and a deleted
// destination key is found as one dst miss.
TEST_F(ProxyTest, CheckPassesThroughProxies) {
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(src_->Put(absl::StrFormat("/p/%04d", i), "v").ok());
  std::string out;
  ASSERT_EQ(RunKvsync({"etcd2etcd", "--src-endpoints", src_proxy_->address(), "--dst-endpoints",
                       dst_proxy_->address(), "--prefix", "/p/", "--once", "--admin-addr", "",
                       "--log-format", "text"},
                      &out),
            0)
      << out;
  std::vector<std::string> check = {"check",
                                    "etcd2etcd",
                                    "--src-endpoints",
                                    src_proxy_->address(),
                                    "--dst-endpoints",
                                    dst_proxy_->address(),
                                    "--prefix",
                                    "/p/",
                                    "--output",
                                    "json",
                                    "--log-format",
                                    "text",
                                    "--confirm-timeout",
                                    "1s"};
  ASSERT_EQ(RunKvsync(check, &out), 0) << out;
  nlohmann::json clean = JsonLine(out, "consistent");
  ASSERT_FALSE(clean.is_null() || clean.is_discarded()) << out;
  EXPECT_EQ(clean["source_keys"], 100);

  ASSERT_TRUE(dst_->Delete("/p/0050").ok());
  check.push_back("--single-round");
  ASSERT_EQ(RunKvsync(check, &out), 1) << out;
  nlohmann::json drift = JsonLine(out, "consistent");
  ASSERT_FALSE(drift.is_null() || drift.is_discarded()) << out;
  EXPECT_EQ(drift["dst_miss"], 1);
}

}  // namespace
}  // namespace kvsync
