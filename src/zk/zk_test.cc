#include <zookeeper/zookeeper.h>

#include "gtest/gtest.h"
#include "zk/session.h"

namespace kvsync::zk {
namespace {

// JoinPath never doubles the slash of the root.
TEST(ZkPathTest, JoinPath) {
  EXPECT_EQ(JoinPath("/a", "b"), "/a/b");
  EXPECT_EQ(JoinPath("/", "b"), "/b");
  EXPECT_EQ(JoinPath("/a/b", "c"), "/a/b/c");
}

// ParentPath stops at the root.
TEST(ZkPathTest, ParentPath) {
  EXPECT_EQ(ParentPath("/a/b"), "/a");
  EXPECT_EQ(ParentPath("/a"), "/");
  EXPECT_EQ(ParentPath("/"), "/");
}

// IsUnder compares whole path components: /dubbo2 is not under /dubbo.
TEST(ZkPathTest, IsUnderIsPathAware) {
  EXPECT_TRUE(IsUnder("/dubbo", "/dubbo"));
  EXPECT_TRUE(IsUnder("/dubbo/x", "/dubbo"));
  EXPECT_TRUE(IsUnder("/dubbo/x/y", "/dubbo/"));
  EXPECT_FALSE(IsUnder("/dubbo2", "/dubbo"));
  EXPECT_FALSE(IsUnder("/dub", "/dubbo"));
  EXPECT_FALSE(IsUnder("/other/dubbo", "/dubbo"));
  EXPECT_TRUE(IsUnder("/anything", "/"));
  EXPECT_TRUE(IsUnder("/", "/"));
}

// Each ZooKeeper code maps to the documented status code, and the message names the path.
TEST(ZkErrorTest, FromZooErrorMapsCodes) {
  EXPECT_TRUE(FromZooError(ZOK, "/a").ok());
  EXPECT_TRUE(absl::IsNotFound(FromZooError(ZNONODE, "/a")));
  EXPECT_TRUE(absl::IsAlreadyExists(FromZooError(ZNODEEXISTS, "/a")));
  EXPECT_TRUE(absl::IsUnavailable(FromZooError(ZCONNECTIONLOSS, "/a")));
  EXPECT_TRUE(absl::IsUnavailable(FromZooError(ZOPERATIONTIMEOUT, "/a")));
  EXPECT_TRUE(absl::IsUnavailable(FromZooError(ZCLOSING, "/a")));
  EXPECT_TRUE(absl::IsAborted(FromZooError(ZSESSIONEXPIRED, "/a")));
  EXPECT_TRUE(absl::IsAborted(FromZooError(ZINVALIDSTATE, "/a")));
  EXPECT_TRUE(absl::IsPermissionDenied(FromZooError(ZNOAUTH, "/a")));
  EXPECT_TRUE(absl::IsPermissionDenied(FromZooError(ZAUTHFAILED, "/a")));
  EXPECT_TRUE(absl::IsInvalidArgument(FromZooError(ZBADARGUMENTS, "/a")));
  EXPECT_TRUE(absl::IsInternal(FromZooError(ZNOTEMPTY, "/a")));
  EXPECT_TRUE(absl::IsInternal(FromZooError(ZMARSHALLINGERROR, "/a")));
  absl::Status status = FromZooError(ZNONODE, "/some/path");
  EXPECT_NE(status.message().find("/some/path"), absl::string_view::npos);
  EXPECT_NE(status.message().find(zerror(ZNONODE)), absl::string_view::npos);
}

// Only a dead session counts as expired; connection loss is transient.
TEST(ZkErrorTest, IsSessionExpired) {
  EXPECT_TRUE(IsSessionExpired(FromZooError(ZSESSIONEXPIRED, "/a")));
  EXPECT_TRUE(IsSessionExpired(FromZooError(ZINVALIDSTATE, "/a")));
  EXPECT_FALSE(IsSessionExpired(FromZooError(ZCONNECTIONLOSS, "/a")));
  EXPECT_FALSE(IsSessionExpired(absl::OkStatus()));
}

// Each code is classified once: transient codes are retried, an expired session is its own
// case, credentials are refusals, and every other code (an unknown one included) is neither
// transient nor an expiry, so nothing retries it forever.
TEST(ZkErrorTest, ClassifiesEveryCode) {
  for (int rc :
       {ZCONNECTIONLOSS, ZOPERATIONTIMEOUT, ZCLOSING, ZSESSIONMOVED, ZNOTREADONLY, ZTHROTTLEDOP}) {
    absl::Status s = FromZooError(rc, "/a");
    EXPECT_TRUE(IsTransient(s)) << rc;
    EXPECT_FALSE(IsSessionExpired(s)) << rc;
  }
  for (int rc : {ZSESSIONEXPIRED, ZINVALIDSTATE}) {
    EXPECT_TRUE(IsSessionExpired(FromZooError(rc, "/a"))) << rc;
    EXPECT_FALSE(IsTransient(FromZooError(rc, "/a"))) << rc;
  }
  for (int rc : {ZNOAUTH, ZAUTHFAILED, ZSESSIONCLOSEDREQUIRESASLAUTH}) {
    EXPECT_TRUE(absl::IsPermissionDenied(FromZooError(rc, "/a"))) << rc;
  }
  for (int rc : std::initializer_list<int>{ZSYSTEMERROR, ZRUNTIMEINCONSISTENCY, ZDATAINCONSISTENCY,
                                           ZMARSHALLINGERROR, ZUNIMPLEMENTED, ZAPIERROR, ZNOTEMPTY,
                                           ZBADVERSION, ZNEWCONFIGNOQUORUM, ZRECONFIGINPROGRESS,
                                           ZNOWATCHER, -999}) {
    absl::Status s = FromZooError(rc, "/a");
    EXPECT_TRUE(absl::IsInternal(s)) << rc << " " << s;
    EXPECT_FALSE(IsTransient(s)) << rc;
    EXPECT_FALSE(IsSessionExpired(s)) << rc;
  }
  for (int rc : {ZNONODE, ZNODEEXISTS, ZBADARGUMENTS, ZINVALIDACL}) {
    EXPECT_FALSE(IsTransient(FromZooError(rc, "/a"))) << rc;
  }
}

// Server strings are host:port lists with an optional chroot.
TEST(ZkOptionsTest, ValidateServers) {
  EXPECT_TRUE(ValidateServers("127.0.0.1:2181").ok());
  EXPECT_TRUE(ValidateServers("a:1,b:2/chroot/x").ok());
  EXPECT_TRUE(ValidateServers("[::1]:2181").ok());
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateServers("")));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateServers("host")));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateServers("host:0")));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateServers("host:x")));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateServers("a:1,")));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateServers("a:1/chroot/")));
}

// Open rejects bad options before touching the network.
TEST(ZkOptionsTest, OpenRejectsBadOptions) {
  SessionOptions options;
  options.servers = "nohostport";
  EXPECT_TRUE(absl::IsInvalidArgument(Session::Open(options, nullptr).status()));
  options.servers = "127.0.0.1:1";
  options.digest_auth = "nocolon";
  EXPECT_TRUE(absl::IsInvalidArgument(Session::Open(options, nullptr).status()));
}

// The C client's log lines are split into kvsync's level and their text.
TEST(ZkClientLogTest, ParsesLevelAndText) {
  ClientLogLine e = ParseClientLogLine(
      "2026-11-30 08:00:00,123:4242:ZOO_ERROR@handle_socket_error_msg@1781: Socket "
      "[127.0.0.1:1] zk retcode=-4, errno=111(Connection refused): server refused\n");
  EXPECT_EQ(e.level, log::Level::kError);
  EXPECT_EQ(e.message,
            "Socket [127.0.0.1:1] zk retcode=-4, errno=111(Connection refused): server refused");
  EXPECT_EQ(ParseClientLogLine("t:1:ZOO_WARN@f@2: w").level, log::Level::kWarn);
  EXPECT_EQ(ParseClientLogLine("t:1:ZOO_INFO@f@2: i").level, log::Level::kInfo);
  EXPECT_EQ(ParseClientLogLine("t:1:ZOO_DEBUG@f@2: d").level, log::Level::kDebug);
  ClientLogLine odd = ParseClientLogLine("something else");
  EXPECT_EQ(odd.level, log::Level::kError);
  EXPECT_EQ(odd.message, "something else");
}

}  // namespace
}  // namespace kvsync::zk
