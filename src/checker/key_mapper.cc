#include "checker/key_mapper.h"

#include "common/strings.h"

namespace kvsync::checker {

using common::HasPrefix;

KeyMapper::KeyMapper(std::string src_prefix, std::string dst_prefix,
                     std::vector<std::string> excludes, std::string meta_prefix)
    : src_prefix_(std::move(src_prefix)),
      dst_prefix_(std::move(dst_prefix)),
      excludes_(std::move(excludes)),
      meta_prefix_(std::move(meta_prefix)) {}

bool KeyMapper::Excluded(std::string_view src_key) const {
  for (const auto& ex : excludes_) {
    if (HasPrefix(src_key, ex)) return true;
  }
  return false;
}

bool KeyMapper::IsMeta(std::string_view key) const { return HasPrefix(key, meta_prefix_); }

std::optional<std::string> KeyMapper::ToDestination(std::string_view src_key) const {
  if (!HasPrefix(src_key, src_prefix_) || IsMeta(src_key) || Excluded(src_key)) {
    return std::nullopt;
  }
  std::string dst = dst_prefix_;
  dst.append(src_key.substr(src_prefix_.size()));
  if (IsMeta(dst)) return std::nullopt;
  return dst;
}

std::optional<std::string> KeyMapper::ToSource(std::string_view dst_key) const {
  if (!HasPrefix(dst_key, dst_prefix_) || IsMeta(dst_key)) return std::nullopt;
  std::string src = src_prefix_;
  src.append(dst_key.substr(dst_prefix_.size()));
  if (IsMeta(src) || Excluded(src)) return std::nullopt;
  return src;
}

std::string KeyMapper::src_range_end() const { return common::PrefixEnd(src_prefix_); }
std::string KeyMapper::dst_range_end() const { return common::PrefixEnd(dst_prefix_); }

}  // namespace kvsync::checker
