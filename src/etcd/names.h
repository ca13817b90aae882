// The names directly under a key prefix, found without reading every key below them.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "etcd/api.h"

namespace kvsync::etcd {

// The distinct first path segments of the keys under `prefix` (`<prefix><name>/...` and
// `<prefix><name>`), sorted. A skip-scan: one keys-only range of limit 1 per name, each
// starting past the previous name's keys, so the cost does not depend on how many keys a name
// holds (a task's ownership marks can be millions). Errors: the reads'.
absl::StatusOr<std::vector<std::string>> ListNames(KvApi* kv, const std::string& prefix);

}  // namespace kvsync::etcd
