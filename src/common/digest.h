// A stable 128-bit digest of a key (the first 16 bytes of its SHA-256): the same on every
// machine and release, so it can name things stored in etcd (zk2etcd's ownership marks) and
// identify keys in memory (16 bytes instead of a ~1 KB Dubbo path). Pure; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace kvsync::common {

struct Digest128 {
  uint64_t hi = 0;
  uint64_t lo = 0;
  bool operator==(const Digest128& o) const { return hi == o.hi && lo == o.lo; }
  template <typename H>
  friend H AbslHashValue(H h, const Digest128& d) {
    return H::combine(std::move(h), d.hi, d.lo);
  }
};

Digest128 KeyDigest(std::string_view key);
// 32 lowercase hex digits.
std::string DigestHex(const Digest128& d);
// Parses DigestHex's output; false on anything else.
bool ParseDigestHex(std::string_view hex, Digest128* out);

}  // namespace kvsync::common
