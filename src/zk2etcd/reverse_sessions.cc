#include "zk2etcd/reverse_sessions.h"

#include <cinttypes>
#include <cstdio>
#include <utility>

#include "absl/strings/match.h"
#include "common/strings.h"
#include "log/log.h"

namespace kvsync::zk2etcd {
namespace {
// The cache is dropped when it grows past this many owners (a registry with this many live
// provider sessions is far beyond any real one; dropping only costs reads).
constexpr size_t kMaxKnown = 1 << 20;
}  // namespace

std::string ReverseSessionPrefix(const std::string& meta_prefix) {
  return meta_prefix + "zk-sessions/";
}

std::string ReverseSessionKey(const std::string& meta_prefix, int64_t session_id) {
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016" PRIx64, static_cast<uint64_t>(session_id));
  return ReverseSessionPrefix(meta_prefix) + hex;
}

ReverseSessions::ReverseSessions(etcd::KvApi* kv, std::string meta_prefix)
    : kv_(kv), prefix_(std::move(meta_prefix)) {}

absl::Status ReverseSessions::Preload() {
  etcd::RangeRequest request;
  request.key = ReverseSessionPrefix(prefix_);
  request.range_end = common::PrefixEnd(request.key);
  request.keys_only = true;
  auto response = kv_->Range(request);
  if (!response.ok()) return response.status();
  absl::MutexLock lock(&mu_);
  for (const auto& kv : response->kvs) {
    uint64_t id = 0;
    std::string hex = kv.key.substr(request.key.size());
    if (std::sscanf(hex.c_str(), "%" SCNx64, &id) == 1) known_[static_cast<int64_t>(id)] = true;
  }
  return absl::OkStatus();
}

bool ReverseSessions::IsReverse(int64_t session_id) {
  if (session_id == 0) return false;
  {
    absl::MutexLock lock(&mu_);
    auto it = known_.find(session_id);
    if (it != known_.end()) return it->second;
  }
  lookups_.fetch_add(1);
  etcd::RangeRequest request;
  request.key = ReverseSessionKey(prefix_, session_id);
  request.keys_only = true;  // linearizable (serializable stays false)
  auto response = kv_->Range(request);
  if (!response.ok()) {
    log::Warn("zk2etcd", "cannot tell whether an ephemeral znode is the etcd2zk direction's",
              {{"session", request.key.substr(request.key.rfind('/') + 1)},
               {"error", response.status()},
               {"effect", "znode skipped until the next read"}});
    return true;
  }
  bool reverse = !response->kvs.empty();
  absl::MutexLock lock(&mu_);
  if (known_.size() >= kMaxKnown) known_.clear();
  known_[session_id] = reverse;
  return reverse;
}

}  // namespace kvsync::zk2etcd
