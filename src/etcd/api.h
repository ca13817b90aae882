// The narrow interfaces ("seams") through which engines and checks use one etcd cluster:
// KvApi (reads), TxnApi (writes), WatchApi (watch streams), MemberApi (the member that
// answers: identity and version), LeaseApi (leases), and ClusterApi, all five together, which is
// what an engine holds per cluster. etcd::Client implements them over gRPC; etcd::FakeEtcd
// (fake_etcd.h, linked into tests only) implements them over an in-memory MVCC store, so that an
// engine's decisions can be unit tested in seconds.
//
// The contract is the real client's, errors included, so that engines cannot tell the two
// apart: a read below the compacted revision is IsCompacted, a watch cancelled by the server
// for compaction ends with IsCompacted and for any other reason with a refusal (IsRefused),
// transport faults are IsTransient. Implementations are thread-safe: every method may be
// called concurrently from any thread. The caller owns nothing it did not get back as a
// unique_ptr; the implementation outlives every stream it opened.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "etcd/types.h"

namespace kvsync::etcd {

// Reads. Range retries transient faults across endpoints inside the call (the real client);
// errors: IsCompacted (revision below the compacted one), refusals, transient faults.
class KvApi {
 public:
  virtual ~KvApi() = default;
  virtual absl::StatusOr<RangeResponse> Range(const RangeRequest& request) = 0;
  // The cluster's label for logs and errors ("source", "destination").
  virtual const std::string& label() const = 0;
};

// The one call a destination write path needs: sink::TxnWriter takes it. Never retried inside
// (the caller knows whether its write is idempotent). Errors: IsRequestTooLarge (too many ops
// or bytes), refusals, transient faults (the txn may or may not have been applied).
class TxnApi {
 public:
  virtual ~TxnApi() = default;
  virtual absl::StatusOr<TxnResponse> Txn(const TxnRequest& request) = 0;
};

struct WatchOptions {
  std::string key;
  std::string range_end;
  int64_t start_revision = 0;
  bool progress_notify = true;
  bool prev_kv = false;
  // The server cancels the stream when its member loses the leader, instead of silently
  // stalling.
  bool require_leader = true;
  // Ask the server to split responses larger than its --max-request-bytes into fragments
  // (WatchResponse::fragment), so that one message never holds a whole replayed backlog
  // (etcd replays up to 1,000 revisions per response).
  bool fragment = false;
};

// A bidirectional watch stream carrying one watcher. Next() is called by one reader thread;
// RequestProgress() and Cancel() may be called from another thread concurrently. After
// Cancel(), Next() returns Cancelled promptly; after any error, every call returns that error.
// A stream must be destroyed before the WatchApi that opened it.
class WatchStream {
 public:
  virtual ~WatchStream() = default;
  // Blocks for the next response: first the "created" one, then events (all events of one
  // revision in one response unless fragmented), progress notifications (etcd's own carry the
  // watcher's id, answers to RequestProgress carry -1). Errors: compacted start revision
  // (IsCompacted), a server-side cancel (a refusal naming the reason), transport failure
  // (Unavailable).
  virtual absl::StatusOr<WatchResponse> Next() = 0;
  // Asks the server for a progress notification (etcd >= 3.4).
  virtual absl::Status RequestProgress() = 0;
  virtual void Cancel() = 0;
};

// Opens watch streams. Errors of the open itself: transport faults and auth refusals; a bad
// start revision is reported by the stream (Next()).
class WatchApi {
 public:
  virtual ~WatchApi() = default;
  virtual absl::StatusOr<std::unique_ptr<WatchStream>> Watch(const WatchOptions& options) = 0;
};

// The member that answers: identity and version.
class MemberApi {
 public:
  virtual ~MemberApi() = default;
  // Waits for a member to answer (and authenticates); returns its header (cluster ID and
  // revision). Errors: Unavailable (no member answered), InvalidArgument (a TLS mistake).
  virtual absl::StatusOr<Header> Connect() = 0;
  // The etcd version of the member Connect() reached ("" before a successful Connect).
  virtual std::string server_version() const = 0;
  // The endpoint the next call goes to (for logs).
  virtual std::string current_endpoint() const = 0;
};

// Leases, for mirroring them (mirror::LeaseKeeper). Never retried inside.
class LeaseApi {
 public:
  virtual ~LeaseApi() = default;
  // Grants lease `id` (0: the server picks one) with `ttl`; returns its ID. IsLeaseExists when
  // the cluster already has lease `id`.
  virtual absl::StatusOr<int64_t> LeaseGrant(int64_t id, std::chrono::seconds ttl) = 0;
  // Revokes the lease and deletes the keys attached to it. IsLeaseNotFound when gone already.
  virtual absl::Status LeaseRevoke(int64_t id) = 0;
  // Remaining and granted TTL (ttl -1 when the cluster has no such lease). Answered by the
  // leader, so a lease granted before the call is seen.
  virtual absl::StatusOr<LeaseInfo> LeaseTimeToLive(int64_t id) = 0;
  // Every lease of the cluster, as the member that answers knows them (a follower may not
  // know a lease granted a moment ago yet).
  virtual absl::StatusOr<std::vector<int64_t>> LeaseLeases() = 0;
  // Renews each lease over one keep-alive stream; returns each one's new remaining TTL (0 when
  // the cluster has no such lease), in the order asked.
  virtual absl::StatusOr<std::vector<LeaseInfo>> LeaseKeepAlive(
      const std::vector<int64_t>& ids) = 0;
};

// Everything an engine uses of one cluster.
class ClusterApi : public KvApi,
                   public TxnApi,
                   public WatchApi,
                   public MemberApi,
                   public LeaseApi {};

}  // namespace kvsync::etcd
