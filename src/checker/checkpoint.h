// The task's checkpoint, kept in the destination at <meta-prefix><name>/checkpoint and written
// in the same txn as the data it covers, so data and checkpoint never disagree after a crash.
// Value: JSON {"revision":R,"source_cluster_id":"<hex>","full_sync_pending":bool,"writer":id}.
// `revision` is the last source revision fully applied; `full_sync_pending` is set while a
// full sync runs, so that a crash during it resumes with a full sync again. Pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace kvsync::checker {

struct Checkpoint {
  int64_t revision = 0;
  uint64_t source_cluster_id = 0;
  bool full_sync_pending = false;
  std::string writer;  // instance that wrote it (--instance-id), for audits and tests
};

std::string CheckpointKey(const std::string& meta_prefix, const std::string& task_name);
std::string EncodeCheckpoint(const Checkpoint& cp);
// InvalidArgument (DataLoss would overstate it) when the stored value is not ours.
absl::StatusOr<Checkpoint> DecodeCheckpoint(const std::string& value);

}  // namespace kvsync::checker
