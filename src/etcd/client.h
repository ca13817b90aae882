// etcd v3 client over gRPC, shared by every engine and tool.
//
// One Client per cluster. It keeps one gRPC channel per endpoint and a "current" endpoint; a
// transport failure rotates to the next endpoint, so a dead member is skipped by the next call.
// Reads are retried once on each endpoint within a call; writes are never retried inside the
// client (the caller knows whether a write is idempotent). Every unary call carries a deadline
// (ClientOptions::request_timeout). With a user set, an auth token is fetched on first use and
// refreshed when the server rejects it.
//
// Thread-safety: all methods may be called concurrently from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/stop_token.h"
#include "etcd/api.h"
#include "etcd/types.h"

namespace grpc {
class Channel;
class ClientContext;
}  // namespace grpc

namespace kvsync::etcd {

struct ClientOptions {
  // host:port, http://host:port or https://host:port. https, or a CA file, selects TLS.
  std::vector<std::string> endpoints;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string user;
  std::string password;
  std::chrono::milliseconds dial_timeout{5000};
  std::chrono::milliseconds request_timeout{15000};
  // Client-side gRPC message limits. Receives are large so that big range pages fit; the
  // server enforces its own --max-request-bytes on sends.
  int max_receive_bytes = 512 << 20;
  int max_send_bytes = 64 << 20;
  // TCP connections per endpoint; txns are spread over them round robin (everything else uses
  // the first). More than one helps a distant destination whose link limits each flow.
  int connections = 1;
  // Label used in error messages and logs ("source", "destination").
  std::string name = "etcd";
  // The command-line flags the fields came from, named in error messages ("--src-cacert").
  // An empty name makes the message describe the field instead ("source CA file").
  struct FlagNames {
    std::string endpoints;
    std::string ca_file;
    std::string cert_file;
    std::string key_file;
  };
  FlagNames flags;
};

// etcdctl-style flag names with a side prefix: "src" gives --src-endpoints, --src-cacert,
// --src-cert, --src-key.
ClientOptions::FlagNames FlagNamesWithPrefix(const std::string& side);

// Validates options and returns InvalidArgument with one sentence naming the flag, the value
// and the cause otherwise: endpoints must be host:port or http[s]://host:port with a port of
// 1..65535, no blanks and no empty items; certificate and key come together; each TLS file is
// a regular file of at most 1 MiB; the CA file holds at least one parsable certificate; the
// client certificate parses and is valid now; the key parses and matches the certificate.
absl::Status ValidateClientOptions(const ClientOptions& options);

class MultiWatchStream;
class Endpoint;

// Implements the engines' seams (etcd/api.h) and the calls only tools and the election use.
class Client : public ClusterApi {
 public:
  // Builds channels; does not connect. Fails on invalid options or unreadable TLS files.
  static absl::StatusOr<std::unique_ptr<Client>> Create(ClientOptions options);
  ~Client() override;

  // Waits up to dial_timeout for any endpoint to answer a status request (and, with a user,
  // to authenticate). When none answers, a TLS handshake is tried against the first endpoint:
  // a handshake that fails (certificate verification, TLS against a plaintext server, or a
  // plaintext client against a TLS server) returns InvalidArgument naming the endpoint, the
  // cause and the flag to check; otherwise Unavailable naming every endpoint tried.
  absl::StatusOr<Header> Connect() override;

  absl::StatusOr<RangeResponse> Range(const RangeRequest& request) override;
  absl::StatusOr<TxnResponse> Txn(const TxnRequest& request) override;
  absl::StatusOr<Header> Put(const std::string& key, const std::string& value, int64_t lease = 0);
  absl::StatusOr<Header> Delete(const std::string& key, const std::string& range_end = "");
  // Compacts the key-value history up to `revision` (physical compaction waited for).
  absl::Status Compact(int64_t revision);

  absl::StatusOr<int64_t> LeaseGrant(std::chrono::seconds ttl) { return LeaseGrant(0, ttl); }
  absl::StatusOr<int64_t> LeaseGrant(int64_t id, std::chrono::seconds ttl) override;
  absl::Status LeaseRevoke(int64_t lease_id) override;
  absl::StatusOr<LeaseInfo> LeaseTimeToLive(int64_t id) override;
  absl::StatusOr<std::vector<int64_t>> LeaseLeases() override;
  absl::StatusOr<std::vector<LeaseInfo>> LeaseKeepAlive(const std::vector<int64_t>& ids) override;
  // Sends one keep-alive; returns the remaining TTL in seconds (<= 0: the lease is gone).
  absl::StatusOr<int64_t> LeaseKeepAliveOnce(int64_t lease_id);

  // Election API (v3election): Campaign blocks until this candidate leads, the deadline
  // passes, or `cancel` (optional) is stopped (Cancelled); returns the leader key
  // (name/<lease hex>) and its create revision. Keep one call open rather than repeating short
  // ones: when a call ends without winning, etcd deletes the candidate key afterwards, which
  // could remove the key a following call with the same lease has adopted.
  struct LeaderKey {
    std::string name;
    std::string key;
    int64_t revision = 0;
    int64_t lease = 0;
  };
  absl::StatusOr<LeaderKey> Campaign(const std::string& name, int64_t lease,
                                     const std::string& value, std::chrono::milliseconds timeout,
                                     const common::StopToken* cancel = nullptr);
  // The oldest candidate's key and value; IsNoLeader (types.h) when nobody campaigns.
  absl::StatusOr<KeyValue> Leader(const std::string& name);
  absl::Status Resign(const LeaderKey& leader);

  // Opens a watch stream on the current endpoint (with `require_leader`, the "hasleader"
  // metadata).
  using WatchOptions = etcd::WatchOptions;
  absl::StatusOr<std::unique_ptr<WatchStream>> Watch(const WatchOptions& options) override;
  // Opens a watch stream on the current endpoint that carries no watcher yet; the caller adds
  // many (MultiWatchStream::Create). One stream and one reader thread for hundreds of watchers.
  absl::StatusOr<std::unique_ptr<MultiWatchStream>> WatchMulti(bool require_leader = true);

  const ClientOptions& options() const { return options_; }
  const std::string& label() const override { return options_.name; }
  std::string server_version() const override;
  std::string current_endpoint() const override;

 private:
  explicit Client(ClientOptions options);
  absl::Status Init();
  // After Connect found no endpoint: InvalidArgument naming a TLS mistake, or OK.
  absl::Status ProbeTls() const;

  // Runs `call` against the current endpoint; on a transport failure rotates endpoints and,
  // when `retry_other_endpoints` is set, tries each remaining endpoint once.
  template <typename Call>
  auto Invoke(bool retry_other_endpoints, Call&& call) -> decltype(call(nullptr, nullptr));

  void PrepareContext(grpc::ClientContext* ctx, bool with_deadline);
  absl::Status EnsureToken(Endpoint* endpoint);
  void InvalidateToken();
  void MarkFailed(size_t index);
  Endpoint* Current(size_t* index);

  ClientOptions options_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  mutable absl::Mutex mu_;
  size_t current_ ABSL_GUARDED_BY(mu_) = 0;
  std::string token_ ABSL_GUARDED_BY(mu_);
  std::string server_version_ ABSL_GUARDED_BY(mu_);
};

// A bidirectional watch stream carrying many watchers, told apart by WatchResponse::watch_id.
// etcd (and its grpc-proxy) numbers the watchers of one stream 0, 1, 2... in the order of
// their create requests, so Create returns the id the server will assign; the "created"
// response confirms it. Next() is called by one reader thread; Create, CancelWatch,
// RequestProgress and Cancel may be called from any thread (writes are serialised). After
// Cancel(), Next() returns Cancelled promptly; after a stream error every call returns it. A
// stream must be destroyed before the Client that opened it.
class MultiWatchStream {
 public:
  virtual ~MultiWatchStream() = default;
  // Sends a create request; returns the watch id its responses will carry.
  virtual absl::StatusOr<int64_t> Create(const Client::WatchOptions& options) = 0;
  // Asks the server to cancel one watcher; its "canceled" response follows later.
  virtual absl::Status CancelWatch(int64_t watch_id) = 0;
  virtual absl::Status RequestProgress() = 0;
  // Blocks for the next response of any watcher. Created, canceled (with compact_revision and
  // cancel_reason) and progress responses are returned as they are; only a stream failure is
  // an error (Unavailable for transport, Cancelled after Cancel()).
  virtual absl::StatusOr<WatchResponse> Next() = 0;
  virtual void Cancel() = 0;
};

// Splits "a:1,b:2" into endpoints, trimming blanks around each. Empty items are kept (as "")
// so that ValidateClientOptions can refuse them; an all-blank string gives no endpoint.
std::vector<std::string> SplitEndpoints(const std::string& csv);

}  // namespace kvsync::etcd
