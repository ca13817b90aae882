#include "config/config.h"

#include <cctype>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/strings.h"

namespace kvsync::config {

etcd::ClientOptions EtcdConnection::ToClientOptions(const std::string& side) const {
  etcd::ClientOptions o;
  o.name = side;
  o.endpoints = etcd::SplitEndpoints(endpoints);
  o.ca_file = cacert;
  o.cert_file = cert;
  o.key_file = key;
  o.user = user;
  o.password = password;
  // etcdctl accepts --user name:password.
  auto colon = user.find(':');
  if (colon != std::string::npos && password.empty()) {
    o.user = user.substr(0, colon);
    o.password = user.substr(colon + 1);
  }
  o.dial_timeout = dial_timeout;
  o.request_timeout = command_timeout;
  return o;
}

std::string DeriveTaskName(const std::string& prefix) {
  std::string name;
  for (char c : prefix) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.') {
      name.push_back(c);
    } else if (!name.empty() && name.back() != '-') {
      name.push_back('-');
    }
  }
  while (!name.empty() && name.back() == '-') name.pop_back();
  return name.empty() ? "root" : name;
}

namespace {

bool Overlaps(const std::string& a, const std::string& b) {
  return common::HasPrefix(a, b) || common::HasPrefix(b, a);
}

}  // namespace

absl::Status ValidateMirrorConfig(MirrorConfig* c) {
  if (c->src.endpoints.empty()) return absl::InvalidArgumentError("--src-endpoints is required");
  if (c->dst.endpoints.empty()) return absl::InvalidArgumentError("--dst-endpoints is required");
  RETURN_IF_ERROR(etcd::ValidateClientOptions(c->src.ToClientOptions("source")));
  RETURN_IF_ERROR(etcd::ValidateClientOptions(c->dst.ToClientOptions("destination")));
  if (c->prefix.empty()) {
    return absl::InvalidArgumentError(
        "--prefix is required (use --prefix / to mirror the whole keyspace)");
  }
  if (!c->dst_prefix_set) c->dst_prefix = c->prefix;
  if (c->meta_prefix.empty() || c->meta_prefix.back() != '/') {
    return absl::InvalidArgumentError("--meta-prefix must end with '/'");
  }
  if (c->name.empty()) c->name = DeriveTaskName(c->prefix);
  if (c->name.find('/') != std::string::npos) {
    return absl::InvalidArgumentError("--name must not contain '/'");
  }
  // The destination range may contain the meta prefix (e.g. --dst-prefix /): meta keys are
  // skipped there. But the meta prefix must not be inside the mirrored destination range
  // *only*, or a source key could map onto a checkpoint key: that case is the same skip.
  // What cannot work is a destination prefix inside the meta prefix.
  if (common::HasPrefix(c->dst_prefix, c->meta_prefix)) {
    return absl::InvalidArgumentError(absl::StrCat("--dst-prefix \"", c->dst_prefix,
                                                   "\" lies inside kvsync's meta prefix \"",
                                                   c->meta_prefix, "\""));
  }
  for (const auto& ex : c->exclude_prefixes) {
    if (ex.empty()) return absl::InvalidArgumentError("--exclude-prefix must not be empty");
    if (!Overlaps(ex, c->prefix)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--exclude-prefix \"", ex, "\" is outside --prefix \"", c->prefix, "\""));
    }
  }
  if (c->max_txn_ops < 2) {
    return absl::InvalidArgumentError(
        "--max-txn-ops must be at least 2 (one data op + checkpoint)");
  }
  if (c->max_request_bytes < 4096) {
    return absl::InvalidArgumentError("--max-request-bytes must be at least 4096");
  }
  if (c->inflight < 1 || c->inflight > 1024) {
    return absl::InvalidArgumentError("--inflight must be between 1 and 1024");
  }
  if (c->page_size < 1) return absl::InvalidArgumentError("--page-size must be positive");
  if (c->ha) {
    if (c->lease_ttl.count() < 1) return absl::InvalidArgumentError("--lease-ttl must be >= 1s");
    if (c->election.endpoints.empty()) {
      c->election = c->dst;
    } else {
      RETURN_IF_ERROR(etcd::ValidateClientOptions(c->election.ToClientOptions("election")));
    }
  }
  if (c->auto_repair != "none" && c->auto_repair != "src-miss" && c->auto_repair != "all") {
    return absl::InvalidArgumentError("--auto-repair must be none, src-miss or all, got \"" +
                                      c->auto_repair + "\"");
  }
  if (c->check_full_every < 1) {
    return absl::InvalidArgumentError("--check-full-every must be at least 1");
  }
  if (c->progress_interval.count() <= 0) {
    return absl::InvalidArgumentError("--progress-interval must be positive");
  }
  return absl::OkStatus();
}

}  // namespace kvsync::config
