// The fixture of the ZooKeeper-side integration tests (zk2etcd_test.cc, migration_test.cc): a
// real ZooKeeper and a one-member etcd cluster per test, a session and a client on each, a
// Dubbo-like tree builder, dumps of both sides and the admin endpoint's metrics.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <map>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/digest.h"
#include "common/strings.h"
#include "etcd/client.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "redis/client.h"
#include "tests/harness/etcd_cluster.h"
#include "tests/harness/fault_proxy.h"
#include "tests/harness/http_get.h"
#include "tests/harness/kvsync_util.h"
#include "tests/harness/redis_server.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/wait.h"
#include "tests/harness/zk_server.h"
#include "zk/session.h"

namespace kvsync {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::EtcdCluster;
using testing::Subprocess;
using testing::WaitFor;
using KvMap = std::map<std::string, std::string>;

constexpr char kTask[] = "dubbo";
// The etcd ownership mark of `key` for task kTask.
std::string MarkOf(const std::string& key) {
  return "/kvsync/meta/dubbo/owned/" + common::DigestHex(common::KeyDigest(key));
}

// A URL-encoded Dubbo provider URL of about `bytes` bytes, as Dubbo registers them.
std::string ProviderName(int service, int provider, size_t bytes = 400) {
  std::string name = absl::StrFormat(
      "dubbo%%3A%%2F%%2F10.0.%d.%d%%3A20880%%2Fcom.example.Service%d%%3Fanyhost%%3Dtrue%%26"
      "application%%3Ddemo%%26methods%%3Dget%%2Cput%%2Clist",
      service % 250, provider % 250, service);
  while (name.size() < bytes) name += "%26x%3Dpadding";
  return name;
}

class Zk2EtcdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto zk = testing::ZkServer::Start({});
    ASSERT_TRUE(zk.ok()) << zk.status();
    zk_server_ = std::move(*zk);
    auto e = EtcdCluster::Start({.name = "zketcd"});
    ASSERT_TRUE(e.ok()) << e.status();
    etcd_cluster_ = std::move(*e);
    etcd_ = testing::ConnectEtcd(etcd_cluster_->endpoints_csv());
    zk_ = OpenZk(zk_server_->connect_string());
    dir_ = testing::MakeTempDir("zk2etcd");
  }

  static std::unique_ptr<zk::Session> OpenZk(const std::string& servers) {
    zk::SessionOptions o;
    o.servers = servers;
    o.session_timeout = seconds(10);
    auto s = zk::Session::Open(o, [](const zk::WatchEvent&) {});
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }

  // /dubbo/svc<i>/{providers,consumers,configurators} with `providers` ephemeral providers each.
  void BuildDubbo(int services, int providers) {
    for (int s = 0; s < services; ++s) {
      std::string svc = absl::StrCat("/dubbo/svc", s);
      ASSERT_TRUE(zk_->CreateAll(svc + "/providers", "").ok());
      ASSERT_TRUE(zk_->CreateAll(svc + "/consumers", "").ok());
      ASSERT_TRUE(zk_->CreateAll(svc + "/configurators", "weight=100").ok());
      for (int p = 0; p < providers; ++p) {
        ASSERT_TRUE(zk_->Create(svc + "/providers/" + ProviderName(s, p), "", true).ok());
      }
    }
  }

  // `kvsync check zk2etcd` of the task, against `servers` (default: the test's ZooKeeper).
  std::vector<std::string> CheckArgs(std::vector<std::string> extra, std::string servers = "") {
    std::vector<std::string> argv = {testing::KvsyncBinary(),
                                     "check",
                                     "zk2etcd",
                                     "--zk-servers",
                                     servers.empty() ? zk_server_->connect_string() : servers,
                                     "--zk-prefix",
                                     "/dubbo",
                                     "--etcd-endpoints",
                                     etcd_cluster_->endpoints_csv(),
                                     "--name",
                                     kTask};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  std::vector<std::string> BaseArgs() {
    admin_ = absl::StrCat("127.0.0.1:", testing::FreePort());
    return {testing::KvsyncBinary(),
            "zk2etcd",
            "--zk-servers",
            zk_server_->connect_string(),
            "--zk-prefix",
            "/dubbo",
            "--etcd-endpoints",
            etcd_cluster_->endpoints_csv(),
            "--name",
            kTask,
            "--admin-addr",
            admin_,
            "--zk-session-timeout",
            "4s",
            "--log-format",
            "text",
            "--status-interval",
            "0"};
  }

  std::unique_ptr<Subprocess> Start(std::vector<std::string> argv) {
    auto p =
        Subprocess::Start(std::move(argv), dir_ + "/kvsync-" + std::to_string(++runs_) + ".log");
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }

  // One `kvsync zk2etcd --once` run, which must exit 0.
  void SyncOnce() {
    auto argv = BaseArgs();
    argv.push_back("--once");
    auto once = testing::RunCommand(argv, seconds(60));
    ASSERT_TRUE(once.ok()) << once.status();
    ASSERT_EQ(once->exit_code, 0) << once->err;
  }

  std::unique_ptr<Subprocess> StartKvsync(const std::vector<std::string>& extra = {}) {
    auto argv = BaseArgs();
    argv.insert(argv.end(), extra.begin(), extra.end());
    return Start(std::move(argv));
  }

  // Every znode under `root` (path-aware) with its data, minus `excluded` subtrees.
  KvMap ZkDump(const std::string& root, const std::string& excluded = "") {
    KvMap out;
    std::vector<std::string> todo = {root};
    while (!todo.empty()) {
      std::string path = todo.back();
      todo.pop_back();
      if (!excluded.empty() && common::PathUnder(path, excluded)) continue;
      auto data = zk_->Get(path);
      if (!data.ok()) continue;
      out[path] = *data;
      auto children = zk_->Children(path);
      if (!children.ok()) continue;
      for (const auto& c : *children) todo.push_back(path == "/" ? "/" + c : path + "/" + c);
    }
    return out;
  }

  // etcd keys under `root` (path-aware).
  KvMap EtcdDump(const std::string& root) {
    KvMap out;
    for (auto& [k, v] : testing::DumpPrefix(etcd_.get(), root)) {
      if (common::PathUnder(k, root)) out[k] = v;
    }
    return out;
  }

  // Waits until etcd under /dubbo equals ZooKeeper's /dubbo (plus `extra` etcd-only keys).
  void ExpectSynced(Subprocess* kvsync, const KvMap& extra = {}, const std::string& excluded = "") {
    KvMap want;
    bool same = WaitFor(
        [&] {
          want = ZkDump("/dubbo", excluded);
          for (const auto& [k, v] : extra) want[k] = v;
          return EtcdDump("/dubbo") == want;
        },
        seconds(60), milliseconds(100));
    if (!same) {
      KvMap got = EtcdDump("/dubbo");
      std::string diff;
      for (const auto& [k, v] : want) {
        auto it = got.find(k);
        if (it == got.end())
          diff += "missing " + k + "\n";
        else if (it->second != v)
          diff += "different " + k + "\n";
      }
      for (const auto& [k, v] : got) {
        if (!want.count(k)) diff += "extra " + k + "\n";
      }
      FAIL() << "etcd never matched ZooKeeper:\n"
             << diff.substr(0, 3000) << "\nkvsync log:\n"
             << (kvsync ? kvsync->LogTail(6000) : "");
    }
  }

  // The value of one metric line ("name{labels}"), or nullopt.
  std::optional<double> Metric(const std::string& series, const std::string& admin = "") {
    auto r = testing::HttpGet(admin.empty() ? admin_ : admin, "/metrics");
    if (!r.ok()) return std::nullopt;
    for (absl::string_view line : absl::StrSplit(r->body, '\n')) {
      if (absl::StartsWith(line, series + " ")) {
        return std::stod(std::string(line.substr(series.size() + 1)));
      }
    }
    return std::nullopt;
  }

  std::string DebugMetrics() {
    auto r = testing::HttpGet(admin_, "/metrics");
    if (!r.ok()) return r.status().ToString();
    std::string out;
    for (absl::string_view line : absl::StrSplit(r->body, '\n')) {
      if (absl::StrContains(line, "zk2etcd") && !absl::StartsWith(line, "#"))
        absl::StrAppend(&out, line, "\n");
    }
    return out;
  }
  bool MetricAtLeast(const std::string& series, double v, const std::string& admin = "") {
    auto m = Metric(series, admin);
    return m.has_value() && *m >= v;
  }

  std::unique_ptr<testing::ZkServer> zk_server_;
  std::unique_ptr<EtcdCluster> etcd_cluster_;
  std::unique_ptr<etcd::Client> etcd_;
  std::unique_ptr<zk::Session> zk_;
  std::string dir_;
  std::string admin_;
  int runs_ = 0;
};

std::string Label(const std::string& name, const std::string& extra = "") {
  return absl::StrCat(name, "{task=\"", kTask, "\"", extra.empty() ? "" : ",", extra, "}");
}

}  // namespace
}  // namespace kvsync
