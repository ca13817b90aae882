// Per-service parity: the gate for moving a service's consumers from ZooKeeper to etcd. Each
// znode in scope belongs to the service named by its path `depth` levels below its root
// (default 1: /dubbo/<service>); a znode whose parent is named "providers" is a provider (the
// Dubbo layout /dubbo/<service>/providers/<url>). For each service the check counts znodes and
// providers on both sides and the differences it confirmed, so an operator sees "service X:
// 12 providers in ZooKeeper, 12 in etcd" before switching X's consumers.
//
// ParityCounter is filled by one check (zk2etcd/check.cc), from one thread or under the
// caller's lock. Pure logic.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "checker/merge.h"

namespace kvsync::zk2etcd {

struct ServiceParity {
  std::string service;  // its znode path, e.g. /dubbo/com.foo.DemoService
  int64_t zk_nodes = 0;
  int64_t etcd_keys = 0;
  int64_t zk_providers = 0;
  int64_t etcd_providers = 0;
  int64_t dst_miss = 0;
  int64_t src_miss = 0;
  int64_t mismatch = 0;
  int64_t foreign = 0;  // etcd keys of other writers, which kvsync never deletes
  int64_t differences() const { return dst_miss + src_miss + mismatch; }
  // Parity is decided by confirmed differences and keys of other writers. The counts are
  // informative: read from the walk and from an etcd snapshot taken just before it, they may
  // differ by changes in flight, which are not differences.
  bool equal() const { return differences() == 0 && foreign == 0; }
};

class ParityCounter {
 public:
  // `roots`: the task's ZooKeeper prefixes; `depth` >= 1.
  ParityCounter(std::vector<std::string> roots, int depth);

  // The service of a znode path: its root plus `depth` more levels; "" when the path is not
  // under a root or above the service level (the root itself, a /dubbo node).
  std::string ServiceOf(std::string_view path) const;
  static bool IsProvider(std::string_view path);

  void CountZk(std::string_view path);
  void CountEtcd(std::string_view path);
  void CountDifference(std::string_view path, checker::DiffKind kind);
  void CountForeign(std::string_view path);

  // Every service seen, most differences first (then by name).
  std::vector<ServiceParity> Services() const;

 private:
  ServiceParity* Of(std::string_view path);

  std::vector<std::string> roots_;
  int depth_;
  std::map<std::string, ServiceParity, std::less<>> services_;
};

// What the last periodic full sync found, for the metrics and /status: totals and the services
// without parity with the most differences. Any thread.
struct ParitySummary {
  int64_t services = 0;
  int64_t without_parity = 0;
  int64_t checked_unix_ms = 0;     // 0: no periodic full sync has finished yet
  std::vector<ServiceParity> top;  // without parity, most differences first
};

class ParityBoard {
 public:
  // Keeps the totals of `services` (sorted as Services() returns them) and at most `top` of
  // those without parity.
  void Publish(const std::vector<ServiceParity>& services, size_t top, int64_t unix_ms);
  ParitySummary Get() const;

 private:
  mutable absl::Mutex mu_;
  ParitySummary summary_ ABSL_GUARDED_BY(mu_);
};

// A table (at most `limit` services, then a line with the totals) and the JSON array.
std::string RenderParityText(const std::vector<ServiceParity>& services, size_t limit);
std::string RenderParityJson(const std::vector<ServiceParity>& services);

}  // namespace kvsync::zk2etcd
