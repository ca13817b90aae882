#include "config/yaml_config.h"

#include <algorithm>

#include "yaml-cpp/yaml.h"

namespace kvsync::config {
namespace {

std::string NormaliseKey(std::string key) {
  std::replace(key.begin(), key.end(), '_', '-');
  return key;
}

void Flatten(const YAML::Node& node, const std::string& prefix, std::vector<CLI::ConfigItem>* out) {
  for (const auto& entry : node) {
    std::string key = NormaliseKey(entry.first.as<std::string>());
    std::string name = prefix.empty() ? key : prefix + "-" + key;
    const YAML::Node& value = entry.second;
    CLI::ConfigItem item;
    item.name = name;
    if (value.IsMap()) {
      Flatten(value, name, out);
      continue;
    }
    if (value.IsSequence()) {
      for (const auto& v : value) item.inputs.push_back(v.as<std::string>());
    } else if (value.IsNull()) {
      continue;
    } else {
      item.inputs.push_back(value.as<std::string>());
    }
    out->push_back(std::move(item));
  }
}

}  // namespace

std::string YamlConfig::to_config(const CLI::App* app, bool default_also, bool write_description,
                                  std::string prefix) const {
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const CLI::Option* opt : app->get_options()) {
    if (opt->get_lnames().empty() || !opt->get_configurable()) continue;
    std::string name = opt->get_lnames().front();
    if (name == "help" || name == "config") continue;
    std::vector<std::string> values = opt->results();
    if (values.empty() && default_also && !opt->get_default_str().empty()) {
      values.push_back(opt->get_default_str());
    }
    if (values.empty()) continue;
    out << YAML::Key << name << YAML::Value;
    if (values.size() == 1 && opt->get_items_expected_max() <= 1) {
      out << values.front();
    } else {
      out << YAML::Flow << values;
    }
  }
  out << YAML::EndMap;
  return out.c_str();
}

std::vector<CLI::ConfigItem> YamlConfig::from_config(std::istream& input) const {
  std::vector<CLI::ConfigItem> items;
  try {
    YAML::Node root = YAML::Load(input);
    if (root.IsNull()) return items;
    if (!root.IsMap()) throw CLI::ConversionError("config file must be a YAML mapping of flags");
    Flatten(root, "", &items);
  } catch (const YAML::Exception& e) {
    throw CLI::ConversionError(std::string("config file is not valid YAML: ") + e.what());
  }
  return items;
}

}  // namespace kvsync::config
