// A CLI11 config-file reader for YAML, so that `--config task.yaml` can set any flag.
// Keys are flag names without dashes; `src-endpoints` and `src_endpoints` are the same key.
// Scalars become one value, sequences become repeated values (for --exclude-prefix), booleans
// stay "true"/"false". Nested maps are flattened with '-' ("src: {endpoints: x}" is
// src-endpoints). Used by the CLI only; stateless, any thread.
#pragma once

#include <istream>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"

namespace kvsync::config {

class YamlConfig : public CLI::Config {
 public:
  std::string to_config(const CLI::App* app, bool default_also, bool write_description,
                        std::string prefix) const override;
  // Throws CLI::ParseError (caught by CLI11's parse) on malformed YAML.
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override;
};

}  // namespace kvsync::config
