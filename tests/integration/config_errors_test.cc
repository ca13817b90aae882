// Configuration mistakes are refused with exit 2 and one line that names the flag, the file or
// endpoint and the cause (issue 11): malformed endpoints, TLS files that cannot work (special
// files, key not matching the certificate, expired or not yet valid certificates, an unparsable
// CA), TLS handshakes that fail at connect time, an etcdwatch writer on another cluster, and a
// source value larger than the destination accepts. Real etcd servers on loopback; the kvsync
// binary is run as a subprocess; certificates are made with the openssl command line.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "checker/checkpoint.h"
#include "gtest/gtest.h"
#include "tests/harness/etcd_cluster.h"
#include "tests/harness/kvsync_util.h"
#include "tests/harness/subprocess.h"
#include "tests/harness/wait.h"

namespace kvsync {
namespace {

using std::chrono::seconds;
using testing::EtcdCluster;
using testing::EtcdClusterOptions;
using testing::Subprocess;
using testing::WaitFor;

// `openssl ca` needs a database; [leaf] matches what etcd's client certificates carry.
constexpr char kOpensslConfig[] = R"([req]
distinguished_name = dn
[dn]
[ca]
default_ca = ca_default
[ca_default]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = policy_any
unique_subject = no
[policy_any]
commonName = supplied
[v3ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = IP:127.0.0.1
)";

struct Result {
  int code = -1;
  std::string output;  // stdout and stderr
};

// Runs the kvsync binary to completion.
Result Kvsync(std::vector<std::string> args) {
  args.insert(args.begin(), testing::KvsyncBinary());
  auto r = testing::RunCommand(args, seconds(60));
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return {};
  return {r->exit_code, r->out + r->err};
}

// The line kvsync itself printed as its final error (also printed, so that the test log shows
// what an operator sees).
std::string ErrorLine(const std::string& output) {
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    if (absl::StrContains(line, ": error: ")) {
      std::printf("refusal: %s\n", std::string(line.substr(0, 400)).c_str());
      return std::string(line);
    }
  }
  return "";
}

class ConfigErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::MakeTempDir("config-errors"); }
  void TearDown() override {
    if (std::getenv("KVSYNC_KEEP_TEMP") != nullptr) return;
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // Runs openssl in dir_; fails the test on a non-zero exit.
  void Openssl(std::vector<std::string> args) {
    args.insert(args.begin(), "openssl");
    std::string what = absl::StrJoin(args, " ");
    args = {"sh", "-c", absl::StrCat("cd '", dir_, "' && ", what)};
    auto r = testing::RunCommand(args, seconds(30));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->exit_code, 0) << what << ": " << r->err;
  }

  std::string Path(const std::string& name) const { return absl::StrCat(dir_, "/", name); }

  void WriteFile(const std::string& name, const std::string& data) {
    std::ofstream out(Path(name), std::ios::binary);
    out << data;
    ASSERT_TRUE(out.good());
  }

  // Makes CA `ca` (ca.crt/ca.key style names: <ca>.crt, <ca>.key).
  void MakeCa(const std::string& ca) {
    Openssl({"req",       "-x509",      "-new",
             "-days",     "30",         "-extensions",
             "v3ca",      "-subj",      "/CN=kvsync-" + ca,
             "-keyout",   ca + ".key",  "-out",
             ca + ".crt", "-nodes",     "-newkey",
             "ec",        "-pkeyopt",   "ec_paramgen_curve:prime256v1",
             "-config",   "openssl.cnf"});
  }

  // Makes <name>.crt/<name>.key signed by `ca`, valid from `start` to `end` (YYYYMMDDhhmmssZ).
  void MakeLeaf(const std::string& name, const std::string& ca, const std::string& start,
                const std::string& end) {
    Openssl({"req", "-new", "-subj", "/CN=" + name, "-keyout", name + ".key", "-out", name + ".csr",
             "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-config",
             "openssl.cnf"});
    Openssl({"ca", "-batch", "-config", "openssl.cnf", "-extensions", "leaf", "-cert", ca + ".crt",
             "-keyfile", ca + ".key", "-in", name + ".csr", "-out", name + ".crt", "-startdate",
             start, "-enddate", end, "-notext"});
  }

  // A CA, a second unrelated CA, a valid client certificate, an expired one, one not yet
  // valid, and a key that belongs to none of them.
  void MakePki() {
    WriteFile("openssl.cnf", kOpensslConfig);
    WriteFile("index.txt", "");
    WriteFile("serial", "01\n");
    MakeCa("ca");
    MakeCa("other-ca");
    MakeLeaf("client", "ca", "20200101000000Z", "20991231000000Z");
    MakeLeaf("expired", "ca", "20200101000000Z", "20200102000000Z");
    MakeLeaf("future", "ca", "20980101000000Z", "20991231000000Z");
    MakeLeaf("stranger", "other-ca", "20200101000000Z", "20991231000000Z");
  }

  // etcd2etcd arguments with the given source flags and a destination nobody listens on (the
  // refusals under test come first).
  static std::vector<std::string> Etcd2Etcd(std::vector<std::string> src_flags,
                                            const std::string& dst = "127.0.0.1:1") {
    std::vector<std::string> args = {"etcd2etcd",
                                     "--prefix",
                                     "/a/",
                                     "--dst-endpoints",
                                     dst,
                                     "--src-dial-timeout",
                                     "3s",
                                     "--dst-dial-timeout",
                                     "3s",
                                     "--admin-addr",
                                     "",
                                     "--once",
                                     "--log-format",
                                     "text"};
    args.insert(args.end(), src_flags.begin(), src_flags.end());
    return args;
  }

  std::string dir_;
};

// Every malformed endpoint list is refused at start, naming the flag and the item.
TEST_F(ConfigErrorsTest, MalformedEndpointsAreRefusedNamingTheFlag) {
  for (const std::string& bad :
       {std::string("127.0.0.1:abc"), std::string(":99999"), std::string("127.0.0.1:0"),
        std::string("a:1 b:2"), std::string("a:1,,b:2"), std::string("a:1,"),
        std::string("ftp://a:1"), std::string("https://:2379"), std::string("127.0.0.1:-5")}) {
    Result r = Kvsync(Etcd2Etcd({"--src-endpoints", bad}));
    EXPECT_EQ(r.code, 2) << bad << "\n" << r.output;
    std::string line = ErrorLine(r.output);
    EXPECT_TRUE(absl::StrContains(line, "--src-endpoints")) << bad << "\n" << r.output;
  }
  Result dst = Kvsync(Etcd2Etcd({"--src-endpoints", "127.0.0.1:1"}, "127.0.0.1:65536"));
  EXPECT_EQ(dst.code, 2) << dst.output;
  EXPECT_TRUE(absl::StrContains(ErrorLine(dst.output), "--dst-endpoints")) << dst.output;
}

// A TLS file that is not a regular file (/dev/zero would be read forever) or is larger than
// any certificate bundle is refused at start.
TEST_F(ConfigErrorsTest, SpecialAndHugeTlsFilesAreRefused) {
  Result zero = Kvsync(Etcd2Etcd({"--src-endpoints", "127.0.0.1:1", "--src-cacert", "/dev/zero"}));
  EXPECT_EQ(zero.code, 2) << zero.output;
  std::string zero_line = ErrorLine(zero.output);
  EXPECT_TRUE(absl::StrContains(zero_line, "--src-cacert \"/dev/zero\"")) << zero.output;
  EXPECT_TRUE(absl::StrContains(zero_line, "not a regular file")) << zero.output;

  WriteFile("huge.pem", "-----BEGIN CERTIFICATE-----\n" + std::string(2 << 20, 'A'));
  Result huge =
      Kvsync(Etcd2Etcd({"--src-endpoints", "127.0.0.1:1", "--src-cacert", Path("huge.pem")}));
  EXPECT_EQ(huge.code, 2) << huge.output;
  std::string huge_line = ErrorLine(huge.output);
  EXPECT_TRUE(absl::StrContains(huge_line, "--src-cacert")) << huge.output;
  EXPECT_TRUE(absl::StrContains(huge_line, "larger than")) << huge.output;
}

// A key that does not match the certificate, an expired or not yet valid certificate and an
// unparsable CA are refused at start with the flag, the file and the cause.
TEST_F(ConfigErrorsTest, UnusableTlsFilesAreRefusedAtStart) {
  MakePki();
  WriteFile("garbage-ca.crt",
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n"
            "-----END CERTIFICATE-----\n");
  struct Case {
    std::vector<std::string> flags;
    std::string flag;
    std::string cause;
  };
  const std::string ep = "127.0.0.1:1";
  std::vector<Case> cases = {
      {{"--src-cacert", Path("ca.crt"), "--src-cert", Path("client.crt"), "--src-key",
        Path("stranger.key")},
       "--src-key \"" + Path("stranger.key") + "\"",
       "does not match"},
      {{"--src-cacert", Path("ca.crt"), "--src-cert", Path("expired.crt"), "--src-key",
        Path("expired.key")},
       "--src-cert \"" + Path("expired.crt") + "\"",
       "expired"},
      {{"--src-cacert", Path("ca.crt"), "--src-cert", Path("future.crt"), "--src-key",
        Path("future.key")},
       "--src-cert \"" + Path("future.crt") + "\"",
       "not valid before"},
      {{"--src-cacert", Path("garbage-ca.crt")},
       "--src-cacert \"" + Path("garbage-ca.crt") + "\"",
       "holds no certificate that can be parsed"},
      {{"--src-cacert", Path("client.key")},
       "--src-cacert \"" + Path("client.key") + "\"",
       "no certificate"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> flags = {"--src-endpoints", ep};
    flags.insert(flags.end(), c.flags.begin(), c.flags.end());
    Result r = Kvsync(Etcd2Etcd(flags));
    EXPECT_EQ(r.code, 2) << c.flag << "\n" << r.output;
    std::string line = ErrorLine(r.output);
    EXPECT_TRUE(absl::StrContains(line, c.flag)) << c.flag << "\n" << r.output;
    EXPECT_TRUE(absl::StrContains(line, c.cause)) << c.cause << "\n" << r.output;
  }
}

// A handshake that cannot succeed is named in kvsync's own line (exit 2), not reported as an
// unreachable server: wrong CA, https with the system roots, plaintext to a TLS server, TLS
// to a plaintext server.
TEST_F(ConfigErrorsTest, TlsHandshakeFailuresNameTheirCause) {
  MakePki();
  auto tls = EtcdCluster::Start({.tls = true, .name = "tls"});
  ASSERT_TRUE(tls.ok()) << tls.status();
  auto plain = EtcdCluster::Start({.name = "plain"});
  ASSERT_TRUE(plain.ok()) << plain.status();
  const std::string tls_ep = (*tls)->endpoint(0);  // https://127.0.0.1:port
  const std::string tls_addr = tls_ep.substr(std::string("https://").size());
  const std::string plain_ep = (*plain)->endpoint(0);
  const std::vector<std::string> client_cert = {"--src-cert", (*tls)->client_cert_file(),
                                                "--src-key", (*tls)->client_key_file()};
  struct Case {
    std::string name;
    std::vector<std::string> flags;
    std::vector<std::string> expected;
  };
  std::vector<Case> cases = {
      {"wrong CA",
       {"--src-endpoints", tls_ep, "--src-cacert", Path("other-ca.crt")},
       {"TLS handshake with " + tls_addr + " failed", "certificate verify failed", "--src-cacert"}},
      {"https with system roots",
       {"--src-endpoints", tls_ep},
       {"TLS handshake with " + tls_addr + " failed", "certificate verify failed", "--src-cacert"}},
      {"plaintext client, TLS server", {"--src-endpoints", tls_addr}, {tls_addr, "speaks TLS"}},
      {"TLS client, plaintext server",
       {"--src-endpoints", "https://" + plain_ep, "--src-cacert", (*tls)->ca_file()},
       {"TLS handshake with " + plain_ep + " failed", "does not speak TLS"}},
  };
  for (Case& c : cases) {
    if (c.name != "TLS client, plaintext server" && c.name != "plaintext client, TLS server") {
      c.flags.insert(c.flags.end(), client_cert.begin(), client_cert.end());
    }
    Result r = Kvsync(Etcd2Etcd(c.flags, plain_ep));
    // A TLS answer to a plaintext client is named but not proof (an intercepting proxy in
    // front of an unreachable server answers the same): exit 3, retried by a supervisor.
    EXPECT_EQ(r.code, c.name == "plaintext client, TLS server" ? 3 : 2) << c.name << "\n"
                                                                        << r.output;
    std::string line = ErrorLine(r.output);
    EXPECT_FALSE(absl::StrContains(line, "no answer within")) << c.name << "\n" << r.output;
    for (const std::string& e : c.expected) {
      EXPECT_TRUE(absl::StrContains(line, e)) << c.name << ": " << e << "\n" << r.output;
    }
  }
  // The right CA and client certificate work (the probe does not get in the way).
  Result ok =
      Kvsync(Etcd2Etcd({"--src-endpoints", tls_ep, "--src-cacert", (*tls)->ca_file(), "--src-cert",
                        (*tls)->client_cert_file(), "--src-key", (*tls)->client_key_file()},
                       plain_ep));
  EXPECT_EQ(ok.code, 0) << ok.output;
  // A port nobody listens on stays "unreachable": a runtime failure (exit 3).
  Result down = Kvsync(Etcd2Etcd({"--src-endpoints", "127.0.0.1:1"}, plain_ep));
  EXPECT_EQ(down.code, 3) << down.output;
}

// etcdwatch whose writer is on another cluster than its watchers is a configuration error
// found at start, naming both endpoints and both cluster IDs.
TEST_F(ConfigErrorsTest, EtcdwatchRefusesWriterOnAnotherCluster) {
  auto a = EtcdCluster::Start({.name = "watch-a"});
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = EtcdCluster::Start({.name = "watch-b"});
  ASSERT_TRUE(b.ok()) << b.status();
  Result r = Kvsync({"etcdwatch", "--log-format", "text", "--endpoints", (*a)->endpoint(0),
                     "--write-endpoints", (*b)->endpoint(0), "--num", "2", "--span", "20",
                     "--duration", "1"});
  EXPECT_EQ(r.code, 2) << r.output;
  std::string line = ErrorLine(r.output);
  EXPECT_TRUE(absl::StrContains(line, (*a)->endpoint(0))) << r.output;
  EXPECT_TRUE(absl::StrContains(line, (*b)->endpoint(0))) << r.output;
  EXPECT_TRUE(absl::StrContains(line, "cluster")) << r.output;
  // The same cluster through another member list still passes.
  Result same = Kvsync({"etcdwatch", "--log-format", "text", "--endpoints", (*a)->endpoint(0),
                        "--write-endpoints", (*a)->endpoint(0), "--num", "2", "--span", "20",
                        "--duration", "1"});
  EXPECT_EQ(same.code, 0) << same.output;
}

// A source value larger than the destination's --max-request-bytes stops the task with exit 2
// (not restarted by the shipped units) and one line naming the key, cut to a readable length,
// its size and the value size; keys before it are mirrored and the checkpoint stays before
// it, so nothing is skipped and a restart after raising the limit resumes there.
TEST_F(ConfigErrorsTest, OversizedValueStopsWithExitTwoAndATruncatedKey) {
  auto src_cluster = EtcdCluster::Start({.name = "big-src"});
  ASSERT_TRUE(src_cluster.ok()) << src_cluster.status();
  auto dst_cluster =
      EtcdCluster::Start({.extra_flags = {"--max-request-bytes=65536"}, .name = "big-dst"});
  ASSERT_TRUE(dst_cluster.ok()) << dst_cluster.status();
  auto src = testing::ConnectEtcd((*src_cluster)->endpoints_csv());
  auto dst = testing::ConnectEtcd((*dst_cluster)->endpoints_csv());
  ASSERT_TRUE(src->Put("/big/a", "small").ok());

  auto kvsync = Subprocess::Start(
      {testing::KvsyncBinary(), "etcd2etcd", "--src-endpoints", (*src_cluster)->endpoints_csv(),
       "--dst-endpoints", (*dst_cluster)->endpoints_csv(), "--prefix", "/big/", "--admin-addr", "",
       "--log-format", "text", "--max-request-bytes", "60000"},
      Path("kvsync.log"));
  ASSERT_TRUE(kvsync.ok()) << kvsync.status();
  ASSERT_TRUE(
      WaitFor([&] { return testing::DumpPrefix(dst.get(), "/big/").size() == 1; }, seconds(30)))
      << (*kvsync)->LogTail();

  const std::string long_key = "/big/" + std::string(4000, 'k');
  auto put = src->Put(long_key, std::string(100000, 'v'));
  ASSERT_TRUE(put.ok()) << put.status();
  auto code = (*kvsync)->Wait(seconds(60));
  std::string log = (*kvsync)->LogTail(200000);
  ASSERT_TRUE(code.has_value()) << log;
  EXPECT_EQ(*code, 2) << log;
  std::string line = ErrorLine(log);
  EXPECT_TRUE(absl::StrContains(line, "/big/kkkk")) << log;
  EXPECT_TRUE(absl::StrContains(line, "(4005-byte key, 100000-byte value)")) << log;
  EXPECT_TRUE(absl::StrContains(line, "--max-request-bytes")) << log;
  // No log line carries more than a readable prefix of the key.
  EXPECT_FALSE(absl::StrContains(log, std::string(300, 'k'))) << log.size();

  EXPECT_EQ(testing::DumpPrefix(dst.get(), "/big/").count(long_key), 0u);
  etcd::RangeRequest r;
  r.key = "/kvsync/meta/";
  r.range_end = "/kvsync/meta0";
  auto meta = dst->Range(r);
  ASSERT_TRUE(meta.ok()) << meta.status();
  ASSERT_FALSE(meta->kvs.empty());
  for (const auto& kv : meta->kvs) {
    if (!absl::EndsWith(kv.key, "/checkpoint")) continue;
    auto cp = checker::DecodeCheckpoint(kv.value);
    ASSERT_TRUE(cp.ok()) << cp.status();
    EXPECT_LT(cp->revision, put->revision);
  }
}

}  // namespace
}  // namespace kvsync
