#include "etcd/client.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"
#include "etcd/convert.h"
#include "etcd/etcdserver/api/v3election/v3electionpb/v3election.grpc.pb.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "etcd/tls_check.h"
#include "grpcpp/grpcpp.h"

namespace kvsync::etcd {

namespace pb = ::etcdserverpb;
namespace epb = ::v3electionpb;

// One member endpoint: its channel and the stubs over it, plus the KV stubs of its extra
// connections (ClientOptions::connections), over which txns are spread.
class Endpoint {
 public:
  Endpoint(std::string address, std::vector<std::shared_ptr<grpc::Channel>> channels)
      : address_(std::move(address)),
        channel_(channels.at(0)),
        kv_(pb::KV::NewStub(channel_)),
        watch_(pb::Watch::NewStub(channel_)),
        lease_(pb::Lease::NewStub(channel_)),
        auth_(pb::Auth::NewStub(channel_)),
        maintenance_(pb::Maintenance::NewStub(channel_)),
        election_(epb::Election::NewStub(channel_)) {
    for (size_t i = 1; i < channels.size(); ++i) {
      extra_channels_.push_back(channels[i]);
      txn_kv_.push_back(pb::KV::NewStub(channels[i]));
    }
  }

  const std::string& address() const { return address_; }
  pb::KV::Stub* kv() { return kv_.get(); }
  // The KV stub for the next txn: round robin over every connection.
  pb::KV::Stub* txn_kv() {
    if (txn_kv_.empty()) return kv_.get();
    size_t i = next_txn_.fetch_add(1, std::memory_order_relaxed) % (txn_kv_.size() + 1);
    return i == 0 ? kv_.get() : txn_kv_[i - 1].get();
  }
  pb::Watch::Stub* watch() { return watch_.get(); }
  pb::Lease::Stub* lease() { return lease_.get(); }
  pb::Auth::Stub* auth() { return auth_.get(); }
  pb::Maintenance::Stub* maintenance() { return maintenance_.get(); }
  epb::Election::Stub* election() { return election_.get(); }

 private:
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::KV::Stub> kv_;
  std::unique_ptr<pb::Watch::Stub> watch_;
  std::unique_ptr<pb::Lease::Stub> lease_;
  std::unique_ptr<pb::Auth::Stub> auth_;
  std::unique_ptr<pb::Maintenance::Stub> maintenance_;
  std::unique_ptr<epb::Election::Stub> election_;
  std::vector<std::shared_ptr<grpc::Channel>> extra_channels_;
  std::vector<std::unique_ptr<pb::KV::Stub>> txn_kv_;
  std::atomic<uint64_t> next_txn_{0};
};

namespace {

// "source etcd", "destination etcd"; a client named "etcd" (zk2etcd's) is just "etcd".
std::string ClusterName(const std::string& side) { return side == "etcd" ? side : side + " etcd"; }

// What messages call a field: its flag when known, else a description ("source CA file").
std::string Subject(const ClientOptions& o, const std::string& flag, absl::string_view what) {
  return flag.empty() ? absl::StrCat(o.name, " ", what) : flag;
}

absl::Status BadEndpoint(const ClientOptions& o, absl::string_view endpoint,
                         absl::string_view cause) {
  return absl::InvalidArgumentError(
      absl::StrCat(Subject(o, o.flags.endpoints, "endpoint"), " \"", endpoint, "\": ", cause));
}

// host:port, http://host:port or https://host:port; the port 1..65535; IPv6 in brackets.
absl::Status CheckEndpoint(const ClientOptions& o, absl::string_view e) {
  if (e.empty()) return BadEndpoint(o, e, "empty item (a stray comma?)");
  for (char c : e) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      return BadEndpoint(o, e, "contains a blank; separate endpoints with commas");
    }
  }
  absl::string_view rest = e;
  if (!absl::ConsumePrefix(&rest, "http://") && !absl::ConsumePrefix(&rest, "https://") &&
      absl::StrContains(rest, "://")) {
    return BadEndpoint(o, e, "unsupported scheme; use host:port, http:// or https://");
  }
  if (absl::StrContains(rest, "/")) return BadEndpoint(o, e, "is not host:port (no path allowed)");
  size_t colon = rest.rfind(':');
  if (colon == absl::string_view::npos) return BadEndpoint(o, e, "has no port; use host:port");
  absl::string_view host = rest.substr(0, colon);
  absl::string_view port = rest.substr(colon + 1);
  if (host.empty() || host == "[]") return BadEndpoint(o, e, "has no host; use host:port");
  if (absl::StrContains(host, ':') && !(absl::StartsWith(host, "[") && absl::EndsWith(host, "]"))) {
    return BadEndpoint(o, e, "an IPv6 address must be in brackets, as in [::1]:2379");
  }
  int value = 0;
  bool digits = !port.empty() && port.size() <= 5 &&
                std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || !absl::SimpleAtoi(port, &value) || value < 1 || value > 65535) {
    return BadEndpoint(o, e, absl::StrCat("port \"", port, "\" is not a number from 1 to 65535"));
  }
  return absl::OkStatus();
}

// The endpoint without its scheme, split into host (IPv6 without brackets) and port.
void SplitHostPort(absl::string_view endpoint, std::string* host, std::string* port) {
  absl::ConsumePrefix(&endpoint, "http://") || absl::ConsumePrefix(&endpoint, "https://");
  size_t colon = endpoint.rfind(':');
  absl::string_view h = endpoint.substr(0, colon);
  absl::ConsumePrefix(&h, "[");
  absl::ConsumeSuffix(&h, "]");
  *host = std::string(h);
  *port = colon == absl::string_view::npos ? "" : std::string(endpoint.substr(colon + 1));
}

constexpr int kMinConnectTimeoutMs = 20000;

bool IsTokenError(const absl::Status& s) {
  return absl::StrContains(s.message(), "invalid auth token") ||
         absl::StrContains(s.message(), "user name is empty");
}

// A failure that says "this member cannot serve now": try another endpoint.
bool IsEndpointFailure(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable ||
         s.code() == absl::StatusCode::kDeadlineExceeded;
}

}  // namespace

std::vector<std::string> SplitEndpoints(const std::string& csv) {
  std::vector<std::string> out;
  if (absl::StripAsciiWhitespace(csv).empty()) return out;
  for (absl::string_view part : absl::StrSplit(csv, ',')) {
    out.emplace_back(absl::StripAsciiWhitespace(part));
  }
  return out;
}

ClientOptions::FlagNames FlagNamesWithPrefix(const std::string& side) {
  return {"--" + side + "-endpoints", "--" + side + "-cacert", "--" + side + "-cert",
          "--" + side + "-key"};
}

absl::Status ValidateClientOptions(const ClientOptions& o) {
  if (o.endpoints.empty()) {
    return absl::InvalidArgumentError(o.flags.endpoints.empty()
                                          ? absl::StrCat(o.name, " endpoints are empty")
                                          : absl::StrCat(o.flags.endpoints, " is empty"));
  }
  for (const auto& e : o.endpoints) RETURN_IF_ERROR(CheckEndpoint(o, e));
  if (o.cert_file.empty() != o.key_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Subject(o, o.flags.cert_file, "client certificate"), " and ",
                     Subject(o, o.flags.key_file, "key"), " must be given together"));
  }
  const std::string ca = Subject(o, o.flags.ca_file, "CA file");
  const std::string cert = Subject(o, o.flags.cert_file, "certificate file");
  const std::string key = Subject(o, o.flags.key_file, "key file");
  if (!o.ca_file.empty()) {
    ASSIGN_OR_RETURN(std::string pem, tls::ReadFile(o.ca_file, ca));
    RETURN_IF_ERROR(tls::CheckCaBundle(pem, o.ca_file, ca));
  }
  if (!o.cert_file.empty()) {
    ASSIGN_OR_RETURN(std::string cert_pem, tls::ReadFile(o.cert_file, cert));
    RETURN_IF_ERROR(tls::CheckCertificate(cert_pem, o.cert_file, cert));
    ASSIGN_OR_RETURN(std::string key_pem, tls::ReadFile(o.key_file, key));
    RETURN_IF_ERROR(tls::CheckKeyMatches(key_pem, o.key_file, key, cert_pem, o.cert_file, cert));
  }
  if (o.user.empty() && !o.password.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(o.name, " password given without a user"));
  }
  return absl::OkStatus();
}

Client::Client(ClientOptions options) : options_(std::move(options)) {}
Client::~Client() = default;

absl::StatusOr<std::unique_ptr<Client>> Client::Create(ClientOptions options) {
  RETURN_IF_ERROR(ValidateClientOptions(options));
  std::unique_ptr<Client> client(new Client(std::move(options)));
  RETURN_IF_ERROR(client->Init());
  return client;
}

absl::Status Client::Init() {
  bool any_tls = !options_.ca_file.empty() || !options_.cert_file.empty();
  grpc::SslCredentialsOptions ssl;
  if (!options_.ca_file.empty()) {
    ASSIGN_OR_RETURN(
        ssl.pem_root_certs,
        tls::ReadFile(options_.ca_file, Subject(options_, options_.flags.ca_file, "CA file")));
  }
  if (!options_.cert_file.empty()) {
    ASSIGN_OR_RETURN(ssl.pem_cert_chain,
                     tls::ReadFile(options_.cert_file, Subject(options_, options_.flags.cert_file,
                                                               "certificate file")));
    ASSIGN_OR_RETURN(
        ssl.pem_private_key,
        tls::ReadFile(options_.key_file, Subject(options_, options_.flags.key_file, "key file")));
  }
  for (const auto& e : options_.endpoints) {
    absl::string_view host = e;
    bool tls = any_tls;
    if (absl::ConsumePrefix(&host, "https://")) tls = true;
    absl::ConsumePrefix(&host, "http://");
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(options_.max_receive_bytes);
    args.SetMaxSendMessageSize(options_.max_send_bytes);
    // Keep-alive pings find a blackholed link within ~15 s even on an idle watch stream.
    // etcd's default --grpc-keepalive-min-time is 5 s; pinging faster gets the channel closed.
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    // Reconnect attempts start 200 ms apart and back off to 2 s. gRPC core reads
    // GRPC_ARG_MIN_RECONNECT_BACKOFF_MS as the minimum time a connection attempt may take
    // (MIN_CONNECT_TIMEOUT): it must stay at gRPC's 20 s. While no call waits on a channel
    // (calls that fail fast do not), only gRPC's backup poller, every 5 s, reads the socket,
    // so the server's HTTP/2 SETTINGS frame of a reconnect can sit unread for up to 5 s; with
    // a shorter connect timeout every attempt timed out first, forever (issue 10, obs. 8).
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, kMinConnectTimeoutMs);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
    // Separate clients (source, destination) never share connections.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto creds = tls ? grpc::SslCredentials(ssl) : grpc::InsecureChannelCredentials();
    // Each channel has its own subchannel pool (above), hence its own TCP connection.
    std::vector<std::shared_ptr<grpc::Channel>> channels;
    for (int i = 0; i < std::max(options_.connections, 1); ++i) {
      channels.push_back(grpc::CreateCustomChannel(std::string(host), creds, args));
    }
    endpoints_.push_back(std::make_unique<Endpoint>(std::string(host), std::move(channels)));
  }
  return absl::OkStatus();
}

std::string Client::server_version() const {
  absl::MutexLock lock(&mu_);
  return server_version_;
}

std::string Client::current_endpoint() const {
  absl::MutexLock lock(&mu_);
  return endpoints_[current_]->address();
}

Endpoint* Client::Current(size_t* index) {
  absl::MutexLock lock(&mu_);
  *index = current_;
  return endpoints_[current_].get();
}

void Client::MarkFailed(size_t index) {
  absl::MutexLock lock(&mu_);
  if (current_ == index) current_ = (current_ + 1) % endpoints_.size();
}

void Client::InvalidateToken() {
  absl::MutexLock lock(&mu_);
  token_.clear();
}

void Client::PrepareContext(grpc::ClientContext* ctx, bool with_deadline) {
  if (with_deadline) {
    ctx->set_deadline(std::chrono::system_clock::now() + options_.request_timeout);
  }
  absl::MutexLock lock(&mu_);
  if (!token_.empty()) ctx->AddMetadata("token", token_);
}

absl::Status Client::EnsureToken(Endpoint* endpoint) {
  if (options_.user.empty()) return absl::OkStatus();
  {
    absl::MutexLock lock(&mu_);
    if (!token_.empty()) return absl::OkStatus();
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + options_.request_timeout);
  pb::AuthenticateRequest req;
  req.set_name(options_.user);
  req.set_password(options_.password);
  pb::AuthenticateResponse resp;
  absl::Status s = FromGrpc(endpoint->auth()->Authenticate(&ctx, req, &resp),
                            options_.name + " " + endpoint->address() + " authenticate");
  if (!s.ok()) {
    if (s.code() == absl::StatusCode::kInvalidArgument ||
        s.code() == absl::StatusCode::kFailedPrecondition) {
      return absl::PermissionDeniedError(s.message());
    }
    return s;
  }
  absl::MutexLock lock(&mu_);
  token_ = resp.token();
  return absl::OkStatus();
}

template <typename Call>
auto Client::Invoke(bool retry_other_endpoints, Call&& call) -> decltype(call(nullptr, nullptr)) {
  size_t attempts = retry_other_endpoints ? endpoints_.size() : 1;
  absl::Status last = absl::UnavailableError("no endpoint");
  bool token_refreshed = false;
  for (size_t i = 0; i < attempts; ++i) {
    size_t index;
    Endpoint* endpoint = Current(&index);
    absl::Status token = EnsureToken(endpoint);
    if (!token.ok()) {
      if (!IsEndpointFailure(token)) return token;
      MarkFailed(index);
      last = token;
      continue;
    }
    grpc::ClientContext ctx;
    PrepareContext(&ctx, true);
    auto result = call(endpoint, &ctx);
    if (result.ok()) return result;
    last = result.status();
    if (IsTokenError(last) && !token_refreshed) {
      token_refreshed = true;
      InvalidateToken();
      ++attempts;
      continue;
    }
    if (!IsEndpointFailure(last)) return result;
    MarkFailed(index);
  }
  return last;
}

absl::StatusOr<Header> Client::Connect() {
  std::vector<std::string> failures;
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    Endpoint* endpoint = endpoints_[i].get();
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + options_.dial_timeout);
    ctx.set_wait_for_ready(true);
    pb::StatusRequest req;
    pb::StatusResponse resp;
    absl::Status s =
        FromGrpc(endpoint->maintenance()->Status(&ctx, req, &resp), endpoint->address());
    if (s.ok()) s = EnsureToken(endpoint);
    if (s.ok()) {
      absl::MutexLock lock(&mu_);
      current_ = i;
      server_version_ = resp.version();
      return FromPb(resp.header());
    }
    if (s.code() == absl::StatusCode::kPermissionDenied) {
      return absl::PermissionDeniedError(absl::StrCat(
          ClusterName(options_.name), " rejected user \"", options_.user, "\": ", s.message()));
    }
    if (s.code() == absl::StatusCode::kDeadlineExceeded) {
      failures.push_back(absl::StrCat(endpoint->address(), " (no answer within ",
                                      options_.dial_timeout.count(), " ms)"));
    } else {
      failures.push_back(absl::StrCat(endpoint->address(), " (", s.message(), ")"));
    }
  }
  RETURN_IF_ERROR(ProbeTls());
  return absl::UnavailableError(absl::StrCat("cannot reach ", ClusterName(options_.name), " at ",
                                             absl::StrJoin(failures, ", ")));
}

absl::Status Client::ProbeTls() const {
  // gRPC reports a failed handshake only in its own log lines and keeps retrying until the
  // deadline; one handshake of our own names the cause. The first endpoint stands for all:
  // they share the TLS settings.
  tls::ProbeTarget t;
  const std::string& endpoint = options_.endpoints[0];
  SplitHostPort(endpoint, &t.host, &t.port);
  t.tls = !options_.ca_file.empty() || !options_.cert_file.empty() ||
          absl::StartsWith(endpoint, "https://");
  // The files were read and checked at Create(); a failure now leaves the field empty.
  if (!options_.ca_file.empty()) t.ca_pem = tls::ReadFile(options_.ca_file, "").value_or("");
  if (!options_.cert_file.empty()) {
    t.cert_pem = tls::ReadFile(options_.cert_file, "").value_or("");
    t.key_pem = tls::ReadFile(options_.key_file, "").value_or("");
  }
  t.ca_subject = Subject(options_, options_.flags.ca_file, "CA file");
  t.scheme_hint = Subject(options_, options_.flags.endpoints, "endpoints");
  t.timeout = std::min(options_.dial_timeout, std::chrono::milliseconds(5000));
  absl::Status probed = tls::ProbeHandshake(t);
  if (probed.ok()) return probed;
  // A proven configuration mistake is InvalidArgument (exit 2); a named but unproven cause
  // stays Unavailable (exit 1).
  return absl::Status(probed.code(), absl::StrCat("cannot reach ", ClusterName(options_.name), ": ",
                                                  probed.message()));
}

absl::StatusOr<RangeResponse> Client::Range(const RangeRequest& request) {
  pb::RangeRequest req = ToPb(request);
  return Invoke(true, [&](Endpoint* e, grpc::ClientContext* ctx) -> absl::StatusOr<RangeResponse> {
    pb::RangeResponse resp;
    absl::Status s = FromGrpc(e->kv()->Range(ctx, req, &resp), options_.name + " range");
    if (!s.ok()) return s;
    return FromPb(std::move(resp));
  });
}

absl::StatusOr<TxnResponse> Client::Txn(const TxnRequest& request) {
  pb::TxnRequest req = ToPb(request);
  return Invoke(false, [&](Endpoint* e, grpc::ClientContext* ctx) -> absl::StatusOr<TxnResponse> {
    pb::TxnResponse resp;
    absl::Status s = FromGrpc(e->txn_kv()->Txn(ctx, req, &resp), options_.name + " txn");
    if (!s.ok()) return s;
    return FromPb(resp);
  });
}

absl::StatusOr<Header> Client::Put(const std::string& key, const std::string& value,
                                   int64_t lease) {
  pb::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  req.set_lease(lease);
  return Invoke(false, [&](Endpoint* e, grpc::ClientContext* ctx) -> absl::StatusOr<Header> {
    pb::PutResponse resp;
    absl::Status s = FromGrpc(e->kv()->Put(ctx, req, &resp), options_.name + " put");
    if (!s.ok()) return s;
    return FromPb(resp.header());
  });
}

absl::StatusOr<Header> Client::Delete(const std::string& key, const std::string& range_end) {
  pb::DeleteRangeRequest req;
  req.set_key(key);
  req.set_range_end(range_end);
  return Invoke(false, [&](Endpoint* e, grpc::ClientContext* ctx) -> absl::StatusOr<Header> {
    pb::DeleteRangeResponse resp;
    absl::Status s = FromGrpc(e->kv()->DeleteRange(ctx, req, &resp), options_.name + " delete");
    if (!s.ok()) return s;
    return FromPb(resp.header());
  });
}

absl::Status Client::Compact(int64_t revision) {
  pb::CompactionRequest req;
  req.set_revision(revision);
  req.set_physical(true);
  return Invoke(false,
                [&](Endpoint* e, grpc::ClientContext* ctx) -> absl::StatusOr<bool> {
                  pb::CompactionResponse resp;
                  absl::Status s =
                      FromGrpc(e->kv()->Compact(ctx, req, &resp), options_.name + " compact");
                  if (!s.ok()) return s;
                  return true;
                })
      .status();
}

absl::StatusOr<int64_t> Client::LeaseGrant(int64_t id, std::chrono::seconds ttl) {
  pb::LeaseGrantRequest req;
  req.set_id(id);
  req.set_ttl(ttl.count());
  return Invoke(false, [&](Endpoint* e, grpc::ClientContext* ctx) -> absl::StatusOr<int64_t> {
    pb::LeaseGrantResponse resp;
    absl::Status s = FromGrpc(e->lease()->LeaseGrant(ctx, req, &resp), options_.name + " lease");
    if (!s.ok()) return s;
    if (!resp.error().empty()) return absl::UnavailableError(resp.error());
    return resp.id();
  });
}

absl::StatusOr<LeaseInfo> Client::LeaseTimeToLive(int64_t id) {
  pb::LeaseTimeToLiveRequest req;
  req.set_id(id);
  return Invoke(true, [&](Endpoint* e, grpc::ClientContext* ctx) -> absl::StatusOr<LeaseInfo> {
    pb::LeaseTimeToLiveResponse resp;
    absl::Status s = FromGrpc(e->lease()->LeaseTimeToLive(ctx, req, &resp),
                              options_.name + " lease time-to-live");
    if (!s.ok()) return s;
    return LeaseInfo{resp.id(), resp.ttl(), resp.grantedttl(), FromPb(resp.header())};
  });
}

absl::StatusOr<std::vector<int64_t>> Client::LeaseLeases() {
  pb::LeaseLeasesRequest req;
  return Invoke(
      true, [&](Endpoint* e, grpc::ClientContext* ctx) -> absl::StatusOr<std::vector<int64_t>> {
        pb::LeaseLeasesResponse resp;
        absl::Status s =
            FromGrpc(e->lease()->LeaseLeases(ctx, req, &resp), options_.name + " lease list");
        if (!s.ok()) return s;
        std::vector<int64_t> ids;
        ids.reserve(resp.leases_size());
        for (const auto& l : resp.leases()) ids.push_back(l.id());
        return ids;
      });
}

absl::StatusOr<std::vector<LeaseInfo>> Client::LeaseKeepAlive(const std::vector<int64_t>& ids) {
  // etcd answers each request of a stream in order. Requests go in chunks, each read back
  // before the next is written, so that unread answers never fill the flow-control window
  // while we are still writing (which would stall both sides).
  constexpr size_t kChunk = 512;
  return Invoke(
      false, [&](Endpoint* e, grpc::ClientContext* ctx) -> absl::StatusOr<std::vector<LeaseInfo>> {
        auto stream = e->lease()->LeaseKeepAlive(ctx);
        std::vector<LeaseInfo> out;
        out.reserve(ids.size());
        bool ok = true;
        for (size_t begin = 0; ok && begin < ids.size(); begin += kChunk) {
          size_t end = std::min(ids.size(), begin + kChunk);
          for (size_t i = begin; ok && i < end; ++i) {
            pb::LeaseKeepAliveRequest req;
            req.set_id(ids[i]);
            ok = stream->Write(req);
          }
          for (size_t i = begin; ok && i < end; ++i) {
            pb::LeaseKeepAliveResponse resp;
            ok = stream->Read(&resp);
            if (ok) out.push_back(LeaseInfo{resp.id(), resp.ttl(), 0, FromPb(resp.header())});
          }
        }
        stream->WritesDone();
        absl::Status s = FromGrpc(stream->Finish(), options_.name + " keepalive");
        if (!s.ok()) return s;
        if (!ok) return absl::UnavailableError(options_.name + " keepalive: stream closed");
        return out;
      });
}

absl::Status Client::LeaseRevoke(int64_t lease_id) {
  pb::LeaseRevokeRequest req;
  req.set_id(lease_id);
  return Invoke(false,
                [&](Endpoint* e, grpc::ClientContext* ctx) -> absl::StatusOr<bool> {
                  pb::LeaseRevokeResponse resp;
                  absl::Status s =
                      FromGrpc(e->lease()->LeaseRevoke(ctx, req, &resp), options_.name + " revoke");
                  if (!s.ok()) return s;
                  return true;
                })
      .status();
}

absl::StatusOr<int64_t> Client::LeaseKeepAliveOnce(int64_t lease_id) {
  return Invoke(false, [&](Endpoint* e, grpc::ClientContext* ctx) -> absl::StatusOr<int64_t> {
    auto stream = e->lease()->LeaseKeepAlive(ctx);
    pb::LeaseKeepAliveRequest req;
    req.set_id(lease_id);
    pb::LeaseKeepAliveResponse resp;
    bool ok = stream->Write(req) && stream->Read(&resp);
    stream->WritesDone();
    absl::Status s = FromGrpc(stream->Finish(), options_.name + " keepalive");
    if (!s.ok()) return s;
    if (!ok) return absl::UnavailableError(options_.name + " keepalive: stream closed");
    return resp.ttl();
  });
}

absl::StatusOr<Client::LeaderKey> Client::Campaign(const std::string& name, int64_t lease,
                                                   const std::string& value,
                                                   std::chrono::milliseconds timeout,
                                                   const common::StopToken* cancel) {
  epb::CampaignRequest req;
  req.set_name(name);
  req.set_lease(lease);
  req.set_value(value);
  size_t index;
  Endpoint* e = Current(&index);
  RETURN_IF_ERROR(EnsureToken(e));
  grpc::ClientContext ctx;
  PrepareContext(&ctx, false);
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  epb::CampaignResponse resp;
  // A stop cancels the call (TryCancel is thread-safe; before the call starts it cancels it as
  // soon as it does).
  std::optional<common::StopCallback> on_cancel;
  if (cancel != nullptr) on_cancel.emplace(*cancel, [&ctx] { ctx.TryCancel(); });
  absl::Status s = FromGrpc(e->election()->Campaign(&ctx, req, &resp), options_.name + " campaign");
  on_cancel.reset();
  if (!s.ok()) {
    if (IsEndpointFailure(s) && s.code() != absl::StatusCode::kDeadlineExceeded) MarkFailed(index);
    return s;
  }
  LeaderKey out;
  out.name = resp.leader().name();
  out.key = resp.leader().key();
  out.revision = resp.leader().rev();
  out.lease = resp.leader().lease();
  return out;
}

absl::StatusOr<KeyValue> Client::Leader(const std::string& name) {
  epb::LeaderRequest req;
  req.set_name(name);
  return Invoke(true, [&](Endpoint* e, grpc::ClientContext* ctx) -> absl::StatusOr<KeyValue> {
    epb::LeaderResponse resp;
    absl::Status s = FromGrpc(e->election()->Leader(ctx, req, &resp), options_.name + " leader");
    if (!s.ok()) return s;
    return FromPb(resp.kv());
  });
}

absl::Status Client::Resign(const LeaderKey& leader) {
  epb::ResignRequest req;
  req.mutable_leader()->set_name(leader.name);
  req.mutable_leader()->set_key(leader.key);
  req.mutable_leader()->set_rev(leader.revision);
  req.mutable_leader()->set_lease(leader.lease);
  return Invoke(false,
                [&](Endpoint* e, grpc::ClientContext* ctx) -> absl::StatusOr<bool> {
                  epb::ResignResponse resp;
                  absl::Status s =
                      FromGrpc(e->election()->Resign(ctx, req, &resp), options_.name + " resign");
                  if (!s.ok()) return s;
                  return true;
                })
      .status();
}

namespace {

// The bidirectional Watch RPC both stream kinds ride on. gRPC allows one reader and one writer
// at a time and forbids Finish overlapping a Write: writes are serialised under mu_, Finish
// runs once under it (after the reader saw the end) and stores the final status, which every
// later call returns. Destruction cancels the call and drains it.
class WatchRpc {
 public:
  WatchRpc(std::string label, std::function<void()> on_transport_failure)
      : label_(std::move(label)), on_transport_failure_(std::move(on_transport_failure)) {}

  ~WatchRpc() {
    ctx_.TryCancel();
    if (stream_ && !finished()) {
      pb::WatchResponse ignored;
      while (stream_->Read(&ignored)) {
      }
      Finish().IgnoreError();
    }
  }

  void Start(pb::Watch::Stub* stub) { stream_ = stub->Watch(&ctx_); }
  grpc::ClientContext* context() { return &ctx_; }
  const std::string& label() const { return label_; }

  // Sends one request; Unavailable when the stream is closed, the final status once finished.
  absl::Status Write(const pb::WatchRequest& req) {
    absl::MutexLock lock(&mu_);
    if (finished_) return final_;
    if (!stream_->Write(req)) return absl::UnavailableError(label_ + " watch stream closed");
    return absl::OkStatus();
  }

  // Blocks for the next response (one reader); the final status once the stream ended.
  absl::StatusOr<pb::WatchResponse> Read() {
    if (finished()) return Finish();
    pb::WatchResponse resp;
    if (!stream_->Read(&resp)) return Finish();
    return resp;
  }

  // The final status (computed once). Only after a Read saw the end, or before any Read.
  absl::Status Finish() {
    absl::MutexLock lock(&mu_);
    if (finished_) return final_;
    finished_ = true;
    final_ = FromGrpc(stream_->Finish(), label_ + " watch");
    if (final_.ok()) final_ = absl::UnavailableError(label_ + " watch stream ended");
    if (final_.code() == absl::StatusCode::kUnavailable) on_transport_failure_();
    return final_;
  }

  void Cancel() { ctx_.TryCancel(); }

 private:
  bool finished() {
    absl::MutexLock lock(&mu_);
    return finished_;
  }

  const std::string label_;
  const std::function<void()> on_transport_failure_;
  grpc::ClientContext ctx_;
  absl::Mutex mu_;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status final_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<grpc::ClientReaderWriter<pb::WatchRequest, pb::WatchResponse>> stream_;
};

pb::WatchRequest CreateRequest(const Client::WatchOptions& options) {
  pb::WatchRequest req;
  auto* create = req.mutable_create_request();
  create->set_key(options.key);
  create->set_range_end(options.range_end);
  create->set_start_revision(options.start_revision);
  create->set_progress_notify(options.progress_notify);
  create->set_prev_kv(options.prev_kv);
  create->set_fragment(options.fragment);
  return req;
}

pb::WatchRequest ProgressRequest() {
  pb::WatchRequest req;
  req.mutable_progress_request();
  return req;
}

// One watcher: its server-side cancel (compaction, or another reason) is an error.
class GrpcWatchStream : public WatchStream {
 public:
  GrpcWatchStream(std::string label, std::function<void()> on_transport_failure)
      : rpc_(std::move(label), std::move(on_transport_failure)) {}

  absl::Status Start(pb::Watch::Stub* stub, const pb::WatchRequest& create) {
    rpc_.Start(stub);
    if (!rpc_.Write(create).ok()) return rpc_.Finish();
    return absl::OkStatus();
  }

  grpc::ClientContext* context() { return rpc_.context(); }

  absl::StatusOr<WatchResponse> Next() override {
    ASSIGN_OR_RETURN(pb::WatchResponse resp, rpc_.Read());
    if (resp.canceled()) {
      if (resp.compact_revision() > 0) {
        return CompactedError(resp.compact_revision(), rpc_.label() + " watch");
      }
      return WatchCanceledError(
          resp.cancel_reason().empty() ? "no reason given" : resp.cancel_reason(),
          rpc_.label() + " watch");
    }
    return FromPb(std::move(resp));
  }

  absl::Status RequestProgress() override { return rpc_.Write(ProgressRequest()); }
  void Cancel() override { rpc_.Cancel(); }

 private:
  WatchRpc rpc_;
};

// Many watchers on one stream, numbered by the server in the order of their create requests:
// ids_mu_ keeps that order and the ids handed out in step (lock order: ids_mu_, then the rpc's).
class GrpcMultiWatchStream : public MultiWatchStream {
 public:
  GrpcMultiWatchStream(std::string label, std::function<void()> on_transport_failure)
      : rpc_(std::move(label), std::move(on_transport_failure)) {}

  void Start(pb::Watch::Stub* stub) { rpc_.Start(stub); }
  grpc::ClientContext* context() { return rpc_.context(); }

  absl::StatusOr<int64_t> Create(const Client::WatchOptions& options) override {
    Client::WatchOptions unfragmented = options;
    unfragmented.fragment = false;
    absl::MutexLock lock(&ids_mu_);
    RETURN_IF_ERROR(rpc_.Write(CreateRequest(unfragmented)));
    return next_id_++;
  }

  absl::Status CancelWatch(int64_t watch_id) override {
    pb::WatchRequest req;
    req.mutable_cancel_request()->set_watch_id(watch_id);
    return rpc_.Write(req);
  }

  absl::Status RequestProgress() override { return rpc_.Write(ProgressRequest()); }

  absl::StatusOr<WatchResponse> Next() override {
    ASSIGN_OR_RETURN(pb::WatchResponse resp, rpc_.Read());
    return FromPb(std::move(resp));
  }

  void Cancel() override { rpc_.Cancel(); }

 private:
  WatchRpc rpc_;
  absl::Mutex ids_mu_;
  int64_t next_id_ ABSL_GUARDED_BY(ids_mu_) = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<WatchStream>> Client::Watch(const WatchOptions& options) {
  size_t index;
  Endpoint* e = Current(&index);
  absl::Status token = EnsureToken(e);
  if (!token.ok()) {
    if (IsEndpointFailure(token)) MarkFailed(index);
    return token;
  }
  auto stream = std::make_unique<GrpcWatchStream>(absl::StrCat(options_.name, " ", e->address()),
                                                  [this, index] { MarkFailed(index); });
  PrepareContext(stream->context(), false);
  if (options.require_leader) stream->context()->AddMetadata("hasleader", "true");
  RETURN_IF_ERROR(stream->Start(e->watch(), CreateRequest(options)));
  return std::unique_ptr<WatchStream>(std::move(stream));
}

absl::StatusOr<std::unique_ptr<MultiWatchStream>> Client::WatchMulti(bool require_leader) {
  size_t index;
  Endpoint* e = Current(&index);
  absl::Status token = EnsureToken(e);
  if (!token.ok()) {
    if (IsEndpointFailure(token)) MarkFailed(index);
    return token;
  }
  auto stream = std::make_unique<GrpcMultiWatchStream>(
      absl::StrCat(options_.name, " ", e->address()), [this, index] { MarkFailed(index); });
  PrepareContext(stream->context(), false);
  if (require_leader) stream->context()->AddMetadata("hasleader", "true");
  stream->Start(e->watch());
  return std::unique_ptr<MultiWatchStream>(std::move(stream));
}

}  // namespace kvsync::etcd
