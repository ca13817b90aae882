// Unit tests of the zk2etcd engine's decisions (docs/architecture.md, "The zk2etcd engine")
// with FakeZk as ZooKeeper and FakeEtcd as the destination, no servers, in seconds: the version
// and tombstone rules of the applier, the two-round periodic repair, the deletion guards
// through the engine, deferred deletes while ownership is unknown, inbox overflow, and session
// expiry. Waits are conditions with deadlines; the fakes make the interleavings deterministic
// (held replies, paused delivery, a hook between full-sync rounds, a held ownership store).
#include "zk2etcd/syncer.h"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/stop_token.h"
#include "config/config.h"
#include "etcd/fake_etcd.h"
#include "gtest/gtest.h"
#include "ownership/store.h"
#include "zk/fake_zk.h"

namespace kvsync::zk2etcd {
namespace {

using etcd::FakeEtcd;
using zk::FakeZk;

constexpr absl::Duration kDeadline = absl::Seconds(20);

// Evaluates `condition` until it holds or the deadline passes (a wait, not a pause: the engine
// threads change what it reads).
bool Eventually(const std::function<bool()>& condition, absl::Duration deadline = kDeadline) {
  const absl::Time until = absl::Now() + deadline;
  while (!condition()) {
    if (absl::Now() > until) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

// An ownership store for the engine's ownership decisions: backend "redis" keeps a set of
// owned keys and can be down (deletes of keys it cannot decide come back as kUnknown, as
// ownership::NewRedisStore's do); backend "none" owns everything. HoldWrites() blocks the
// writer's RecordWrites (a stuck etcd write path, seen from the engine).
class FakeOwners : public ownership::Store {
 public:
  explicit FakeOwners(std::string backend) : backend_(std::move(backend)) {}
  std::string_view backend() const override { return backend_; }
  bool available() const override {
    absl::MutexLock lock(&mu_);
    return up_;
  }
  void AppendPut(const std::string& key, const std::string& value,
                 std::vector<etcd::Op>* ops) const override {
    ops->push_back(etcd::Op::Put(key, value));
  }
  void AppendDelete(const std::string& key, std::vector<etcd::Op>* ops) const override {
    ops->push_back(etcd::Op::Delete(key));
  }
  void RecordWrites(const std::vector<std::string>& keys) override {
    absl::MutexLock lock(&mu_);
    ++record_calls_;
    mu_.Await(absl::Condition(
        +[](bool* held) { return !*held; }, &held_));
    for (const auto& k : keys) (up_ ? owned_[k] : queued_[k]) = true;
  }
  void ForgetDeletes(const std::vector<std::string>& keys) override {
    absl::MutexLock lock(&mu_);
    for (const auto& k : keys) (up_ ? owned_[k] : queued_[k]) = false;
  }
  std::vector<ownership::Owner> Lookup(const std::vector<std::string>& keys) override {
    absl::MutexLock lock(&mu_);
    std::vector<ownership::Owner> out;
    for (const auto& k : keys) {
      if (backend_ == "none") {
        out.push_back(ownership::Owner::kOwned);
      } else if (auto q = queued_.find(k); !up_ && q != queued_.end()) {
        out.push_back(q->second ? ownership::Owner::kOwned : ownership::Owner::kNotOwned);
      } else if (!up_) {
        out.push_back(ownership::Owner::kUnknown);
      } else {
        out.push_back(owned_[k] ? ownership::Owner::kOwned : ownership::Owner::kNotOwned);
      }
    }
    return out;
  }

  void SetAvailable(bool up) {
    absl::MutexLock lock(&mu_);
    up_ = up;
    if (!up) return;
    for (const auto& [k, owned] : queued_) owned_[k] = owned;
    queued_.clear();
  }
  void HoldWrites(bool held) {
    absl::MutexLock lock(&mu_);
    held_ = held;
  }
  int record_calls() const {
    absl::MutexLock lock(&mu_);
    return record_calls_;
  }

 private:
  const std::string backend_;
  mutable absl::Mutex mu_;
  bool up_ ABSL_GUARDED_BY(mu_) = true;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  int record_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, bool> owned_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, bool> queued_ ABSL_GUARDED_BY(mu_);  // while down: latest op per key
};

class SyncerTest : public ::testing::Test {
 protected:
  SyncerTest() {
    config_.zk_servers = "fake:2181";
    config_.zk_prefixes = {"/app"};
    config_.name = "app";
    config_.inflight = 1;  // txns commit in submission order: "before" and "after" are exact
    config_.coalesce = std::chrono::milliseconds(0);
    config_.fullsync_interval = std::chrono::milliseconds(0);  // start-up and reconnects only
    config_.page_size = 3;                                     // several pages
    config_.concurrency = 4;
    etcd_owners_ = ownership::NewEtcdStore(config_.TaskMeta() + "owned");
    owners_ = etcd_owners_.get();
  }
  ~SyncerTest() override { Stop().IgnoreError(); }

  void Start() {
    syncer_ = std::make_unique<Syncer>(config_, &zk_, &etcd_, &etcd_, owners_, &stop_, &stats_);
    syncer_->set_leases(&etcd_);
    thread_ = std::thread([this] { result_ = syncer_->Run(); });
  }
  absl::Status Stop() {
    if (!thread_.joinable()) return result_;
    stop_.RequestStop();
    thread_.join();
    syncer_.reset();
    return result_;
  }
  // One --once run to completion.
  absl::Status RunOnce() {
    config::Zk2EtcdConfig c = config_;
    c.once = true;
    common::StopToken stop;
    Syncer syncer(c, &zk_, &etcd_, &etcd_, owners_, &stop, &stats_);
    return syncer.Run();
  }

  std::map<std::string, std::string> Mirror() const { return etcd_.Snapshot("/app"); }
  std::map<std::string, std::string> Tree() const { return zk_.Tree("/app"); }
  bool Mirrored() const { return Mirror() == Tree(); }
  // Replaces the etcd backend with a FakeOwners of `backend`.
  FakeOwners* UseFakeOwners(std::string backend) {
    fake_owners_ = std::make_unique<FakeOwners>(std::move(backend));
    owners_ = fake_owners_.get();
    return fake_owners_.get();
  }
  // An etcd key kvsync owns (with the etcd backend's mark), as an earlier run left it.
  void PutOwned(const std::string& key, const std::string& value) {
    etcd_.Put(key, value);
    etcd_.Put(etcd_owners_->MarkKey(key), "");
  }
  // The values kvsync's committed txns put into `key`, in commit order.
  std::vector<std::string> PutsOf(const std::string& key) const {
    std::vector<std::string> out;
    for (const auto& txn : etcd_.txns()) {
      if (!txn.succeeded) continue;
      for (const etcd::Op& op : txn.request.success) {
        if (op.type == etcd::Op::Type::kPut && op.key == key) out.push_back(op.value);
      }
    }
    return out;
  }
  // Every ZooKeeper result delivered so far has been handled by the applier and written: a
  // new znode goes the whole way (child event, listing, read, put), after everything before.
  void Barrier() {
    std::string path = "/app/barrier" + std::to_string(++barriers_);
    ASSERT_TRUE(zk_.Create(path, "b").ok());
    ASSERT_TRUE(Eventually([&] { return etcd_.Get(path).has_value(); })) << path;
  }

  FakeZk zk_;
  FakeEtcd etcd_;
  config::Zk2EtcdConfig config_;
  std::unique_ptr<ownership::Store> etcd_owners_;
  std::unique_ptr<FakeOwners> fake_owners_;  // outlives the engine (stopped in the destructor)
  ownership::Store* owners_;
  Stats stats_;
  common::StopToken stop_;
  std::unique_ptr<Syncer> syncer_;
  std::thread thread_;
  absl::Status result_;
  int barriers_ = 0;
};

// Baseline: the start-up sync copies the tree, then data changes, creates and deletes follow.
TEST_F(SyncerTest, MirrorsTheTreeAndFollowsChanges) {
  ASSERT_TRUE(zk_.CreateAll("/app/a", "1").ok());
  ASSERT_TRUE(zk_.CreateAll("/app/b/c", "2").ok());
  Start();
  ASSERT_TRUE(Eventually([&] { return Mirrored(); }));
  ASSERT_TRUE(zk_.Set("/app/a", "1b").ok());
  ASSERT_TRUE(zk_.Create("/app/b/d", "3").ok());
  ASSERT_TRUE(zk_.Delete("/app/b/c").ok());
  ASSERT_TRUE(Eventually([&] { return Mirrored(); }));
  EXPECT_EQ(Mirror().at("/app/a"), "1b");
  EXPECT_EQ(Mirror().count("/app/b/c"), 0u);
}

// A read of a znode answered before its delete but delivered after the delete's event is older
// than the tombstone and never puts the key back.
TEST_F(SyncerTest, LateReadOfADeletedIncarnationNeverResurrectsTheKey) {
  ASSERT_TRUE(zk_.CreateAll("/app/a", "1").ok());
  Start();
  ASSERT_TRUE(Eventually([&] { return Mirrored(); }));
  zk_.HoldNextReply("/app/a");
  ASSERT_TRUE(zk_.Set("/app/a", "2").ok());  // the engine reads it: the reply is held
  ASSERT_TRUE(Eventually([&] { return zk_.held_replies() == 1; }));
  ASSERT_TRUE(zk_.Delete("/app/a").ok());
  ASSERT_TRUE(Eventually([&] { return !etcd_.Get("/app/a").has_value(); }));
  ASSERT_EQ(zk_.ReleaseReplies(), 1);  // "2" arrives after the delete
  Barrier();
  EXPECT_FALSE(etcd_.Get("/app/a").has_value());
  EXPECT_EQ(PutsOf("/app/a"), std::vector<std::string>{"1"});
  EXPECT_TRUE(Mirrored());
}

// A late read of an older version of a live znode never overwrites the newer value.
TEST_F(SyncerTest, LateOlderReadNeverOverwritesANewerValue) {
  ASSERT_TRUE(zk_.CreateAll("/app/a", "1").ok());
  Start();
  ASSERT_TRUE(Eventually([&] { return Mirrored(); }));
  zk_.HoldNextReply("/app/a");
  ASSERT_TRUE(zk_.Set("/app/a", "2").ok());
  ASSERT_TRUE(Eventually([&] { return zk_.held_replies() == 1; }));
  ASSERT_TRUE(zk_.Set("/app/a", "3").ok());  // the held read re-armed the watch
  ASSERT_TRUE(Eventually([&] { return etcd_.Get("/app/a") == "3"; }));
  ASSERT_EQ(zk_.ReleaseReplies(), 1);
  Barrier();
  EXPECT_EQ(etcd_.Get("/app/a"), "3");
  EXPECT_EQ(PutsOf("/app/a"), (std::vector<std::string>{"1", "3"}));
}

// A znode deleted and created again (a newer czxid) is written, even with the same data, while
// the deleted incarnation's tombstone is still kept.
TEST_F(SyncerTest, RecreatedZnodeIsWritten) {
  ASSERT_TRUE(zk_.CreateAll("/app/a", "1").ok());
  Start();
  ASSERT_TRUE(Eventually([&] { return Mirrored(); }));
  zk_.PauseDelivery(true);  // the engine sees both changes after they happened
  ASSERT_TRUE(zk_.Delete("/app/a").ok());
  ASSERT_TRUE(zk_.Create("/app/a", "1").ok());
  zk_.PauseDelivery(false);
  ASSERT_TRUE(Eventually([&] { return PutsOf("/app/a").size() == 2; }));
  Barrier();
  EXPECT_EQ(etcd_.Get("/app/a"), "1");
  EXPECT_TRUE(Mirrored());
}

// A live read and a full-sync result of the same version put the key once: an equal version
// is not put again.
TEST_F(SyncerTest, EqualVersionIsNotPutAgain) {
  ASSERT_TRUE(zk_.CreateAll("/app/a", "1").ok());
  Start();
  ASSERT_TRUE(Eventually([&] { return Mirrored(); }));
  zk_.HoldNextReply("/app/a");
  ASSERT_TRUE(zk_.Set("/app/a", "2").ok());
  ASSERT_TRUE(Eventually([&] { return zk_.held_replies() == 1; }));
  // A reconnect's full sync walks the same version and puts it.
  zk_.Disconnect();
  zk_.Reconnect();
  ASSERT_TRUE(Eventually([&] { return etcd_.Get("/app/a") == "2"; }));
  ASSERT_TRUE(Eventually([&] { return stats_.reconnects.load() == 1; }));
  ASSERT_EQ(zk_.ReleaseReplies(), 1);  // the live read of that version arrives now
  Barrier();
  EXPECT_EQ(PutsOf("/app/a"), (std::vector<std::string>{"1", "2"}));
}

// The periodic full sync repairs only what two consecutive rounds see with the same kind: the
// first round fixes nothing, a difference that went away by itself or changed kind is not
// fixed, a new one in the second round waits, and the counters say so.
TEST_F(SyncerTest, PeriodicRepairFixesOnlyWhatTwoRoundsSee) {
  for (const char* p : {"/app/a", "/app/b", "/app/d"}) ASSERT_TRUE(zk_.CreateAll(p, "1").ok());
  config_.fullsync_interval = std::chrono::milliseconds(10);
  struct Seen {
    std::map<std::string, std::string> mirror;
    int64_t found_mismatch, found_dst_miss, fixed_mismatch, fixed_dst_miss;
  };
  absl::Mutex mu;
  std::map<int, Seen> seen;  // by walk: what the rounds before it left
  // Changes without notifications (lost watch events): only a full sync can find them. Walk
  // 1 is the start-up sync; walks 2 and 3 are the first periodic pair, each hooked after its
  // etcd snapshot was read.
  auto silently = [&](const std::string& path, const std::function<absl::Status()>& change) {
    zk_.DropWatches(path);
    zk_.DropWatches("/app");
    ASSERT_TRUE(change().ok()) << path;
  };
  zk_.SetWalkHook([&](int walk) {
    {
      absl::MutexLock lock(&mu);
      seen[walk] = Seen{Mirror(), stats_.found_mismatch.load(), stats_.found_dst_miss.load(),
                        stats_.fixed_mismatch.load(), stats_.fixed_dst_miss.load()};
    }
    if (walk == 2) {
      silently("/app/a", [&] { return zk_.Set("/app/a", "2"); });  // seen twice: fixed
      silently("/app/b", [&] { return zk_.Set("/app/b", "2"); });  // gone by round 2
      // dst miss now, a mismatch in round 2 (another writer put the key meanwhile).
      silently("/app/c", [&] { return zk_.Create("/app/c", "1"); });
      etcd_.Put("/app/c", "x");
    } else if (walk == 3) {
      silently("/app/b", [&] { return zk_.Set("/app/b", "1"); });
      silently("/app/d", [&] { return zk_.Set("/app/d", "2"); });  // new in round 2
    }
  });
  Start();
  ASSERT_TRUE(Eventually([&] {
    absl::MutexLock lock(&mu);
    return seen.contains(4);
  }));
  ASSERT_TRUE(Eventually([&] { return etcd_.Get("/app/a") == "2"; }));
  ASSERT_TRUE(Stop().ok());
  zk_.SetWalkHook(nullptr);
  absl::MutexLock lock(&mu);
  // Round 1 found a, b (mismatch) and c (dst miss), fixed nothing.
  EXPECT_EQ(seen[3].mirror.at("/app/a"), "1");
  EXPECT_EQ(seen[3].found_mismatch, 2);
  EXPECT_EQ(seen[3].found_dst_miss, 1);
  EXPECT_EQ(seen[3].fixed_mismatch + seen[3].fixed_dst_miss, 0);
  // Round 2 found a, c, d (mismatch) and fixed a only.
  EXPECT_EQ(seen[4].found_mismatch, 5);
  EXPECT_EQ(seen[4].found_dst_miss, 1);
  EXPECT_EQ(seen[4].fixed_mismatch, 1);
  EXPECT_EQ(seen[4].fixed_dst_miss, 0);
  EXPECT_EQ(seen[4].mirror.at("/app/b"), "1");
  EXPECT_EQ(seen[4].mirror.at("/app/c"), "x");
  EXPECT_EQ(seen[4].mirror.at("/app/d"), "1");
}

// A root the walk found missing protects its keys: the round deletes nothing, not even keys
// under the roots that were walked, and --once reports the hold.
TEST_F(SyncerTest, MissingRootDeletesNothing) {
  config_.zk_prefixes = {"/app", "/gone"};
  config_.max_delete_fraction = 1.0;  // only the missing root may hold
  ASSERT_TRUE(zk_.CreateAll("/app/a", "1").ok());
  PutOwned("/app/old", "o");
  PutOwned("/gone/x", "x");
  absl::Status s = RunOnce();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_EQ(etcd_.Get("/gone/x"), "x");
  EXPECT_EQ(etcd_.Get("/app/old"), "o");
  EXPECT_EQ(etcd_.Get("/app/a"), "1");  // the copy itself is not held
  EXPECT_EQ(stats_.deletes_held.load(), 2);
  EXPECT_EQ(stats_.missing_roots.load(), 1);
}

// Inferred deletes beyond --max-delete-fraction of the owned keys are all held; below it they
// are applied; --confirm-mass-delete lifts the hold.
TEST_F(SyncerTest, MassDeleteIsHeldUntilConfirmed) {
  config_.max_delete_fraction = 0.5;
  ASSERT_TRUE(zk_.CreateAll("/app", "").ok());
  for (int i = 0; i < 10; ++i) {
    PutOwned("/app/k" + std::to_string(i), "v");
    if (i < 9) {
      ASSERT_TRUE(zk_.Create("/app/k" + std::to_string(i), "v").ok());
    }
  }
  ASSERT_TRUE(RunOnce().ok());  // one of ten gone: a lost delete event, applied
  EXPECT_FALSE(etcd_.Get("/app/k9").has_value());

  for (int i = 2; i < 9; ++i) ASSERT_TRUE(zk_.Delete("/app/k" + std::to_string(i)).ok());
  absl::Status held = RunOnce();  // seven of ten owned: held, all of them
  EXPECT_TRUE(absl::IsFailedPrecondition(held)) << held;
  EXPECT_EQ(stats_.deletes_held.load(), 7);
  for (int i = 2; i < 9; ++i) EXPECT_TRUE(etcd_.Get("/app/k" + std::to_string(i)).has_value());

  config_.confirm_mass_delete = true;
  ASSERT_TRUE(RunOnce().ok());
  EXPECT_TRUE(Mirrored());
  EXPECT_EQ(stats_.deletes_held.load(), 0);
}

// While the ownership store cannot say who owns a key (Redis down), deletes wait instead of
// being dropped or applied, full-sync repairs pause, and once it is back the deletes resume:
// except for a znode created again meanwhile, whose key stays.
TEST_F(SyncerTest, UnknownOwnershipDefersDeletesUntilTheStoreIsBack) {
  FakeOwners& redis = *UseFakeOwners("redis");
  ASSERT_TRUE(zk_.CreateAll("/app/a", "1").ok());
  ASSERT_TRUE(zk_.CreateAll("/app/b", "1").ok());
  Start();
  ASSERT_TRUE(Eventually([&] { return Mirrored(); }));
  redis.SetAvailable(false);
  ASSERT_TRUE(zk_.Delete("/app/a").ok());
  ASSERT_TRUE(Eventually([&] { return stats_.deletes_deferred.load() == 1; }));
  ASSERT_TRUE(zk_.Delete("/app/b").ok());
  ASSERT_TRUE(Eventually([&] { return stats_.deletes_deferred.load() == 2; }));
  ASSERT_TRUE(zk_.Create("/app/b", "2").ok());  // recorded while down: owned
  ASSERT_TRUE(Eventually([&] { return etcd_.Get("/app/b") == "2"; }));
  EXPECT_EQ(etcd_.Get("/app/a"), "1");
  // A reconnect's full sync sees /app/a as a src miss it may not decide.
  zk_.Disconnect();
  zk_.Reconnect();
  ASSERT_TRUE(Eventually([&] { return stats_.repairs_paused.load() >= 1; }));
  EXPECT_EQ(etcd_.Get("/app/a"), "1");

  redis.SetAvailable(true);
  ASSERT_TRUE(Eventually([&] { return !etcd_.Get("/app/a").has_value(); }));
  ASSERT_TRUE(Eventually([&] { return stats_.deletes_deferred.load() == 0; }));
  Barrier();
  EXPECT_EQ(etcd_.Get("/app/b"), "2");
  EXPECT_TRUE(Mirrored());
}

// Changes dropped because the applier's inbox was full (a stuck writer) are made up for by a
// fixing full sync, which also re-arms the watches the dropped events carried.
TEST_F(SyncerTest, InboxOverflowIsFollowedByAFixingFullSync) {
  FakeOwners& none = *UseFakeOwners("none");
  config_.queue_bytes = 4096;  // a dozen results in the inbox, a few changes in the writer
  constexpr int kNodes = 60;
  // Values large enough that a few changes fill the writer's queue.
  auto value = [](int round) { return std::string(200, static_cast<char>('a' + round)); };
  for (int i = 0; i < kNodes; ++i) {
    ASSERT_TRUE(zk_.CreateAll("/app/n" + std::to_string(i), value(0)).ok());
  }
  Start();
  ASSERT_TRUE(Eventually([&] { return Mirrored(); }));
  ASSERT_EQ(stats_.common.full_syncs.load(), 1);
  none.HoldWrites(true);
  int calls = none.record_calls();
  for (int i = 0; i < kNodes; ++i) {
    ASSERT_TRUE(zk_.Set("/app/n" + std::to_string(i), value(1)).ok());
  }
  // The burst alone may overflow the inbox before the writer takes a batch; either way the
  // writer ends up held and the fixing full sync cannot finish until it is released.
  ASSERT_TRUE(Eventually([&] {
    return stats_.inbox_overflows.load() > 0 && stats_.resync_pending.load() == 1 &&
           none.record_calls() > calls;
  }));
  none.HoldWrites(false);
  ASSERT_TRUE(Eventually([&] { return Mirrored() && stats_.resync_pending.load() == 0; }));
  EXPECT_GE(stats_.common.full_syncs.load(), 2);
  // Every watch is armed again: later changes of every znode arrive.
  for (int i = 0; i < kNodes; ++i) {
    ASSERT_TRUE(zk_.Set("/app/n" + std::to_string(i), value(2)).ok());
  }
  ASSERT_TRUE(Eventually([&] { return Mirrored(); }));
}

// An expired session is replaced (a new id; ZooKeeper unreachable at first, retried) and a full
// sync catches up with what changed while no session watched.
TEST_F(SyncerTest, ExpiryOpensANewSessionAndResyncs) {
  ASSERT_TRUE(zk_.CreateAll("/app/a", "1").ok());
  ASSERT_TRUE(zk_.CreateAll("/app/b", "1").ok());
  Start();
  ASSERT_TRUE(Eventually([&] { return Mirrored(); }));
  int64_t first_id = stats_.session_id.load();
  zk_.FailNextOpen(absl::UnavailableError("injected: no server"));
  zk_.Expire();
  ASSERT_TRUE(zk_.Set("/app/a", "2").ok());  // no session watches these
  ASSERT_TRUE(zk_.Delete("/app/b").ok());
  ASSERT_TRUE(zk_.Create("/app/c", "3").ok());
  ASSERT_TRUE(Eventually([&] { return Mirrored(); }));
  EXPECT_EQ(stats_.session_expirations.load(), 1);  // one expiry, however many reopens
  EXPECT_EQ(zk_.sessions_opened(), 2);
  EXPECT_NE(stats_.session_id.load(), first_id);
  ASSERT_TRUE(zk_.Set("/app/c", "4").ok());  // the new session watches
  ASSERT_TRUE(Eventually([&] { return Mirrored(); }));
}

// A znode kvsync may not read (ACL) is skipped with its subtree, and the etcd keys under it
// are kept, never taken for src misses.
TEST_F(SyncerTest, UnreadableZnodeKeepsItsKeys) {
  config_.max_delete_fraction = 1.0;
  ASSERT_TRUE(zk_.CreateAll("/app/open", "1").ok());
  ASSERT_TRUE(zk_.CreateAll("/app/secret/x", "s").ok());
  zk_.Deny("/app/secret");
  PutOwned("/app/secret/x", "s");
  PutOwned("/app/gone", "g");
  ASSERT_TRUE(RunOnce().ok());
  EXPECT_EQ(etcd_.Get("/app/secret/x"), "s");
  EXPECT_FALSE(etcd_.Get("/app/gone").has_value());
  EXPECT_EQ(stats_.unreadable_znodes.load(), 1);
}

// The lease across runs: a restart adopts the recorded lease; a changed TTL gets a new lease
// and the copies move to it; without the option, copies on the recorded lease become plain
// keys (before that lease runs out), while a key put on another writer's lease is left alone
// (no rewrite in every round).
TEST_F(SyncerTest, EphemeralLeaseIsAdoptedMovedAndRetired) {
  ASSERT_TRUE(zk_.CreateAll("/app/svc", "").ok());
  ASSERT_TRUE(zk_.Create("/app/svc/p1", "a", 0x51).ok());
  ASSERT_TRUE(zk_.CreateAll("/app/theirs", "t").ok());
  absl::StatusOr<int64_t> theirs = etcd_.LeaseGrant(0, std::chrono::seconds(60));
  ASSERT_TRUE(theirs.ok());
  etcd_.Put("/app/theirs", "t", *theirs);  // claimed already (marked): equal, never rewritten
  etcd_.Put(etcd_owners_->MarkKey("/app/theirs"), "");
  auto lease_of = [&](const std::string& key) -> int64_t {
    auto r = etcd_.Range({.key = key});
    return r.ok() && !r->kvs.empty() ? r->kvs[0].lease : -1;
  };
  // One run with `ttl` until `done` holds, then a stop.
  auto run = [&](std::chrono::milliseconds ttl, const std::function<bool()>& done) {
    config::Zk2EtcdConfig c = config_;
    c.ephemeral_lease_ttl = ttl;
    common::StopToken stop;
    Stats stats;
    Syncer syncer(c, &zk_, &etcd_, &etcd_, owners_, &stop, &stats);
    syncer.set_leases(&etcd_);
    absl::Status result;
    std::thread thread([&] { result = syncer.Run(); });
    bool ok = Eventually([&] { return Mirrored() && done(); });
    stop.RequestStop();
    thread.join();
    EXPECT_TRUE(result.ok()) << result;
    return ok;
  };
  const std::string mark = etcd_owners_->MarkKey("/app/svc/p1");
  ASSERT_TRUE(run(std::chrono::hours(1), [&] { return lease_of("/app/svc/p1") > 0; }));
  int64_t first = lease_of("/app/svc/p1");
  ASSERT_TRUE(run(std::chrono::hours(1), [&] { return true; }));
  EXPECT_EQ(lease_of("/app/svc/p1"), first) << "a restart adopts the recorded lease";
  EXPECT_TRUE(PutsOf("/app/svc/p1").size() == 1u) << "nothing rewritten on adoption";
  ASSERT_TRUE(run(std::chrono::hours(2), [&] {
    int64_t now = lease_of("/app/svc/p1");
    return now > 0 && now != first && lease_of(mark) == now;
  })) << "a new TTL moves the copies to a new lease";
  ASSERT_TRUE(run(std::chrono::milliseconds(0), [&] {
    return lease_of("/app/svc/p1") == 0 && lease_of(mark) == 0;
  })) << "without the option the copies become plain keys";
  EXPECT_EQ(lease_of("/app/theirs"), *theirs) << "another writer's lease is left alone";
  EXPECT_TRUE(PutsOf("/app/theirs").empty());
}

// --ephemeral-lease-ttl: ephemeral copies (and their marks) go on the lease, persistent ones
// on none. When the cluster has lost the lease, the first txn that names it is refused; the
// writer gets a new lease, sends the txn again, and a fixing full sync puts back the copies
// that expired with the old one.
TEST_F(SyncerTest, ALostEphemeralLeaseIsReplacedAndItsCopiesPutBack) {
  // Renewals every 20 minutes: the writer, not the keep-alive, finds the lease gone.
  config_.ephemeral_lease_ttl = std::chrono::hours(1);
  ASSERT_TRUE(zk_.CreateAll("/app/svc", "").ok());
  ASSERT_TRUE(zk_.Create("/app/svc/p1", "a", 0x51).ok());
  auto lease_of = [&](const std::string& key) -> int64_t {
    auto r = etcd_.Range({.key = key});
    return r.ok() && !r->kvs.empty() ? r->kvs[0].lease : -1;
  };
  Start();
  ASSERT_TRUE(Eventually([&] { return Mirrored(); }));
  int64_t lease = lease_of("/app/svc/p1");
  EXPECT_GT(lease, 0);
  EXPECT_EQ(lease_of(etcd_owners_->MarkKey("/app/svc/p1")), lease);
  EXPECT_EQ(lease_of("/app/svc"), 0);
  etcd_.ExpireLease(lease);
  ASSERT_FALSE(etcd_.Get("/app/svc/p1").has_value());
  ASSERT_TRUE(zk_.Create("/app/svc/p2", "b", 0x51).ok());
  ASSERT_TRUE(Eventually([&] {
    return Mirrored() && stats_.ephemeral_lease.replaced.load() == 1 &&
           stats_.resync_pending.load() == 0;
  })) << "replaced "
      << stats_.ephemeral_lease.replaced.load();
  int64_t next = lease_of("/app/svc/p1");
  EXPECT_GT(next, 0);
  EXPECT_NE(next, lease);
  EXPECT_EQ(lease_of("/app/svc/p2"), next);
  EXPECT_EQ(stats_.ephemeral_lease.id.load(), next);
  EXPECT_TRUE(Stop().ok());
}

}  // namespace

}  // namespace kvsync::zk2etcd
