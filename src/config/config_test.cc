#include "config/config.h"

#include <fstream>
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

}  // namespace
}  // namespace kvsync::config
