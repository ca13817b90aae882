// The task's checkpoint, kept in the destination at <meta-prefix><name>/checkpoint and written
// in the same txn as the data it covers, so data and checkpoint never disagree after a crash.
//
// A checkpoint's revision only means something for one source history and one scope, so the
// checkpoint carries what binds it to both:
//   - `source_cluster_id`: the source cluster it was taken from;
//   - `scope`: a digest of the source prefix, destination prefix and excludes (ScopeDigest);
//   - `anchor`: a source key with the mod and create revision it had at source revision `at`.
//     A source rebuilt with the same cluster ID (etcd derives the ID from member names, peer
//     URLs and the token) cannot answer a read of that key at that revision with the same
//     revisions, so resuming verifies the anchor against the source first;
//   - `format`: kCheckpointFormat; older checkpoints (no scope, no anchor) cannot prove their
//     origin and are never used for the fast path.
// `full_sync_pending` is set while a full sync runs, so that a crash during it resumes with a
// full sync again. Value: JSON, keys hex-encoded (keys may be any bytes). Pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kvsync::checker {

inline constexpr int kCheckpointFormat = 2;

// "Source key `key` had these revisions at source revision `at`" (all positive).
struct HistoryAnchor {
  std::string key;
  int64_t mod_revision = 0;
  int64_t create_revision = 0;
  int64_t at = 0;
  bool operator==(const HistoryAnchor& o) const {
    return key == o.key && mod_revision == o.mod_revision && create_revision == o.create_revision &&
           at == o.at;
  }
};

struct Checkpoint {
  int64_t revision = 0;
  uint64_t source_cluster_id = 0;
  bool full_sync_pending = false;
  std::string writer;              // instance that wrote it (--instance-id), for audits and tests
  int format = kCheckpointFormat;  // 1 when read from a checkpoint without a format field
  std::string scope;               // ScopeDigest of the task; empty in format 1
  std::optional<HistoryAnchor> anchor;
};

// The digest (hex) that names a task's scope: equal exactly when source prefix, destination
// prefix and the set of excludes are equal.
std::string ScopeDigest(const std::string& src_prefix, const std::string& dst_prefix,
                        std::vector<std::string> excludes);

std::string CheckpointKey(const std::string& meta_prefix, const std::string& task_name);
// Lease records of a task (mirror::LeaseKeeper): <meta>/<task>/leases/<ID as 16 hex digits>.
std::string LeaseRecordPrefix(const std::string& meta_prefix, const std::string& task_name);
std::string LeaseRecordKey(const std::string& records_prefix, int64_t lease);
std::string EncodeCheckpoint(const Checkpoint& cp);
// InvalidArgument (DataLoss would overstate it) when the stored value is not a well-formed
// kvsync checkpoint: not JSON, a negative or missing revision, a malformed field.
absl::StatusOr<Checkpoint> DecodeCheckpoint(const std::string& value);

}  // namespace kvsync::checker
