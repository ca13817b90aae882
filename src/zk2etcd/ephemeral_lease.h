// Ephemeral znodes end to end (--ephemeral-lease-ttl): the etcd copies of ephemeral znodes are
// attached to one lease that the leading kvsync keeps alive, so that when kvsync is gone for
// longer than the TTL the copies expire, as the znodes would have with their sessions, instead
// of registering dead providers forever. Off by default: with it, a kvsync outage longer than
// the TTL empties the etcd side of every ephemeral registration until kvsync returns (its
// start-up full sync puts them back); without it, copies outlive their znodes while kvsync is
// down, and are deleted when it returns.
//
// The lease ID is recorded in the destination (`<meta-prefix><name>/ephemeral-lease`, written
// with the leader's fence), so a new leader or a restarted kvsync adopts the same lease while
// the cluster still has it: a takeover within the TTL expires nothing. When the lease is gone
// (kvsync away too long, or etcd lost it), Replace() grants a new one, records it and calls
// `on_replaced` so that a fixing full sync re-attaches every copy.
//
// Threads: Start() and Stop() on the caller; a keep-alive thread ("zk2etcd-lease") renews
// every TTL/3; id() and Replace() from any thread (the writer's workers call Replace on a txn
// refused for an unknown lease).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/stop_token.h"
#include "etcd/api.h"
#include "runtime/thread.h"

namespace kvsync::zk2etcd {

class EphemeralLease {
 public:
  struct Stats {
    std::atomic<int64_t> id{0};
    std::atomic<int64_t> remaining_ttl{0};  // seconds, as the last keep-alive answered
    std::atomic<int64_t> replaced{0};       // leases granted because the previous one was gone
    std::atomic<int64_t> keepalive_failures{0};
  };

  // `record_key`: where the lease ID is recorded. None of the pointers is owned.
  // `on_replaced` runs after a replacement; `on_failure` when the keep-alive thread has to give
  // up (a replacement failed for good: fenced, refused), after which nothing renews the lease.
  EphemeralLease(etcd::LeaseApi* leases, etcd::KvApi* kv, etcd::TxnApi* txn, std::string record_key,
                 std::chrono::seconds ttl, const common::StopToken* stop, Stats* stats,
                 std::function<void()> on_replaced,
                 std::function<void(const absl::Status&)> on_failure);
  ~EphemeralLease();
  EphemeralLease(const EphemeralLease&) = delete;
  EphemeralLease& operator=(const EphemeralLease&) = delete;

  // Adopts the recorded lease if the cluster still has it with the configured TTL (renewing
  // it at once), else grants one and records it (with `fence`); then keeps it alive until
  // stopped or destroyed. Errors: etcd errors (the caller retries transient ones), a fenced
  // record write.
  absl::Status Start(std::vector<etcd::Compare> fence);
  // Ends the keep-alives and makes a Replace in progress return (Cancelled). Never revokes:
  // the copies outlive a restart within the TTL.
  void Stop() { done_.RequestStop(); }

  int64_t id() const { return stats_->id.load(); }

  // `dead` was refused as unknown: grants and records a new lease unless that was done
  // already, and returns the current ID. Retries transient errors until Stop() or a stop of
  // the task.
  absl::StatusOr<int64_t> Replace(int64_t dead);

 private:
  absl::StatusOr<int64_t> Grant() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void KeepAlive();

  etcd::LeaseApi* leases_;
  etcd::KvApi* kv_;
  etcd::TxnApi* txn_;
  const std::string record_key_;
  const std::chrono::seconds ttl_;
  const common::StopToken* stop_;
  Stats* stats_;
  std::function<void()> on_replaced_;
  std::function<void(const absl::Status&)> on_failure_;
  common::StopToken done_;  // Stop(), or the task's stop: ends keep-alives and retries
  std::optional<common::StopCallback> on_stop_;
  absl::Mutex mu_;  // serializes grants (Replace from several workers)
  std::vector<etcd::Compare> fence_ ABSL_GUARDED_BY(mu_);
  runtime::Thread keepalive_;
};

}  // namespace kvsync::zk2etcd
