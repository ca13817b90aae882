// FakeEtcd: an in-memory etcd cluster behind the engines' seams (etcd/api.h), for unit tests
// only (library kvsync_etcd_fake; never linked into the binary).
//
// It keeps an MVCC store as etcd does: one global revision, per key its create and mod
// revision and version, the events of every revision, and a compacted revision below which
// reads fail with IsCompacted (compact revision 0, as the real client's edge reports a range)
// and watches are cancelled with IsCompacted (with the compact revision). Txns evaluate
// compares, apply one branch atomically at one new revision (none when nothing changed), and
// are refused as etcd refuses them: more ops than `max_txn_ops` ("too many operations"), more
// bytes than `max_request_bytes` ("request is too large"), a key put twice or put and deleted
// in one branch ("duplicate key"; direct ops of one level only). Leases: granted with their TTL
// (with a requested ID or a generated one), listed, renewed and revoked as etcd does (a revoke
// deletes the attached keys in one revision; a put naming an unknown lease fails the whole txn
// with IsLeaseNotFound); they expire only when a test says so (ExpireLease).
//
// Watch streams deliver a "created" response, then the replayed history from the start
// revision in one response (fragmented into `max_watch_events` events when the watch asked for
// fragments), then one response per new revision; "created" comes at once, even while held.
// Progress: SendProgress() is etcd's own notification (the watcher's id, after every pending
// event); RequestProgress() is answered with watch id -1 either after every pending event (etcd
// >= 3.4.25 / 3.5.8, `version` decides as etcd::RequestedProgressIsOrdered does) or at once,
// overtaking undelivered events (older releases, or `misordered_progress`).
//
// Faults: FailNext() fails the next N calls of one kind with a status (the call does nothing),
// FailRangesIf() every range a predicate picks (e.g. only an engine's proof reads);
// HoldWatches() stops delivering to every stream (events queue up as on an unsynced watcher;
// only an old release's answer to a progress request gets through); CancelWatches() ends every
// open stream with a status.
//
// Deterministic: no threads of its own, no timers. Thread-safe: one mutex guards everything.
// Streams must be destroyed before the FakeEtcd. Tests wait for its state with
// WaitForChange() (no sleeps).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "etcd/api.h"
#include "etcd/types.h"

namespace kvsync::etcd {

class FakeEtcd : public ClusterApi {
 public:
  struct Options {
    uint64_t cluster_id = 1;
    std::string version = "3.5.9";
    std::string label = "fake";
    int max_txn_ops = 128;
    int64_t max_request_bytes = 1536 * 1024;
    // Events per response before a watch that asked for fragments gets fragments.
    size_t max_watch_events = 1000;
    // Answer progress requests at once even on a fixed release, overtaking undelivered events
    // (as etcd issue 15220 describes for queued events).
    bool misordered_progress = false;
  };
  // One committed (or failed-compare) txn, as received.
  struct TxnRecord {
    int64_t revision = 0;  // the store's revision after it
    bool succeeded = false;
    TxnRequest request;
    std::vector<bool> nested_succeeded;  // as in TxnResponse
  };
  enum class Call { kRange, kTxn, kWatch, kConnect, kLease };

  FakeEtcd() : FakeEtcd(Options{}) {}
  explicit FakeEtcd(Options options);
  ~FakeEtcd() override;

  // ClusterApi.
  absl::StatusOr<RangeResponse> Range(const RangeRequest& request) override;
  absl::StatusOr<TxnResponse> Txn(const TxnRequest& request) override;
  absl::StatusOr<std::unique_ptr<WatchStream>> Watch(const WatchOptions& options) override;
  absl::StatusOr<Header> Connect() override;
  std::string server_version() const override { return options_.version; }
  std::string current_endpoint() const override { return "fake://" + options_.label; }
  const std::string& label() const override { return options_.label; }
  absl::StatusOr<int64_t> LeaseGrant(int64_t id, std::chrono::seconds ttl) override;
  absl::Status LeaseRevoke(int64_t id) override;
  absl::StatusOr<LeaseInfo> LeaseTimeToLive(int64_t id) override;
  absl::StatusOr<std::vector<int64_t>> LeaseLeases() override;
  absl::StatusOr<std::vector<LeaseInfo>> LeaseKeepAlive(const std::vector<int64_t>& ids) override;
  // As etcd does when a lease's TTL runs out: revokes it.
  void ExpireLease(int64_t id);
  // Keep-alives received per lease.
  int64_t keepalives(int64_t id) const;

  // Direct writes (as a client would make them): each is one revision, returned.
  int64_t Put(const std::string& key, const std::string& value, int64_t lease = 0);
  int64_t Delete(const std::string& key);
  // Compacts history up to `revision` (<= the current revision).
  void Compact(int64_t revision);

  // The current value of `key` (nullopt when absent) and the keys under `prefix` with values.
  std::optional<std::string> Get(const std::string& key) const;
  std::map<std::string, std::string> Snapshot(const std::string& prefix) const;
  int64_t revision() const;
  std::vector<TxnRecord> txns() const;
  int64_t progress_requests() const;
  int64_t watches_opened() const;

  // Faults.
  void FailNext(Call call, int n, const absl::Status& status);
  // Until called again (nullptr: never), ranges for which `pick` is true fail with `status`.
  void FailRangesIf(std::function<bool(const RangeRequest&)> pick, absl::Status status);
  void HoldWatches(bool hold);
  void CancelWatches(const absl::Status& status);
  // etcd's own progress notification on every open stream, after its pending events.
  void SendProgress();

  // Waits until the state changed (a write, a watch opened or closed, a progress request)
  // since `seen` (a value of changes()) or `timeout` passed; false on timeout.
  uint64_t changes() const;
  bool WaitForChange(uint64_t seen, absl::Duration timeout) const;
  // Waits until `condition` (called without the lock held) is true; false after `timeout`.
  bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout) const;

 private:
  class Stream;
  struct Version {
    int64_t revision = 0;
    bool deleted = false;
    KeyValue kv;
  };

  Header HeaderLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status TakeFault(Call call) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const KeyValue* AtLocked(const std::string& key, int64_t revision) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool CompareHolds(const Compare& c) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckTxn(const TxnRequest& request) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckTxnOps(const TxnRequest& request, int64_t max_ops) const;
  // The ops of the branches the compares choose (all compares, nested ones too, see the
  // store before the txn, as in etcd); `nested` (optional) gets the top level's kTxn results.
  void PlanLocked(const TxnRequest& request, std::vector<const Op*>* ops, std::vector<bool>* nested,
                  bool* succeeded) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PutLocked(const std::string& key, const std::string& value, int64_t lease,
                 std::vector<Event>* events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DeleteLocked(const std::string& key, const std::string& range_end,
                    std::vector<Event>* events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RevokeLocked(int64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Commits `events` as revision_ + 1 (nothing when empty) and notifies the streams.
  void CommitLocked(std::vector<Event> events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unregister(Stream* stream);

  const Options options_;
  mutable absl::Mutex mu_;
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 1;  // etcd starts at 1
  int64_t compacted_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::vector<Version>> keys_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, std::vector<Event>> history_ ABSL_GUARDED_BY(mu_);
  std::vector<TxnRecord> txns_ ABSL_GUARDED_BY(mu_);
  std::map<Call, std::deque<absl::Status>> faults_ ABSL_GUARDED_BY(mu_);
  std::function<bool(const RangeRequest&)> failing_ranges_ ABSL_GUARDED_BY(mu_);
  absl::Status failing_ranges_status_ ABSL_GUARDED_BY(mu_);
  std::set<Stream*> streams_ ABSL_GUARDED_BY(mu_);
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  int64_t progress_requests_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t watches_opened_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t changes_ ABSL_GUARDED_BY(mu_) = 0;
  struct Lease {
    int64_t granted_ttl = 0;
    int64_t keepalives = 0;
  };
  std::map<int64_t, Lease> leases_ ABSL_GUARDED_BY(mu_);
  int64_t next_lease_ ABSL_GUARDED_BY(mu_) = 0x1000;
};

}  // namespace kvsync::etcd
