#include "zk2etcd/scope.h"

#include "common/strings.h"

namespace kvsync::zk2etcd {

Scope::Scope(std::vector<std::string> roots, std::vector<std::string> excludes,
             std::string etcd_prefix, std::string meta_prefix)
    : roots_(std::move(roots)),
      excludes_(std::move(excludes)),
      etcd_prefix_(std::move(etcd_prefix)),
      meta_prefix_(std::move(meta_prefix)) {
  excludes_.push_back("/zookeeper");
}

bool Scope::Covers(std::string_view path) const {
  bool under = false;
  for (const auto& r : roots_) under = under || common::PathUnder(path, r);
  if (!under) return false;
  for (const auto& ex : excludes_) {
    if (common::PathUnder(path, ex)) return false;
  }
  return !common::HasPrefix(KeyOf(path), meta_prefix_);
}

std::string Scope::KeyOf(std::string_view path) const {
  std::string key = etcd_prefix_;
  key.append(path);
  return key;
}

std::optional<std::string> Scope::PathOf(std::string_view key) const {
  if (!common::HasPrefix(key, etcd_prefix_)) return std::nullopt;
  std::string path(key.substr(etcd_prefix_.size()));
  if (!Covers(path)) return std::nullopt;
  return path;
}

std::vector<Scope::Range> Scope::EtcdRanges() const {
  std::vector<Range> ranges;
  for (const auto& r : roots_) {
    std::string base = KeyOf(r == "/" ? "" : r);
    // The root's own key and everything below "<root>/"; keys in between ("/dubbo-x") are
    // filtered out by PathOf.
    ranges.push_back({r == "/" ? base + "/" : base, common::PrefixEnd(base + "/")});
  }
  return ranges;
}

}  // namespace kvsync::zk2etcd
