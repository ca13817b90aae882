// What a zk2etcd task covers and where each znode lands in etcd. A znode is covered when it is
// one of the --zk-prefix roots or lies under one (path-aware: "/dubbo" does not cover
// "/dubbo2"), is not under an --zk-exclude-prefix, and is not ZooKeeper's own /zookeeper
// subtree. Its etcd key is --etcd-prefix followed by the znode path. Keys under kvsync's meta
// prefix are never covered. Immutable; any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvsync::zk2etcd {

class Scope {
 public:
  Scope(std::vector<std::string> roots, std::vector<std::string> excludes, std::string etcd_prefix,
        std::string meta_prefix);

  bool Covers(std::string_view path) const;
  std::string KeyOf(std::string_view path) const;
  // The znode path an etcd key mirrors, or nullopt when the key is not kvsync's to touch.
  std::optional<std::string> PathOf(std::string_view key) const;

  // The etcd key ranges holding the covered keys (one per root; filter with PathOf).
  struct Range {
    std::string key;
    std::string range_end;
  };
  std::vector<Range> EtcdRanges() const;

  const std::vector<std::string>& roots() const { return roots_; }
  // Excludes including ZooKeeper's /zookeeper subtree, for walks.
  const std::vector<std::string>& walk_excludes() const { return excludes_; }

 private:
  std::vector<std::string> roots_;
  std::vector<std::string> excludes_;
  std::string etcd_prefix_;
  std::string meta_prefix_;
};

}  // namespace kvsync::zk2etcd
