// Unit tests of FakeZk: that it fires watches, orders deliveries, ends sessions and walks as
// ZooKeeper and zk::Session do (the contract of zk/api.h), so engine tests built on it mean
// something. Waits are on the fake's deliveries with deadlines.
#include "zk/fake_zk.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/stop_token.h"
#include "gtest/gtest.h"

namespace kvsync::zk {
namespace {

constexpr absl::Duration kDeadline = absl::Seconds(10);
using Type = WatchEvent::Type;

// What one session delivered, in order: events as "type path", read results as "read ...".
class Recorder {
 public:
  EventFn OnEvent() {
    return [this](const WatchEvent& e) { Add(EventName(e)); };
  }
  DataFn OnData(const std::string& tag) {
    return [this, tag](const absl::Status& st, const std::string& data, const Stat& stat) {
      Add(st.ok() ? "read " + tag + "=" + data + "@" + std::to_string(stat.mzxid)
                  : "read " + tag + " " + absl::StatusCodeToString(st.code()));
    };
  }
  std::vector<std::string> Take() {
    absl::MutexLock lock(&mu_);
    return std::exchange(seen_, {});
  }

 private:
  static std::string EventName(const WatchEvent& e) {
    switch (e.type) {
      case Type::kCreated:
        return "created " + e.path;
      case Type::kDeleted:
        return "deleted " + e.path;
      case Type::kDataChanged:
        return "changed " + e.path;
      case Type::kChildrenChanged:
        return "children " + e.path;
      case Type::kSession:
        return std::string("session ") + SessionStateName(e.state);
      case Type::kNotWatching:
        return "not watching " + e.path;
    }
    return "?";
  }
  void Add(std::string s) {
    absl::MutexLock lock(&mu_);
    seen_.push_back(std::move(s));
  }
  absl::Mutex mu_;
  std::vector<std::string> seen_;
};

std::unique_ptr<Reader> Open(FakeZk* zk, Recorder* r) {
  auto opened = zk->Open(r->OnEvent());
  EXPECT_TRUE(opened.ok()) << opened.status();
  return opened.ok() ? std::move(*opened) : nullptr;
}

using Events = std::vector<std::string>;

// A data watch fires once (kDataChanged), a child watch once (kChildrenChanged); a delete
// fires the node's kDeleted before its parent's kChildrenChanged.
TEST(FakeZkTest, WatchesFireOnceInServerOrder) {
  FakeZk zk;
  ASSERT_TRUE(zk.CreateAll("/app/a", "1").ok());
  Recorder r;
  auto s = Open(&zk, &r);
  s->GetData("/app/a", true, r.OnData("a"));
  s->GetChildren("/app", true,
                 [](const absl::Status&, const std::vector<std::string>&, const Stat&) {});
  ASSERT_TRUE(zk.Set("/app/a", "2").ok());
  ASSERT_TRUE(zk.Set("/app/a", "3").ok());  // the watch has fired: nothing
  ASSERT_TRUE(zk.Create("/app/b", "").ok());
  ASSERT_TRUE(zk.Create("/app/c", "").ok());  // child watch already fired
  ASSERT_TRUE(zk.WaitDelivered(kDeadline));
  Stat stat;
  zk.Data("/app/a", &stat);
  EXPECT_EQ(r.Take(), (Events{"session connected", "read a=1@" + std::to_string(stat.czxid),
                              "changed /app/a", "children /app"}));

  s->GetData("/app/a", true, r.OnData("a"));
  s->GetChildren("/app", true,
                 [](const absl::Status&, const std::vector<std::string>&, const Stat&) {});
  ASSERT_TRUE(zk.Delete("/app/a").ok());
  ASSERT_TRUE(zk.WaitDelivered(kDeadline));
  EXPECT_EQ(r.Take(),
            (Events{"read a=3@" + std::to_string(stat.mzxid), "deleted /app/a", "children /app"}));
}

// zxids are global: a set raises mzxid, a re-created node has a larger czxid than the deleted
// incarnation had.
TEST(FakeZkTest, VersionsAreGlobalZxids) {
  FakeZk zk;
  ASSERT_TRUE(zk.CreateAll("/app/a", "1").ok());
  Stat first, changed, again;
  zk.Data("/app/a", &first);
  ASSERT_TRUE(zk.Set("/app/a", "2").ok());
  zk.Data("/app/a", &changed);
  EXPECT_EQ(changed.czxid, first.czxid);
  EXPECT_GT(changed.mzxid, first.mzxid);
  EXPECT_EQ(changed.version, 1);
  ASSERT_TRUE(zk.Delete("/app/a").ok());
  ASSERT_TRUE(zk.Create("/app/a", "1").ok());
  zk.Data("/app/a", &again);
  EXPECT_GT(again.czxid, changed.mzxid);
  EXPECT_EQ(again.version, 0);
}

// Expiry: the session's reads fail with Aborted, its watches and ephemeral znodes are gone, and
// the next session has a new id and no watches.
TEST(FakeZkTest, ExpiryEndsTheSessionAndItsWatches) {
  FakeZk zk;
  ASSERT_TRUE(zk.CreateAll("/app/a", "1").ok());
  Recorder r1, r2;
  auto s1 = Open(&zk, &r1);
  ASSERT_TRUE(zk.Create("/app/eph", "", s1->session_id()).ok());
  s1->GetData("/app/a", true, r1.OnData("a"));
  ASSERT_TRUE(zk.WaitDelivered(kDeadline));
  EXPECT_EQ(zk.watchers("/app/a"), 1);
  zk.Expire();
  EXPECT_EQ(s1->state(), SessionState::kExpired);
  EXPECT_EQ(zk.watchers("/app/a"), 0);
  EXPECT_FALSE(zk.Data("/app/eph").has_value());
  s1->GetData("/app/a", true, r1.OnData("a"));
  ASSERT_TRUE(zk.WaitDelivered(kDeadline));
  r1.Take();
  EXPECT_TRUE(IsSessionExpired(s1->Get("/app/a", nullptr).status()));

  auto s2 = Open(&zk, &r2);
  EXPECT_NE(s2->session_id(), s1->session_id());
  EXPECT_EQ(zk.sessions_opened(), 2);
  ASSERT_TRUE(zk.Set("/app/a", "2").ok());
  ASSERT_TRUE(zk.WaitDelivered(kDeadline));
  EXPECT_EQ(r1.Take(), Events{});
  EXPECT_EQ(r2.Take(), Events{"session connected"});
}

// A disconnection keeps the watches: reads fail with Unavailable meanwhile, and what fired is
// delivered after the reconnect's kConnected. Open fails while no server answers.
TEST(FakeZkTest, DisconnectionKeepsWatches) {
  FakeZk zk;
  ASSERT_TRUE(zk.CreateAll("/app/a", "1").ok());
  Recorder r;
  auto s = Open(&zk, &r);
  s->GetData("/app/a", true, r.OnData("a"));
  ASSERT_TRUE(zk.WaitDelivered(kDeadline));
  r.Take();
  zk.Disconnect();
  EXPECT_TRUE(absl::IsUnavailable(s->Get("/app/a", nullptr).status()));
  EXPECT_TRUE(absl::IsUnavailable(zk.Open([](const WatchEvent&) {}).status()));
  ASSERT_TRUE(zk.Set("/app/a", "2").ok());
  ASSERT_TRUE(zk.WaitDelivered(kDeadline));
  EXPECT_EQ(r.Take(), Events{"session connecting"});
  zk.Reconnect();
  ASSERT_TRUE(zk.WaitDelivered(kDeadline));
  EXPECT_EQ(r.Take(), (Events{"session connected", "changed /app/a"}));
}

// Faults: a failed read arms no watch; a denied znode is PermissionDenied; a held reply is
// delivered after the change that followed it.
TEST(FakeZkTest, FaultsAndHeldReplies) {
  FakeZk zk;
  ASSERT_TRUE(zk.CreateAll("/app/a", "1").ok());
  Recorder r;
  auto s = Open(&zk, &r);
  zk.FailNext(FakeZk::Op::kGetData, "/app/a", absl::UnavailableError("injected"));
  s->GetData("/app/a", true, r.OnData("a"));
  zk.Deny("/app/a");
  s->GetData("/app/a", true, r.OnData("a"));
  ASSERT_TRUE(zk.WaitDelivered(kDeadline));
  EXPECT_EQ(zk.watchers("/app/a"), 0);
  EXPECT_EQ(r.Take(),
            (Events{"session connected", "read a UNAVAILABLE", "read a PERMISSION_DENIED"}));
  zk.Deny("/app/a", false);

  Stat before;
  zk.Data("/app/a", &before);
  zk.HoldNextReply("/app/a");
  s->GetData("/app/a", true, r.OnData("a"));
  ASSERT_TRUE(zk.Delete("/app/a").ok());
  ASSERT_TRUE(zk.WaitDelivered(kDeadline));
  EXPECT_EQ(zk.held_replies(), 1);
  EXPECT_EQ(zk.ReleaseReplies(), 1);
  ASSERT_TRUE(zk.WaitDelivered(kDeadline));
  EXPECT_EQ(r.Take(), (Events{"deleted /app/a", "read a=1@" + std::to_string(before.mzxid)}));
}

// The walk: visits every readable node once (ephemerals not listed, excludes never read),
// names missing roots and leaves an exists watch on them, skips unreadable subtrees, arms
// watches only when asked.
TEST(FakeZkTest, WalkFollowsZkWalkSemantics) {
  FakeZk zk;
  ASSERT_TRUE(zk.CreateAll("/app/a/x", "x").ok());
  ASSERT_TRUE(zk.CreateAll("/app/skip/y", "y").ok());
  ASSERT_TRUE(zk.CreateAll("/app/secret/z", "z").ok());
  ASSERT_TRUE(zk.Create("/app/eph", "e", 42).ok());
  zk.Deny("/app/secret");
  Recorder r;
  auto s = Open(&zk, &r);
  WalkOptions options;
  options.roots = {"/app", "/gone", "/app/a"};
  options.excludes = {"/app/skip"};
  options.watch = true;
  options.skip_unreadable = true;
  std::vector<std::string> visited;
  auto walked = s->Walk(
      options,
      [&](const std::string& path, const std::string&, const Stat&) { visited.push_back(path); },
      nullptr);
  ASSERT_TRUE(walked.ok()) << walked.status();
  std::sort(visited.begin(), visited.end());
  EXPECT_EQ(visited, (std::vector<std::string>{"/app", "/app/a", "/app/a/x", "/app/eph"}));
  EXPECT_EQ(walked->missing_roots, std::vector<std::string>{"/gone"});
  EXPECT_EQ(walked->unreadable, std::vector<std::string>{"/app/secret"});
  EXPECT_EQ(zk.watchers("/app/a/x"), 1);
  ASSERT_TRUE(zk.Create("/gone", "").ok());
  ASSERT_TRUE(zk.WaitDelivered(kDeadline));
  EXPECT_EQ(r.Take(), (Events{"session connected", "created /gone"}));

  options.skip_unreadable = false;
  options.watch = false;
  EXPECT_TRUE(absl::IsPermissionDenied(
      s->Walk(
           options, [](const std::string&, const std::string&, const Stat&) {}, nullptr)
          .status()));
  common::StopToken stop;
  stop.RequestStop();
  EXPECT_TRUE(absl::IsCancelled(
      s->Walk(
           options, [](const std::string&, const std::string&, const Stat&) {}, &stop)
          .status()));
  options.roots = {"relative"};
  EXPECT_TRUE(absl::IsInvalidArgument(
      s->Walk(
           options, [](const std::string&, const std::string&, const Stat&) {}, nullptr)
          .status()));
}

// Closing a session completes its held and queued reads with Unavailable.
TEST(FakeZkTest, CloseCompletesReadsInFlight) {
  FakeZk zk;
  ASSERT_TRUE(zk.CreateAll("/app/a", "1").ok());
  Recorder r;
  auto s = Open(&zk, &r);
  zk.HoldNextReply("/app/a");
  s->GetData("/app/a", false, r.OnData("a"));
  ASSERT_TRUE(zk.WaitDelivered(kDeadline));
  s.reset();
  EXPECT_EQ(r.Take(), (Events{"session connected", "read a UNAVAILABLE"}));
  EXPECT_EQ(zk.held_replies(), 0);
}

}  // namespace
}  // namespace kvsync::zk
