// YAML config files for the subcommands: `--config task.yaml` can set any flag.
// Keys are flag names without dashes; `src-endpoints` and `src_endpoints` are the same key.
// Scalars become one value, sequences repeated values (for --exclude-prefix), nested maps are
// flattened with '-' ("src: {endpoints: x}" is src-endpoints). Precedence: command-line flag,
// then environment variable, then the file. Used by the CLI on main's thread.
#pragma once

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

// Parses a YAML mapping into flags. InvalidArgument on malformed YAML or a non-mapping root.
absl::StatusOr<std::vector<YamlFlag>> ReadYamlFlags(std::istream& input);

// Reads `path` and sets every flag of `app` that the command line and environment left unset.
// InvalidArgument naming the file on an unreadable file, bad YAML, an unknown key or a value
// the flag rejects.
absl::Status ApplyYamlFlags(CLI::App* app, const std::string& path);

}  // namespace kvsync::config
