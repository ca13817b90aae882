// An owner-thread executor (Envoy's dispatcher is the model): the component that owns one
// runs all its business logic on the executor's thread, so that logic needs no locks; other
// threads (client-library callbacks, the control thread) Post closures to it and never touch
// the component's state directly. IsOnThread() lets code assert where it runs.
//
// - Tasks run one at a time, in the order they were posted.
// - The task queue is a BoundedQueue of `max_queued_bytes`. Post blocks while the task would
//   take the queue past half of it (backpressure on the producer); TryPost refuses only when
//   the whole bound is in use: the upper half is headroom kept for producers that must never
//   block (a client library's callback thread), so a busy blocking producer cannot crowd them
//   out. A post from the owner thread itself never blocks (it would wait on itself).
// - Timers: PostAfter runs a task on the owner thread once its time has come on the
//   executor's clock; Cancel removes one that has not run.
// - Shutdown() stops accepting posts, runs every task already queued (not pending timers),
//   and joins the thread.
//
// Two ways to run: Start() spawns the owner thread (named `name`, with the real clock), or a
// unit test never starts it and calls RunUntilIdle() (typically with a FakeClock), which runs
// queued tasks and due timers on the test's thread — that thread is the owner meanwhile.
//
// Thread-safety: Post, TryPost, PostAfter, Cancel, RunSync, IsOnThread: any thread. Start,
// Shutdown, RunUntilIdle and the destructor: the thread that owns the Executor object.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "runtime/bounded_queue.h"
#include "runtime/clock.h"
#include "runtime/thread.h"

namespace kvsync::runtime {

class Executor {
 public:
  using Task = std::function<void()>;
  using TimerId = uint64_t;

  struct Options {
    std::string name;              // the thread's name (at most 15 characters are kept)
    int64_t max_queued_bytes = 0;  // <= 0: unbounded
    const Clock* clock = nullptr;  // nullptr: SystemClock()
  };

  explicit Executor(Options options);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  void Start();
  // Runs what is queued, then joins. Idempotent. Posts made afterwards return false.
  void Shutdown();

  // Queues `task` (costing `bytes` against the bound); false when shut down.
  bool Post(Task task, int64_t bytes = 0);
  // As Post, but false instead of waiting when the queue is full.
  bool TryPost(Task task, int64_t bytes = 0);
  // Runs `task` on the owner thread and waits for it (inline when called there). False when
  // the executor was shut down before the task ran.
  bool RunSync(const Task& task);

  TimerId PostAfter(std::chrono::nanoseconds delay, Task task);
  // True when the timer was pending (it will not run).
  bool Cancel(TimerId id);

  bool IsOnThread() const { return owner_.load() == std::this_thread::get_id(); }
  const Clock* clock() const { return clock_; }
  int64_t queued_bytes() const { return queue_.bytes(); }

  // Manual mode (never Start()ed): runs queued tasks and due timers until none is left;
  // returns how many ran.
  int RunUntilIdle();

 private:
  void Loop();
  // Takes every timer due at `now` (in time order) off the timer list.
  std::vector<Task> TakeDueTimers(Clock::TimePoint now);
  Clock::TimePoint NextTimer() const;

  const std::string name_;
  const Clock* clock_;
  BoundedQueue<Task> queue_;
  std::atomic<std::thread::id> owner_{};

  mutable absl::Mutex timer_mu_;
  TimerId next_id_ ABSL_GUARDED_BY(timer_mu_) = 1;
  std::multimap<Clock::TimePoint, std::pair<TimerId, Task>> timers_ ABSL_GUARDED_BY(timer_mu_);
  absl::flat_hash_map<TimerId, std::multimap<Clock::TimePoint, std::pair<TimerId, Task>>::iterator>
      timer_index_ ABSL_GUARDED_BY(timer_mu_);

  Thread thread_;
  bool shut_down_ = false;  // owner-of-the-object only
};

}  // namespace kvsync::runtime
