#include "etcd/types.h"

#include "common/errors.h"
#include "etcd/client.h"
#include "etcd/convert.h"
#include "gtest/gtest.h"

namespace kvsync::etcd {
namespace {

// A compacted error is recognisable and carries its compact revision.
TEST(Types, CompactedErrorIsRecognisable) {
  absl::Status s = CompactedError(42, "source watch");
  EXPECT_TRUE(IsCompacted(s));
  EXPECT_EQ(CompactRevision(s), 42);
  EXPECT_FALSE(IsCompacted(absl::OutOfRangeError("future revision")));
}

// Every etcd 3.4 error (rpctypes/error.go) and gRPC transport failure is classified once, at
// conversion: transient ones are retried, the rest never forever.
TEST(Classify, EtcdErrorsByMeaning) {
  using C = grpc::StatusCode;
  auto conv = [](C code, const std::string& text) { return FromGrpc({code, text}, "ctx"); };
  for (const char* text :
       {"etcdserver: no leader", "etcdserver: leader changed", "etcdserver: request timed out",
        "etcdserver: server stopped", "etcdserver: unhealthy cluster",
        "etcdserver: request timed out, possibly due to previous leader failure",
        "failed to connect to all addresses", "Socket closed"}) {
    EXPECT_TRUE(IsTransient(conv(C::UNAVAILABLE, text))) << text;
  }
  EXPECT_TRUE(IsTransient(conv(C::DEADLINE_EXCEEDED, "Deadline Exceeded")));
  EXPECT_TRUE(IsTransient(conv(C::RESOURCE_EXHAUSTED, "etcdserver: too many requests")));
  EXPECT_TRUE(
      IsTransient(conv(C::RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded")));
  // A member stopping cancels its streams: transient; our own cancel is not.
  absl::Status stopping = conv(C::CANCELLED, "etcdserver: watch canceled");
  EXPECT_TRUE(absl::IsUnavailable(stopping));
  EXPECT_TRUE(IsTransient(stopping));
  EXPECT_FALSE(IsTransient(conv(C::CANCELLED, "Cancelled")));

  absl::Status compacted =
      conv(C::OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted");
  EXPECT_TRUE(IsCompacted(compacted));
  EXPECT_FALSE(IsTransient(compacted));
  EXPECT_FALSE(IsCompacted(
      conv(C::OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision")));

  for (auto [code, text] : std::vector<std::pair<C, std::string>>{
           {C::INVALID_ARGUMENT, "etcdserver: request is too large"},
           {C::INVALID_ARGUMENT, "etcdserver: too many operations in txn request"},
           {C::RESOURCE_EXHAUSTED, "Sent message larger than max (2000000 vs. 1572864)"}}) {
    absl::Status s = conv(code, text);
    EXPECT_TRUE(IsRequestTooLarge(s)) << text;
    EXPECT_FALSE(IsTransient(s)) << text;
  }

  absl::Status no_leader = conv(C::UNKNOWN, "election: no leader");
  EXPECT_TRUE(IsNoLeader(no_leader));
  EXPECT_TRUE(absl::IsNotFound(no_leader));

  EXPECT_TRUE(IsRefused(conv(C::PERMISSION_DENIED, "etcdserver: permission denied")));
  EXPECT_TRUE(IsRefused(conv(C::UNAUTHENTICATED, "etcdserver: invalid auth token")));
  // Neither an unknown nor an internal error is retried: they would fail forever.
  for (auto [code, text] : std::vector<std::pair<C, std::string>>{
           {C::UNKNOWN, "etcdserver: something new"},
           {C::INTERNAL, "Received RST_STREAM with error code 2"},
           {C::ABORTED, "aborted"},
           {C::FAILED_PRECONDITION, "etcdserver: not leader"},
           {C::INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request"},
           {C::PERMISSION_DENIED, "etcdserver: permission denied"},
           {C::DATA_LOSS, "etcdserver: corrupt cluster"}}) {
    absl::Status s = conv(code, text);
    EXPECT_FALSE(IsTransient(s)) << text;
    EXPECT_FALSE(IsCompacted(s) || IsRequestTooLarge(s) || IsNoLeader(s)) << text;
  }
}

// A watch the server cancelled is a refusal of its own kind (not a configuration mistake in
// the message-matching sense): permission and auth reasons become those codes.
TEST(Classify, WatchCancelReasons) {
  EXPECT_STREQ(RefusalReason(WatchCanceledError("etcdserver: permission denied", "w")),
               "permission_denied");
  EXPECT_STREQ(RefusalReason(WatchCanceledError("etcdserver: invalid auth token", "w")), "auth");
  absl::Status other = WatchCanceledError("no reason given", "w");
  EXPECT_STREQ(RefusalReason(other), "watch_canceled");
  EXPECT_EQ(common::KindOf(other), common::ErrorKind::kWatchCanceled);
  EXPECT_FALSE(IsTransient(other));
}

// Endpoint lists are split on commas with blanks around items dropped; empty items stay, for
// validation to refuse.
TEST(Types, SplitEndpointsTrims) {
  auto eps = SplitEndpoints(" 127.0.0.1:1, https://h:2 ,,");
  ASSERT_EQ(eps.size(), 4u);
  EXPECT_EQ(eps[0], "127.0.0.1:1");
  EXPECT_EQ(eps[1], "https://h:2");
  EXPECT_EQ(eps[2], "");
  EXPECT_TRUE(SplitEndpoints("  ").empty());
}

// Options validation gives one clear message per mistake.
TEST(Types, ValidateClientOptionsRejectsMistakes) {
  ClientOptions o;
  o.name = "source";
  EXPECT_EQ(ValidateClientOptions(o).message(), "source endpoints are empty");
  o.endpoints = {"localhost"};
  EXPECT_FALSE(ValidateClientOptions(o).ok());
  o.endpoints = {"localhost:2379"};
  EXPECT_TRUE(ValidateClientOptions(o).ok());
  o.endpoints = {"[::1]:2379", "https://h:1", "http://h:65535"};
  EXPECT_TRUE(ValidateClientOptions(o).ok());
  o.cert_file = "/nonexistent.pem";
  EXPECT_EQ(ValidateClientOptions(o).message(),
            "source client certificate and source key must be given together");
  o.key_file = "/nonexistent.key";
  EXPECT_EQ(ValidateClientOptions(o).message(),
            "source certificate file \"/nonexistent.pem\" cannot be read: No such file or "
            "directory");
  o.flags = FlagNamesWithPrefix("src");
  EXPECT_EQ(ValidateClientOptions(o).message(),
            "--src-cert \"/nonexistent.pem\" cannot be read: No such file or directory");
}

// Endpoints are refused with the flag, the item and the cause.
TEST(Types, ValidateClientOptionsRefusesMalformedEndpoints) {
  ClientOptions o;
  o.name = "source";
  o.flags = FlagNamesWithPrefix("src");
  const std::pair<const char*, const char*> cases[] = {
      {"127.0.0.1:abc",
       "--src-endpoints \"127.0.0.1:abc\": port \"abc\" is not a number from 1 "
       "to 65535"},
      {":99999", "--src-endpoints \":99999\": has no host; use host:port"},
      {"h:99999", "--src-endpoints \"h:99999\": port \"99999\" is not a number from 1 to 65535"},
      {"a:1 b:2", "--src-endpoints \"a:1 b:2\": contains a blank; separate endpoints with commas"},
      {"", "--src-endpoints \"\": empty item (a stray comma?)"},
      {"ftp://h:1",
       "--src-endpoints \"ftp://h:1\": unsupported scheme; use host:port, http:// or "
       "https://"},
      {"::1:2379",
       "--src-endpoints \"::1:2379\": an IPv6 address must be in brackets, as in "
       "[::1]:2379"},
  };
  for (const auto& [endpoint, message] : cases) {
    o.endpoints = {"h:1", endpoint};
    EXPECT_EQ(ValidateClientOptions(o).message(), message);
  }
}

// A nested txn op counts the size of everything it carries.
TEST(Types, NestedTxnOpSizeIncludesItsOps) {
  TxnRequest inner;
  inner.compares.push_back(
      Compare{"/mark", Compare::Target::kVersion, Compare::Result::kGreater, 0, ""});
  inner.success = {Op::Delete("/key"), Op::Put("/other", std::string(100, 'x'))};
  Op op = Op::Txn(inner);
  EXPECT_EQ(op.type, Op::Type::kTxn);
  ASSERT_NE(op.txn, nullptr);
  EXPECT_EQ(op.txn->success.size(), 2u);
  EXPECT_GT(op.ByteSize(), inner.success[0].ByteSize() + inner.success[1].ByteSize());
  Op put{.type = Op::Type::kPut, .key = "/k", .value = "v"};
  EXPECT_EQ(put.txn, nullptr);
}

// Requested progress is trusted only from releases that answer it in order (3.4.25+, 3.5.8+,
// 3.6+); the Debian etcd 3.4.23 the tests run is not one of them.
TEST(Progress, RequestedProgressTrustedFromFixedReleasesOnly) {
  EXPECT_FALSE(RequestedProgressIsOrdered("3.4.23"));
  EXPECT_FALSE(RequestedProgressIsOrdered("3.4.24"));
  EXPECT_TRUE(RequestedProgressIsOrdered("3.4.25"));
  EXPECT_FALSE(RequestedProgressIsOrdered("3.5.7"));
  EXPECT_TRUE(RequestedProgressIsOrdered("3.5.8"));
  EXPECT_TRUE(RequestedProgressIsOrdered("3.5.10-rc.1"));
  EXPECT_TRUE(RequestedProgressIsOrdered("3.6.0"));
  EXPECT_FALSE(RequestedProgressIsOrdered("3.3.27"));
  EXPECT_FALSE(RequestedProgressIsOrdered(""));
  EXPECT_FALSE(RequestedProgressIsOrdered("garbage"));
}

}  // namespace
}  // namespace kvsync::etcd
