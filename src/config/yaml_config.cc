#include "config/yaml_config.h"

#include <algorithm>
#include <fstream>

#include "yaml-cpp/yaml.h"

namespace kvsync::config {
namespace {

std::string NormaliseKey(std::string key) {
  std::replace(key.begin(), key.end(), '_', '-');
  return key;
}

void Flatten(const YAML::Node& node, const std::string& prefix, std::vector<YamlFlag>* out) {
  for (const auto& entry : node) {
    std::string key = NormaliseKey(entry.first.as<std::string>());
    std::string name = prefix.empty() ? key : prefix + "-" + key;
    const YAML::Node& value = entry.second;
    if (value.IsMap()) {
      Flatten(value, name, out);
      continue;
    }
    if (value.IsNull()) continue;
    YamlFlag flag{name, {}};
    if (value.IsSequence()) {
      for (const auto& v : value) flag.values.push_back(v.as<std::string>());
    } else {
      flag.values.push_back(value.as<std::string>());
    }
    out->push_back(std::move(flag));
  }
}

}  // namespace

absl::StatusOr<std::vector<YamlFlag>> ReadYamlFlags(std::istream& input) {
  std::vector<YamlFlag> flags;
  try {
    YAML::Node root = YAML::Load(input);
    if (root.IsNull()) return flags;
    if (!root.IsMap()) return absl::InvalidArgumentError("must be a YAML mapping of flags");
    Flatten(root, "", &flags);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(std::string("is not valid YAML: ") + e.what());
  }
  return flags;
}

absl::Status ApplyYamlFlags(CLI::App* app, const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError("config file \"" + path + "\" cannot be read");
  absl::StatusOr<std::vector<YamlFlag>> flags = ReadYamlFlags(in);
  if (!flags.ok()) {
    return absl::InvalidArgumentError("config file \"" + path + "\" " +
                                      std::string(flags.status().message()));
  }
  for (const YamlFlag& flag : *flags) {
    CLI::Option* opt = app->get_option_no_throw("--" + flag.name);
    if (opt == nullptr || flag.name == "config" || flag.name == "help") {
      return absl::InvalidArgumentError("config file \"" + path + "\": unknown key \"" + flag.name +
                                        "\"");
    }
    if (opt->count() > 0) continue;  // the command line or the environment wins
    try {
      opt->add_result(flag.values);
      opt->run_callback();
    } catch (const CLI::Error& e) {
      return absl::InvalidArgumentError("config file \"" + path + "\": key \"" + flag.name +
                                        "\": " + e.what());
    }
  }
  return absl::OkStatus();
}

}  // namespace kvsync::config
