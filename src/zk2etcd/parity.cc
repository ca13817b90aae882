#include "zk2etcd/parity.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/strings.h"
#include "nlohmann/json.hpp"

namespace kvsync::zk2etcd {

ParityCounter::ParityCounter(std::vector<std::string> roots, int depth)
    : roots_(std::move(roots)), depth_(std::max(depth, 1)) {}

std::string ParityCounter::ServiceOf(std::string_view path) const {
  for (const std::string& root : roots_) {
    if (!common::PathUnder(path, root)) continue;
    // Walk `depth_` components past the root.
    size_t end = root == "/" ? 0 : root.size();
    for (int level = 0; level < depth_; ++level) {
      if (end >= path.size() || path[end] != '/') return "";
      size_t next = path.find('/', end + 1);
      end = next == std::string_view::npos ? path.size() : next;
    }
    return std::string(path.substr(0, end));
  }
  return "";
}

bool ParityCounter::IsProvider(std::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return false;
  std::string_view parent = path.substr(0, slash);
  return parent.substr(parent.rfind('/') + 1) == "providers";
}

ServiceParity* ParityCounter::Of(std::string_view path) {
  std::string service = ServiceOf(path);
  if (service.empty()) return nullptr;
  auto it = services_.find(service);
  if (it == services_.end()) {
    it = services_.emplace(service, ServiceParity{}).first;
    it->second.service = service;
  }
  return &it->second;
}

void ParityCounter::CountZk(std::string_view path) {
  if (ServiceParity* s = Of(path)) {
    s->zk_nodes++;
    s->zk_providers += IsProvider(path) ? 1 : 0;
  }
}

void ParityCounter::CountEtcd(std::string_view path) {
  if (ServiceParity* s = Of(path)) {
    s->etcd_keys++;
    s->etcd_providers += IsProvider(path) ? 1 : 0;
  }
}

void ParityCounter::CountDifference(std::string_view path, checker::DiffKind kind) {
  ServiceParity* s = Of(path);
  if (s == nullptr) return;
  switch (kind) {
    case checker::DiffKind::kDstMiss:
      s->dst_miss++;
      break;
    case checker::DiffKind::kSrcMiss:
      s->src_miss++;
      break;
    default:
      s->mismatch++;
      break;
  }
}

void ParityCounter::CountForeign(std::string_view path) {
  if (ServiceParity* s = Of(path)) s->foreign++;
}

std::vector<ServiceParity> ParityCounter::Services() const {
  std::vector<ServiceParity> out;
  out.reserve(services_.size());
  for (const auto& entry : services_) out.push_back(entry.second);
  std::stable_sort(out.begin(), out.end(), [](const ServiceParity& a, const ServiceParity& b) {
    if (a.equal() != b.equal()) return !a.equal();
    return a.differences() + a.foreign > b.differences() + b.foreign;
  });
  return out;
}

void ParityBoard::Publish(const std::vector<ServiceParity>& services, size_t top, int64_t unix_ms) {
  ParitySummary next;
  next.services = static_cast<int64_t>(services.size());
  next.checked_unix_ms = unix_ms;
  for (const ServiceParity& s : services) {
    if (s.equal()) continue;
    next.without_parity++;
    if (next.top.size() < top) next.top.push_back(s);
  }
  absl::MutexLock lock(&mu_);
  summary_ = std::move(next);
}

ParitySummary ParityBoard::Get() const {
  absl::MutexLock lock(&mu_);
  return summary_;
}

std::string RenderParityText(const std::vector<ServiceParity>& services, size_t limit) {
  std::string out = absl::StrFormat("%-48s %10s %10s %9s %9s %8s %8s %8s %8s  %s\n", "SERVICE",
                                    "ZK-PROV", "ETCD-PROV", "ZK-NODES", "ETCD-KEYS", "DST-MISS",
                                    "SRC-MISS", "MISMATCH", "FOREIGN", "PARITY");
  int64_t unequal = 0;
  for (const ServiceParity& s : services) unequal += s.equal() ? 0 : 1;
  for (size_t i = 0; i < services.size() && i < limit; ++i) {
    const ServiceParity& s = services[i];
    absl::StrAppendFormat(&out, "%-48s %10d %10d %9d %9d %8d %8d %8d %8d  %s\n", s.service,
                          s.zk_providers, s.etcd_providers, s.zk_nodes, s.etcd_keys, s.dst_miss,
                          s.src_miss, s.mismatch, s.foreign, s.equal() ? "ok" : "BROKEN");
  }
  if (services.size() > limit) {
    absl::StrAppend(&out, "(", services.size() - limit, " more services not shown)\n");
  }
  absl::StrAppend(&out, services.size(), " services, ", unequal, " without parity\n");
  return out;
}

std::string RenderParityJson(const std::vector<ServiceParity>& services) {
  nlohmann::json all = nlohmann::json::array();
  for (const ServiceParity& s : services) {
    all.push_back({{"service", s.service},
                   {"zk_providers", s.zk_providers},
                   {"etcd_providers", s.etcd_providers},
                   {"zk_nodes", s.zk_nodes},
                   {"etcd_keys", s.etcd_keys},
                   {"dst_miss", s.dst_miss},
                   {"src_miss", s.src_miss},
                   {"mismatch", s.mismatch},
                   {"foreign", s.foreign},
                   {"parity", s.equal()}});
  }
  return all.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace kvsync::zk2etcd
