// `kvsync check etcd2etcd` against real etcd: counts and samples of each kind of drift, exit
// codes, presence mode agreeing with full mode, protected keys never reported.
#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/harness/etcd_cluster.h"
#include "tests/harness/kvsync_util.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/wait.h"

namespace kvsync {
namespace {

using std::chrono::seconds;
using testing::EtcdCluster;

class CheckTest : public ::testing::Test {
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
    dir_ = testing::MakeTempDir("check");
  }

  // Runs kvsync with `args` after the connection flags; returns the exit code, stdout in `out`.
  int Kvsync(std::vector<std::string> args, std::string* out) {
    std::vector<std::string> argv = {testing::KvsyncBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--src-endpoints", src_cluster_->endpoints_csv(), "--dst-endpoints",
                             dst_cluster_->endpoints_csv()});
    auto r = testing::RunCommand(argv, seconds(60));
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return -1;
    *out = r->out + r->err;
    if (r->exit_code != 0 && r->exit_code != 1) ADD_FAILURE() << *out;
    return r->exit_code;
  }

  nlohmann::json CheckJson(std::vector<std::string> extra, int* code) {
    std::vector<std::string> args = {
        "check",        "etcd2etcd", "--prefix",          "/svc/",
        "--output",     "json",      "--exclude-prefix",  "/svc/local/",
        "--log-format", "text",      "--confirm-timeout", "1s"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::string out;
    *code = Kvsync(args, &out);
    auto j = nlohmann::json::parse(out.substr(0, out.find('\n')), nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << out;
    return j;
  }

  std::unique_ptr<EtcdCluster> src_cluster_;
  std::unique_ptr<EtcdCluster> dst_cluster_;
  std::unique_ptr<etcd::Client> src_;
  std::unique_ptr<etcd::Client> dst_;
  std::string dir_;
};

// A synced task checks consistent; injected drift is counted by kind with sample keys, and
// excluded and meta keys are never reported.
TEST_F(CheckTest, CountsEachKindOfDriftAndIgnoresProtectedKeys) {
  for (int i = 0; i < 300; ++i) {
    ASSERT_TRUE(src_->Put(absl::StrFormat("/svc/%04d", i), "v").ok());
  }
  std::string out;
  ASSERT_EQ(Kvsync({"etcd2etcd", "--prefix", "/svc/", "--exclude-prefix", "/svc/local/", "--once",
                    "--admin-addr", "", "--log-format", "text"},
                   &out),
            0)
      << out;
  int code = -1;
  nlohmann::json clean = CheckJson({}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(clean["consistent"], true);
  EXPECT_EQ(clean["source_keys"], 300);

  for (int i = 0; i < 5; ++i) ASSERT_TRUE(dst_->Delete(absl::StrFormat("/svc/%04d", i)).ok());
  for (int i = 10; i < 13; ++i) {
    ASSERT_TRUE(dst_->Put(absl::StrFormat("/svc/%04d", i), "changed").ok());
  }
  ASSERT_TRUE(dst_->Put("/svc/zz-extra-1", "x").ok());
  ASSERT_TRUE(dst_->Put("/svc/zz-extra-2", "x").ok());
  ASSERT_TRUE(dst_->Put("/svc/local/only-here", "x").ok());   // excluded
  ASSERT_TRUE(src_->Put("/svc/local/only-there", "x").ok());  // excluded
  ASSERT_TRUE(dst_->Put("/kvsync/meta/other/checkpoint", "{}").ok());

  nlohmann::json full = CheckJson({"--show", "2"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_EQ(full["consistent"], false);
  EXPECT_EQ(full["dst_miss"], 5);
  EXPECT_EQ(full["mismatch"], 3);
  EXPECT_EQ(full["src_miss"], 2);
  ASSERT_EQ(full["samples"].size(), 6u);  // 2 per kind
  EXPECT_EQ(full["samples"][0]["kind"], "dst miss");
  EXPECT_EQ(full["samples"][0]["source_key"], "/svc/0000");
  EXPECT_EQ(full["rounds"], 2);  // confirmed by a second round
  EXPECT_EQ(full["unconfirmed"], 0);

  // A rate-limited check reading from the nearest member (serializable) finds the same.
  nlohmann::json paced =
      CheckJson({"--read-rate", "2000", "--single-round", "--serializable"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_EQ(paced["dst_miss"], full["dst_miss"]);
  EXPECT_EQ(paced["src_miss"], full["src_miss"]);
  EXPECT_EQ(paced["mismatch"], full["mismatch"]);

  nlohmann::json presence = CheckJson({"--keys-only"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_EQ(presence["dst_miss"], full["dst_miss"]);
  EXPECT_EQ(presence["src_miss"], full["src_miss"]);
  EXPECT_FALSE(presence.contains("mismatch"));
  EXPECT_LT(presence["source_bytes"].get<int64_t>(), full["source_bytes"].get<int64_t>());

  // The text summary names the verdict and the kinds.
  ASSERT_EQ(Kvsync({"check", "etcd2etcd", "--prefix", "/svc/", "--exclude-prefix", "/svc/local/",
                    "--log-format", "text", "--confirm-timeout", "1s"},
                   &out),
            1);
  EXPECT_NE(out.find("DIFFERENCES FOUND"), std::string::npos) << out;
  EXPECT_NE(out.find("src miss  /svc/zz-extra-1"), std::string::npos) << out;

  // --fix repairs the confirmed differences and nothing else: excluded and meta keys stay.
  nlohmann::json fixed = CheckJson({"--fix"}, &code);
  EXPECT_EQ(code, 1);
  EXPECT_EQ(fixed["fixed"], 10);
  EXPECT_EQ(fixed["fix_skipped"], 0);
  nlohmann::json after = CheckJson({}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_EQ(after["consistent"], true);
  EXPECT_EQ(testing::DumpPrefix(dst_.get(), "/svc/local/").count("/svc/local/only-here"), 1u);
  EXPECT_EQ(testing::DumpPrefix(dst_.get(), "/svc/local/").count("/svc/local/only-there"), 0u);
  EXPECT_EQ(testing::DumpPrefix(dst_.get(), "/kvsync/meta/other/").size(), 1u);
  EXPECT_EQ(testing::DumpPrefix(dst_.get(), "/svc/0011")["/svc/0011"], "v");
}

// While the syncer runs under heavy writes, round-1 differences are in-flight changes: the
// second round, taken after the syncer's checkpoint passed round 1, confirms none of them.
TEST_F(CheckTest, HeavyWritesDuringCheckGiveNoConfirmedDifferences) {
  for (int i = 0; i < 2000; ++i) {
    ASSERT_TRUE(src_->Put(absl::StrFormat("/svc/%05d", i), "v").ok());
  }
  auto syncer = testing::Subprocess::Start(
      {testing::KvsyncBinary(), "etcd2etcd", "--src-endpoints", src_cluster_->endpoints_csv(),
       "--dst-endpoints", dst_cluster_->endpoints_csv(), "--prefix", "/svc/", "--admin-addr", "",
       "--progress-interval", "200ms", "--log-format", "text"},
      dir_ + "/syncer.log");
  ASSERT_TRUE(syncer.ok());
  std::atomic<bool> done{false};
  std::atomic<int> writes{0};
  std::thread writer([&] {
    for (int i = 0; !done; ++i) {
      std::string key = absl::StrFormat("/svc/%05d", i % 3000);
      bool ok = i % 7 == 0 ? src_->Delete(key).ok() : src_->Put(key, absl::StrCat(i)).ok();
      if (ok) ++writes;
    }
  });
  ASSERT_TRUE(testing::WaitFor([&] { return writes.load() > 500; }, seconds(30)));
  std::vector<nlohmann::json> reports;
  for (int i = 0; i < 3; ++i) {
    int code = -1;
    std::string out;
    code = Kvsync({"check", "etcd2etcd", "--prefix", "/svc/", "--output", "json", "--log-format",
                   "text", "--page-size", "500"},
                  &out);
    auto j = nlohmann::json::parse(out.substr(0, out.find('\n')), nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << out;
    EXPECT_EQ(code, 0) << out;
    EXPECT_EQ(
        j["dst_miss"].get<int64_t>() + j["src_miss"].get<int64_t>() + j["mismatch"].get<int64_t>(),
        0)
        << out;
    reports.push_back(j);
  }
  done = true;
  writer.join();
  (*syncer)->Stop();
}

// On a terminal (here a pseudo-terminal made by script(1)) a check shows its progress.
TEST_F(CheckTest, ShowsProgressOnATerminal) {
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(src_->Put(absl::StrCat("/t/", i), "v").ok());
  std::string cmd =
      absl::StrCat(testing::KvsyncBinary(), " check etcd2etcd --prefix /t/", " --src-endpoints ",
                   src_cluster_->endpoints_csv(), " --dst-endpoints ",
                   dst_cluster_->endpoints_csv(), " --single-round --log-format text");
  auto r = testing::RunCommand({"script", "-qec", cmd, "/dev/null"}, seconds(60));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->exit_code, 1) << r->out;  // the destination is empty: 50 dst miss
  EXPECT_NE(r->out.find("check: 50 source keys read"), std::string::npos) << r->out;
  EXPECT_NE(r->out.find("dst miss"), std::string::npos) << r->out;
}

// Configuration mistakes exit 2 with one clear line.
TEST_F(CheckTest, BadFlagsExitTwo) {
  auto r =
      testing::RunCommand({testing::KvsyncBinary(), "check", "etcd2etcd", "--src-endpoints",
                           src_cluster_->endpoints_csv(), "--dst-endpoints",
                           dst_cluster_->endpoints_csv(), "--prefix", "/a/", "--output", "xml"},
                          seconds(30));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 2);
  EXPECT_NE(r->err.find("--output must be text or json"), std::string::npos) << r->err;
}

}  // namespace
}  // namespace kvsync
