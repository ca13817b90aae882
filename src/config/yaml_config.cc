#include "config/yaml_config.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "yaml-cpp/yaml.h"

namespace kvsync::config {
namespace {

std::string NormaliseKey(std::string key) {
  std::replace(key.begin(), key.end(), '_', '-');
  return key;
}

absl::Status Twice(const std::string& name, const std::string& first, const std::string& second) {
  if (first == second) return absl::InvalidArgumentError("has the key \"" + first + "\" twice");
  return absl::InvalidArgumentError("sets \"" + name + "\" twice (as \"" + first + "\" and \"" +
                                    second + "\")");
}

// `seen` maps every flattened name to the key spelling that set it: yaml-cpp keeps only one of
// two equal keys, and "a_b" and "a-b" (or "src: {endpoints}" and "src-endpoints") name the same
// flag, so a second spelling would silently override or be dropped.
absl::Status Flatten(const YAML::Node& node, const std::string& prefix, const std::string& path,
                     std::map<std::string, std::string>* seen, std::vector<YamlFlag>* out) {
  for (const auto& entry : node) {
    std::string raw = entry.first.as<std::string>();
    std::string spelled = path.empty() ? raw : absl::StrCat(path, ".", raw);
    std::string key = NormaliseKey(raw);
    std::string name = prefix.empty() ? key : absl::StrCat(prefix, "-", key);
    const YAML::Node& value = entry.second;
    // A nested map's own name is recorded too: "election: {...}" twice is a duplicate.
    auto [it, fresh] = seen->emplace(name, spelled);
    if (!fresh) return Twice(name, it->second, spelled);
    if (value.IsMap()) {
      RETURN_IF_ERROR(Flatten(value, name, spelled, seen, out));
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
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<YamlFlag>> ReadYamlFlags(std::istream& input) {
  std::vector<YamlFlag> flags;
  try {
    YAML::Node root = YAML::Load(input);
    if (root.IsNull()) return flags;
    if (!root.IsMap()) return absl::InvalidArgumentError("must be a YAML mapping of flags");
    std::map<std::string, std::string> seen;
    RETURN_IF_ERROR(Flatten(root, "", "", &seen, &flags));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(std::string("is not valid YAML: ") + e.what());
  }
  return flags;
}

absl::Status ApplyYamlFlags(CLI::App* app, const std::string& path) {
  // A directory would make the stream throw inside yaml-cpp, and /dev/zero or a FIFO would be
  // read forever: only a regular file of bounded size is a config file.
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::InvalidArgumentError("config file \"" + path + "\" cannot be read");
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError("config file \"" + path + "\" is not a regular file");
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::InvalidArgumentError("config file \"" + path + "\" cannot be read");
  std::string text(kMaxConfigBytes + 1, '\0');
  file.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (file.bad()) {
    return absl::InvalidArgumentError("config file \"" + path + "\" cannot be read");
  }
  text.resize(static_cast<size_t>(file.gcount()));
  if (text.size() > kMaxConfigBytes) {
    return absl::InvalidArgumentError("config file \"" + path + "\" is larger than 1 MiB");
  }
  std::istringstream in(text);
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
