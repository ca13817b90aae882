// Plain value types exchanged with the etcd client (no protobuf leaks past src/etcd/).
// Copyable, no threading concerns.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace kvsync::etcd {

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;
};

// Identity and position of the member that answered.
struct Header {
  uint64_t cluster_id = 0;
  uint64_t member_id = 0;
  int64_t revision = 0;
  uint64_t raft_term = 0;
};

// A lease as LeaseTimeToLive and keep-alives report it: remaining and granted TTL in seconds;
// ttl is -1 (LeaseTimeToLive) or 0 (keep-alive) when the cluster has no such lease.
struct LeaseInfo {
  int64_t id = 0;
  int64_t ttl = -1;
  int64_t granted_ttl = 0;
  Header header;
  bool exists() const { return ttl > 0; }
};

struct RangeRequest {
  std::string key;
  std::string range_end;  // empty: the single key; "\0": all keys >= key
  int64_t limit = 0;      // 0: no limit
  int64_t revision = 0;   // 0: current
  bool keys_only = false;
  bool count_only = false;
  bool serializable = false;
  // Only keys last modified at or after this revision (0: no filter). etcd fetches the whole
  // range to apply it, and count_only ignores it.
  int64_t min_mod_revision = 0;
};

struct RangeResponse {
  Header header;
  std::vector<KeyValue> kvs;
  bool more = false;
  int64_t count = 0;
};

struct TxnRequest;

// One write inside a transaction, or (kTxn, etcd >= 3.3) a nested transaction. Nested ops count
// for etcd's duplicate check: a txn may not put one key twice, nor put a key that one of its
// deletes covers, across nesting levels (the success and failure branches of one txn are
// checked separately); etcd rejects it with "duplicate key given in txn request".
struct Op {
  enum class Type { kPut, kDelete, kTxn };
  Type type = Type::kPut;
  std::string key;                        // kPut, kDelete
  std::string value;                      // kPut only
  std::string range_end;                  // kDelete only; empty deletes the single key
  int64_t lease = 0;                      // kPut only
  std::shared_ptr<const TxnRequest> txn;  // kTxn only; shared and immutable, so Op stays cheap

  static Op Put(std::string key, std::string value) {
    return Op{Type::kPut, std::move(key), std::move(value), {}, 0, nullptr};
  }
  static Op Delete(std::string key) {
    return Op{Type::kDelete, std::move(key), {}, {}, 0, nullptr};
  }
  static Op Txn(TxnRequest txn);
  // Approximate encoded size, used to keep a txn under --max-request-bytes.
  size_t ByteSize() const;
};

struct Compare {
  enum class Target { kVersion, kCreateRevision, kModRevision, kValue };
  enum class Result { kEqual, kGreater, kLess, kNotEqual };
  std::string key;
  Target target = Target::kCreateRevision;
  Result result = Result::kEqual;
  int64_t number = 0;  // for revision/version targets
  std::string value;   // for kValue
};

struct TxnRequest {
  std::vector<Compare> compares;
  std::vector<Op> success;
  std::vector<Op> failure;
  // Approximate encoded size of the whole request (compares and both branches).
  size_t ByteSize() const;
};

inline Op Op::Txn(TxnRequest txn) {
  Op op;
  op.type = Type::kTxn;
  op.txn = std::make_shared<const TxnRequest>(std::move(txn));
  return op;
}

inline size_t Op::ByteSize() const {
  size_t size = key.size() + value.size() + range_end.size() + 16;
  if (txn != nullptr) size += txn->ByteSize();
  return size;
}

inline size_t TxnRequest::ByteSize() const {
  size_t size = 8;
  for (const Compare& c : compares) size += c.key.size() + c.value.size() + 24;
  for (const Op& op : success) size += op.ByteSize();
  for (const Op& op : failure) size += op.ByteSize();
  return size;
}

struct TxnResponse {
  Header header;
  bool succeeded = false;
  // For each kTxn op of the branch that ran (success if `succeeded`, else failure), in order:
  // whether that nested txn's compares held (its success branch ran).
  std::vector<bool> nested_succeeded;
};

struct Event {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  KeyValue kv;       // for kDelete: key and mod_revision (the delete's revision)
  KeyValue prev_kv;  // only when requested
  bool has_prev_kv = false;
};

struct WatchResponse {
  Header header;
  std::vector<Event> events;
  bool created = false;
  bool canceled = false;
  int64_t compact_revision = 0;
  std::string cancel_reason;
  // Which watcher of the stream this response is for (see MultiWatchStream).
  int64_t watch_id = 0;
  // More responses carry the rest of this one's events (WatchOptions::fragment): a revision
  // may continue in the next response.
  bool fragment = false;
  // True for a progress notification: no events, header.revision is a lower bound for every
  // future event on this stream.
  bool IsProgressNotify() const { return events.empty() && !created && !canceled; }
};

// Error classification of the etcd edge. Every status leaving src/etcd was converted once
// (FromGrpc, or built here), and callers decide with these predicates, never with messages.
// The rules follow etcd 3.4's own error table (etcdserver/api/v3rpc/rpctypes/error.go):
//   transient: Unavailable (no leader, leader changed, request timed out, server stopped,
//     unhealthy cluster, a member or link down), DeadlineExceeded, ResourceExhausted "too many
//     requests" and "database space exceeded" (retried until an operator disarms the alarm; the
//     task stays up), a server-side "etcdserver: watch canceled" stream cancel (a member
//     stopping; reported as Unavailable);
//   compacted: OutOfRange "required revision has been compacted" (IsCompacted: slow path);
//   request too large: "request is too large", "too many operations in txn request", gRPC's
//     "larger than max" message limit (IsRequestTooLarge: split, never retried as is);
//   refused: PermissionDenied, Unauthenticated, a watch cancelled for another reason
//     (IsRefused);
//   no leader: the election API's "election: no leader" (IsNoLeader; NotFound);
//   anything else (Internal, Unknown, InvalidArgument, ...): permanent, never retried forever.
//
// A compacted revision becomes one recognisable status (OutOfRange, kind kCompacted) carrying
// the compact revision, so that callers can switch to a full resync.
absl::Status CompactedError(int64_t compact_revision, const std::string& context);
bool IsCompacted(const absl::Status& status);
int64_t CompactRevision(const absl::Status& status);
// The request exceeded the server's --max-request-bytes (or --max-txn-ops): InvalidArgument
// of kind kRequestTooLarge (FromGrpc makes it; fakes of the etcd API make it here).
absl::Status RequestTooLargeError(const std::string& message);
bool IsRequestTooLarge(const absl::Status& status);
// Worth retrying unchanged with backoff (see the rules above; common::IsTransient).
bool IsTransient(const absl::Status& status);
// Leader() found no leader of the election.
bool IsNoLeader(const absl::Status& status);

// Leases: LeaseGrant with an ID the cluster already has fails with IsLeaseExists
// (FailedPrecondition); a put, txn or revoke naming a lease the cluster does not have fails
// with IsLeaseNotFound (NotFound). Neither is transient.
absl::Status LeaseExistsError(const std::string& message);
bool IsLeaseExists(const absl::Status& status);
absl::Status LeaseNotFoundError(const std::string& message);
bool IsLeaseNotFound(const absl::Status& status);

// Whether a progress notification the client *requested* (WatchResponse::watch_id == -1) can be
// trusted to follow every event of the stream's watchers up to its revision. etcd before
// 3.4.25 / 3.5.8 answers a progress request at once with the store's revision, even for a
// watcher still replaying history, so the answer can overtake undelivered events; later
// releases answer only when every watcher of the stream is synced. `version` is the server's
// ("3.4.23"); unknown or unparsable versions are not trusted.
bool RequestedProgressIsOrdered(const std::string& version);

// A permanent refusal by the server: the request will fail the same way until an operator
// changes something (permission denied, authentication failed, a watch the server cancelled
// for a reason other than compaction). Never transient. RefusalReason names it for metrics
// and logs: "permission_denied", "auth" or "watch_canceled" ("" when not a refusal).
absl::Status WatchCanceledError(const std::string& reason, const std::string& context);
bool IsRefused(const absl::Status& status);
const char* RefusalReason(const absl::Status& status);

}  // namespace kvsync::etcd
