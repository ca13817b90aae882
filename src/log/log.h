// Structured logging facade over spdlog. Every line is one event: a component, a fixed event
// phrase, and key/value fields. Init() once from main before other threads start; the logging
// functions are thread-safe afterwards. Fields hold keys, sizes, revisions and reasons only:
// never values or secrets.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace kvsync::log {

enum class Format { kJson, kText };
enum class Level { kDebug, kInfo, kWarn, kError };

// Parses "debug|info|warn|error" and "json|text"; returns InvalidArgument on anything else.
// Also routes failed KVSYNC_CHECKs (common/check.h) through the logger.
absl::Status Init(std::string_view level, std::string_view format);

class Field {
 public:
  Field(std::string_view key, std::string_view value);
  Field(std::string_view key, const char* value) : Field(key, std::string_view(value)) {}
  Field(std::string_view key, const std::string& value) : Field(key, std::string_view(value)) {}
  Field(std::string_view key, int64_t value);
  Field(std::string_view key, int value) : Field(key, static_cast<int64_t>(value)) {}
  Field(std::string_view key, uint64_t value);
  Field(std::string_view key, double value);
  Field(std::string_view key, bool value);
  Field(std::string_view key, const absl::Status& status);

  const std::string& key() const { return key_; }
  const std::string& value() const { return value_; }
  bool quoted() const { return quoted_; }

 private:
  std::string key_;
  std::string value_;
  bool quoted_;
};

using Fields = std::initializer_list<Field>;

void Write(Level level, std::string_view component, std::string_view event, Fields fields);
bool Enabled(Level level);

inline void Debug(std::string_view c, std::string_view e, Fields f = {}) {
  Write(Level::kDebug, c, e, f);
}
inline void Info(std::string_view c, std::string_view e, Fields f = {}) {
  Write(Level::kInfo, c, e, f);
}
inline void Warn(std::string_view c, std::string_view e, Fields f = {}) {
  Write(Level::kWarn, c, e, f);
}
inline void Error(std::string_view c, std::string_view e, Fields f = {}) {
  Write(Level::kError, c, e, f);
}

// Renders one event as a line (no newline); exposed for tests.
std::string Render(Format format, Level level, std::string_view component, std::string_view event,
                   Fields fields);

}  // namespace kvsync::log
