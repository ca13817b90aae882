// Unit tests of FakeEtcd itself: the MVCC reads, txn rules, compaction and watch behaviour
// that engine tests rely on match etcd's.
#include "etcd/fake_etcd.h"

#include "absl/strings/str_cat.h"
#include "etcd/names.h"
#include "gtest/gtest.h"

namespace kvsync::etcd {
namespace {

RangeRequest Prefix(const std::string& prefix, int64_t revision = 0) {
  RangeRequest req;
  req.key = prefix;
  req.range_end = prefix.substr(0, prefix.size() - 1) + static_cast<char>(prefix.back() + 1);
  req.revision = revision;
  return req;
}

// Reads at a past revision see that revision's values, create/mod revisions and versions.
TEST(FakeEtcdTest, RangeReadsHistoryWithRevisionsAndVersions) {
  FakeEtcd etcd;
  EXPECT_EQ(etcd.Put("/a/1", "x"), 2);
  EXPECT_EQ(etcd.Put("/a/1", "y"), 3);
  EXPECT_EQ(etcd.Put("/a/2", "z"), 4);
  EXPECT_EQ(etcd.Delete("/a/2"), 5);
  EXPECT_EQ(etcd.Delete("/a/2"), 5);  // nothing deleted: no new revision
  auto now = etcd.Range(Prefix("/a/"));
  ASSERT_TRUE(now.ok());
  ASSERT_EQ(now->kvs.size(), 1u);
  EXPECT_EQ(now->kvs[0].value, "y");
  EXPECT_EQ(now->kvs[0].create_revision, 2);
  EXPECT_EQ(now->kvs[0].mod_revision, 3);
  EXPECT_EQ(now->kvs[0].version, 2);
  EXPECT_EQ(now->header.revision, 5);
  auto past = etcd.Range(Prefix("/a/", 4));
  ASSERT_TRUE(past.ok());
  EXPECT_EQ(past->count, 2);
  auto modified = Prefix("/a/", 4);
  modified.min_mod_revision = 4;
  EXPECT_EQ(etcd.Range(modified)->kvs.size(), 1u);
  EXPECT_EQ(etcd.Range(Prefix("/a/", 6)).status().code(), absl::StatusCode::kOutOfRange);
}

// Reads below the compacted revision fail as the real client reports them; at it they work.
TEST(FakeEtcdTest, CompactedReadsAndWatchesAreRecognisable) {
  FakeEtcd etcd;
  etcd.Put("/a/1", "x");
  etcd.Put("/a/1", "y");
  etcd.Compact(3);
  EXPECT_TRUE(IsCompacted(etcd.Range(Prefix("/a/", 2)).status()));
  EXPECT_TRUE(etcd.Range(Prefix("/a/", 3)).ok());
  WatchOptions wo;
  wo.key = "/a/";
  wo.range_end = "/a0";
  wo.start_revision = 2;
  auto stream = etcd.Watch(wo);
  ASSERT_TRUE(stream.ok());
  EXPECT_TRUE((*stream)->Next()->created);
  absl::StatusOr<WatchResponse> next = (*stream)->Next();
  EXPECT_TRUE(IsCompacted(next.status())) << next.status();
  EXPECT_EQ(CompactRevision(next.status()), 3);
}

// Txns apply one branch at one revision and are refused as etcd refuses them.
TEST(FakeEtcdTest, TxnAppliesAtomicallyAndRefusesWhatEtcdRefuses) {
  FakeEtcd::Options options;
  options.max_txn_ops = 2;
  FakeEtcd etcd(options);
  TxnRequest txn;
  txn.success = {Op::Put("/k1", "a"), Op::Put("/k2", "b")};
  auto resp = etcd.Txn(txn);
  ASSERT_TRUE(resp.ok());
  EXPECT_TRUE(resp->succeeded);
  EXPECT_EQ(resp->header.revision, 2);
  txn.success.push_back(Op::Put("/k3", "c"));
  EXPECT_TRUE(IsRequestTooLarge(etcd.Txn(txn).status()));
  TxnRequest dup;
  dup.success = {Op::Put("/k1", "a"), Op::Put("/k1", "b")};
  EXPECT_EQ(etcd.Txn(dup).status().code(), absl::StatusCode::kInvalidArgument);
  TxnRequest guarded;
  guarded.compares = {Compare{"/k1", Compare::Target::kModRevision, Compare::Result::kEqual, 1}};
  guarded.success = {Op::Delete("/k1")};
  resp = etcd.Txn(guarded);
  ASSERT_TRUE(resp.ok());
  EXPECT_FALSE(resp->succeeded);
  EXPECT_EQ(etcd.Get("/k1"), "a");
  EXPECT_EQ(etcd.txns().size(), 2u);
}

// A watch replays history from its start revision, then delivers one response per revision;
// etcd's own progress follows pending events.
TEST(FakeEtcdTest, WatchReplaysThenDeliversPerRevisionInRange) {
  FakeEtcd etcd;
  etcd.Put("/a/1", "x");  // 2
  etcd.Put("/b/1", "x");  // 3: out of range
  WatchOptions wo;
  wo.key = "/a/";
  wo.range_end = "/a0";
  wo.start_revision = 2;
  auto stream = std::move(etcd.Watch(wo)).value();
  EXPECT_TRUE(stream->Next()->created);
  auto replay = stream->Next();
  ASSERT_TRUE(replay.ok());
  ASSERT_EQ(replay->events.size(), 1u);
  EXPECT_EQ(replay->events[0].kv.mod_revision, 2);
  TxnRequest txn;
  txn.success = {Op::Put("/a/2", "y"), Op::Delete("/a/1")};
  ASSERT_TRUE(etcd.Txn(txn).ok());  // 4
  etcd.SendProgress();
  auto live = stream->Next();
  ASSERT_TRUE(live.ok());
  ASSERT_EQ(live->events.size(), 2u);
  EXPECT_EQ(live->events[1].type, Event::Type::kDelete);
  EXPECT_EQ(live->events[1].kv.mod_revision, 4);
  auto progress = stream->Next();
  ASSERT_TRUE(progress.ok());
  EXPECT_TRUE(progress->IsProgressNotify());
  EXPECT_EQ(progress->header.revision, 4);
}

// A requested progress notification overtakes held events on old releases only.
TEST(FakeEtcdTest, RequestedProgressOvertakesHeldEventsOnlyOnOldReleases) {
  for (const char* version : {"3.4.23", "3.5.9"}) {
    FakeEtcd::Options options;
    options.version = version;
    FakeEtcd etcd(options);
    WatchOptions wo;
    wo.key = "/a/";
    wo.range_end = "/a0";
    auto stream = std::move(etcd.Watch(wo)).value();
    EXPECT_TRUE(stream->Next()->created);
    etcd.HoldWatches(true);
    etcd.Put("/a/1", "x");
    ASSERT_TRUE(stream->RequestProgress().ok());
    etcd.HoldWatches(false);
    auto first = stream->Next();
    ASSERT_TRUE(first.ok());
    EXPECT_EQ(first->IsProgressNotify(), std::string(version) == "3.4.23") << version;
    EXPECT_EQ(etcd.progress_requests(), 1);
  }
}

// Faults: failed calls do nothing; a cancelled watch ends with the given status.
TEST(FakeEtcdTest, InjectedFaultsFailCallsAndEndStreams) {
  FakeEtcd etcd;
  etcd.FailNext(FakeEtcd::Call::kTxn, 1, absl::UnavailableError("down"));
  TxnRequest txn;
  txn.success = {Op::Put("/k", "v")};
  EXPECT_EQ(etcd.Txn(txn).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(etcd.Get("/k").has_value());
  EXPECT_TRUE(etcd.Txn(txn).ok());
  WatchOptions wo;
  wo.key = "/k";
  auto stream = std::move(etcd.Watch(wo)).value();
  EXPECT_TRUE(stream->Next()->created);
  etcd.CancelWatches(WatchCanceledError("etcdserver: permission denied", "watch"));
  EXPECT_TRUE(IsRefused(stream->Next().status()));
  EXPECT_TRUE(IsRefused(stream->Next().status()));  // sticky
}

// Leases as etcd has them: a requested ID is granted once (IsLeaseExists after), a txn putting
// a key on an unknown lease fails whole (IsLeaseNotFound), a revoke deletes the attached keys in
// one revision, and a keep-alive of an unknown lease answers TTL 0.
TEST(FakeEtcdTest, LeasesAreGrantedOnceAndTakeTheirKeysWithThem) {
  FakeEtcd etcd;
  ASSERT_EQ(*etcd.LeaseGrant(0x42, std::chrono::seconds(10)), 0x42);
  EXPECT_TRUE(IsLeaseExists(etcd.LeaseGrant(0x42, std::chrono::seconds(10)).status()));
  EXPECT_EQ(etcd.LeaseTimeToLive(0x42)->granted_ttl, 10);
  EXPECT_FALSE(etcd.LeaseTimeToLive(0x43)->exists());
  TxnRequest txn;
  Op on_unknown = Op::Put("/a", "1");
  on_unknown.lease = 0x43;
  txn.success = {Op::Put("/b", "2"), on_unknown};
  EXPECT_TRUE(IsLeaseNotFound(etcd.Txn(txn).status()));
  EXPECT_FALSE(etcd.Get("/b").has_value());
  etcd.Put("/a", "1", 0x42);
  etcd.Put("/c", "3");
  const int64_t before = etcd.revision();
  ASSERT_TRUE(etcd.LeaseRevoke(0x42).ok());
  EXPECT_EQ(etcd.revision(), before + 1);
  EXPECT_FALSE(etcd.Get("/a").has_value());
  EXPECT_EQ(etcd.Get("/c"), "3");
  EXPECT_TRUE(IsLeaseNotFound(etcd.LeaseRevoke(0x42)));
  auto renewed = etcd.LeaseKeepAlive({0x42});
  ASSERT_TRUE(renewed.ok());
  EXPECT_EQ((*renewed)[0].ttl, 0);
}

// Counts the keys each Range returns (ListNames below must not read a name's keys).
class CountingKv : public KvApi {
 public:
  explicit CountingKv(KvApi* inner) : inner_(inner) {}
  absl::StatusOr<RangeResponse> Range(const RangeRequest& request) override {
    auto resp = inner_->Range(request);
    if (resp.ok()) keys_read += static_cast<int64_t>(resp->kvs.size());
    ++calls;
    return resp;
  }
  const std::string& label() const override { return inner_->label(); }
  int64_t calls = 0;
  int64_t keys_read = 0;

 private:
  KvApi* inner_;
};

// The names under a prefix: first path segments, sorted, each once, names whose keys sort
// around another's ("a-b/" before "a/") included, and one read per name however many keys.
TEST(ListNamesTest, SkipsOverEachNamesKeys) {
  FakeEtcd etcd;
  for (int i = 0; i < 1000; ++i) etcd.Put(absl::StrCat("/m/a/owned/", i), "");
  etcd.Put("/m/a/checkpoint", "");
  etcd.Put("/m/a", "");  // a key that is the name itself
  etcd.Put("/m/a-b/checkpoint", "");
  etcd.Put("/m/zk-sessions/0001", "");
  etcd.Put("/m//odd", "");  // empty segment: no name
  etcd.Put("/n/other", "");
  CountingKv kv(&etcd);
  auto names = ListNames(&kv, "/m/");
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_EQ(*names, (std::vector<std::string>{"a", "a-b", "zk-sessions"}));
  EXPECT_LE(kv.keys_read, 6);
  EXPECT_LE(kv.calls, 6);
  EXPECT_TRUE(ListNames(&kv, "/empty/")->empty());
}

}  // namespace
}  // namespace kvsync::etcd
