// A FIFO bounded by the bytes its items hold, with backpressure: the one queue of the runtime
// (the executor's task queue is one). Producers say what an item costs (its payload bytes plus
// a fixed overhead, see the callers); Push blocks while the queue is full, TryPush refuses, so
// a producer that must not block (a client library's callback thread) chooses what a refusal
// means. An item larger than the whole bound is admitted into an empty queue, so one big item
// never deadlocks. Memory is thus bounded by max_bytes plus one item.
//
// Thread-safety: every member may be called from any thread. Close() wakes every waiter;
// after it pushes fail and pops drain what is left.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace kvsync::runtime {

template <typename T>
class BoundedQueue {
 public:
  // max_bytes <= 0: unbounded (Push never blocks). `gauge` (optional, not owned, must outlive
  // the queue) follows the queued bytes, for a metric.
  explicit BoundedQueue(int64_t max_bytes, std::atomic<int64_t>* gauge = nullptr)
      : max_bytes_(max_bytes), gauge_(gauge) {}
  ~BoundedQueue() {
    if (gauge_ != nullptr) gauge_->fetch_sub(bytes_unlocked_for_destruction());
  }
  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;

  // Blocks while the item does not fit within `limit` bytes (<= 0: the bound); false (item
  // dropped) once closed.
  bool Push(T item, int64_t bytes, int64_t limit = 0) {
    absl::MutexLock lock(&mu_);
    auto fits = [this, bytes, limit]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return closed_ || FitsLocked(bytes, limit);
    };
    mu_.Await(absl::Condition(&fits));
    return PushLocked(std::move(item), bytes);
  }

  // Never blocks: false (item dropped) when it does not fit or the queue is closed.
  bool TryPush(T item, int64_t bytes) {
    absl::MutexLock lock(&mu_);
    if (!FitsLocked(bytes)) return false;
    return PushLocked(std::move(item), bytes);
  }

  // Admits the item whatever the bound (for a consumer queueing work for itself, which must
  // never wait on its own queue); false once closed.
  bool ForcePush(T item, int64_t bytes) {
    absl::MutexLock lock(&mu_);
    return PushLocked(std::move(item), bytes);
  }

  // Waits until an item is there (returns it), the deadline passes, Wake() is called or the
  // queue is closed and empty (nullopt).
  std::optional<T> PopUntil(std::chrono::steady_clock::time_point deadline) {
    absl::MutexLock lock(&mu_);
    WaitLocked(deadline);
    if (items_.empty()) return std::nullopt;
    return PopLocked();
  }

  // As PopUntil, but takes several items: at least one, then more while they total at most
  // `max_take` bytes (a consumer that takes a slice at a time leaves room for the producer).
  std::vector<T> PopUpTo(std::chrono::steady_clock::time_point deadline, int64_t max_take) {
    absl::MutexLock lock(&mu_);
    WaitLocked(deadline);
    std::vector<T> out;
    int64_t taken = 0;
    while (!items_.empty() && (out.empty() || taken + items_.front().second <= max_take)) {
      taken += items_.front().second;
      out.push_back(PopLocked());
    }
    return out;
  }

  // Returns an item at once if there is one.
  std::optional<T> TryPop() {
    absl::MutexLock lock(&mu_);
    if (items_.empty()) return std::nullopt;
    return PopLocked();
  }

  // Ends the current (or the next) PopUntil wait early, with nullopt when empty.
  void Wake() {
    absl::MutexLock lock(&mu_);
    woken_ = true;
  }

  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }

  bool closed() const {
    absl::MutexLock lock(&mu_);
    return closed_;
  }
  int64_t bytes() const {
    absl::MutexLock lock(&mu_);
    return bytes_;
  }
  size_t size() const {
    absl::MutexLock lock(&mu_);
    return items_.size();
  }
  int64_t max_bytes() const { return max_bytes_; }

 private:
  // Waits until an item is there, the queue is closed, Wake() was called or the deadline passed;
  // consumes a Wake().
  void WaitLocked(std::chrono::steady_clock::time_point deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !items_.empty() || closed_ || woken_;
    };
    auto left = deadline - std::chrono::steady_clock::now();
    if (left > std::chrono::nanoseconds::zero()) {
      mu_.AwaitWithTimeout(absl::Condition(&ready), absl::FromChrono(left));
    }
    woken_ = false;
  }
  bool FitsLocked(int64_t bytes, int64_t limit = 0) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (limit <= 0) limit = max_bytes_;
    return max_bytes_ <= 0 || items_.empty() || bytes_ + bytes <= limit;
  }
  bool PushLocked(T item, int64_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (closed_) return false;
    items_.emplace_back(std::move(item), bytes);
    bytes_ += bytes;
    if (gauge_ != nullptr) gauge_->fetch_add(bytes);
    return true;
  }
  T PopLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto [item, bytes] = std::move(items_.front());
    items_.pop_front();
    bytes_ -= bytes;
    if (gauge_ != nullptr) gauge_->fetch_sub(bytes);
    return std::move(item);
  }
  int64_t bytes_unlocked_for_destruction() {
    absl::MutexLock lock(&mu_);
    return bytes_;
  }

  const int64_t max_bytes_;
  std::atomic<int64_t>* const gauge_;
  mutable absl::Mutex mu_;
  std::deque<std::pair<T, int64_t>> items_ ABSL_GUARDED_BY(mu_);
  int64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kvsync::runtime
