#include "checker/checkpoint.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/digest.h"
#include "nlohmann/json.hpp"

namespace kvsync::checker {
namespace {

// A non-negative integer field, or nullopt when absent; false when present but malformed.
bool ReadRevision(const nlohmann::json& j, const char* name, bool required, int64_t* out) {
  if (!j.contains(name)) return !required;
  if (!j[name].is_number_integer()) return false;
  *out = j[name].get<int64_t>();
  return *out >= 0;
}

}  // namespace

std::string ScopeDigest(const std::string& src_prefix, const std::string& dst_prefix,
                        std::vector<std::string> excludes) {
  std::sort(excludes.begin(), excludes.end());
  excludes.erase(std::unique(excludes.begin(), excludes.end()), excludes.end());
  // Length-prefixed fields: no two scopes encode to the same string.
  std::string canonical = absl::StrCat("scope/1;", src_prefix.size(), ":", src_prefix,
                                       dst_prefix.size(), ":", dst_prefix);
  for (const auto& ex : excludes) absl::StrAppend(&canonical, ex.size(), ":", ex);
  return common::DigestHex(common::KeyDigest(canonical));
}

std::string CheckpointKey(const std::string& meta_prefix, const std::string& task_name) {
  return absl::StrCat(meta_prefix, task_name, "/checkpoint");
}

std::string LeaseRecordPrefix(const std::string& meta_prefix, const std::string& task_name) {
  return absl::StrCat(meta_prefix, task_name, "/leases/");
}

std::string LeaseRecordKey(const std::string& records_prefix, int64_t lease) {
  return absl::StrCat(records_prefix, absl::StrFormat("%016x", static_cast<uint64_t>(lease)));
}

std::string EncodeCheckpoint(const Checkpoint& cp) {
  nlohmann::json j;
  j["format"] = cp.format;
  j["revision"] = cp.revision;
  j["source_cluster_id"] = absl::StrFormat("%x", cp.source_cluster_id);
  j["full_sync_pending"] = cp.full_sync_pending;
  if (!cp.scope.empty()) j["scope"] = cp.scope;
  if (cp.anchor) {
    j["anchor"] = {{"key_hex", absl::BytesToHexString(cp.anchor->key)},
                   {"mod_revision", cp.anchor->mod_revision},
                   {"create_revision", cp.anchor->create_revision},
                   {"at", cp.anchor->at}};
  }
  if (!cp.writer.empty()) j["writer"] = cp.writer;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

absl::StatusOr<Checkpoint> DecodeCheckpoint(const std::string& value) {
  nlohmann::json j = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("checkpoint value is not a kvsync checkpoint");
  }
  Checkpoint cp;
  if (!ReadRevision(j, "revision", true, &cp.revision)) {
    return absl::InvalidArgumentError("checkpoint revision is missing or negative");
  }
  cp.format = 1;
  if (j.contains("format")) {
    if (!j["format"].is_number_integer() || j["format"].get<int64_t>() < 1) {
      return absl::InvalidArgumentError("checkpoint format is not a positive integer");
    }
    cp.format = j["format"].get<int>();
  }
  if (j.contains("source_cluster_id")) {
    if (!j["source_cluster_id"].is_string() ||
        !absl::SimpleHexAtoi(j["source_cluster_id"].get<std::string>(), &cp.source_cluster_id)) {
      return absl::InvalidArgumentError("checkpoint source_cluster_id is not hex");
    }
  }
  if (j.contains("full_sync_pending") && j["full_sync_pending"].is_boolean()) {
    cp.full_sync_pending = j["full_sync_pending"].get<bool>();
  }
  if (j.contains("scope") && j["scope"].is_string()) cp.scope = j["scope"].get<std::string>();
  if (j.contains("anchor")) {
    const nlohmann::json& a = j["anchor"];
    HistoryAnchor anchor;
    if (!a.is_object() || !a.contains("key_hex") || !a["key_hex"].is_string() ||
        !ReadRevision(a, "mod_revision", true, &anchor.mod_revision) ||
        !ReadRevision(a, "create_revision", true, &anchor.create_revision) ||
        !ReadRevision(a, "at", true, &anchor.at) || anchor.mod_revision == 0 ||
        anchor.mod_revision > anchor.at || anchor.create_revision > anchor.mod_revision) {
      return absl::InvalidArgumentError("checkpoint anchor is malformed");
    }
    const std::string hex = a["key_hex"].get<std::string>();
    if (hex.size() % 2 != 0 ||
        !std::all_of(hex.begin(), hex.end(), [](char c) { return std::isxdigit(c) != 0; })) {
      return absl::InvalidArgumentError("checkpoint anchor key is not hex");
    }
    anchor.key = absl::HexStringToBytes(hex);
    cp.anchor = std::move(anchor);
  }
  if (j.contains("writer") && j["writer"].is_string()) cp.writer = j["writer"].get<std::string>();
  return cp;
}

}  // namespace kvsync::checker
