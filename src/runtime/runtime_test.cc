#include <atomic>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "runtime/bounded_queue.h"
#include "runtime/clock.h"
#include "runtime/executor.h"
#include "runtime/thread.h"

namespace kvsync::runtime {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(BoundedQueueTest, CountsBytesAndRefusesWhenFull) {
  BoundedQueue<std::string> q(10);
  EXPECT_TRUE(q.TryPush("a", 6));
  EXPECT_FALSE(q.TryPush("b", 6));  // 12 > 10
  EXPECT_TRUE(q.TryPush("c", 4));   // exactly 10
  EXPECT_EQ(q.bytes(), 10);
  EXPECT_EQ(*q.TryPop(), "a");
  EXPECT_EQ(q.bytes(), 4);
  EXPECT_TRUE(q.TryPush("b", 6));
  EXPECT_EQ(q.size(), 2u);
}

TEST(BoundedQueueTest, AdmitsAnOversizedItemIntoAnEmptyQueue) {
  BoundedQueue<int> q(10);
  EXPECT_TRUE(q.TryPush(1, 100));
  EXPECT_FALSE(q.TryPush(2, 1));
  EXPECT_EQ(*q.TryPop(), 1);
  EXPECT_TRUE(q.TryPush(2, 1));
}

TEST(BoundedQueueTest, PushWaitsForSpaceThenProceeds) {
  BoundedQueue<int> q(1);
  ASSERT_TRUE(q.TryPush(1, 1));
  std::atomic<bool> pushed{false};
  Thread producer("test-producer", [&] {
    EXPECT_TRUE(q.Push(2, 1));
    pushed = true;
  });
  // The producer cannot finish while the queue is full: the item it pushed is not there yet.
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(*q.PopUntil(std::chrono::steady_clock::now() + seconds(30)), 1);
  EXPECT_EQ(*q.PopUntil(std::chrono::steady_clock::now() + seconds(30)), 2);
  producer.Join();
  EXPECT_TRUE(pushed);
}

TEST(BoundedQueueTest, CloseReleasesBlockedProducersAndDrains) {
  BoundedQueue<int> q(1);
  ASSERT_TRUE(q.TryPush(1, 1));
  std::atomic<int> result{-1};
  Thread producer("test-producer", [&] { result = q.Push(2, 1) ? 1 : 0; });
  q.Close();
  producer.Join();
  EXPECT_EQ(result, 0);
  EXPECT_FALSE(q.TryPush(3, 0));
  EXPECT_EQ(*q.TryPop(), 1);  // what was queued still drains
  EXPECT_FALSE(q.PopUntil(std::chrono::steady_clock::now() + seconds(30)).has_value());
}

TEST(BoundedQueueTest, PopUpToTakesASliceAndTheGaugeFollows) {
  std::atomic<int64_t> gauge{0};
  {
    BoundedQueue<int> q(100, &gauge);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(q.TryPush(i, 20));
    EXPECT_EQ(gauge, 100);
    auto far = std::chrono::steady_clock::now() + seconds(30);
    EXPECT_EQ(q.PopUpTo(far, 45), (std::vector<int>{0, 1}));  // a third would exceed 45
    EXPECT_EQ(q.PopUpTo(far, 5), (std::vector<int>{2}));      // at least one, whatever its size
    EXPECT_EQ(gauge, 40);
  }
  EXPECT_EQ(gauge, 0);  // what was left counted out on destruction
}

TEST(BoundedQueueTest, WakeEndsAWait) {
  BoundedQueue<int> q(0);
  q.Wake();
  EXPECT_FALSE(q.PopUntil(std::chrono::steady_clock::now() + std::chrono::hours(1)).has_value());
}

TEST(ExecutorTest, RunsTasksInOrderOnItsNamedThread) {
  Executor ex({.name = "test-exec"});
  ex.Start();
  std::vector<int> seen;
  std::string name;
  bool on_thread = false;
  for (int i = 0; i < 100; ++i) ex.Post([&seen, i] { seen.push_back(i); });
  ASSERT_TRUE(ex.RunSync([&] {
    char buf[16] = {};
    pthread_getname_np(pthread_self(), buf, sizeof buf);
    name = buf;
    on_thread = ex.IsOnThread();
  }));
  EXPECT_FALSE(ex.IsOnThread());
  EXPECT_TRUE(on_thread);
  EXPECT_EQ(name, "test-exec");
  ASSERT_EQ(seen.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(seen[i], i);
}

TEST(ExecutorTest, BackpressureBlocksProducersNotTheOwner) {
  Executor ex({.name = "test-exec", .max_queued_bytes = 10});
  absl::Notification release;
  ex.Start();
  ex.Post([&] { release.WaitForNotification(); });  // the owner is busy
  // Fill the queue: the first post fits, the next one is refused by TryPost.
  ASSERT_TRUE(ex.TryPost([] {}, 10));
  EXPECT_FALSE(ex.TryPost([] {}, 1));
  EXPECT_EQ(ex.queued_bytes(), 10);
  release.Notify();
  std::atomic<int> ran{0};
  // The owner posting to itself never waits on its own queue.
  ASSERT_TRUE(ex.RunSync([&] {
    for (int i = 0; i < 5; ++i) ex.Post([&] { ran++; }, 10);
  }));
  ASSERT_TRUE(ex.RunSync([] {}));
  EXPECT_EQ(ran, 5);
}

TEST(ExecutorTest, ShutdownRunsWhatIsQueuedThenRefuses) {
  std::atomic<int> ran{0};
  {
    Executor ex({.name = "test-exec"});
    absl::Notification release;
    ex.Start();
    ex.Post([&] { release.WaitForNotification(); });
    for (int i = 0; i < 10; ++i) ex.Post([&] { ran++; });
    release.Notify();
    ex.Shutdown();
    EXPECT_EQ(ran, 10);
    EXPECT_FALSE(ex.Post([&] { ran++; }));
    EXPECT_FALSE(ex.RunSync([&] { ran++; }));
  }
  EXPECT_EQ(ran, 10);
}

TEST(ExecutorTest, TimersFollowTheInjectedClock) {
  FakeClock clock;
  Executor ex({.name = "test-exec", .clock = &clock});
  std::vector<std::string> fired;
  ex.PostAfter(seconds(5), [&] { fired.push_back("5s"); });
  ex.PostAfter(seconds(1), [&] { fired.push_back("1s"); });
  auto cancelled = ex.PostAfter(seconds(2), [&] { fired.push_back("2s"); });
  EXPECT_EQ(ex.RunUntilIdle(), 0);
  clock.Advance(seconds(1));
  EXPECT_EQ(ex.RunUntilIdle(), 1);
  EXPECT_TRUE(ex.Cancel(cancelled));
  EXPECT_FALSE(ex.Cancel(cancelled));
  clock.Advance(seconds(10));
  ex.RunUntilIdle();
  EXPECT_EQ(fired, (std::vector<std::string>{"1s", "5s"}));
}

TEST(ExecutorTest, ATimerRearmedFromItsOwnTaskRunsAgain) {
  FakeClock clock;
  Executor ex({.name = "test-exec", .clock = &clock});
  int ticks = 0;
  std::function<void()> tick = [&] {
    ticks++;
    EXPECT_TRUE(ex.IsOnThread());
    ex.PostAfter(seconds(1), tick);
  };
  ex.PostAfter(seconds(1), tick);
  for (int i = 0; i < 3; ++i) {
    clock.Advance(seconds(1));
    ex.RunUntilIdle();
  }
  EXPECT_EQ(ticks, 3);
}

TEST(ExecutorTest, AnEarlierTimerPostedFromAnotherThreadWakesTheLoop) {
  Executor ex({.name = "test-exec"});
  ex.Start();
  absl::Notification late_armed;
  absl::Notification fired;
  // The loop first waits for an hour-away timer; a 1 ms timer posted later must still fire.
  ex.PostAfter(std::chrono::hours(1), [] {});
  ASSERT_TRUE(ex.RunSync([] {}));
  ex.PostAfter(milliseconds(1), [&] { fired.Notify(); });
  EXPECT_TRUE(fired.WaitForNotificationWithTimeout(absl::Seconds(60)));
}

}  // namespace
}  // namespace kvsync::runtime
