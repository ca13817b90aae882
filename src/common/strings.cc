#include "common/strings.h"

#include "absl/strings/str_format.h"

namespace kvsync::common {

std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    unsigned char last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

std::string PrintableKey(std::string_view key) {
  constexpr size_t kMax = 128;
  std::string out;
  for (size_t i = 0; i < key.size() && i < kMax; ++i) {
    unsigned char c = static_cast<unsigned char>(key[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppendFormat(&out, "\\x%02x", c);
    }
  }
  if (key.size() > kMax) absl::StrAppendFormat(&out, "…(%d bytes)", key.size());
  return out;
}

}  // namespace kvsync::common
