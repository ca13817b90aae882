#include "log/log.h"

#include <atomic>
#include <chrono>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/check.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace kvsync::log {
namespace {

std::atomic<Format> g_format{Format::kJson};
std::atomic<Level> g_level{Level::kInfo};

std::shared_ptr<spdlog::logger>& Logger();

// A failed KVSYNC_CHECK: one error line through the logger (flushed at once), then the abort.
void OnCheckFailure(std::string_view file, int line, std::string_view condition,
                    std::string_view message) {
  Write(Level::kError, "check", "invariant violated",
        {{"file", file}, {"line", line}, {"condition", condition}, {"message", message}});
}

std::shared_ptr<spdlog::logger>& Logger() {
  // stderr_sink_mt serialises writers so lines never interleave.
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto l = std::make_shared<spdlog::logger>("kvsync",
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
    l->set_pattern("%v");
    l->set_level(spdlog::level::trace);
    l->flush_on(spdlog::level::trace);
    return l;
  }();
  return logger;
}

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\t':
        *out += "\\t";
        break;
      default:
        if (c < 0x20) {
          absl::StrAppendFormat(out, "\\u%04x", c);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

}  // namespace

Field::Field(std::string_view key, std::string_view value)
    : key_(key), value_(value), quoted_(true) {}
Field::Field(std::string_view key, int64_t value)
    : key_(key), value_(absl::StrCat(value)), quoted_(false) {}
Field::Field(std::string_view key, uint64_t value)
    : key_(key), value_(absl::StrCat(value)), quoted_(false) {}
Field::Field(std::string_view key, double value)
    : key_(key), value_(absl::StrFormat("%.6g", value)), quoted_(false) {}
Field::Field(std::string_view key, bool value)
    : key_(key), value_(value ? "true" : "false"), quoted_(false) {}
Field::Field(std::string_view key, const absl::Status& status)
    : key_(key),
      value_(status.ok()
                 ? std::string("OK")
                 : absl::StrCat(absl::StatusCodeToString(status.code()), ": ", status.message())),
      quoted_(true) {}

absl::Status Init(std::string_view level, std::string_view format) {
  if (level == "debug") {
    g_level = Level::kDebug;
  } else if (level == "info") {
    g_level = Level::kInfo;
  } else if (level == "warn" || level == "warning") {
    g_level = Level::kWarn;
  } else if (level == "error") {
    g_level = Level::kError;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--log-level must be debug, info, warn or error, got \"", std::string(level), "\""));
  }
  if (format == "json") {
    g_format = Format::kJson;
  } else if (format == "text") {
    g_format = Format::kText;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--log-format must be json or text, got \"", std::string(format), "\""));
  }
  Logger();
  common::SetCheckFailureHandler(&OnCheckFailure);
  return absl::OkStatus();
}

bool Enabled(Level level) { return level >= g_level.load(); }

std::string Render(Format format, Level level, std::string_view component, std::string_view event,
                   Fields fields) {
  std::string ts = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  std::string out;
  if (format == Format::kJson) {
    out = absl::StrCat("{\"ts\":\"", ts, "\",\"level\":\"", LevelName(level), "\",\"component\":");
    AppendJsonString(&out, component);
    out += ",\"msg\":";
    AppendJsonString(&out, event);
    for (const Field& f : fields) {
      out.push_back(',');
      AppendJsonString(&out, f.key());
      out.push_back(':');
      if (f.quoted()) {
        AppendJsonString(&out, f.value());
      } else {
        out += f.value();
      }
    }
    out.push_back('}');
  } else {
    out = absl::StrFormat("%s %-5s %-8s %s", ts, LevelName(level), component, event);
    for (const Field& f : fields) {
      absl::StrAppend(&out, " ", f.key(), "=");
      if (f.quoted() && f.value().find_first_of(" \"=") != std::string::npos) {
        AppendJsonString(&out, f.value());
      } else {
        out += f.value();
      }
    }
  }
  return out;
}

void Write(Level level, std::string_view component, std::string_view event, Fields fields) {
  if (!Enabled(level)) return;
  Logger()->info(Render(g_format.load(), level, component, event, fields));
}

}  // namespace kvsync::log
