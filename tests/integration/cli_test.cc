// The kvsync command line on its own (servers only where a test needs one): configuration
// mistakes exit 2 with one `kvsync <cmd>: error:` line before connecting to anything, a check
// accepts its task's config file, signals during start-up, and library log lines in JSON.
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/harness/etcd_cluster.h"
#include "tests/harness/kvsync_util.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/wait.h"

namespace kvsync {
namespace {

using std::chrono::seconds;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir("cli");
    closed_ = absl::StrCat("127.0.0.1:", testing::FreePort());
  }

  testing::CommandResult Run(std::vector<std::string> args) {
    args.insert(args.begin(), testing::KvsyncBinary());
    auto r = testing::RunCommand(args, seconds(60));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : testing::CommandResult{};
  }

  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  // The long names of the flags `--help` lists, each with whether it takes a value.
  std::vector<std::pair<std::string, bool>> HelpFlags(std::vector<std::string> command) {
    command.push_back("--help");
    testing::CommandResult r = Run(command);
    std::vector<std::pair<std::string, bool>> flags;
    std::regex line(R"(^\s+(--[a-z0-9-]+)(?:,--[a-z0-9-]+)*(?:\s+([A-Z]+))?)");
    for (absl::string_view l : absl::StrSplit(r.out, '\n')) {
      std::cmatch m;
      std::string s(l);
      if (std::regex_search(s.c_str(), m, line) && m[1] != "--help") {
        flags.push_back({m[1].str().substr(2), m[2].matched});
      }
    }
    return flags;
  }

  // A YAML task file with every flag of `task` that `check` lacks, the election flags as a
  // nested map, plus `base`.
  std::string SyncOnlyYaml(std::vector<std::string> task, std::vector<std::string> check,
                           const std::string& base) {
    std::set<std::string> shared;
    for (const auto& [name, value] : HelpFlags(check)) shared.insert(name);
    std::string yaml = base, election = "election:\n";
    int sync_only = 0;
    for (const auto& [name, value] : HelpFlags(task)) {
      if (shared.count(name)) continue;
      ++sync_only;
      std::string v = value ? "\"1s\"" : "true";
      if (absl::StartsWith(name, "election-")) {
        absl::StrAppend(&election, "  ", name.substr(9), ": ", v, "\n");
      } else {
        absl::StrAppend(&yaml, name, ": ", v, "\n");
      }
    }
    EXPECT_GT(sync_only, 10) << yaml;
    return election == "election:\n" ? yaml : yaml + election;
  }

  std::string dir_;
  std::string closed_;  // a loopback port nothing listens on
};

// Every configuration mistake exits 2 with exactly one line naming it, before connecting.
TEST_F(CliTest, ConfigurationMistakesExitTwoWithOneLine) {
  struct Case {
    std::vector<std::string> argv;
    std::string message;
  };
  std::string e2e = "--src-endpoints=" + closed_;
  std::string dst = "--dst-endpoints=" + closed_;
  std::vector<std::string> mirror = {"etcd2etcd", e2e, dst, "--prefix", "/a/"};
  std::vector<std::string> zk = {"zk2etcd", "--zk-servers",     closed_, "--zk-prefix",
                                 "/dubbo",  "--etcd-endpoints", closed_};
  auto with = [](std::vector<std::string> base, std::vector<std::string> extra) {
    base.insert(base.end(), extra.begin(), extra.end());
    return base;
  };
  std::vector<Case> cases = {
      // A directory or a device as --config.
      {{"etcd2etcd", "--config", dir_}, "is not a regular file"},
      {{"zk2etcd", "--config", dir_}, "is not a regular file"},
      {{"check", "etcd2etcd", "--config", dir_}, "is not a regular file"},
      {{"check", "zk2etcd", "--config", "/dev/zero"}, "is not a regular file"},
      // Durations that can never work.
      {with(mirror, {"--src-command-timeout", "inf"}),
       "--src-command-timeout must be a duration between 100ms and 10m"},
      {with(mirror, {"--src-dial-timeout", "0"}),
       "--src-dial-timeout must be a duration between 100ms and 5m"},
      {with(mirror, {"--dst-dial-timeout", "inf"}), "--dst-dial-timeout must be a duration"},
      {with(mirror, {"--lease-ttl", "8760h"}), "--lease-ttl must be a duration between 1s and 5m"},
      {with(mirror, {"--status-interval", "1ms"}),
       "--status-interval must be 0 (off) or a duration between 1s and 24h"},
      {with(mirror, {"--check-interval", "inf"}), "--check-interval must be 0 (off)"},
      {with(zk, {"--zk-session-timeout", "inf"}), "--zk-session-timeout must be a duration"},
      {with(zk, {"--fullsync-interval", "inf"}), "--fullsync-interval must be 0 (off)"},
      {with(zk, {"--etcd-command-timeout", "0"}), "--etcd-command-timeout must be a duration"},
      {{"check", "etcd2etcd", e2e, dst, "--prefix", "/a/", "--confirm-timeout", "inf"},
       "--confirm-timeout must be a duration"},
      {{"etcdwatch", "-dial-timeout", "0"}, "--dial-timeout must be a duration"},
      // Loose values.
      {with(mirror, {"--dst-prefix", ""}), "--dst-prefix must not be empty"},
      {with(mirror, {"--name", "a\nb"}), "--name may contain only"},
      {with(zk, {"--name", "a\x1b[31mb"}), "--name may contain only"},
      {with(mirror, {"--check-read-rate", "nan"}), "--check-read-rate must be a finite number"},
      {with(mirror, {"--check-read-rate", "inf"}), "--check-read-rate must be a finite number"},
      {with(mirror, {"--check-read-rate", "-1"}), "--check-read-rate must be a finite number"},
      {{"check", "etcd2etcd", e2e, dst, "--prefix", "/a/", "--read-rate", "nan"},
       "--read-rate must be a finite number"},
      // Keys given twice in a config file.
      {with(mirror, {"--config", Write("twice.yaml", "name: a\nname: b\n")}),
       "has the key \"name\" twice"},
      {with(mirror, {"--config", Write("spellings.yaml", "max_txn_ops: 8\nmax-txn-ops: 9\n")}),
       "sets \"max-txn-ops\" twice"},
      {with(mirror, {"--config", Write("nested.yaml",
                                       "election: {endpoints: a:1}\nelection-endpoints: b:1\n")}),
       "sets \"election-endpoints\" twice"},
  };
  for (const Case& c : cases) {
    testing::CommandResult r = Run(c.argv);
    std::string what = absl::StrJoin(c.argv, " ");
    EXPECT_EQ(r.exit_code, 2) << what << "\n" << r.err;
    EXPECT_TRUE(absl::StartsWith(r.err, "kvsync ")) << what << "\n" << r.err;
    EXPECT_TRUE(absl::StrContains(r.err, ": error: ")) << what << "\n" << r.err;
    EXPECT_TRUE(absl::StrContains(r.err, c.message)) << what << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << what << "\n" << r.err;
  }
}

// `kvsync check etcd2etcd --config task.yaml` accepts every key of the etcd2etcd task (nested
// election map included) and ignores the sync-only ones: it gets as far as connecting.
TEST_F(CliTest, CheckEtcd2EtcdAcceptsEverySyncOnlyKey) {
  std::string yaml =
      SyncOnlyYaml({"etcd2etcd"}, {"check", "etcd2etcd"},
                   absl::StrCat("prefix: /a/\nsrc-endpoints: ", closed_,
                                "\ndst:\n  endpoints: ", closed_, "\nsrc-dial-timeout: 100ms\n"));
  for (const char* key : {"check-interval:", "auto-repair:", "ha:"}) {
    EXPECT_TRUE(absl::StrContains(yaml, key)) << yaml;
  }
  // --election-* are check flags too (where --fix finds the leader's fence): the task's map.
  absl::StrAppend(&yaml, "election:\n  endpoints: ", closed_, "\n  dial-timeout: 100ms\n");
  testing::CommandResult r =
      Run({"check", "etcd2etcd", "--config", Write("task.yaml", yaml), "--log-format", "text"});
  EXPECT_EQ(r.exit_code, 3) << yaml << r.err;  // runtime failure: unreachable
  EXPECT_TRUE(absl::StrContains(r.err, "cannot reach source etcd")) << yaml << r.err;
}

// The same for `kvsync check zk2etcd` with a zk2etcd task's file.
TEST_F(CliTest, CheckZk2EtcdAcceptsEverySyncOnlyKey) {
  std::string yaml = SyncOnlyYaml(
      {"zk2etcd"}, {"check", "zk2etcd"},
      absl::StrCat("zk-servers: ", closed_, "\nzk-prefix: /dubbo\netcd-endpoints: ", closed_,
                   "\netcd-dial-timeout: 100ms\n"));
  for (const char* key : {"fullsync-interval:", "coalesce:", "ha:", "election:\n  endpoints:"}) {
    EXPECT_TRUE(absl::StrContains(yaml, key)) << yaml;
  }
  testing::CommandResult r =
      Run({"check", "zk2etcd", "--config", Write("task.yaml", yaml), "--log-format", "text"});
  EXPECT_EQ(r.exit_code, 3) << yaml << r.err;  // runtime failure: unreachable
  EXPECT_TRUE(absl::StrContains(r.err, "cannot reach etcd at")) << yaml << r.err;
}

// A task blocked connecting to an unreachable cluster (5-minute dial timeout).
std::unique_ptr<testing::Subprocess> StartBlockedTask(const std::string& closed,
                                                      const std::string& log) {
  auto p = testing::Subprocess::Start(
      {testing::KvsyncBinary(), "etcd2etcd", "--src-endpoints", closed, "--dst-endpoints", closed,
       "--prefix", "/a/", "--src-dial-timeout", "5m", "--dst-dial-timeout", "5m", "--admin-addr",
       "", "--log-format", "json"},
      log);
  EXPECT_TRUE(p.ok()) << p.status();
  if (!p.ok()) return nullptr;
  bool connecting = testing::WaitFor(
      [&] {
        std::string tail = (*p)->LogTail();
        return absl::StrContains(tail, "\"msg\":\"connecting\"") ||
               absl::StrContains(tail, "\"msg\":\"started\"");
      },
      seconds(30));
  EXPECT_TRUE(connecting) << (*p)->LogTail();
  return std::move(*p);
}

// SIGTERM while kvsync is still connecting at start-up ends it with exit 0 and a log line.
TEST_F(CliTest, SigtermDuringStartupExitsZero) {
  auto kvsync = StartBlockedTask(closed_, dir_ + "/term.log");
  ASSERT_NE(kvsync, nullptr);
  kvsync->Signal(SIGTERM);
  EXPECT_EQ(kvsync->Wait(seconds(30)), std::optional<int>(0)) << kvsync->LogTail();
  EXPECT_TRUE(absl::StrContains(kvsync->LogTail(), "signal received during start-up, exiting"))
      << kvsync->LogTail();
}

// SIGHUP is logged and ignored: the process keeps running (and still stops on SIGTERM).
TEST_F(CliTest, SighupIsLoggedAndIgnored) {
  auto kvsync = StartBlockedTask(closed_, dir_ + "/hup.log");
  ASSERT_NE(kvsync, nullptr);
  kvsync->Signal(SIGHUP);
  EXPECT_TRUE(testing::WaitFor(
      [&] { return absl::StrContains(kvsync->LogTail(), "SIGHUP ignored"); }, seconds(30)))
      << kvsync->LogTail();
  EXPECT_TRUE(kvsync->Running()) << kvsync->LogTail();
  kvsync->Signal(SIGTERM);
  EXPECT_EQ(kvsync->Wait(seconds(30)), std::optional<int>(0)) << kvsync->LogTail();
}

// With --log-format json every stderr line is a JSON object, the ZooKeeper C client's own
// lines included; only the final `kvsync zk2etcd: error:` line is plain text.
TEST_F(CliTest, JsonLogsIncludeZookeeperClientLines) {
  auto etcd = testing::EtcdCluster::Start({.name = "clietcd"});
  ASSERT_TRUE(etcd.ok()) << etcd.status();
  testing::CommandResult r =
      Run({"zk2etcd", "--zk-servers", closed_, "--zk-prefix", "/dubbo", "--etcd-endpoints",
           (*etcd)->endpoints_csv(), "--zk-session-timeout", "2s", "--admin-addr", "",
           "--status-interval", "0", "--log-format", "json"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.err, '\n', absl::SkipEmpty());
  ASSERT_FALSE(lines.empty());
  EXPECT_TRUE(absl::StartsWith(lines.back(), "kvsync zk2etcd: error: ")) << r.err;
  lines.pop_back();
  bool zookeeper = false;
  for (const std::string& line : lines) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << "not JSON: " << line;
    zookeeper = zookeeper || j.value("component", "") == "zookeeper";
  }
  EXPECT_TRUE(zookeeper) << r.err;
}

// gRPC's own lines (asked for with GRPC_VERBOSITY) come through kvsync's JSON logger too.
TEST_F(CliTest, JsonLogsIncludeGrpcLines) {
  auto r = testing::RunCommand({"/usr/bin/env",
                                "GRPC_VERBOSITY=DEBUG",
                                testing::KvsyncBinary(),
                                "etcd2etcd",
                                "--src-endpoints",
                                closed_,
                                "--dst-endpoints",
                                closed_,
                                "--prefix",
                                "/a/",
                                "--src-dial-timeout",
                                "1s",
                                "--dst-dial-timeout",
                                "1s",
                                "--admin-addr",
                                "",
                                "--status-interval",
                                "0",
                                "--log-format",
                                "json",
                                "--log-level",
                                "debug"},
                               seconds(60));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 3) << r->err;
  std::vector<std::string> lines = absl::StrSplit(r->err, '\n', absl::SkipEmpty());
  ASSERT_FALSE(lines.empty());
  EXPECT_TRUE(absl::StartsWith(lines.back(), "kvsync etcd2etcd: error: ")) << r->err;
  lines.pop_back();
  bool grpc = false;
  for (const std::string& line : lines) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << "not JSON: " << line;
    grpc = grpc || j.value("component", "") == "grpc";
  }
  EXPECT_TRUE(grpc) << r->err.substr(0, 4000);
}

}  // namespace
}  // namespace kvsync
