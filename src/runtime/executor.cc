#include "runtime/executor.h"

#include <utility>

#include "absl/synchronization/notification.h"

namespace kvsync::runtime {

Executor::Executor(Options options)
    : name_(std::move(options.name)),
      clock_(options.clock != nullptr ? options.clock : SystemClock()),
      queue_(options.max_queued_bytes) {}

Executor::~Executor() { Shutdown(); }

void Executor::Start() {
  thread_ = Thread(name_, [this] {
    owner_.store(std::this_thread::get_id());
    Loop();
  });
}

void Executor::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  queue_.Close();
  thread_.Join();
  if (owner_.load() == std::thread::id()) {
    // Never started: run what was queued here, as the loop would have.
    owner_.store(std::this_thread::get_id());
    while (auto task = queue_.TryPop()) (*task)();
  }
  owner_.store(std::thread::id());
}

bool Executor::Post(Task task, int64_t bytes) {
  if (IsOnThread()) return queue_.ForcePush(std::move(task), bytes);
  return queue_.Push(std::move(task), bytes, queue_.max_bytes() / 2);
}

bool Executor::TryPost(Task task, int64_t bytes) {
  if (IsOnThread()) return queue_.ForcePush(std::move(task), bytes);
  return queue_.TryPush(std::move(task), bytes);
}

bool Executor::RunSync(const Task& task) {
  if (IsOnThread()) {
    task();
    return true;
  }
  absl::Notification done;
  if (!Post([&] {
        task();
        done.Notify();
      })) {
    return false;
  }
  done.WaitForNotification();
  return true;
}

Executor::TimerId Executor::PostAfter(std::chrono::nanoseconds delay, Task task) {
  auto when = clock_->Now() + delay;
  TimerId id;
  bool earliest;
  {
    absl::MutexLock lock(&timer_mu_);
    id = next_id_++;
    auto it = timers_.emplace(when, std::make_pair(id, std::move(task)));
    timer_index_[id] = it;
    earliest = it == timers_.begin();
  }
  // The loop may be waiting for a later deadline: make it look again.
  if (earliest && !IsOnThread()) queue_.Wake();
  return id;
}

bool Executor::Cancel(TimerId id) {
  absl::MutexLock lock(&timer_mu_);
  auto it = timer_index_.find(id);
  if (it == timer_index_.end()) return false;
  timers_.erase(it->second);
  timer_index_.erase(it);
  return true;
}

std::vector<Executor::Task> Executor::TakeDueTimers(Clock::TimePoint now) {
  std::vector<Task> due;
  absl::MutexLock lock(&timer_mu_);
  while (!timers_.empty() && timers_.begin()->first <= now) {
    auto it = timers_.begin();
    timer_index_.erase(it->second.first);
    due.push_back(std::move(it->second.second));
    timers_.erase(it);
  }
  return due;
}

Clock::TimePoint Executor::NextTimer() const {
  absl::MutexLock lock(&timer_mu_);
  return timers_.empty() ? Clock::TimePoint::max() : timers_.begin()->first;
}

void Executor::Loop() {
  while (true) {
    for (Task& timer : TakeDueTimers(clock_->Now())) timer();
    Clock::TimePoint next = NextTimer();
    // Waits for a task, the next timer or a wake-up; at most an hour, so that the conversion
    // to a deadline cannot overflow.
    auto now = std::chrono::steady_clock::now();
    auto deadline = next == Clock::TimePoint::max() || next - clock_->Now() > std::chrono::hours(1)
                        ? now + std::chrono::hours(1)
                        : now + (next - clock_->Now());
    if (auto task = queue_.PopUntil(deadline)) {
      (*task)();
      continue;
    }
    if (queue_.closed() && queue_.size() == 0) return;
  }
}

int Executor::RunUntilIdle() {
  auto previous = owner_.exchange(std::this_thread::get_id());
  int ran = 0;
  while (true) {
    std::vector<Task> due = TakeDueTimers(clock_->Now());
    for (Task& timer : due) timer();
    ran += static_cast<int>(due.size());
    auto task = queue_.TryPop();
    if (!task) {
      if (due.empty()) break;
      continue;
    }
    (*task)();
    ran++;
  }
  owner_.store(previous);
  return ran;
}

}  // namespace kvsync::runtime
