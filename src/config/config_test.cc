#include "config/config.h"

#include <sstream>

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
  auto items = YamlConfig().from_config(in);
  ASSERT_EQ(items.size(), 4u);
  EXPECT_EQ(items[0].name, "src-endpoints");
  EXPECT_EQ(items[0].inputs[0], "a:1");
  EXPECT_EQ(items[1].name, "max-txn-ops");
  EXPECT_EQ(items[2].inputs.size(), 2u);
  EXPECT_EQ(items[3].inputs[0], "true");
}

// Malformed YAML is reported, not crashed on.
TEST(YamlConfig, MalformedYamlThrowsParseError) {
  std::istringstream in("a: [unclosed\n");
  EXPECT_THROW(YamlConfig().from_config(in), CLI::ParseError);
}

}  // namespace
}  // namespace kvsync::config
