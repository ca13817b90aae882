#include "gtest/gtest.h"
#include "redis/client.h"

namespace kvsync::redis {
namespace {

// Commands are arrays of bulk strings, binary-safe.
TEST(Resp, EncodesArraysOfBulkStrings) {
  std::string out;
  EncodeCommand({"SET", "k", std::string("a\r\nb", 4)}, &out);
  EXPECT_EQ(out, std::string("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n"));
}

// Every RESP2 reply type parses, nested arrays included.
TEST(Resp, ParsesEveryReplyType) {
  Reply r;
  EXPECT_EQ(*ParseReply("+OK\r\n", &r), 5u);
  EXPECT_EQ(r.type, Reply::Type::kStatus);
  EXPECT_EQ(r.str, "OK");
  EXPECT_EQ(*ParseReply("-ERR nope\r\n", &r), 11u);
  EXPECT_EQ(r.type, Reply::Type::kError);
  EXPECT_EQ(r.str, "ERR nope");
  EXPECT_EQ(*ParseReply(":-42\r\n", &r), 6u);
  EXPECT_EQ(r.type, Reply::Type::kInteger);
  EXPECT_EQ(r.integer, -42);
  EXPECT_EQ(*ParseReply("$-1\r\n", &r), 5u);
  EXPECT_EQ(r.type, Reply::Type::kNil);
  EXPECT_EQ(*ParseReply("*-1\r\n", &r), 5u);
  EXPECT_EQ(r.type, Reply::Type::kNil);
  EXPECT_EQ(*ParseReply("$0\r\n\r\n", &r), 6u);
  EXPECT_EQ(r.type, Reply::Type::kString);
  EXPECT_EQ(r.str, "");
  std::string nested = "*3\r\n$2\r\nab\r\n*2\r\n:1\r\n$-1\r\n*0\r\nextra";
  EXPECT_EQ(*ParseReply(nested, &r), nested.size() - 5);
  ASSERT_EQ(r.type, Reply::Type::kArray);
  ASSERT_EQ(r.elements.size(), 3u);
  EXPECT_EQ(r.elements[0].str, "ab");
  ASSERT_EQ(r.elements[1].elements.size(), 2u);
  EXPECT_EQ(r.elements[1].elements[0].integer, 1);
  EXPECT_EQ(r.elements[1].elements[1].type, Reply::Type::kNil);
  EXPECT_EQ(r.elements[2].type, Reply::Type::kArray);
  EXPECT_TRUE(r.elements[2].elements.empty());
}

// A reply cut anywhere asks for more bytes instead of failing.
TEST(Resp, PartialRepliesNeedMoreBytes) {
  std::string full = "*2\r\n$5\r\nhello\r\n:7\r\n";
  for (size_t n = 0; n < full.size(); ++n) {
    Reply r;
    auto used = ParseReply(full.substr(0, n), &r);
    ASSERT_TRUE(used.ok()) << n;
    EXPECT_EQ(*used, 0u) << n;
  }
  Reply r;
  EXPECT_EQ(*ParseReply(full, &r), full.size());
}

// Garbage is rejected rather than misread.
TEST(Resp, RejectsMalformedReplies) {
  Reply r;
  EXPECT_FALSE(ParseReply("?x\r\n", &r).ok());
  EXPECT_FALSE(ParseReply(":12a\r\n", &r).ok());
  EXPECT_FALSE(ParseReply("$-5\r\n", &r).ok());
  EXPECT_FALSE(ParseReply("$2\r\nabcd\r\n", &r).ok());
  EXPECT_FALSE(ParseReply("\r\n", &r).ok());
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += "*1\r\n";
  deep += ":1\r\n";
  EXPECT_FALSE(ParseReply(deep, &r).ok());
}

// Options validation gives one clear sentence per mistake.
TEST(Options, ValidateRejectsMistakes) {
  Options o;
  EXPECT_TRUE(ValidateOptions(o).ok());
  o.addr = "localhost";
  EXPECT_EQ(ValidateOptions(o).message(),
            "redis address \"localhost\" is not host:port (IPv6 as [addr]:port)");
  o.addr = "localhost:0";
  EXPECT_FALSE(ValidateOptions(o).ok());
  o.addr = "[::1]:6379";
  EXPECT_TRUE(ValidateOptions(o).ok());
  o.addr = "::1:6379";
  EXPECT_FALSE(ValidateOptions(o).ok());
  o.addr = "redis.example:6380";
  o.tls = true;
  o.cert_file = "/nonexistent.pem";
  EXPECT_EQ(ValidateOptions(o).message(),
            "redis client certificate and key must be given together");
  o.key_file = "/nonexistent.key";
  EXPECT_EQ(ValidateOptions(o).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(ValidateOptions(o).message().find("\"/nonexistent.pem\" cannot be read"),
            std::string::npos);
  o.tls = false;
  EXPECT_EQ(ValidateOptions(o).message(), "redis TLS files are given but TLS is not enabled");
}

// Connecting with bad options fails before touching the network.
TEST(Client, ConnectRejectsBadOptions) {
  Options o;
  o.addr = "nope";
  EXPECT_EQ(Client::Connect(o).status().code(), absl::StatusCode::kInvalidArgument);
}

// Error replies are classified by their prefix: transient server states, credentials,
// an unknown command (older servers), and everything else a refusal an operator resolves.
TEST(Reply, ErrorsAreClassifiedByPrefix) {
  auto error = [](const std::string& text) {
    Reply r;
    r.type = Reply::Type::kError;
    r.str = text;
    return ReplyError("SADD", r);
  };
  for (const char* text : {"LOADING Redis is loading the dataset in memory",
                           "READONLY You can't write against a read only replica.",
                           "BUSY Redis is busy running a script", "MASTERDOWN Link is down",
                           "TRYAGAIN Multiple keys request during rehashing of slot",
                           "CLUSTERDOWN The cluster is down", "MISCONF Redis is configured"}) {
    absl::Status s = error(text);
    EXPECT_TRUE(absl::IsUnavailable(s)) << text;
    EXPECT_TRUE(IsTransient(s)) << text;
  }
  for (const char* text : {"NOAUTH Authentication required.", "WRONGPASS invalid username",
                           "NOPERM this user has no permissions"}) {
    EXPECT_TRUE(absl::IsPermissionDenied(error(text))) << text;
  }
  EXPECT_TRUE(absl::IsUnimplemented(error("ERR unknown command 'SMISMEMBER'")));
  absl::Status other = error("WRONGTYPE Operation against a key holding the wrong kind of value");
  EXPECT_TRUE(absl::IsFailedPrecondition(other));
  EXPECT_FALSE(IsTransient(other));
  EXPECT_NE(other.message().find("redis SADD: WRONGTYPE"), absl::string_view::npos) << other;
}

}  // namespace
}  // namespace kvsync::redis
