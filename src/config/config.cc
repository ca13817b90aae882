#include "config/config.h"

#include <cctype>
#include <cmath>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/digest.h"
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
  o.connections = connections;
  // Messages name the flags of cli::AddConnectionFlags (--src-*, --dst-*, --etcd-*, ...).
  if (side == "source") {
    o.flags = etcd::FlagNamesWithPrefix("src");
  } else if (side == "destination") {
    o.flags = etcd::FlagNamesWithPrefix("dst");
  } else if (side == "etcd" || side == "election") {
    o.flags = etcd::FlagNamesWithPrefix(side);
  }
  return o;
}

std::string ReadableName(const std::string& prefix) {
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

std::string DeriveTaskName(const std::string& prefix) {
  if (prefix == "/") return "root";
  // "/seg/seg/" with segments of [A-Za-z0-9_.] only: joining the segments with '-' can be
  // undone, so these readable names are injective among themselves.
  bool plain = prefix.size() >= 3 && prefix.front() == '/' && prefix.back() == '/';
  for (size_t i = 1; plain && i < prefix.size(); ++i) {
    char c = prefix[i];
    bool segment_char = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
    plain = segment_char || (c == '/' && prefix[i - 1] != '/');
  }
  std::string readable = ReadableName(prefix);
  if (plain && readable != "root") return readable;
  // Everything else gets a digest of the exact prefix after a '~', which plain names never
  // contain ("/a-b/" and "/a/b/" must not share a checkpoint).
  return absl::StrCat(readable, "~", common::DigestHex(common::KeyDigest(prefix)).substr(0, 12));
}

namespace {

bool Overlaps(const std::string& a, const std::string& b) {
  return common::HasPrefix(a, b) || common::HasPrefix(b, a);
}

// Names end up in etcd keys, Redis keys, log lines and metric labels: a newline or a quote
// there would forge log lines or break the exposition format.
absl::Status CheckTaskName(const std::string& name) {
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '~' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("--name may contain only letters, digits and . _ ~ - (got \"",
                       absl::CHexEscape(name), "\")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateMirrorConfig(MirrorConfig* c) {
  if (c->src.endpoints.empty()) return absl::InvalidArgumentError("--src-endpoints is required");
  if (c->dst.endpoints.empty()) return absl::InvalidArgumentError("--dst-endpoints is required");
  if (c->dst.connections < 1 || c->dst.connections > 16) {
    return absl::InvalidArgumentError("--dst-connections must be between 1 and 16");
  }
  RETURN_IF_ERROR(etcd::ValidateClientOptions(c->src.ToClientOptions("source")));
  RETURN_IF_ERROR(etcd::ValidateClientOptions(c->dst.ToClientOptions("destination")));
  if (c->prefix.empty()) {
    return absl::InvalidArgumentError(
        "--prefix is required (use --prefix / to mirror the whole keyspace)");
  }
  if (!c->dst_prefix_set) c->dst_prefix = c->prefix;
  if (c->dst_prefix.empty()) {
    return absl::InvalidArgumentError(
        "--dst-prefix must not be empty (it would map keys onto the whole destination keyspace; "
        "use --dst-prefix / for that, or leave it out to keep --prefix)");
  }
  if (c->meta_prefix.empty() || c->meta_prefix.back() != '/') {
    return absl::InvalidArgumentError("--meta-prefix must end with '/'");
  }
  if (c->name.empty()) {
    c->name = DeriveTaskName(c->prefix);
    c->name_derived = true;
  }
  RETURN_IF_ERROR(CheckTaskName(c->name));
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
  if (c->watch_buffer_bytes < (1 << 20) || c->watch_buffer_bytes > (int64_t{4} << 30)) {
    return absl::InvalidArgumentError("--watch-buffer-bytes must be between 1 MiB and 4 GiB");
  }
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
  if (!std::isfinite(c->check_read_rate) || c->check_read_rate < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--check-read-rate must be a finite number >= 0 (0 = unlimited), got ",
                     c->check_read_rate));
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

namespace kvsync::config {
namespace {

absl::Status CheckZkPath(const char* flag, const std::string& path) {
  if (path.empty() || path[0] != '/' || (path.size() > 1 && path.back() == '/') ||
      path.find("//") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, " \"", path, "\" is not a ZooKeeper path (absolute, no trailing or double '/')"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateZk2EtcdConfig(Zk2EtcdConfig* c) {
  if (c->zk_servers.empty()) return absl::InvalidArgumentError("--zk-servers is required");
  if (c->etcd.endpoints.empty()) return absl::InvalidArgumentError("--etcd-endpoints is required");
  RETURN_IF_ERROR(etcd::ValidateClientOptions(c->etcd.ToClientOptions("etcd")));
  if (c->zk_prefixes.empty()) {
    return absl::InvalidArgumentError(
        "--zk-prefix is required (use --zk-prefix / for the whole tree)");
  }
  for (const auto& p : c->zk_prefixes) RETURN_IF_ERROR(CheckZkPath("--zk-prefix", p));
  for (const auto& ex : c->zk_excludes) {
    RETURN_IF_ERROR(CheckZkPath("--zk-exclude-prefix", ex));
    bool inside = false;
    for (const auto& p : c->zk_prefixes) inside = inside || common::PathUnder(ex, p);
    if (!inside) {
      return absl::InvalidArgumentError(
          absl::StrCat("--zk-exclude-prefix \"", ex, "\" is not under any --zk-prefix"));
    }
  }
  if (!c->zk_auth.empty() && c->zk_auth.find(':') == std::string::npos) {
    return absl::InvalidArgumentError("--zk-auth must be user:password");
  }
  if (c->zk_session_timeout < std::chrono::milliseconds(2000) ||
      c->zk_session_timeout > std::chrono::milliseconds(600000)) {
    return absl::InvalidArgumentError("--zk-session-timeout must be between 2s and 10m");
  }
  if (!c->etcd_prefix.empty() && c->etcd_prefix.back() == '/') {
    return absl::InvalidArgumentError(
        "--etcd-prefix must not end with '/' (znode paths start with one)");
  }
  if (c->meta_prefix.empty() || c->meta_prefix.back() != '/') {
    return absl::InvalidArgumentError("--meta-prefix must end with '/'");
  }
  for (const auto& p : c->zk_prefixes) {
    if (common::HasPrefix(c->KeyOf(p), c->meta_prefix)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--zk-prefix \"", p, "\" maps into kvsync's meta prefix \"", c->meta_prefix, "\""));
    }
  }
  if (c->name.empty()) c->name = "zk-" + ReadableName(c->zk_prefixes[0]);
  RETURN_IF_ERROR(CheckTaskName(c->name));
  if (c->concurrency < 1 || c->concurrency > 4096) {
    return absl::InvalidArgumentError("--concurrency must be between 1 and 4096");
  }
  if (c->inflight < 1 || c->inflight > 256) {
    return absl::InvalidArgumentError("--inflight must be between 1 and 256");
  }
  if (c->max_txn_ops < 4) return absl::InvalidArgumentError("--max-txn-ops must be at least 4");
  if (c->max_request_bytes < 4096) {
    return absl::InvalidArgumentError("--max-request-bytes must be at least 4096");
  }
  if (c->page_size < 1) return absl::InvalidArgumentError("--page-size must be positive");
  if (c->queue_bytes < (64 << 10) || c->queue_bytes > (int64_t{4} << 30)) {
    return absl::InvalidArgumentError("--queue-bytes must be between 64 KiB and 4 GiB");
  }
  if (c->coalesce.count() < 0 || c->coalesce > std::chrono::milliseconds(10000)) {
    return absl::InvalidArgumentError("--coalesce must be between 0 and 10s");
  }
  if (c->ownership != "redis" && c->ownership != "etcd" && c->ownership != "none") {
    return absl::InvalidArgumentError("--ownership must be redis, etcd or none, got \"" +
                                      c->ownership + "\"");
  }
  if (c->ownership == "redis" && c->redis_addr.empty()) {
    return absl::InvalidArgumentError("--ownership redis needs --redis-addr host:port");
  }
  if (c->ownership != "redis" && !c->redis_addr.empty()) {
    return absl::InvalidArgumentError("--redis-addr is only used with --ownership redis");
  }
  if (c->redis_db < 0) return absl::InvalidArgumentError("--redis-db must be >= 0");
  // Written as a negated range test so that NaN fails it too.
  if (!(c->max_delete_fraction >= 0 && c->max_delete_fraction <= 1)) {
    return absl::InvalidArgumentError(
        "--max-delete-fraction must be between 0 and 1 (0.1 = 10 % of the owned keys)");
  }
  if (c->ephemeral_lease_ttl.count() > 0 && c->once) {
    return absl::InvalidArgumentError(
        "--ephemeral-lease-ttl needs a running task, not --once (nothing would keep the lease "
        "alive and every ephemeral copy would expire)");
  }
  if (c->ha) {
    if (c->lease_ttl.count() < 1) return absl::InvalidArgumentError("--lease-ttl must be >= 1s");
    if (c->once) return absl::InvalidArgumentError("--once and --ha cannot be combined");
    if (c->election.endpoints.empty()) {
      c->election = c->etcd;
    } else {
      RETURN_IF_ERROR(etcd::ValidateClientOptions(c->election.ToClientOptions("election")));
    }
  }
  return absl::OkStatus();
}

}  // namespace kvsync::config
