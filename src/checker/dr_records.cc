#include "checker/dr_records.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace kvsync::checker {
namespace {

bool ReadInt(const nlohmann::json& j, const char* name, int64_t* out) {
  if (!j.contains(name)) return true;
  if (!j[name].is_number_integer()) return false;
  *out = j[name].get<int64_t>();
  return *out >= 0;
}

bool ReadClusterId(const nlohmann::json& j, uint64_t* out) {
  if (!j.contains("source_cluster_id")) return true;
  return j["source_cluster_id"].is_string() &&
         absl::SimpleHexAtoi(j["source_cluster_id"].get<std::string>(), out);
}

std::string ReadString(const nlohmann::json& j, const char* name) {
  return j.contains(name) && j[name].is_string() ? j[name].get<std::string>() : "";
}

bool ReadBool(const nlohmann::json& j, const char* name) {
  return j.contains(name) && j[name].is_boolean() && j[name].get<bool>();
}

std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string RoleKey(const std::string& meta_prefix, const std::string& task_name) {
  return absl::StrCat(meta_prefix, task_name, "/role");
}

std::string FreshnessKey(const std::string& meta_prefix, const std::string& task_name) {
  return absl::StrCat(meta_prefix, task_name, "/freshness");
}

etcd::Compare NotPromoted(const std::string& role_key) {
  etcd::Compare c;
  c.key = role_key;
  c.target = etcd::Compare::Target::kVersion;
  c.result = etcd::Compare::Result::kEqual;
  c.number = 0;
  return c;
}

std::string EncodeFreshness(const Freshness& f) {
  nlohmann::json j;
  j["applied_revision"] = f.applied_revision;
  j["fresh_as_of_ms"] = f.fresh_as_of_ms;
  j["fresh_as_of"] = FormatWallMs(f.fresh_as_of_ms);
  j["source_head"] = f.source_head;
  j["source_head_ms"] = f.source_head_ms;
  j["updated_ms"] = f.updated_ms;
  j["interval_ms"] = f.interval_ms;
  j["source_cluster_id"] = absl::StrFormat("%x", f.source_cluster_id);
  j["writer"] = f.writer;
  j["ha"] = f.ha;
  j["full_sync"] = f.full_sync;
  j["check_ms"] = f.check_ms;
  j["check_full"] = f.check_full;
  j["check_differences"] = f.check_differences;
  return Dump(j);
}

absl::StatusOr<Freshness> DecodeFreshness(const std::string& value) {
  nlohmann::json j = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  Freshness f;
  if (j.is_discarded() || !j.is_object() || !j.contains("applied_revision") ||
      !ReadInt(j, "applied_revision", &f.applied_revision) ||
      !ReadInt(j, "fresh_as_of_ms", &f.fresh_as_of_ms) ||
      !ReadInt(j, "source_head", &f.source_head) ||
      !ReadInt(j, "source_head_ms", &f.source_head_ms) ||
      !ReadInt(j, "updated_ms", &f.updated_ms) || !ReadInt(j, "interval_ms", &f.interval_ms) ||
      !ReadInt(j, "check_ms", &f.check_ms) ||
      !ReadInt(j, "check_differences", &f.check_differences) ||
      !ReadClusterId(j, &f.source_cluster_id)) {
    return absl::InvalidArgumentError("value is not a kvsync freshness record");
  }
  f.writer = ReadString(j, "writer");
  f.ha = ReadBool(j, "ha");
  f.full_sync = ReadBool(j, "full_sync");
  f.check_full = ReadBool(j, "check_full");
  return f;
}

std::string EncodeRole(const RoleRecord& r) {
  nlohmann::json j;
  j["role"] = r.role;
  j["mode"] = r.mode;
  j["promoted_ms"] = r.promoted_ms;
  j["promoted_at"] = FormatWallMs(r.promoted_ms);
  j["by"] = r.by;
  j["source_cluster_id"] = absl::StrFormat("%x", r.source_cluster_id);
  j["applied_revision"] = r.applied_revision;
  j["applied_current_ms"] = r.applied_current_ms;
  j["source_head"] = r.source_head;
  j["source_head_ms"] = r.source_head_ms;
  j["destination_revision"] = r.destination_revision;
  return Dump(j);
}

absl::StatusOr<RoleRecord> DecodeRole(const std::string& value) {
  nlohmann::json j = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  RoleRecord r;
  if (j.is_discarded() || !j.is_object() || ReadString(j, "role").empty() ||
      !ReadInt(j, "promoted_ms", &r.promoted_ms) ||
      !ReadInt(j, "applied_revision", &r.applied_revision) ||
      !ReadInt(j, "applied_current_ms", &r.applied_current_ms) ||
      !ReadInt(j, "source_head", &r.source_head) ||
      !ReadInt(j, "source_head_ms", &r.source_head_ms) ||
      !ReadInt(j, "destination_revision", &r.destination_revision) ||
      !ReadClusterId(j, &r.source_cluster_id)) {
    return absl::InvalidArgumentError("value is not a kvsync role record");
  }
  r.role = ReadString(j, "role");
  r.mode = ReadString(j, "mode");
  r.by = ReadString(j, "by");
  return r;
}

std::string DescribePromotion(const RoleRecord& r) {
  return absl::StrCat(r.role, " by ", r.by.empty() ? "?" : r.by, " at ",
                      FormatWallMs(r.promoted_ms), r.mode.empty() ? "" : " (" + r.mode + ")");
}

std::string FormatWallMs(int64_t ms) {
  if (ms <= 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(ms), absl::UTCTimeZone());
}

}  // namespace kvsync::checker
