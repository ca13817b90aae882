#include "common/digest.h"

#include <openssl/evp.h>

namespace kvsync::common {

Digest128 KeyDigest(std::string_view key) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(key.data(), key.size(), md, &len, EVP_sha256(), nullptr);
  Digest128 d;
  for (int i = 0; i < 8; ++i) d.hi = (d.hi << 8) | md[i];
  for (int i = 8; i < 16; ++i) d.lo = (d.lo << 8) | md[i];
  return d;
}

std::string DigestHex(const Digest128& d) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(32, '0');
  for (int i = 0; i < 16; ++i) {
    out[31 - i] = kHex[(d.lo >> (4 * i)) & 0xf];
    out[15 - i] = kHex[(d.hi >> (4 * i)) & 0xf];
  }
  return out;
}

bool ParseDigestHex(std::string_view hex, Digest128* out) {
  if (hex.size() != 32) return false;
  Digest128 d;
  for (size_t i = 0; i < 32; ++i) {
    char c = hex[i];
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) return false;
    uint64_t& part = i < 16 ? d.hi : d.lo;
    part = (part << 4) | static_cast<uint64_t>(v);
  }
  *out = d;
  return true;
}

}  // namespace kvsync::common
