#include "etcd/names.h"

#include <algorithm>
#include <string_view>

#include "common/status_macros.h"
#include "common/strings.h"

namespace kvsync::etcd {

absl::StatusOr<std::vector<std::string>> ListNames(KvApi* kv, const std::string& prefix) {
  std::vector<std::string> names;
  RangeRequest req;
  req.key = prefix;
  req.range_end = common::PrefixEnd(prefix);
  req.limit = 1;
  req.keys_only = true;
  while (true) {
    ASSIGN_OR_RETURN(RangeResponse resp, kv->Range(req));
    if (resp.kvs.empty()) break;
    const std::string& key = resp.kvs[0].key;
    std::string_view rest(key);
    rest.remove_prefix(prefix.size());
    size_t slash = rest.find('/');
    if (slash == std::string_view::npos) {
      names.emplace_back(rest);
      req.key = key + '\0';  // the next key after this one
      continue;
    }
    std::string name(rest.substr(0, slash));
    req.key = common::PrefixEnd(prefix + name + "/");  // past every key of this name
    if (!name.empty()) names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

}  // namespace kvsync::etcd
