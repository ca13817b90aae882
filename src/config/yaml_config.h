// YAML config files for the subcommands: `--config task.yaml` can set any flag.
// Keys are flag names without dashes; `src-endpoints` and `src_endpoints` are the same key.
// Scalars become one value, sequences repeated values (for --exclude-prefix), nested maps are
// flattened with '-' ("src: {endpoints: x}" is src-endpoints). Precedence: command-line flag,
// then environment variable, then the file. Used by the CLI on main's thread.
#pragma once

#include <cstddef>
#include <istream>
#include <string>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"

namespace kvsync::config {

struct YamlFlag {
  std::string name;                 // flag name without dashes
  std::vector<std::string> values;  // one per occurrence
};

// The largest config file ApplyYamlFlags reads.
inline constexpr size_t kMaxConfigBytes = 1 << 20;

// Parses a YAML mapping into flags. InvalidArgument on malformed YAML, a non-mapping root, or a
// flag set twice (the same key twice, "a_b" beside "a-b", or "src: {endpoints}" beside
// "src-endpoints").
absl::StatusOr<std::vector<YamlFlag>> ReadYamlFlags(std::istream& input);

// Reads `path` and sets every flag of `app` that the command line and environment left unset.
// InvalidArgument naming the file on a missing or unreadable file, a path that is not a regular
// file (a directory, /dev/zero), a file over kMaxConfigBytes, bad YAML, a key given twice, an
// unknown key or a value the flag rejects.
absl::Status ApplyYamlFlags(CLI::App* app, const std::string& path);

}  // namespace kvsync::config
