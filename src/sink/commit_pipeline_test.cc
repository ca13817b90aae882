// Unit tests of the chained pipeline against etcd::FakeEtcd behind a "network" that reorders,
// delays and loses answers: whatever order the txns reach the destination in, they apply in
// submission order, each exactly once, and the marker names the last one applied.
#include "sink/commit_pipeline.h"

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/stop_token.h"
#include "election/elector.h"
#include "etcd/fake_etcd.h"
#include "gtest/gtest.h"

namespace kvsync::sink {
namespace {

constexpr char kMarker[] = "/meta/checkpoint";

// Forwards txns to a FakeEtcd and records, for each applied one, the value it put at "k" in
// the order the destination applied them. Knobs: hold the first call until the second one has
// returned (a txn that overtakes its predecessor), jitter every call, or apply a call and then
// answer Unavailable (an ambiguous timeout).
class Network : public etcd::TxnApi {
 public:
  explicit Network(etcd::FakeEtcd* dst) : dst_(dst) {}

  absl::StatusOr<etcd::TxnResponse> Txn(const etcd::TxnRequest& request) override {
    int call = 0;
    {
      absl::MutexLock lock(&mu_);
      call = ++calls_;
    }
    if (hold_first && call == 1) {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](int* returned) { return *returned >= 1; }, &returned_));
    }
    if (jitter) {
      thread_local std::mt19937 rng(std::hash<std::thread::id>()(std::this_thread::get_id()));
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
    }
    auto resp = dst_->Txn(request);
    {
      absl::MutexLock lock(&mu_);
      ++returned_;
      if (resp.ok() && resp->succeeded && !resp->nested_succeeded.empty() &&
          resp->nested_succeeded[0]) {
        for (const etcd::Op& op : request.success[0].txn->success) {
          if (op.key == "k") applied_[resp->header.revision] = std::stoi(op.value);
        }
      }
      if (resp.ok() && ambiguous_every > 0 && call % ambiguous_every == 0) {
        return absl::UnavailableError("reply lost");
      }
    }
    return resp;
  }

  // Values of "k" in the order the destination applied them.
  std::vector<int> applied() const {
    absl::MutexLock lock(&mu_);
    std::vector<int> out;
    for (const auto& [revision, value] : applied_) out.push_back(value);
    return out;
  }

  bool hold_first = false;
  bool jitter = false;
  int ambiguous_every = 0;

 private:
  etcd::FakeEtcd* dst_;
  mutable absl::Mutex mu_;
  int calls_ = 0;
  int returned_ = 0;
  std::map<int64_t, int> applied_;
};

std::vector<int> OneTo(int n) {
  std::vector<int> v(n);
  for (int i = 0; i < n; ++i) v[i] = i + 1;
  return v;
}

struct Fixture {
  etcd::FakeEtcd dst;
  Network net{&dst};
  common::StopToken stop;
  WriteStats stats;
  TxnWriter writer{&net, &stop, &stats, "test"};

  absl::Status Run(int txns, int inflight) {
    CommitPipeline pipeline(&writer, &dst, &stop, &stats, kMarker, inflight);
    if (absl::Status s = pipeline.Start(); !s.ok()) return s;
    for (int i = 1; i <= txns; ++i) {
      auto seq = pipeline.Submit({etcd::Op::Put("k", std::to_string(i))}, "cp" + std::to_string(i));
      if (!seq.ok()) return seq.status();
      EXPECT_EQ(*seq, i);
    }
    absl::Status s = pipeline.Drain();
    if (s.ok()) {
      EXPECT_EQ(pipeline.committed(), txns);
    }
    return s;
  }
};

TEST(CommitPipelineTest, AppliesEveryTxnOnceInOrder) {
  Fixture f;
  f.dst.Put(kMarker, "before");  // the chain starts from the marker's current version
  ASSERT_TRUE(f.Run(300, 8).ok());
  EXPECT_EQ(f.net.applied(), OneTo(300));
  EXPECT_EQ(f.dst.Get(kMarker), "cp300");
  EXPECT_EQ(f.stats.txns_inflight.load(), 0);
}

TEST(CommitPipelineTest, ATxnThatOvertakesItsPredecessorIsSentAgainInOrder) {
  Fixture f;
  f.net.hold_first = true;  // txn 1 reaches the destination only after txn 2 came back
  ASSERT_TRUE(f.Run(20, 4).ok());
  EXPECT_EQ(f.net.applied(), OneTo(20));
  EXPECT_GE(f.stats.txn_resends.load(), 1);
  EXPECT_EQ(f.dst.Get(kMarker), "cp20");
}

TEST(CommitPipelineTest, JitteredNetworkNeverReordersTheDestination) {
  Fixture f;
  f.net.jitter = true;
  ASSERT_TRUE(f.Run(400, 16).ok());
  EXPECT_EQ(f.net.applied(), OneTo(400));
  EXPECT_EQ(f.dst.Get(kMarker), "cp400");
}

TEST(CommitPipelineTest, AnAmbiguousTimeoutIsSettledWithoutApplyingTwice) {
  Fixture f;
  f.net.ambiguous_every = 3;  // applied, but the answer is lost: TxnWriter retries
  f.net.jitter = true;
  ASSERT_TRUE(f.Run(60, 4).ok());
  EXPECT_EQ(f.net.applied(), OneTo(60));
}

TEST(CommitPipelineTest, SomeoneElseWritingTheMarkerStopsThePipeline) {
  Fixture f;
  CommitPipeline pipeline(&f.writer, &f.dst, &f.stop, &f.stats, kMarker, 4);
  ASSERT_TRUE(pipeline.Start().ok());
  ASSERT_TRUE(pipeline.Submit({etcd::Op::Put("k", "1")}, "cp1").ok());
  ASSERT_TRUE(pipeline.Drain().ok());
  f.dst.Put(kMarker, "someone else");
  ASSERT_TRUE(pipeline.Submit({etcd::Op::Put("k", "2")}, "cp2").ok());
  absl::Status s = pipeline.Drain();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_EQ(pipeline.committed(), 1);
  EXPECT_EQ(f.dst.Get("k"), "1");
  EXPECT_FALSE(pipeline.Submit({etcd::Op::Put("k", "3")}, "cp3").ok());
}

TEST(CommitPipelineTest, AFailedFenceIsReportedAsFencedAndWritesNothing) {
  Fixture f;
  etcd::Compare fence;
  fence.key = "/election/leader";
  fence.target = etcd::Compare::Target::kCreateRevision;
  fence.number = 42;  // no such key: the fence fails
  f.writer.set_fence({fence});
  absl::Status s = f.Run(5, 4);
  EXPECT_TRUE(election::IsFenced(s)) << s;
  EXPECT_FALSE(f.dst.Get("k").has_value());
}

TEST(CommitPipelineTest, AStopEndsTheRunCancelled) {
  Fixture f;
  f.dst.FailNext(etcd::FakeEtcd::Call::kTxn, 1000000, absl::UnavailableError("down"));
  CommitPipeline pipeline(&f.writer, &f.dst, &f.stop, &f.stats, kMarker, 2);
  ASSERT_TRUE(pipeline.Start().ok());
  ASSERT_TRUE(pipeline.Submit({etcd::Op::Put("k", "1")}, "cp1").ok());
  f.stop.RequestStop();
  EXPECT_TRUE(absl::IsCancelled(pipeline.Drain()));
  EXPECT_EQ(pipeline.committed(), 0);
}

}  // namespace
}  // namespace kvsync::sink
