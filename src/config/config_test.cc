#include "config/config.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "config/yaml_config.h"
#include "gtest/gtest.h"

namespace kvsync::config {
namespace {

MirrorConfig Valid() {
  MirrorConfig c;
  c.src.endpoints = "127.0.0.1:2379";
  c.dst.endpoints = "127.0.0.1:3379";
  c.prefix = "/registry/";
  return c;
}

Zk2EtcdConfig ValidZk() {
  Zk2EtcdConfig c;
  c.zk_servers = "127.0.0.1:2181";
  c.etcd.endpoints = "127.0.0.1:2379";
  c.zk_prefixes = {"/dubbo"};
  return c;
}

// Task names are derived from the prefix and the destination prefix defaults to the source's.
TEST(Config, DerivesNameAndDestinationPrefix) {
  EXPECT_EQ(DeriveTaskName("/registry/services/"), "registry-services");
  EXPECT_EQ(DeriveTaskName("/"), "root");
  MirrorConfig c = Valid();
  ASSERT_TRUE(ValidateMirrorConfig(&c).ok());
  EXPECT_EQ(c.name, "registry");
  EXPECT_EQ(c.dst_prefix, "/registry/");
}

// Derived names are injective: prefixes that read alike ("/a/b/" and "/a-b/", "/a/b" and
// "/a/b/", "/root/" and "/") never share a name, hence never a checkpoint.
TEST(Config, DerivedTaskNamesAreInjective) {
  std::vector<std::string> prefixes = {"/a/b/",  "/a-b/", "/a/b",  "/a-b",  "a/b/", "/a//b/",
                                       "/root/", "/",     "/a.b/", "/a_b/", "/a/",  "/a",
                                       "/a b/",  "/a~b/", "/A/B/", ""};
  std::set<std::string> names;
  for (const auto& p : prefixes) {
    std::string name = DeriveTaskName(p);
    EXPECT_EQ(name.find('/'), std::string::npos) << p;
    EXPECT_TRUE(names.insert(name).second)
        << "\"" << p << "\" gives a name already taken: " << name;
  }
  EXPECT_EQ(DeriveTaskName("/a/b/"), "a-b");
  EXPECT_EQ(DeriveTaskName("/a-b/").rfind("a-b~", 0), 0u);
}

// Each mistake is named in one sentence.
TEST(Config, RejectsMistakesWithClearMessages) {
  MirrorConfig c = Valid();
  c.prefix.clear();
  EXPECT_EQ(ValidateMirrorConfig(&c).message(),
            "--prefix is required (use --prefix / to mirror the whole keyspace)");
  c = Valid();
  c.exclude_prefixes = {"/other/"};
  EXPECT_EQ(ValidateMirrorConfig(&c).message(),
            "--exclude-prefix \"/other/\" is outside --prefix \"/registry/\"");
  c = Valid();
  c.dst_prefix = "/kvsync/meta/x/";
  c.dst_prefix_set = true;
  EXPECT_FALSE(ValidateMirrorConfig(&c).ok());
  c = Valid();
  c.max_txn_ops = 1;
  EXPECT_FALSE(ValidateMirrorConfig(&c).ok());
  c = Valid();
  c.src.endpoints = "nohostport";
  EXPECT_FALSE(ValidateMirrorConfig(&c).ok());
}

// An empty destination prefix would map keys onto the whole destination keyspace.
TEST(Config, RefusesEmptyDestinationPrefix) {
  MirrorConfig c = Valid();
  c.dst_prefix = "";
  c.dst_prefix_set = true;
  absl::Status s = ValidateMirrorConfig(&c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("--dst-prefix must not be empty"), std::string::npos) << s;
}

// Task names end up in etcd keys, log lines and metric labels: printable [A-Za-z0-9._~-] only.
TEST(Config, RefusesTaskNamesWithControlOrOddCharacters) {
  for (const std::string& bad : std::vector<std::string>{
           "a\nb", "a\tb", "a b", "a/b", std::string("a\0b", 3), "caf\xc3\xa9", "a\"b", "a{b}"}) {
    MirrorConfig c = Valid();
    c.name = bad;
    absl::Status s = ValidateMirrorConfig(&c);
    EXPECT_NE(s.message().find("--name may contain only"), std::string::npos) << s;
    Zk2EtcdConfig z = ValidZk();
    z.name = bad;
    s = ValidateZk2EtcdConfig(&z);
    EXPECT_NE(s.message().find("--name may contain only"), std::string::npos) << s;
  }
  MirrorConfig c = Valid();
  c.name = "Registry-1.prod_eu~x";
  EXPECT_TRUE(ValidateMirrorConfig(&c).ok());
  // Derived names always pass (they are built from the same alphabet).
  c = Valid();
  c.prefix = "/a b\t/";
  EXPECT_TRUE(ValidateMirrorConfig(&c).ok()) << c.name;
  Zk2EtcdConfig z = ValidZk();
  z.zk_prefixes = {"/a b"};
  EXPECT_TRUE(ValidateZk2EtcdConfig(&z).ok()) << z.name;
}

// A read rate must be a finite number >= 0 (NaN would compare false against every limit).
TEST(Config, RefusesNonFiniteCheckReadRate) {
  for (double bad : {std::nan(""), std::numeric_limits<double>::infinity(), -1.0}) {
    MirrorConfig c = Valid();
    c.check_read_rate = bad;
    absl::Status s = ValidateMirrorConfig(&c);
    EXPECT_NE(s.message().find("--check-read-rate must be a finite number >= 0"), std::string::npos)
        << bad << ": " << s;
  }
}

// etcdctl's --user name:password form is split.
TEST(Config, UserWithPasswordIsSplit) {
  EtcdConnection e;
  e.endpoints = "a:1";
  e.user = "root:secret";
  auto o = e.ToClientOptions("source");
  EXPECT_EQ(o.user, "root");
  EXPECT_EQ(o.password, "secret");
}

// YAML keys map to flags: nested maps flatten with '-', underscores become dashes, lists repeat.
TEST(YamlConfig, FlattensKeys) {
  std::istringstream in(
      "src:\n  endpoints: a:1\nmax_txn_ops: 64\nexclude-prefix: [/a/x, /a/y]\nonce: true\n");
  auto flags = ReadYamlFlags(in);
  ASSERT_TRUE(flags.ok());
  ASSERT_EQ(flags->size(), 4u);
  EXPECT_EQ((*flags)[0].name, "src-endpoints");
  EXPECT_EQ((*flags)[0].values[0], "a:1");
  EXPECT_EQ((*flags)[1].name, "max-txn-ops");
  EXPECT_EQ((*flags)[2].values.size(), 2u);
  EXPECT_EQ((*flags)[3].values[0], "true");
}

// Malformed YAML is an error, not a crash.
TEST(YamlConfig, MalformedYamlIsAnError) {
  std::istringstream in("a: [unclosed\n");
  auto flags = ReadYamlFlags(in);
  ASSERT_FALSE(flags.ok());
  EXPECT_NE(flags.status().message().find("is not valid YAML"), std::string::npos);
}

// Values from the file fill unset flags only; unknown keys are refused.
TEST(YamlConfig, AppliesToUnsetFlagsAndRefusesUnknownKeys) {
  CLI::App app;
  std::string prefix, name;
  int ops = 0;
  bool once = false;
  app.add_option("--prefix", prefix);
  app.add_option("--name", name);
  app.add_option("--max-txn-ops", ops);
  app.add_flag("--once", once);
  const char* argv[] = {"x", "--name", "cli"};
  app.parse(3, argv);
  std::string path = ::testing::TempDir() + "/c.yaml";
  std::ofstream(path) << "prefix: /p/\nname: yaml\nmax_txn_ops: 7\nonce: true\n";
  ASSERT_TRUE(ApplyYamlFlags(&app, path).ok());
  EXPECT_EQ(prefix, "/p/");
  EXPECT_EQ(name, "cli");
  EXPECT_EQ(ops, 7);
  EXPECT_TRUE(once);
  std::ofstream(path) << "nosuchflag: 1\n";
  EXPECT_EQ(ApplyYamlFlags(&app, path).message(),
            "config file \"" + path + "\": unknown key \"nosuchflag\"");
}

// Every way of giving a flag twice is refused: yaml-cpp would keep one of them silently.
TEST(YamlConfig, RefusesKeysGivenTwice) {
  struct Case {
    std::string yaml;
    std::string message;
  };
  std::vector<Case> cases = {
      {"prefix: /a/\nprefix: /b/\n", "has the key \"prefix\" twice"},
      {"max_txn_ops: 1\nmax-txn-ops: 2\n",
       "sets \"max-txn-ops\" twice (as \"max_txn_ops\" and \"max-txn-ops\")"},
      {"election:\n  endpoints: a:1\n  endpoints: b:1\n",
       "has the key \"election.endpoints\" twice"},
      {"election: {endpoints: a:1}\nelection-endpoints: b:1\n",
       "sets \"election-endpoints\" twice (as \"election.endpoints\" and \"election-endpoints\")"},
      {"election: {endpoints: a:1}\nelection: {cacert: x}\n", "has the key \"election\" twice"},
  };
  for (const Case& c : cases) {
    std::istringstream in(c.yaml);
    auto flags = ReadYamlFlags(in);
    ASSERT_FALSE(flags.ok()) << c.yaml;
    EXPECT_EQ(flags.status().message(), c.message) << c.yaml;
  }
}

// A directory, a device or an oversized file is refused with one line, not a crash or a hang.
TEST(YamlConfig, RefusesPathsThatAreNotSmallRegularFiles) {
  CLI::App app;
  std::string prefix;
  app.add_option("--prefix", prefix);
  std::string dir = ::testing::TempDir();
  EXPECT_EQ(ApplyYamlFlags(&app, dir).message(),
            "config file \"" + dir + "\" is not a regular file");
  EXPECT_EQ(ApplyYamlFlags(&app, "/dev/zero").message(),
            "config file \"/dev/zero\" is not a regular file");
  EXPECT_EQ(ApplyYamlFlags(&app, dir + "/missing.yaml").message(),
            "config file \"" + dir + "/missing.yaml\" cannot be read");
  std::string big = dir + "/big.yaml";
  {
    std::ofstream f(big);
    f << "prefix: /p/\n# " << std::string(kMaxConfigBytes, 'x') << "\n";
  }
  EXPECT_EQ(ApplyYamlFlags(&app, big).message(),
            "config file \"" + big + "\" is larger than 1 MiB");
  std::ofstream(big, std::ios::trunc)
      << "prefix: /p/\n# " << std::string(kMaxConfigBytes / 2, 'x') << "\n";
  EXPECT_TRUE(ApplyYamlFlags(&app, big).ok());
  EXPECT_EQ(prefix, "/p/");
}

}  // namespace
}  // namespace kvsync::config
