// Unit tests of the shared write path against a fake destination: atomic commits with the
// marker, the split of a txn the destination finds too large (marker last), the fence, the
// refusal of a single op the destination never accepts, and transient retries.
#include <deque>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "common/stop_token.h"
#include "election/elector.h"
#include "gtest/gtest.h"
#include "sink/txn_writer.h"

namespace kvsync::sink {
namespace {

// Applies txns to a map, refusing more than `max_ops` ops or values above `max_value` bytes
// the way etcd does, failing every compare when `fenced`, and answering the first queued
// errors before any of that.
class FakeDestination : public etcd::TxnApi {
 public:
  absl::StatusOr<etcd::TxnResponse> Txn(const etcd::TxnRequest& request) override {
    calls++;
    if (!errors.empty()) {
      absl::Status s = errors.front();
      errors.pop_front();
      return s;
    }
    if (request.success.size() > max_ops) {
      return etcd::RequestTooLargeError("etcdserver: too many operations in txn request");
    }
    for (const etcd::Op& op : request.success) {
      if (op.value.size() > max_value) {
        return etcd::RequestTooLargeError("etcdserver: request is too large");
      }
    }
    etcd::TxnResponse resp;
    resp.header.revision = ++revision;
    if (fenced) return resp;  // succeeded = false
    resp.succeeded = true;
    std::vector<std::string> keys;
    for (const etcd::Op& op : request.success) keys.push_back(op.key);
    committed.push_back(keys);
    return resp;
  }

  size_t max_ops = 1000;
  size_t max_value = 1 << 20;
  bool fenced = false;
  std::deque<absl::Status> errors;
  int calls = 0;
  int64_t revision = 0;
  std::vector<std::vector<std::string>> committed;  // keys of each committed txn, in order
};

std::vector<etcd::Op> Puts(int n) {
  std::vector<etcd::Op> ops;
  ops.reserve(n);
  for (int i = 0; i < n; ++i) ops.push_back(etcd::Op::Put("k" + std::to_string(i), "v"));
  return ops;
}

TEST(TxnWriterTest, CommitsOpsAndMarkerAtomicallyAndCounts) {
  FakeDestination dst;
  common::StopToken stop;
  WriteStats stats;
  TxnWriter writer(&dst, &stop, &stats, "test");
  std::vector<etcd::Op> ops = Puts(2);
  ops.push_back(etcd::Op::Delete("gone"));
  int64_t revision = 0;
  ASSERT_TRUE(writer.Commit(ops, etcd::Op::Put("marker", "1"), &revision).ok());
  ASSERT_EQ(dst.committed.size(), 1u);
  EXPECT_EQ(dst.committed[0], (std::vector<std::string>{"k0", "k1", "gone", "marker"}));
  EXPECT_EQ(revision, 1);
  EXPECT_EQ(stats.puts.load(), 2);  // the marker is not a data write
  EXPECT_EQ(stats.deletes.load(), 1);
  EXPECT_EQ(stats.txns.load(), 1);
}

TEST(TxnWriterTest, SplitsATooLargeTxnInOrderWithTheMarkerLast) {
  FakeDestination dst;
  dst.max_ops = 3;
  common::StopToken stop;
  WriteStats stats;
  TxnWriter writer(&dst, &stop, &stats, "test");
  ASSERT_TRUE(writer.Commit(Puts(8), etcd::Op::Put("marker", "8")).ok());
  std::vector<std::string> order;
  for (const auto& txn : dst.committed) order.insert(order.end(), txn.begin(), txn.end());
  EXPECT_EQ(order,
            (std::vector<std::string>{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "marker"}));
  // The marker goes alone, after every data op: a crash in between replays from the old one.
  EXPECT_EQ(dst.committed.back(), std::vector<std::string>{"marker"});
  EXPECT_EQ(stats.puts.load(), 8);
}

TEST(TxnWriterTest, AFailedFenceIsFenced) {
  FakeDestination dst;
  dst.fenced = true;
  common::StopToken stop;
  WriteStats stats;
  TxnWriter writer(&dst, &stop, &stats, "test");
  writer.set_fence({etcd::Compare{}});
  absl::Status s = writer.Commit(Puts(1), std::nullopt);
  EXPECT_TRUE(election::IsFenced(s)) << s;
  EXPECT_EQ(stats.puts.load(), 0);
}

TEST(TxnWriterTest, AnOpTheDestinationNeverAcceptsStopsWithTheKeyCut) {
  FakeDestination dst;
  dst.max_value = 100;
  common::StopToken stop;
  WriteStats stats;
  TxnWriter writer(&dst, &stop, &stats, "test");
  std::string key(65536, 'k');
  absl::Status s = writer.Commit({etcd::Op::Put(key, std::string(1000, 'v'))}, std::nullopt);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s.message().substr(0, 300);
  EXPECT_LT(s.message().size(), 1000u);
  EXPECT_TRUE(absl::StrContains(s.message(), "65536")) << s.message();
  EXPECT_TRUE(absl::StrContains(s.message(), "--max-request-bytes")) << s.message();
  EXPECT_TRUE(dst.committed.empty());
}

TEST(TxnWriterTest, TransientFailuresAreRetriedAndCounted) {
  FakeDestination dst;
  dst.errors = {absl::UnavailableError("leader changed"), absl::DeadlineExceededError("slow")};
  common::StopToken stop;
  WriteStats stats;
  TxnWriter writer(&dst, &stop, &stats, "test");
  ASSERT_TRUE(writer.Commit(Puts(1), std::nullopt).ok());
  EXPECT_EQ(dst.calls, 3);
  EXPECT_EQ(stats.retries.unavailable.load(), 1);
  EXPECT_EQ(stats.retries.deadline.load(), 1);
  EXPECT_EQ(dst.committed.size(), 1u);
}

TEST(TxnWriterTest, AStopEndsRetriesWithCancelled) {
  FakeDestination dst;
  for (int i = 0; i < 100; ++i) dst.errors.push_back(absl::UnavailableError("down"));
  common::StopToken stop;
  stop.RequestStop();
  WriteStats stats;
  TxnWriter writer(&dst, &stop, &stats, "test");
  absl::Status s = writer.Commit(Puts(1), std::nullopt);
  EXPECT_TRUE(absl::IsCancelled(s)) << s;
  EXPECT_TRUE(dst.committed.empty());
}

}  // namespace
}  // namespace kvsync::sink
