#include "zk2etcd/node_table.h"

#include <functional>

namespace kvsync::zk2etcd {

uint64_t HashValue(std::string_view value) { return std::hash<std::string_view>{}(value); }

NodeState NodeTable::Get(const KeyHash& key) const {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(key);
  return it == nodes_.end() ? NodeState{} : it->second;
}

bool NodeTable::Advance(const KeyHash& key, const Version& v) {
  absl::MutexLock lock(&mu_);
  NodeState& s = nodes_[key];
  if (s.known && !(s.version < v)) return false;
  bool was_live = s.live();
  s.version = v;
  s.seen = round_;
  s.known = true;
  live_ += (s.live() ? 1 : 0) - (was_live ? 1 : 0);
  return true;
}

uint32_t NodeTable::NewRound() {
  absl::MutexLock lock(&mu_);
  return ++round_;
}

uint32_t NodeTable::round() const {
  absl::MutexLock lock(&mu_);
  return round_;
}

void NodeTable::Forget(const KeyHash& key) {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(key);
  if (it == nodes_.end()) return;
  if (it->second.live()) live_--;
  it->second.known = false;
}

void NodeTable::Touch(const KeyHash& key) {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(key);
  if (it != nodes_.end()) it->second.seen = round_;
}

void NodeTable::Submitted(const KeyHash& key) {
  absl::MutexLock lock(&mu_);
  nodes_[key].pending++;
}

void NodeTable::Committed(const KeyHash& key, int64_t revision) {
  absl::MutexLock lock(&mu_);
  NodeState& s = nodes_[key];
  if (s.pending > 0) s.pending--;
  if (revision > s.written) s.written = revision;
}

int64_t NodeTable::live() const {
  absl::MutexLock lock(&mu_);
  return live_;
}

void NodeTable::DropTombstones() {
  absl::MutexLock lock(&mu_);
  absl::erase_if(nodes_, [](const auto& kv) {
    return kv.second.known && kv.second.version.tombstone() && kv.second.pending == 0;
  });
}

void NodeTable::Clear() {
  absl::MutexLock lock(&mu_);
  nodes_.clear();
  live_ = 0;
}

}  // namespace kvsync::zk2etcd
