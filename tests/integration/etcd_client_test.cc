// The etcd client layer against a real etcd 3.4: paging, watch resume and compaction
// detection, progress requests, leases, election, endpoint failover.
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "etcd/client.h"
#include "gtest/gtest.h"
#include "tests/harness/etcd_cluster.h"
#include "tests/harness/wait.h"

namespace kvsync::etcd {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class EtcdClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = kvsync::testing::EtcdCluster::Start({});
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = std::move(*c);
    client_ = Make(cluster_->endpoints());
  }
  std::unique_ptr<Client> Make(std::vector<std::string> endpoints) {
    ClientOptions o;
    o.endpoints = std::move(endpoints);
    o.request_timeout = milliseconds(3000);
    o.dial_timeout = milliseconds(2000);
    auto c = Client::Create(o);
    EXPECT_TRUE(c.ok()) << c.status();
    return std::move(*c);
  }
  std::unique_ptr<kvsync::testing::EtcdCluster> cluster_;
  std::unique_ptr<Client> client_;
};

// Paged ranges at one revision see the snapshot even while keys change.
TEST_F(EtcdClientTest, PagedRangeAtPinnedRevision) {
  for (int i = 0; i < 25; ++i) ASSERT_TRUE(client_->Put(absl::StrFormat("/p/%02d", i), "v").ok());
  RangeRequest r;
  r.key = "/p/";
  r.range_end = "/p0";
  r.limit = 10;
  auto first = client_->Range(r);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->kvs.size(), 10u);
  EXPECT_TRUE(first->more);
  ASSERT_TRUE(client_->Delete("/p/24").ok());
  r.revision = first->header.revision;
  r.limit = 0;
  r.key = first->kvs.back().key + std::string(1, '\0');
  auto rest = client_->Range(r);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(rest->kvs.size(), 15u);  // the deleted key is still in the pinned snapshot
  EXPECT_EQ(rest->kvs.back().key, "/p/24");
}

// A watch resumes from a past revision, and a compacted start revision is recognisable.
TEST_F(EtcdClientTest, WatchResumesAndDetectsCompaction) {
  auto h1 = client_->Put("/w/a", "1");
  ASSERT_TRUE(h1.ok());
  ASSERT_TRUE(client_->Put("/w/b", "2").ok());
  ASSERT_TRUE(client_->Delete("/w/a").ok());
  Client::WatchOptions wo;
  wo.key = "/w/";
  wo.range_end = "/w0";
  wo.start_revision = h1->revision;
  auto watch = client_->Watch(wo);
  ASSERT_TRUE(watch.ok());
  std::vector<std::pair<Event::Type, std::string>> seen;
  while (seen.size() < 3) {
    auto resp = (*watch)->Next();
    ASSERT_TRUE(resp.ok()) << resp.status();
    for (auto& e : resp->events) seen.emplace_back(e.type, e.kv.key);
  }
  EXPECT_EQ(seen[0].second, "/w/a");
  EXPECT_EQ(seen[2].first, Event::Type::kDelete);

  auto head = client_->Put("/w/c", "3");
  ASSERT_TRUE(head.ok());
  ASSERT_TRUE(client_->Compact(head->revision).ok());
  auto old = client_->Watch(wo);
  ASSERT_TRUE(old.ok());
  absl::Status s;
  while (s.ok()) {
    auto resp = (*old)->Next();
    s = resp.status();
  }
  EXPECT_TRUE(IsCompacted(s)) << s;
  EXPECT_EQ(CompactRevision(s), head->revision);
  RangeRequest r;
  r.key = "/w/";
  r.range_end = "/w0";
  r.revision = h1->revision;
  EXPECT_TRUE(IsCompacted(client_->Range(r).status()));
}

// A requested progress notification reports a revision at or past the last write.
TEST_F(EtcdClientTest, ProgressRequestReportsHeadRevision) {
  Client::WatchOptions wo;
  wo.key = "/quiet/";
  wo.range_end = "/quiet0";
  auto watch = client_->Watch(wo);
  ASSERT_TRUE(watch.ok());
  auto created = (*watch)->Next();
  ASSERT_TRUE(created.ok() && created->created);
  auto other = client_->Put("/elsewhere", "x");
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*watch)->RequestProgress().ok());
  auto progress = (*watch)->Next();
  ASSERT_TRUE(progress.ok()) << progress.status();
  EXPECT_TRUE(progress->IsProgressNotify());
  EXPECT_GE(progress->header.revision, other->revision);
}

// Leases: grant, keep alive, revoke deletes attached keys.
TEST_F(EtcdClientTest, LeaseLifecycle) {
  auto lease = client_->LeaseGrant(seconds(10));
  ASSERT_TRUE(lease.ok()) << lease.status();
  ASSERT_TRUE(client_->Put("/lease/k", "v", *lease).ok());
  auto ttl = client_->LeaseKeepAliveOnce(*lease);
  ASSERT_TRUE(ttl.ok()) << ttl.status();
  EXPECT_GT(*ttl, 0);
  ASSERT_TRUE(client_->LeaseRevoke(*lease).ok());
  RangeRequest r;
  r.key = "/lease/k";
  auto resp = client_->Range(r);
  ASSERT_TRUE(resp.ok());
  EXPECT_TRUE(resp->kvs.empty());
}

// The calls lease-aware mirroring makes, against real etcd: a grant with a requested ID (and
// its "already exists" refusal), time-to-live with the granted TTL (-1 once gone), the lease
// list, keep-alives of more leases than one chunk of the stream (512) with a gone one among
// them (TTL 0), and the classified "lease not found" of a put and a revoke.
TEST_F(EtcdClientTest, LeaseCallsOfLeaseMirroring) {
  constexpr int64_t kId = 0x1000000000000001;
  ASSERT_EQ(*client_->LeaseGrant(kId, seconds(20)), kId);
  EXPECT_TRUE(IsLeaseExists(client_->LeaseGrant(kId, seconds(20)).status()));
  auto info = client_->LeaseTimeToLive(kId);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->granted_ttl, 20);
  EXPECT_GT(info->ttl, 0);
  EXPECT_GT(info->header.revision, 0);
  std::vector<int64_t> ids = {kId};
  for (int i = 0; i < 600; ++i) ids.push_back(*client_->LeaseGrant(seconds(30)));
  auto listed = client_->LeaseLeases();
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->size(), ids.size());
  ASSERT_TRUE(client_->LeaseRevoke(ids[300]).ok());
  auto renewed = client_->LeaseKeepAlive(ids);
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  ASSERT_EQ(renewed->size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ((*renewed)[i].id, ids[i]);
    EXPECT_EQ((*renewed)[i].ttl > 0, i != 300) << i;
  }
  EXPECT_FALSE(client_->LeaseTimeToLive(ids[300])->exists());
  EXPECT_TRUE(IsLeaseNotFound(client_->LeaseRevoke(ids[300])));
  TxnRequest txn;
  Op put = Op::Put("/lease/gone", "v");
  put.lease = ids[300];
  txn.success.push_back(put);
  EXPECT_TRUE(IsLeaseNotFound(client_->Txn(txn).status()));
}

// Election: the first campaigner leads, a second waits until the first resigns.
TEST_F(EtcdClientTest, ElectionCampaignLeaderResign) {
  auto l1 = client_->LeaseGrant(seconds(10));
  auto l2 = client_->LeaseGrant(seconds(10));
  ASSERT_TRUE(l1.ok() && l2.ok());
  auto leader = client_->Campaign("/kvsync/meta/t/election", *l1, "a", seconds(5));
  ASSERT_TRUE(leader.ok()) << leader.status();
  auto current = client_->Leader("/kvsync/meta/t/election");
  ASSERT_TRUE(current.ok());
  EXPECT_EQ(current->value, "a");
  EXPECT_EQ(current->create_revision, leader->revision);
  // While "a" leads, "b" cannot win within a short deadline.
  EXPECT_FALSE(client_->Campaign("/kvsync/meta/t/election", *l2, "b", milliseconds(300)).ok());
  ASSERT_TRUE(client_->Resign(*leader).ok());
  // A new lease for the real campaign: etcd deletes the timed-out candidate's key after the
  // call returns, which could remove a key re-adopted with the same lease.
  auto l3 = client_->LeaseGrant(seconds(10));
  ASSERT_TRUE(l3.ok());
  auto second = client_->Campaign("/kvsync/meta/t/election", *l3, "b", seconds(5));
  ASSERT_TRUE(second.ok()) << second.status();
  auto now = client_->Leader("/kvsync/meta/t/election");
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_EQ(now->value, "b");

  // A campaign blocked behind "b" returns Cancelled as soon as its cancel token stops.
  auto l4 = client_->LeaseGrant(seconds(10));
  ASSERT_TRUE(l4.ok());
  common::StopToken cancel;
  std::thread stopper([&] { cancel.RequestStop(); });
  auto blocked = client_->Campaign("/kvsync/meta/t/election", *l4, "c", seconds(60), &cancel);
  stopper.join();
  EXPECT_EQ(blocked.status().code(), absl::StatusCode::kCancelled) << blocked.status();
}

// A dead endpoint listed first is skipped: calls fail over to the live one.
TEST_F(EtcdClientTest, FailsOverFromDeadEndpoint) {
  int dead = kvsync::testing::FreePort();
  auto c = Make({absl::StrCat("127.0.0.1:", dead), cluster_->endpoint(0)});
  auto header = c->Connect();
  ASSERT_TRUE(header.ok()) << header.status();
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(c->Put(absl::StrCat("/f/", i), "v").ok());
  RangeRequest r;
  r.key = "/f/";
  r.range_end = "/f0";
  EXPECT_EQ(c->Range(r)->kvs.size(), 5u);

  auto only_dead = Make({absl::StrCat("127.0.0.1:", dead)});
  auto s = only_dead->Connect();
  EXPECT_EQ(s.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(s.status().message().find("cannot reach etcd at 127.0.0.1:"), std::string::npos)
      << s.status();
}

// Nested txns (request_txn) run their own compares: inside one outer txn a guarded delete whose
// mark is missing leaves its key, one whose mark exists deletes key and mark, and the response
// reports each nested outcome in order.
TEST_F(EtcdClientTest, NestedTxnGuardsEachOpSeparately) {
  ASSERT_TRUE(client_->Put("/n/foreign", "v").ok());
  ASSERT_TRUE(client_->Put("/n/owned", "v").ok());
  ASSERT_TRUE(client_->Put("/m/owned", "").ok());
  auto guarded_delete = [](const std::string& key, const std::string& mark) {
    TxnRequest inner;
    inner.compares.push_back(
        Compare{mark, Compare::Target::kVersion, Compare::Result::kGreater, 0, ""});
    inner.success = {Op::Delete(key), Op::Delete(mark)};
    return Op::Txn(std::move(inner));
  };
  TxnRequest outer;
  outer.success = {guarded_delete("/n/foreign", "/m/foreign"), Op::Put("/n/plain", "p"),
                   guarded_delete("/n/owned", "/m/owned")};
  EXPECT_GT(outer.ByteSize(), outer.success[1].ByteSize() * 2);
  auto resp = client_->Txn(outer);
  ASSERT_TRUE(resp.ok()) << resp.status();
  EXPECT_TRUE(resp->succeeded);
  EXPECT_EQ(resp->nested_succeeded, (std::vector<bool>{false, true}));

  auto count = [&](const std::string& key) {
    RangeRequest r;
    r.key = key;
    auto got = client_->Range(r);
    EXPECT_TRUE(got.ok()) << got.status();
    return got.ok() ? got->kvs.size() : size_t{99};
  };
  EXPECT_EQ(count("/n/foreign"), 1u);
  EXPECT_EQ(count("/n/plain"), 1u);
  EXPECT_EQ(count("/n/owned"), 0u);
  EXPECT_EQ(count("/m/owned"), 0u);

  // A nested txn in the failure branch is reported when the outer compare fails.
  TxnRequest failing;
  failing.compares.push_back(
      Compare{"/n/absent", Compare::Target::kVersion, Compare::Result::kGreater, 0, ""});
  failing.failure = {guarded_delete("/n/foreign", "/m/foreign")};
  resp = client_->Txn(failing);
  ASSERT_TRUE(resp.ok()) << resp.status();
  EXPECT_FALSE(resp->succeeded);
  EXPECT_EQ(resp->nested_succeeded, (std::vector<bool>{false}));
}

}  // namespace
}  // namespace kvsync::etcd
