// Leader election for one task, on one etcd cluster (normally the destination), through the
// v3election API, and the fence that makes a deposed leader harmless.
//
// Campaign() grants a lease of `lease_ttl`, keeps it alive on a background thread
// ("elect-keepalive", every
// ttl/3) and campaigns under `election_name` with `identity` as the value. Once leading,
// Fence() returns the compare every write txn must carry: "my election key still has the
// create revision it had when I won". If the lease expires (process paused, link cut), etcd
// deletes the key, the compare fails, and any write still in flight is rejected.
// lost() turns true as soon as keep-alives have failed for a whole TTL (or the lease is gone):
// the caller stops writing at once and campaigns again.
//
// Thread-safety: Campaign/Resign from one thread (the leader loop); lost() and Fence() from
// any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/stop_token.h"
#include "etcd/client.h"
#include "runtime/thread.h"

namespace kvsync::election {

struct ElectorOptions {
  std::string election_name;  // e.g. /kvsync/meta/<task>/election
  std::string identity;       // this instance, shown as the leader's value
  std::chrono::seconds lease_ttl{5};
};

// The status a write returns when its fence compare failed: this instance no longer leads
// (Aborted, kind kFenced; never transient, never a configuration error).
absl::Status FencedError(const std::string& context);
bool IsFenced(const absl::Status& status);

// The fence of whoever leads `election_name` now, for a writer that is not a candidate (check
// --fix): one compare on the leader key's create revision, or none when nobody leads. Errors:
// the Leader() call's (transient ones included; the caller decides).
absl::StatusOr<std::vector<etcd::Compare>> LeaderFence(etcd::Client* client,
                                                       const std::string& election_name);

class Elector {
 public:
  Elector(etcd::Client* client, ElectorOptions options, const common::StopToken* stop);
  ~Elector();

  // Blocks until this instance leads. Errors: Cancelled when a stop was requested; other
  // statuses are transient (the caller backs off and calls again).
  absl::Status Campaign();
  // Gives leadership up (deletes the key, revokes the lease) so that a standby takes over at
  // once. Best effort, bounded by the client's request timeout.
  void Resign();

  bool leading() const;
  // True while the election session is healthy: a lease grant or keep-alive succeeded within
  // the last two TTLs (a standby with a healthy session can take over).
  bool healthy() const;
  bool lost() const { return lost_.load(); }
  // Stopped when the lease of the current campaign is lost (as lost() turns true), so a term
  // can stop on it without polling. Valid until the next Campaign(); Campaign thread only.
  const common::StopToken& lost_token() const { return *lost_token_; }
  // Compares to attach to every write txn while leading.
  std::vector<etcd::Compare> Fence() const;
  // The current leader's identity (value of the oldest candidate key), empty if none.
  absl::StatusOr<std::string> CurrentLeader();
  const ElectorOptions& options() const { return options_; }

 private:
  void KeepAlive(int64_t lease, std::chrono::steady_clock::time_point granted);
  void StopKeepAlive();
  void MarkLost();  // keep-alive thread

  etcd::Client* client_;
  ElectorOptions options_;
  const common::StopToken* stop_;
  std::atomic<bool> lost_{false};
  std::atomic<int64_t> last_contact_ms_{0};
  std::unique_ptr<common::StopToken> keepalive_stop_;
  std::unique_ptr<common::StopToken> lost_token_;  // replaced by each Campaign()
  runtime::Thread keepalive_;
  mutable absl::Mutex mu_;
  std::optional<etcd::Client::LeaderKey> leader_ ABSL_GUARDED_BY(mu_);
  int64_t lease_ = 0;
};

}  // namespace kvsync::election
