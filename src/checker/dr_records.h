// The records a task keeps in its destination for the disaster-recovery day, beside its
// checkpoint (docs/architecture.md, "Disaster recovery"):
//   - the freshness record <meta><task>/freshness, rewritten by the leader at least every
//     --progress-interval: the source revision the destination reflects, the wall time the
//     source was last observed at or below it (so a reader of the standby bounds its own
//     staleness without asking kvsync), the source head last observed, the last check;
//   - the role record <meta><task>/role, written once by `kvsync promote`: the destination is
//     now a primary. Every txn the task writes carries NotPromoted(), so writing the role
//     record is the fence: a running mirror's next txn fails, and a mirror started later
//     refuses (exit 2). `kvsync demote` deletes it.
// Values are JSON. Pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "etcd/types.h"

namespace kvsync::checker {

std::string RoleKey(const std::string& meta_prefix, const std::string& task_name);
std::string FreshnessKey(const std::string& meta_prefix, const std::string& task_name);

// The compare every write of a task carries: its role record does not exist.
etcd::Compare NotPromoted(const std::string& role_key);

struct Freshness {
  int64_t applied_revision = 0;  // every source change up to here is at the destination
  // Wall time (ms) of the last observation of the source head at or below applied_revision:
  // the destination held everything the source held then (0: never observed).
  int64_t fresh_as_of_ms = 0;
  int64_t source_head = 0;     // last source head observed
  int64_t source_head_ms = 0;  // when (wall ms)
  int64_t updated_ms = 0;      // when this record was written
  int64_t interval_ms = 0;     // the writer's --progress-interval
  uint64_t source_cluster_id = 0;
  std::string writer;  // instance id
  bool ha = false;
  bool full_sync = false;  // a full sync is running (applied_revision is the last checkpoint)
  // The last continuous check (0 when none ran): when, whether full, confirmed differences.
  int64_t check_ms = 0;
  bool check_full = false;
  int64_t check_differences = 0;
};

struct RoleRecord {
  std::string role = "promoted";
  std::string mode;  // "switchover" or "failover"
  int64_t promoted_ms = 0;
  std::string by;  // who ran the promote (user@host)
  uint64_t source_cluster_id = 0;
  // The RPO figure, fixed at the moment of promotion: the last source revision the
  // destination applied, when the source was last observed at or below it, the source head
  // last observed (revisions above applied_revision up to it are known not to be applied).
  int64_t applied_revision = 0;
  int64_t applied_current_ms = 0;
  int64_t source_head = 0;
  int64_t source_head_ms = 0;
  int64_t destination_revision = 0;  // the destination's revision just before the promotion
};

std::string EncodeFreshness(const Freshness& f);
// InvalidArgument when the value is not a kvsync freshness record.
absl::StatusOr<Freshness> DecodeFreshness(const std::string& value);
std::string EncodeRole(const RoleRecord& r);
// InvalidArgument when the value is not a kvsync role record.
absl::StatusOr<RoleRecord> DecodeRole(const std::string& value);

// "promoted by ops@host at 2026-11-30T12:00:00Z (failover)": for messages.
std::string DescribePromotion(const RoleRecord& r);
// UTC ISO-8601 of a wall time in ms ("-" for 0).
std::string FormatWallMs(int64_t ms);

}  // namespace kvsync::checker
