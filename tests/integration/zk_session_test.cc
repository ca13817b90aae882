// Integration tests of the ZooKeeper client (src/zk) against a real ZooKeeper 3.8 server.
//
// How session expiry is forced: the session goes through a FaultProxy. The test blackholes the
// proxy (the client's connection goes silent, it gives up and keeps reconnecting into the
// blackhole), waits — through a second, direct session — until the server has expired the
// first session (its ephemeral node is gone), then lets traffic pass again: the client
// reconnects, the server answers "session expired", and the Session reports kExpired.
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/stop_token.h"
#include "gtest/gtest.h"
#include "tests/harness/fault_proxy.h"
#include "tests/harness/wait.h"
#include "tests/harness/zk_server.h"
#include "zk/session.h"
#include "zk/walk.h"

namespace kvsync::zk {
namespace {

using std::chrono::milliseconds;
using testing::FaultProxy;
using testing::WaitFor;
using testing::ZkServer;
using Type = WatchEvent::Type;

constexpr milliseconds kDeadline(30000);

// Records every event of a session; thread-safe. Must outlive the session it is attached to.
class EventLog {
 public:
  EventFn Fn() {
    return [this](const WatchEvent& event) {
      absl::MutexLock lock(&mu_);
      events_.push_back(event);
    };
  }
  bool Has(Type type, const std::string& path) {
    absl::MutexLock lock(&mu_);
    for (const WatchEvent& e : events_) {
      if (e.type == type && e.path == path) return true;
    }
    return false;
  }
  bool HasSession(SessionState state, size_t from = 0) {
    absl::MutexLock lock(&mu_);
    for (size_t i = from; i < events_.size(); ++i) {
      if (events_[i].type == Type::kSession && events_[i].state == state) return true;
    }
    return false;
  }
  size_t size() {
    absl::MutexLock lock(&mu_);
    return events_.size();
  }

 private:
  absl::Mutex mu_;
  std::vector<WatchEvent> events_ ABSL_GUARDED_BY(mu_);
};

std::unique_ptr<Session> MustOpen(const std::string& servers, EventLog* log,
                                  const std::string& auth = "",
                                  milliseconds session_timeout = milliseconds(10000)) {
  SessionOptions options;
  options.servers = servers;
  options.digest_auth = auth;
  options.session_timeout = session_timeout;
  absl::StatusOr<std::unique_ptr<Session>> session =
      Session::Open(options, log != nullptr ? log->Fn() : EventFn());
  EXPECT_TRUE(session.ok()) << session.status();
  return session.ok() ? std::move(*session) : nullptr;
}

class ZkSessionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto server = ZkServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server).release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    session_ = MustOpen(server_->connect_string(), &log_);
    ASSERT_NE(session_, nullptr);
  }
  void TearDown() override {
    if (HasFailure() && server_ != nullptr) {
      std::fprintf(stderr, "zookeeper log tail:\n%s\n", server_->LogTail().c_str());
    }
  }

  static ZkServer* server_;
  EventLog log_;  // declared before session_: outlives it
  std::unique_ptr<Session> session_;
};

ZkServer* ZkSessionTest::server_ = nullptr;

// Create/Get/Set/Children/Delete round-trip, with the documented errors.
TEST_F(ZkSessionTest, SyncHelpersRoundTrip) {
  Session& s = *session_;
  EXPECT_EQ(s.state(), SessionState::kConnected);
  EXPECT_NE(s.session_id(), 0);
  ASSERT_TRUE(s.CreateAll("/rt/a/b", "data-b").ok());
  EXPECT_TRUE(s.CreateAll("/rt/a/b", "other").ok());
  Stat stat;
  absl::StatusOr<std::string> got = s.Get("/rt/a/b", &stat);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "data-b");
  EXPECT_EQ(stat.version, 0);
  EXPECT_EQ(stat.data_length, 6);
  ASSERT_TRUE(s.Set("/rt/a/b", "v2").ok());
  got = s.Get("/rt/a/b", &stat);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, "v2");
  EXPECT_EQ(stat.version, 1);
  EXPECT_TRUE(absl::IsAlreadyExists(s.Create("/rt/a/b", "")));
  EXPECT_TRUE(absl::IsNotFound(s.Create("/rt/missing/x", "")));
  ASSERT_TRUE(s.Create("/rt/a/c", "", /*ephemeral=*/true).ok());
  ASSERT_TRUE(s.Get("/rt/a/c", &stat).ok());
  EXPECT_EQ(stat.ephemeral_owner, s.session_id());
  absl::StatusOr<std::vector<std::string>> children = s.Children("/rt/a");
  ASSERT_TRUE(children.ok());
  EXPECT_EQ(std::set<std::string>(children->begin(), children->end()),
            (std::set<std::string>{"b", "c"}));
  EXPECT_TRUE(absl::IsNotFound(s.Delete("/rt/nope")));
  EXPECT_TRUE(absl::IsNotFound(s.Get("/rt/nope").status()));
  EXPECT_TRUE(absl::IsNotFound(s.Set("/rt/nope", "x")));
  ASSERT_TRUE(s.Delete("/rt/a/c").ok());
  ASSERT_TRUE(s.DeleteAll("/rt").ok());
  EXPECT_TRUE(absl::IsNotFound(s.Get("/rt").status()));
  EXPECT_TRUE(s.DeleteAll("/rt").ok());
}

// Data, child and exists watches report kDataChanged, kChildrenChanged, kCreated and kDeleted.
TEST_F(ZkSessionTest, WatchesDeliverEvents) {
  Session& s = *session_;
  ASSERT_TRUE(s.CreateAll("/w/n", "v0").ok());
  std::atomic<int> done{0};
  s.GetData("/w/n", true, [&](const absl::Status& st, std::string data, const Stat&) {
    EXPECT_TRUE(st.ok()) << st;
    EXPECT_EQ(data, "v0");
    ++done;
  });
  s.GetChildren("/w", true, [&](const absl::Status& st, std::vector<std::string> c, const Stat&) {
    EXPECT_TRUE(st.ok()) << st;
    EXPECT_EQ(c, std::vector<std::string>{"n"});
    ++done;
  });
  s.Exists("/w/later", true, [&](const absl::Status& st, const Stat&) {
    EXPECT_TRUE(absl::IsNotFound(st)) << st;
    ++done;
  });
  ASSERT_TRUE(WaitFor([&] { return done == 3; }, kDeadline));

  ASSERT_TRUE(s.Set("/w/n", "v1").ok());
  EXPECT_TRUE(WaitFor([&] { return log_.Has(Type::kDataChanged, "/w/n"); }, kDeadline));
  ASSERT_TRUE(s.Create("/w/later", "").ok());
  EXPECT_TRUE(WaitFor([&] { return log_.Has(Type::kCreated, "/w/later"); }, kDeadline));
  EXPECT_TRUE(WaitFor([&] { return log_.Has(Type::kChildrenChanged, "/w"); }, kDeadline));

  s.GetData("/w/n", true, [&](const absl::Status& st, std::string, const Stat&) { ++done; });
  ASSERT_TRUE(WaitFor([&] { return done == 4; }, kDeadline));
  ASSERT_TRUE(s.Delete("/w/n").ok());
  EXPECT_TRUE(WaitFor([&] { return log_.Has(Type::kDeleted, "/w/n"); }, kDeadline));
  ASSERT_TRUE(s.DeleteAll("/w").ok());
}

// On one session, the watch event for a change arrives before any read result showing it.
TEST_F(ZkSessionTest, WatchEventPrecedesReadOfTheChange) {
  std::unique_ptr<Session> writer = MustOpen(server_->connect_string(), nullptr);
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->CreateAll("/order/n", "0").ok());
  // Sequence of what the loop thread saw: "event" or "read:<data>".
  absl::Mutex mu;
  std::vector<std::string> seen;
  EventLog unused;
  SessionOptions options;
  options.servers = server_->connect_string();
  auto reader = Session::Open(options, [&](const WatchEvent& e) {
    if (e.type != Type::kDataChanged) return;
    absl::MutexLock lock(&mu);
    seen.push_back("event");
  });
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto read = [&](bool watch) {
    std::atomic<bool> finished{false};
    (*reader)->GetData("/order/n", watch, [&](const absl::Status& st, std::string d, const Stat&) {
      absl::MutexLock lock(&mu);
      seen.push_back("read:" + d);
      finished = true;
    });
    return WaitFor([&] { return finished.load(); }, kDeadline);
  };
  for (int i = 1; i <= 20; ++i) {
    ASSERT_TRUE(read(/*watch=*/true));
    ASSERT_TRUE(writer->Set("/order/n", std::to_string(i)).ok());
    ASSERT_TRUE(read(/*watch=*/false));
    absl::MutexLock lock(&mu);
    ASSERT_GE(seen.size(), 3u);
    // The read issued after the write returned must show it, and the event comes first.
    EXPECT_EQ(seen[seen.size() - 1], "read:" + std::to_string(i));
    EXPECT_EQ(seen[seen.size() - 2], "event") << "round " << i;
  }
  ASSERT_TRUE(writer->DeleteAll("/order").ok());
}

// The walk returns exactly the tree's nodes, honours excludes path-aware and does not list
// the children of ephemeral nodes.
TEST_F(ZkSessionTest, WalkVisitsExactlyTheTree) {
  Session& s = *session_;
  const std::vector<std::string> persistent = {
      "/walk",
      "/walk/dubbo",
      "/walk/dubbo/svc1",
      "/walk/dubbo/svc1/providers",
      "/walk/dubbo/svc1/providers/p1",
      "/walk/dubbo/svc1/consumers",
      "/walk/dubbo/svc2",
      "/walk/dubbo/excl",
      "/walk/dubbo/excl/deep",
      "/walk/dubbo2",
      "/walk/dubbo2/x",
  };
  for (const std::string& p : persistent) ASSERT_TRUE(s.CreateAll(p, "data:" + p).ok());
  ASSERT_TRUE(s.Create("/walk/dubbo/svc1/providers/e1", "eph", /*ephemeral=*/true).ok());

  auto walk = [&](WalkOptions options, std::map<std::string, std::string>* out) {
    absl::Mutex mu;
    return Walk(&s, options, [&](const std::string& path, const std::string& data, const Stat&) {
      absl::MutexLock lock(&mu);
      EXPECT_TRUE(out->emplace(path, data).second) << "visited twice: " << path;
    });
  };

  WalkOptions options;
  options.roots = {"/walk/dubbo"};
  options.excludes = {"/walk/dubbo/excl"};
  std::map<std::string, std::string> visited;
  absl::StatusOr<WalkResult> result = walk(options, &visited);
  ASSERT_TRUE(result.ok()) << result.status();
  std::map<std::string, std::string> expected = {
      {"/walk/dubbo", "data:/walk/dubbo"},
      {"/walk/dubbo/svc1", "data:/walk/dubbo/svc1"},
      {"/walk/dubbo/svc1/providers", "data:/walk/dubbo/svc1/providers"},
      {"/walk/dubbo/svc1/providers/p1", "data:/walk/dubbo/svc1/providers/p1"},
      {"/walk/dubbo/svc1/providers/e1", "eph"},
      {"/walk/dubbo/svc1/consumers", "data:/walk/dubbo/svc1/consumers"},
      {"/walk/dubbo/svc2", "data:/walk/dubbo/svc2"},
  };
  EXPECT_EQ(visited, expected);
  EXPECT_EQ(result->nodes, 7);
  // A GetData per node plus a GetChildren per persistent node: the ephemeral one is not listed.
  EXPECT_EQ(result->reads, 7 + 6);

  // "/walk/dubbo" excluded: "/walk/dubbo2" still walked.
  options.roots = {"/walk"};
  options.excludes = {"/walk/dubbo"};
  visited.clear();
  result = walk(options, &visited);
  ASSERT_TRUE(result.ok()) << result.status();
  std::set<std::string> paths;
  for (const auto& [path, data] : visited) paths.insert(path);
  EXPECT_EQ(paths, (std::set<std::string>{"/walk", "/walk/dubbo2", "/walk/dubbo2/x"}));

  // Presence walk: children only, same nodes.
  options.roots = {"/walk/dubbo", "/walk/dubbo/svc1"};  // the nested root is dropped
  options.excludes = {"/walk/dubbo/excl"};
  options.read_data = false;
  visited.clear();
  result = walk(options, &visited);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(visited.size(), expected.size());
  EXPECT_EQ(result->reads, 7);

  // A missing root is not an error, but it is named.
  options.roots = {"/walk-missing", "/walk/dubbo"};
  options.read_data = true;
  visited.clear();
  result = walk(options, &visited);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->nodes, static_cast<int64_t>(expected.size()));
  EXPECT_EQ(result->missing_roots, std::vector<std::string>{"/walk-missing"});
  ASSERT_TRUE(s.DeleteAll("/walk").ok());
}

// watch=true arms data, child and missing-root watches that fire after the walk.
TEST_F(ZkSessionTest, WalkWithWatchArmsWatches) {
  Session& s = *session_;
  ASSERT_TRUE(s.CreateAll("/ww/a/b", "x").ok());
  WalkOptions options;
  options.roots = {"/ww", "/ww-missing"};
  options.watch = true;
  absl::StatusOr<WalkResult> result =
      Walk(&s, options, [](const std::string&, const std::string&, const Stat&) {});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->nodes, 3);
  ASSERT_TRUE(s.Set("/ww/a/b", "y").ok());
  EXPECT_TRUE(WaitFor([&] { return log_.Has(Type::kDataChanged, "/ww/a/b"); }, kDeadline));
  ASSERT_TRUE(s.Create("/ww/a/c", "").ok());
  EXPECT_TRUE(WaitFor([&] { return log_.Has(Type::kChildrenChanged, "/ww/a"); }, kDeadline));
  ASSERT_TRUE(s.Create("/ww-missing", "").ok());
  EXPECT_TRUE(WaitFor([&] { return log_.Has(Type::kCreated, "/ww-missing"); }, kDeadline));
  ASSERT_TRUE(s.DeleteAll("/ww").ok());
  ASSERT_TRUE(s.DeleteAll("/ww-missing").ok());
}

// Blocking helpers refuse to run on the loop thread instead of deadlocking.
TEST_F(ZkSessionTest, SyncHelpersRefuseLoopThread) {
  std::atomic<bool> finished{false};
  absl::Status inner;
  session_->GetData("/", false, [&](const absl::Status&, std::string, const Stat&) {
    inner = session_->Get("/").status();
    finished = true;
  });
  ASSERT_TRUE(WaitFor([&] { return finished.load(); }, kDeadline));
  EXPECT_EQ(inner.code(), absl::StatusCode::kFailedPrecondition) << inner;
}

// A stop token cancels the walk with Cancelled.
TEST_F(ZkSessionTest, WalkHonoursStopToken) {
  Session& s = *session_;
  ASSERT_TRUE(s.CreateAll("/stop/a", "").ok());
  common::StopToken stop;
  stop.RequestStop();
  WalkOptions options;
  options.roots = {"/stop"};
  absl::StatusOr<WalkResult> result = Walk(
      &s, options, [](const std::string&, const std::string&, const Stat&) {}, &stop);
  EXPECT_TRUE(absl::IsCancelled(result.status())) << result.status();
  ASSERT_TRUE(s.DeleteAll("/stop").ok());
}

// Digest ACLs: a session without the creator's credentials is refused, one with them reads.
TEST_F(ZkSessionTest, DigestAuth) {
  std::unique_ptr<Session> alice = MustOpen(server_->connect_string(), nullptr, "alice:secret");
  ASSERT_NE(alice, nullptr);
  ASSERT_TRUE(alice->CreateAll("/acl", "").ok());
  CreateOptions create;
  create.creator_only_acl = true;
  ASSERT_TRUE(alice->Create("/acl/private", "secret-data", create).ok());

  EXPECT_TRUE(absl::IsPermissionDenied(session_->Get("/acl/private").status()));
  std::unique_ptr<Session> wrong = MustOpen(server_->connect_string(), nullptr, "alice:wrong");
  ASSERT_NE(wrong, nullptr);
  EXPECT_TRUE(absl::IsPermissionDenied(wrong->Get("/acl/private").status()));
  // The walk stops on the denied read rather than skipping it.
  WalkOptions options;
  options.roots = {"/acl"};
  EXPECT_TRUE(absl::IsPermissionDenied(
      Walk(session_.get(), options, [](const std::string&, const std::string&, const Stat&) {
      }).status()));
  // ... unless asked to skip unreadable nodes, which it then names.
  options.skip_unreadable = true;
  std::vector<std::string> seen;
  auto skipped =
      Walk(session_.get(), options,
           [&](const std::string& path, const std::string&, const Stat&) { seen.push_back(path); });
  ASSERT_TRUE(skipped.ok()) << skipped.status();
  EXPECT_EQ(seen, std::vector<std::string>{"/acl"});
  EXPECT_EQ(skipped->unreadable, std::vector<std::string>{"/acl/private"});
  EXPECT_EQ(skipped->unreadable_count, 1);
  EXPECT_TRUE(skipped->missing_roots.empty());

  std::unique_ptr<Session> again = MustOpen(server_->connect_string(), nullptr, "alice:secret");
  ASSERT_NE(again, nullptr);
  absl::StatusOr<std::string> got = again->Get("/acl/private");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "secret-data");
  ASSERT_TRUE(again->DeleteAll("/acl").ok());
}

// Open against a port nobody listens on fails with Unavailable naming the servers.
TEST(ZkOpenTest, NothingListeningIsUnavailable) {
  SessionOptions options;
  options.servers = absl::StrCat("127.0.0.1:", testing::FreePort());
  options.connect_timeout = milliseconds(1000);
  absl::StatusOr<std::unique_ptr<Session>> session = Session::Open(options, nullptr);
  EXPECT_TRUE(absl::IsUnavailable(session.status())) << session.status();
  EXPECT_NE(session.status().message().find(options.servers), absl::string_view::npos);
}

// A walk on a server that went away fails instead of returning a partial tree.
TEST(ZkServerLossTest, WalkOnStoppedServerFails) {
  auto server = ZkServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Session> s = MustOpen((*server)->connect_string(), nullptr);
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(s->CreateAll("/lost/a/b", "").ok());
  (*server)->Stop();
  WalkOptions options;
  options.roots = {"/lost"};
  absl::StatusOr<WalkResult> result =
      Walk(s.get(), options, [](const std::string&, const std::string&, const Stat&) {});
  EXPECT_TRUE(absl::IsUnavailable(result.status())) << result.status();
}

// A server restart within the session timeout keeps the session: it reconnects with the same
// id and its ephemeral node survives.
TEST(ZkServerLossTest, RestartKeepsSession) {
  auto server = ZkServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  EventLog log;
  std::unique_ptr<Session> s = MustOpen((*server)->connect_string(), &log, "", milliseconds(20000));
  ASSERT_NE(s, nullptr);
  const int64_t id = s->session_id();
  ASSERT_TRUE(s->Create("/eph", "", /*ephemeral=*/true).ok());
  size_t before = log.size();
  ASSERT_TRUE((*server)->Restart().ok()) << (*server)->LogTail();
  EXPECT_TRUE(
      WaitFor([&] { return log.HasSession(SessionState::kConnecting, before); }, kDeadline));
  EXPECT_TRUE(WaitFor([&] { return log.HasSession(SessionState::kConnected, before); }, kDeadline));
  EXPECT_EQ(s->state(), SessionState::kConnected);
  EXPECT_EQ(s->session_id(), id);
  Stat stat;
  ASSERT_TRUE(s->Get("/eph", &stat).ok());
  EXPECT_EQ(stat.ephemeral_owner, id);
}

// A session cut off for longer than its timeout is expired by the server; once traffic flows
// again the client reports kExpired and every call fails with IsSessionExpired.
TEST(ZkServerLossTest, BlackholedSessionExpires) {
  auto server = ZkServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  auto proxy = FaultProxy::Start((*server)->connect_string());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  EventLog log;
  std::unique_ptr<Session> s = MustOpen((*proxy)->address(), &log, "", milliseconds(2000));
  ASSERT_NE(s, nullptr);
  std::unique_ptr<Session> direct = MustOpen((*server)->connect_string(), nullptr);
  ASSERT_NE(direct, nullptr);
  ASSERT_TRUE(s->Create("/expiring", "", /*ephemeral=*/true).ok());

  (*proxy)->SetMode(FaultProxy::Mode::kBlackhole);
  // The server deletes the session's ephemeral node when it expires the session.
  ASSERT_TRUE(
      WaitFor([&] { return absl::IsNotFound(direct->Get("/expiring").status()); }, kDeadline));
  (*proxy)->SetMode(FaultProxy::Mode::kPass);
  ASSERT_TRUE(WaitFor([&] { return s->state() == SessionState::kExpired; }, kDeadline));
  EXPECT_TRUE(log.HasSession(SessionState::kExpired));
  EXPECT_TRUE(IsSessionExpired(s->Get("/").status()));
  WalkOptions options;
  options.roots = {"/"};
  EXPECT_TRUE(IsSessionExpired(
      Walk(s.get(), options, [](const std::string&, const std::string&, const Stat&) {}).status()));
}

}  // namespace
}  // namespace kvsync::zk
