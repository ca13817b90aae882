// Which keys a task mirrors and where they land. Maps source keys under --prefix to destination
// keys under --dst-prefix (prefix rewrite), and answers "may kvsync write or delete this key":
// never a key under an --exclude-prefix, never a key under kvsync's meta prefix (on either
// side: a source may carry the meta of a chained or reverse mirror). Immutable; any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvsync::checker {

class KeyMapper {
 public:
  KeyMapper(std::string src_prefix, std::string dst_prefix, std::vector<std::string> excludes,
            std::string meta_prefix);

  // The destination key for a source key, or nullopt when the source key must not be synced
  // (outside the prefix, excluded, or a meta key on either side).
  std::optional<std::string> ToDestination(std::string_view src_key) const;
  // The source key a destination key mirrors, or nullopt when kvsync must leave the
  // destination key alone (outside the destination prefix, meta, or excluded).
  std::optional<std::string> ToSource(std::string_view dst_key) const;

  const std::string& src_prefix() const { return src_prefix_; }
  const std::string& dst_prefix() const { return dst_prefix_; }
  std::string src_range_end() const;
  std::string dst_range_end() const;

 private:
  bool Excluded(std::string_view src_key) const;
  bool IsMeta(std::string_view key) const;

  std::string src_prefix_;
  std::string dst_prefix_;
  std::vector<std::string> excludes_;
  std::string meta_prefix_;
};

}  // namespace kvsync::checker
