// Small string helpers for etcd key arithmetic. Pure functions; any thread.
#pragma once

#include <string>
#include <string_view>

namespace kvsync::common {

// The smallest key greater than every key that starts with `prefix` (etcd's "range_end" for a
// prefix). An empty prefix, or one made only of 0xff bytes, yields "\0": the whole keyspace.
std::string PrefixEnd(std::string_view prefix);

// True when `key` starts with `prefix` (byte-wise).
inline bool HasPrefix(std::string_view key, std::string_view prefix) {
  return key.substr(0, prefix.size()) == prefix;
}

// Path-aware prefix test for slash-separated paths: "/dubbo" and "/dubbo/x" are under "/dubbo",
// "/dubbo2" is not; everything is under "/".
inline bool PathUnder(std::string_view path, std::string_view prefix) {
  if (prefix == "/") return !path.empty() && path[0] == '/';
  return HasPrefix(path, prefix) && (path.size() == prefix.size() || path[prefix.size()] == '/');
}

// Renders a key for logs: printable ASCII as is, other bytes as \xNN. A key longer than 128
// bytes is cut there and ends with "…(<length> bytes)", so that no log line or error message
// carries a 64 KiB key.
std::string PrintableKey(std::string_view key);

}  // namespace kvsync::common
