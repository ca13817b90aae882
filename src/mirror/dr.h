// Disaster-recovery operations on an etcd2etcd task, run by `kvsync status`, `kvsync promote`,
// `kvsync demote` and `kvsync failback` (docs/architecture.md, "Disaster recovery"). They read
// and write only the task's records in the destination (checkpoint, freshness, role; see
// checker/dr_records.h) and, where given, read the source: they work while kvsync itself is
// stopped, dead or in another city.
//
// Promote writes the role record in one txn that compares the checkpoint it read, so the RPO
// figure it prints is the destination's exact state at the fence: every source change up to
// applied_revision is there, none after it. Failover (no source) promotes at once.
// Switchover: waits until the destination provably holds the source's head, marks the cutover
// point by writing the task's role record at the source ("demoted": a writer whose txns compare
// it is fenced there), waits until the destination holds that revision too, then promotes, and
// reports whether the source still changed after it (writers that ignore the record).
//
// Thread-safety: plain functions; call from one thread. `stop` ends waits early (Cancelled).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "checker/checkpoint.h"
#include "checker/dr_records.h"
#include "checker/key_mapper.h"
#include "common/stop_token.h"
#include "etcd/api.h"

namespace kvsync::mirror {

// What the destination holds about one task (each record absent when not written).
struct TaskRecords {
  std::optional<checker::Checkpoint> checkpoint;
  int64_t checkpoint_mod_revision = 0;
  std::optional<checker::Freshness> freshness;
  std::optional<checker::RoleRecord> role;
  std::string leader;        // identity of the task's election leader (on this cluster), or ""
  int64_t dst_revision = 0;  // the destination's revision when read
  uint64_t dst_cluster_id = 0;
};

// Errors: the reads'; InvalidArgument when a record is not what kvsync writes.
absl::StatusOr<TaskRecords> ReadTaskRecords(etcd::KvApi* dst, const std::string& meta_prefix,
                                            const std::string& task);
// The tasks with a checkpoint, freshness or role record directly under `meta_prefix`, sorted.
absl::StatusOr<std::vector<std::string>> ListTasks(etcd::KvApi* dst,
                                                   const std::string& meta_prefix);

struct TaskStatus {
  std::string task;
  std::string role;   // "standby" or "promoted"
  std::string state;  // full-sync streaming lagging stalled no-leader stopped promoted
  std::string leader;
  int64_t checkpoint = 0;  // source revision applied
  int64_t source_head = 0;
  bool source_head_live = false;  // read from the source now, not from the freshness record
  int64_t lag_revisions = 0;
  double lag_seconds = 0;  // now - fresh_as_of (how stale a reader of the standby may be)
  int64_t updated_ms = 0;  // freshness record written (0: never)
  int64_t check_ms = 0;
  int64_t check_differences = 0;
  std::string detail;  // why the state, for humans
  bool healthy() const { return state == "streaming" || state == "promoted"; }
};

struct StatusOptions {
  std::chrono::milliseconds max_lag{30000};  // "lagging" beyond this staleness
  int64_t now_ms = 0;
  // The live source head, when the source is known and reachable (else from the record).
  std::optional<int64_t> source_head;
};

TaskStatus DeriveStatus(const std::string& task, const TaskRecords& records,
                        const StatusOptions& options);
std::string RenderStatusText(const std::vector<TaskStatus>& tasks);
std::string RenderStatusJson(const std::vector<TaskStatus>& tasks);

struct PromoteOptions {
  std::string meta_prefix;
  std::string task;
  std::string by;  // user@host
  // Switchover only (a source given): how long to wait for the destination to catch up, and
  // the source range whose changes count (the task's prefix).
  std::chrono::milliseconds timeout{60000};
  std::string src_key;
  std::string src_range_end;
  const common::StopToken* stop = nullptr;
  std::function<int64_t()> now_ms;  // wall clock (tests may fix it)
};

struct PromoteReport {
  checker::RoleRecord role;
  bool switchover = false;
  // Switchover: the source head read after the fence, and whether the source changed in
  // scope after applied_revision by then (writes that reached the old primary after the
  // cutover; `kvsync failback` reports them).
  int64_t source_head_after = 0;
  bool late_writes = false;
  // Switchover: the source's role record says "demoted" (the cutover point); when the source
  // refused that write (no permission), why.
  bool source_fenced = false;
  std::string source_fence_error;
  bool full_sync_interrupted = false;  // failover of a destination mid full sync
  double waited_seconds = 0;           // switchover: time spent waiting for the catch-up
  int64_t mirrored_leases = 0;         // leases the task kept alive at the destination
};

// Promotes the task's destination. `src` null: failover. Errors: FailedPrecondition (already
// promoted, never synced, the source is another cluster than the checkpoint's),
// DeadlineExceeded (switchover: the destination did not catch up within the timeout; nothing
// was written), Cancelled, the clusters' errors.
absl::StatusOr<PromoteReport> Promote(etcd::ClusterApi* dst, etcd::ClusterApi* src,
                                      const PromoteOptions& options);
std::string RenderPromoteText(const PromoteReport& report, const std::string& task);
std::string RenderPromoteJson(const PromoteReport& report, const std::string& task);

// Deletes the role record and marks the checkpoint for a full sync, so the task mirrors into
// the destination again, overwriting what was written there since the promotion. Errors:
// FailedPrecondition when it is not promoted; the cluster's.
absl::StatusOr<checker::RoleRecord> Demote(etcd::ClusterApi* dst, const std::string& meta_prefix,
                                           const std::string& task);

// Whether anything in [key, range_end) changed at `src` in (from, to]: a put, or a delete (key
// counts differ). Errors: IsCompacted when `from` is compacted, the reads'.
absl::StatusOr<bool> RangeChanged(etcd::KvApi* src, const std::string& key,
                                  const std::string& range_end, int64_t from, int64_t to);

// Deletes the task's "demoted" role record at the source (left by a switchover), if there.
absl::Status UndoSourceFence(etcd::ClusterApi* src, const std::string& meta_prefix,
                             const std::string& task);

// One write the old primary took after the standby's last applied revision.
struct LostWrite {
  std::string key;
  std::string value;
  int64_t revision = 0;  // mod revision (0 for a delete: its revision is not kept)
  int64_t lease = 0;
  bool deleted = false;
};

// Keys of `mapper`'s source scope changed at `old_primary` after `since`: present now with a
// newer mod revision, or present at `since` and gone now. Errors: IsCompacted when `since` is
// compacted at the old primary (deletes cannot be told), the reads'.
absl::StatusOr<std::vector<LostWrite>> FindDivergence(etcd::KvApi* old_primary,
                                                      const checker::KeyMapper& mapper,
                                                      int64_t since, int page_size,
                                                      const common::StopToken* stop);
// One JSON object per line: key, value (or key_base64/value_base64 when not UTF-8), revision,
// lease, deleted.
std::string LostWriteJson(const LostWrite& w);

}  // namespace kvsync::mirror
