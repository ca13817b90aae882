#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "common/backoff.h"
#include "common/check.h"
#include "common/digest.h"
#include "common/error_series.h"
#include "common/errors.h"
#include "common/rate_limiter.h"
#include "common/stop_token.h"
#include "common/strings.h"
#include "gtest/gtest.h"

namespace kvsync::common {
namespace {

// A failed check aborts, naming the condition and the streamed message; a passing one does
// nothing and evaluates its condition once.
TEST(CheckDeathTest, FailedCheckAbortsNamingConditionAndMessage) {
  int evaluated = 0;
  KVSYNC_CHECK(++evaluated == 1) << "never printed";
  EXPECT_EQ(evaluated, 1);
  EXPECT_DEATH(KVSYNC_CHECK(1 + 1 == 3) << "arithmetic broke: " << 42,
               "invariant violated at .*common_test.cc:[0-9]+: 1 \\+ 1 == 3: arithmetic broke: 42");
}

// The kind survives copies, can be replaced or cleared, and is ignored on OK.
TEST(ErrorKindTest, TravelsWithTheStatus) {
  absl::Status s = WithKind(absl::AbortedError("x"), ErrorKind::kFenced);
  // The copy is what is tested.
  // NOLINTNEXTLINE(performance-unnecessary-copy-initialization)
  absl::Status copy = s;
  EXPECT_EQ(KindOf(copy), ErrorKind::kFenced);
  EXPECT_EQ(KindOf(WithKind(s, ErrorKind::kSessionExpired)), ErrorKind::kSessionExpired);
  EXPECT_EQ(KindOf(WithKind(s, ErrorKind::kNone)), ErrorKind::kNone);
  EXPECT_TRUE(WithKind(absl::OkStatus(), ErrorKind::kTransient).ok());
  EXPECT_EQ(KindOf(absl::UnavailableError("plain")), ErrorKind::kNone);
  EXPECT_STREQ(ErrorKindName(ErrorKind::kRequestTooLarge), "request_too_large");
}

// The shared retry rule: marked transient, or an unmarked Unavailable / DeadlineExceeded.
// Internal, Unknown, Aborted, Cancelled and every other kind are never retried.
TEST(ErrorKindTest, IsTransientRule) {
  EXPECT_TRUE(IsTransient(absl::UnavailableError("x")));
  EXPECT_TRUE(IsTransient(absl::DeadlineExceededError("x")));
  EXPECT_TRUE(IsTransient(WithKind(absl::ResourceExhaustedError("x"), ErrorKind::kTransient)));
  EXPECT_FALSE(IsTransient(absl::OkStatus()));
  EXPECT_FALSE(IsTransient(absl::ResourceExhaustedError("x")));
  EXPECT_FALSE(IsTransient(absl::InternalError("x")));
  EXPECT_FALSE(IsTransient(absl::UnknownError("x")));
  EXPECT_FALSE(IsTransient(absl::AbortedError("x")));
  EXPECT_FALSE(IsTransient(absl::CancelledError("x")));
  EXPECT_FALSE(IsTransient(absl::FailedPreconditionError("x")));
  EXPECT_FALSE(IsTransient(absl::PermissionDeniedError("x")));
  EXPECT_FALSE(IsTransient(WithKind(absl::UnavailableError("x"), ErrorKind::kSessionExpired)));
}

// A retry series reports its first failure and each new kind, not repeats of a kind whose
// messages differ only in numbers; after Reset the next failure is new again.
TEST(ErrorSeries, ReportsFirstAndNewKindsOnly) {
  ErrorSeries series;
  EXPECT_TRUE(series.IsNew(absl::DeadlineExceededError("txn: deadline after 15000 ms")));
  EXPECT_FALSE(series.IsNew(absl::DeadlineExceededError("txn: deadline after 14999 ms")));
  EXPECT_TRUE(series.IsNew(absl::PermissionDeniedError("watch: permission denied")));
  EXPECT_FALSE(series.IsNew(absl::PermissionDeniedError("watch: permission denied")));
  EXPECT_TRUE(series.IsNew(absl::UnavailableError("txn: deadline after 15000 ms")));
  series.Reset();
  EXPECT_TRUE(series.IsNew(absl::DeadlineExceededError("txn: deadline after 15000 ms")));
}

// PrefixEnd increments the last byte that can be incremented, as etcdctl --prefix does.
TEST(PrefixEnd, IncrementsLastByteAndDropsTrailingFF) {
  EXPECT_EQ(PrefixEnd("/a/"), "/a0");
  EXPECT_EQ(PrefixEnd(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixEnd(""), std::string(1, '\0'));
  EXPECT_EQ(PrefixEnd(std::string("\xff\xff", 2)), std::string(1, '\0'));
}

// Backoff grows, stays within [d/2, d] and never exceeds the cap.
TEST(Backoff, GrowsAndIsCapped) {
  Backoff b(std::chrono::milliseconds(100), std::chrono::milliseconds(1000));
  auto first = b.Next();
  EXPECT_GE(first.count(), 50);
  EXPECT_LE(first.count(), 100);
  for (int i = 0; i < 40; ++i) {
    auto d = b.Next();
    EXPECT_LE(d.count(), 1000);
  }
  auto late = b.Next();
  EXPECT_GE(late.count(), 500);
  b.Reset();
  EXPECT_LE(b.Next().count(), 100);
}

// Non-printable bytes are escaped so that a log line stays one line.
TEST(PrintableKey, EscapesControlBytes) {
  EXPECT_EQ(PrintableKey(std::string("a\nb", 3)), "a\\x0ab");
}

// A long key is cut to a readable prefix that still says how long the key is.
TEST(PrintableKey, CutsLongKeysAndNamesTheirLength) {
  EXPECT_EQ(PrintableKey(std::string(128, 'k')), std::string(128, 'k'));
  EXPECT_EQ(PrintableKey(std::string(65536, 'k')), std::string(128, 'k') + "…(65536 bytes)");
}

// The limiter allows one second of burst, then spaces work out at the configured rate.
TEST(RateLimiter, AllowsOneSecondBurstThenPaces) {
  RateLimiter limiter(1000);  // units per second
  auto t0 = RateLimiter::Clock::now();
  EXPECT_EQ(limiter.Reserve(1000, t0).count(), 0);      // the first second's budget
  EXPECT_EQ(limiter.Reserve(500, t0).count(), 500000);  // half a second later
  // After a long pause the old budget is forgotten: again one second of burst, no more.
  auto later = t0 + std::chrono::seconds(10);
  EXPECT_EQ(limiter.Reserve(1000, later).count(), 0);
  EXPECT_EQ(limiter.Reserve(1, later).count(), 1000);
  RateLimiter unlimited(0);
  EXPECT_EQ(unlimited.Reserve(1000000, t0).count(), 0);
}

}  // namespace
}  // namespace kvsync::common

namespace kvsync::common {
namespace {

TEST(DigestTest, StableHexRoundTrip) {
  // SHA-256("abc") starts ba7816bf8f01cfea414140de5dae2223.
  Digest128 d = KeyDigest("abc");
  EXPECT_EQ(DigestHex(d), "ba7816bf8f01cfea414140de5dae2223");
  Digest128 back;
  ASSERT_TRUE(ParseDigestHex(DigestHex(d), &back));
  EXPECT_TRUE(back == d);
  EXPECT_FALSE(ParseDigestHex("xyz", &back));
  EXPECT_FALSE(ParseDigestHex("BA7816BF8F01CFEA414140DE5DAE2223", &back));
  EXPECT_FALSE(KeyDigest("/dubbo/a") == KeyDigest("/dubbo/b"));
}

TEST(StopTokenTest, CallbacksRunOnceOnStopAndNotAfterDestruction) {
  StopToken token;
  int ran = 0, dropped = 0;
  StopCallback counted(token, [&] { ++ran; });
  {
    StopCallback gone(token, [&] { ++dropped; });
  }
  EXPECT_EQ(ran, 0);
  token.RequestStop();
  token.RequestStop();
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(dropped, 0);
  // Registered on a stopped token: runs at once.
  int late = 0;
  StopCallback after(token, [&] { ++late; });
  EXPECT_EQ(late, 1);
}

TEST(StopTokenTest, ComposesParentToChildWithoutThreads) {
  StopToken process, lease_lost, term;
  StopCallback by_process(process, [&] { term.RequestStop(); });
  StopCallback by_lease(lease_lost, [&] { term.RequestStop(); });
  EXPECT_FALSE(term.stopped());
  lease_lost.RequestStop();
  EXPECT_TRUE(term.stopped());
  EXPECT_FALSE(process.stopped());
  EXPECT_TRUE(term.WaitFor(std::chrono::hours(1)));  // returns at once
}

TEST(StopTokenTest, DestructorWaitsForARunningCallback) {
  StopToken token;
  std::atomic<bool> entered{false}, release{false}, finished{false};
  auto cb = std::make_unique<StopCallback>(token, [&] {
    entered = true;
    while (!release) std::this_thread::yield();
    finished = true;
  });
  std::thread stopper([&] { token.RequestStop(); });
  while (!entered) std::this_thread::yield();
  std::thread destroyer([&] {
    cb.reset();
    // The callback had returned before the destructor did.
    EXPECT_TRUE(finished.load());
  });
  release = true;
  destroyer.join();
  stopper.join();
}

}  // namespace
}  // namespace kvsync::common
