#include "checker/checkpoint.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace kvsync::checker {

std::string CheckpointKey(const std::string& meta_prefix, const std::string& task_name) {
  return absl::StrCat(meta_prefix, task_name, "/checkpoint");
}

std::string EncodeCheckpoint(const Checkpoint& cp) {
  nlohmann::json j;
  j["revision"] = cp.revision;
  j["source_cluster_id"] = absl::StrFormat("%x", cp.source_cluster_id);
  j["full_sync_pending"] = cp.full_sync_pending;
  if (!cp.writer.empty()) j["writer"] = cp.writer;
  return j.dump();
}

absl::StatusOr<Checkpoint> DecodeCheckpoint(const std::string& value) {
  nlohmann::json j = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("revision") ||
      !j["revision"].is_number_integer()) {
    return absl::InvalidArgumentError("checkpoint value is not a kvsync checkpoint");
  }
  Checkpoint cp;
  cp.revision = j["revision"].get<int64_t>();
  if (j.contains("source_cluster_id") && j["source_cluster_id"].is_string()) {
    if (!absl::SimpleHexAtoi(j["source_cluster_id"].get<std::string>(), &cp.source_cluster_id)) {
      return absl::InvalidArgumentError("checkpoint source_cluster_id is not hex");
    }
  }
  if (j.contains("full_sync_pending") && j["full_sync_pending"].is_boolean()) {
    cp.full_sync_pending = j["full_sync_pending"].get<bool>();
  }
  if (j.contains("writer") && j["writer"].is_string()) cp.writer = j["writer"].get<std::string>();
  return cp;
}

}  // namespace kvsync::checker
