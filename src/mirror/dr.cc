#include "mirror/dr.h"

#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "checker/range_cursor.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "etcd/names.h"
#include "nlohmann/json.hpp"

namespace kvsync::mirror {
namespace {

std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The value of `key` with its mod revision, or nullopt; the header of the read in `header`.
absl::StatusOr<std::optional<etcd::KeyValue>> Get(etcd::KvApi* kv, const std::string& key,
                                                  etcd::Header* header = nullptr) {
  etcd::RangeRequest req;
  req.key = key;
  ASSIGN_OR_RETURN(etcd::RangeResponse resp, kv->Range(req));
  if (header != nullptr) *header = resp.header;
  if (resp.kvs.empty()) return std::optional<etcd::KeyValue>();
  return std::optional<etcd::KeyValue>(std::move(resp.kvs[0]));
}

// The identity of the oldest candidate under the task's election prefix (etcd's election
// leader), or "" when nobody campaigns on this cluster.
absl::StatusOr<std::string> ElectionLeader(etcd::KvApi* kv, const std::string& election) {
  etcd::RangeRequest req;
  req.key = election + "/";
  req.range_end = common::PrefixEnd(req.key);
  ASSIGN_OR_RETURN(etcd::RangeResponse resp, kv->Range(req));
  const etcd::KeyValue* oldest = nullptr;
  for (const etcd::KeyValue& kv_entry : resp.kvs) {
    if (oldest == nullptr || kv_entry.create_revision < oldest->create_revision) oldest = &kv_entry;
  }
  return oldest == nullptr ? std::string() : oldest->value;
}

std::string Seconds(double s) { return absl::StrFormat("%.1fs", s); }

bool IsUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80             ? 0
               : (c & 0xe0) == 0xc0 ? 1
               : (c & 0xf0) == 0xe0 ? 2
               : (c & 0xf8) == 0xf0 ? 3
                                    : 4;
    if (n == 4 || i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    i += n + 1;
  }
  return true;
}

}  // namespace

absl::StatusOr<TaskRecords> ReadTaskRecords(etcd::KvApi* dst, const std::string& meta_prefix,
                                            const std::string& task) {
  TaskRecords r;
  etcd::Header header;
  ASSIGN_OR_RETURN(std::optional<etcd::KeyValue> cp,
                   Get(dst, checker::CheckpointKey(meta_prefix, task), &header));
  r.dst_revision = header.revision;
  r.dst_cluster_id = header.cluster_id;
  if (cp) {
    ASSIGN_OR_RETURN(r.checkpoint, checker::DecodeCheckpoint(cp->value));
    r.checkpoint_mod_revision = cp->mod_revision;
  }
  ASSIGN_OR_RETURN(std::optional<etcd::KeyValue> fresh,
                   Get(dst, checker::FreshnessKey(meta_prefix, task)));
  if (fresh) {
    ASSIGN_OR_RETURN(r.freshness, checker::DecodeFreshness(fresh->value));
  }
  ASSIGN_OR_RETURN(std::optional<etcd::KeyValue> role,
                   Get(dst, checker::RoleKey(meta_prefix, task)));
  if (role) {
    ASSIGN_OR_RETURN(r.role, checker::DecodeRole(role->value));
  }
  ASSIGN_OR_RETURN(r.leader, ElectionLeader(dst, meta_prefix + task + "/election"));
  return r;
}

absl::StatusOr<std::vector<std::string>> ListTasks(etcd::KvApi* dst,
                                                   const std::string& meta_prefix) {
  // Names first (a skip-scan), then each name's three records: never the task's marks.
  ASSIGN_OR_RETURN(std::vector<std::string> names, etcd::ListNames(dst, meta_prefix));
  std::vector<std::string> tasks;
  for (const std::string& name : names) {
    for (const std::string& key :
         {checker::CheckpointKey(meta_prefix, name), checker::FreshnessKey(meta_prefix, name),
          checker::RoleKey(meta_prefix, name)}) {
      ASSIGN_OR_RETURN(std::optional<etcd::KeyValue> record, Get(dst, key));
      if (record) {
        tasks.push_back(name);
        break;
      }
    }
  }
  return tasks;  // sorted, as the names
}

TaskStatus DeriveStatus(const std::string& task, const TaskRecords& records,
                        const StatusOptions& options) {
  TaskStatus s;
  s.task = task;
  s.leader = records.leader;
  s.role = records.role ? "promoted" : "standby";
  int64_t applied = records.checkpoint ? records.checkpoint->revision : 0;
  int64_t head = applied;
  int64_t fresh_ms = 0;
  if (records.freshness) {
    const checker::Freshness& f = *records.freshness;
    applied = std::max(applied, f.applied_revision);
    head = std::max(head, f.source_head);
    fresh_ms = f.fresh_as_of_ms;
    s.updated_ms = f.updated_ms;
    s.check_ms = f.check_ms;
    s.check_differences = f.check_differences;
  }
  if (options.source_head) {
    head = *options.source_head;
    s.source_head_live = true;
  }
  s.checkpoint = applied;
  s.source_head = head;
  s.lag_revisions = std::max<int64_t>(0, head - applied);
  s.lag_seconds = fresh_ms > 0 ? std::max<double>(0, (options.now_ms - fresh_ms) / 1000.0) : -1;
  if (records.role) {
    // The figures fixed at the promotion: what the destination held of the source then.
    s.state = "promoted";
    s.detail = checker::DescribePromotion(*records.role);
    s.checkpoint = records.role->applied_revision;
    s.source_head = std::max(records.role->source_head, s.checkpoint);
    s.source_head_live = false;
    s.lag_revisions = s.source_head - s.checkpoint;
    s.lag_seconds = 0;
    return s;
  }
  if (!records.freshness) {
    s.state = "stopped";
    s.detail = "no freshness record: the task has not run with this kvsync version";
    return s;
  }
  const checker::Freshness& f = *records.freshness;
  // Three missed heartbeats (and a margin for a slow destination) mean nobody writes.
  int64_t stale_after = 3 * std::max<int64_t>(f.interval_ms, 1000) + 5000;
  int64_t age = options.now_ms - f.updated_ms;
  if (age > stale_after) {
    if (!records.leader.empty()) {
      s.state = "stalled";
      s.detail = absl::StrCat("leader ", records.leader, " has not written for ", age / 1000, "s");
    } else {
      s.state = f.ha ? "no-leader" : "stopped";
      s.detail = absl::StrCat("no writer for ", age / 1000, "s (last: ", f.writer, ")");
    }
    return s;
  }
  if (f.full_sync) {
    s.state = "full-sync";
    s.detail = "a full sync is running";
    return s;
  }
  double max_lag = static_cast<double>(options.max_lag.count()) / 1000.0;
  if (s.lag_seconds < 0 || s.lag_seconds > max_lag) {
    s.state = "lagging";
    s.detail = s.lag_seconds < 0 ? "never observed caught up"
                                 : absl::StrCat("stale for ", Seconds(s.lag_seconds));
    return s;
  }
  s.state = "streaming";
  return s;
}

std::string RenderStatusText(const std::vector<TaskStatus>& tasks) {
  std::string out =
      absl::StrFormat("%-24s %-9s %-10s %-20s %12s %12s %8s %9s  %s\n", "TASK", "ROLE", "STATE",
                      "LEADER", "CHECKPOINT", "SOURCE-HEAD", "LAG-REV", "LAG", "LAST-CHECK");
  for (const TaskStatus& t : tasks) {
    std::string check = t.check_ms == 0
                            ? "-"
                            : absl::StrCat(checker::FormatWallMs(t.check_ms), " ",
                                           t.check_differences == 0
                                               ? "consistent"
                                               : absl::StrCat(t.check_differences, " differences"));
    std::string head = absl::StrCat(t.source_head, t.source_head_live ? "" : "*");
    absl::StrAppendFormat(&out, "%-24s %-9s %-10s %-20s %12d %12s %8d %9s  %s\n", t.task, t.role,
                          t.state, t.leader.empty() ? "-" : t.leader, t.checkpoint, head,
                          t.lag_revisions, t.lag_seconds < 0 ? "-" : Seconds(t.lag_seconds), check);
    if (!t.detail.empty() && !t.healthy()) {
      absl::StrAppend(&out, "  ", t.state, ": ", t.detail, "\n");
    }
  }
  absl::StrAppend(&out,
                  "(* source head as last observed by the task; give --config with a reachable "
                  "source to read it live)\n");
  return out;
}

std::string RenderStatusJson(const std::vector<TaskStatus>& tasks) {
  nlohmann::json all = nlohmann::json::array();
  for (const TaskStatus& t : tasks) {
    all.push_back({{"task", t.task},
                   {"role", t.role},
                   {"state", t.state},
                   {"healthy", t.healthy()},
                   {"leader", t.leader},
                   {"checkpoint_revision", t.checkpoint},
                   {"source_head", t.source_head},
                   {"source_head_live", t.source_head_live},
                   {"lag_revisions", t.lag_revisions},
                   {"lag_seconds", t.lag_seconds},
                   {"freshness_updated_ms", t.updated_ms},
                   {"last_check_ms", t.check_ms},
                   {"last_check_differences", t.check_differences},
                   {"detail", t.detail}});
  }
  return Dump(nlohmann::json{{"tasks", all}});
}

absl::StatusOr<bool> RangeChanged(etcd::KvApi* src, const std::string& key,
                                  const std::string& range_end, int64_t from, int64_t to) {
  if (to <= from) return false;
  // Keys modified in (from, to] that still exist at `to`: any put. Equal key counts at both
  // revisions then rule out deletes: every key at `to` is unchanged since `from`, so it
  // existed at `from` with the same value, and no key of `from` is missing.
  etcd::RangeRequest modified;
  modified.key = key;
  modified.range_end = range_end;
  modified.revision = to;
  modified.min_mod_revision = from + 1;
  modified.keys_only = true;
  modified.limit = 1;
  ASSIGN_OR_RETURN(etcd::RangeResponse puts, src->Range(modified));
  if (!puts.kvs.empty()) return true;
  etcd::RangeRequest count = modified;
  count.min_mod_revision = 0;
  count.count_only = true;
  ASSIGN_OR_RETURN(etcd::RangeResponse at_to, src->Range(count));
  count.revision = from;
  ASSIGN_OR_RETURN(etcd::RangeResponse at_from, src->Range(count));
  return at_to.count != at_from.count;
}

namespace {

// The role txn: the role record, if the checkpoint is still the one read (so the figures are
// the destination's state at the fence) and nobody promoted meanwhile. OK(false) when the
// checkpoint moved.
absl::StatusOr<bool> WriteRole(etcd::ClusterApi* dst, const PromoteOptions& o,
                               const TaskRecords& records, const checker::RoleRecord& role) {
  etcd::TxnRequest txn;
  const std::string role_key = checker::RoleKey(o.meta_prefix, o.task);
  txn.compares.push_back(checker::NotPromoted(role_key));
  etcd::Compare cp;
  cp.key = checker::CheckpointKey(o.meta_prefix, o.task);
  cp.target = etcd::Compare::Target::kModRevision;
  cp.number = records.checkpoint_mod_revision;
  txn.compares.push_back(cp);
  txn.success.push_back(etcd::Op::Put(role_key, checker::EncodeRole(role)));
  ASSIGN_OR_RETURN(etcd::TxnResponse resp, dst->Txn(txn));
  if (resp.succeeded) return true;
  ASSIGN_OR_RETURN(std::optional<etcd::KeyValue> existing, Get(dst, role_key));
  if (existing) {
    return absl::FailedPreconditionError(
        absl::StrCat("task \"", o.task, "\" was promoted meanwhile by another command"));
  }
  return false;
}

absl::StatusOr<int64_t> CountLeases(etcd::KvApi* dst, const PromoteOptions& o) {
  etcd::RangeRequest req;
  req.key = checker::LeaseRecordPrefix(o.meta_prefix, o.task);
  req.range_end = common::PrefixEnd(req.key);
  req.count_only = true;
  ASSIGN_OR_RETURN(etcd::RangeResponse resp, dst->Range(req));
  return resp.count;
}

absl::Status CheckPromotable(const PromoteOptions& o, const TaskRecords& records) {
  if (records.role) {
    return absl::FailedPreconditionError(absl::StrCat("task \"", o.task, "\" is already ",
                                                      checker::DescribePromotion(*records.role)));
  }
  if (!records.checkpoint) {
    return absl::FailedPreconditionError(
        absl::StrCat("task \"", o.task, "\" has no checkpoint at the destination (meta prefix \"",
                     o.meta_prefix, "\"): it never synced there, so there is nothing to promote"));
  }
  return absl::OkStatus();
}

}  // namespace

namespace {

// The source head: one single-key read. FailedPrecondition when the source is another cluster
// than the checkpoint's.
absl::StatusOr<etcd::Header> SourceHead(etcd::KvApi* src, const PromoteOptions& o,
                                        uint64_t cluster_id) {
  etcd::RangeRequest req;
  req.key = o.src_key;
  req.keys_only = true;
  ASSIGN_OR_RETURN(etcd::RangeResponse resp, src->Range(req));
  if (resp.header.cluster_id != cluster_id) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "the source is cluster %x but the task's checkpoint was taken from cluster %x",
        resp.header.cluster_id, cluster_id));
  }
  return resp.header;
}

// The figures of a failover: what the checkpoint and the freshness record say.
void FillFromRecords(const TaskRecords& records, checker::RoleRecord* role) {
  const checker::Checkpoint& cp = *records.checkpoint;
  role->source_cluster_id = cp.source_cluster_id;
  role->destination_revision = records.dst_revision;
  role->applied_revision = cp.revision;
  role->source_head = cp.revision;
  // The freshness record counts when it speaks of the same source.
  if (records.freshness && records.freshness->source_cluster_id == cp.source_cluster_id) {
    const checker::Freshness& f = *records.freshness;
    role->applied_revision = std::max(role->applied_revision, f.applied_revision);
    role->applied_current_ms = f.fresh_as_of_ms;
    role->source_head = std::max(f.source_head, role->applied_revision);
    role->source_head_ms = f.source_head_ms;
  }
}

}  // namespace

absl::StatusOr<PromoteReport> Promote(etcd::ClusterApi* dst, etcd::ClusterApi* src,
                                      const PromoteOptions& o) {
  auto now = [&o] { return o.now_ms ? o.now_ms() : common::WallMs(); };
  PromoteReport report;
  report.switchover = src != nullptr;
  checker::RoleRecord& role = report.role;
  role.by = o.by;
  role.mode = src != nullptr ? "switchover" : "failover";
  const int64_t started = now();
  const std::string source_role_key = checker::RoleKey(o.meta_prefix, o.task);
  bool source_demoted = false;
  // A switchover that gives up after demoting the source un-demotes it.
  auto undo = [&](absl::Status s) -> absl::Status {
    if (source_demoted) {
      etcd::TxnRequest txn;
      txn.success.push_back(etcd::Op::Delete(source_role_key));
      src->Txn(txn).IgnoreError();
    }
    return s;
  };
  int64_t target = 0;  // switchover: the source revision the destination must hold
  int64_t target_ms = 0;
  while (true) {
    absl::StatusOr<TaskRecords> read = ReadTaskRecords(dst, o.meta_prefix, o.task);
    if (!read.ok()) return undo(read.status());
    const TaskRecords& records = *read;
    if (absl::Status s = CheckPromotable(o, records); !s.ok()) return undo(s);
    const checker::Checkpoint& cp = *records.checkpoint;
    FillFromRecords(records, &role);
    report.full_sync_interrupted = cp.full_sync_pending;
    if (src != nullptr) {
      if (cp.full_sync_pending) {
        // Not caught up yet: a full sync ends with a checkpoint, written a moment after the
        // data. Wait for it like for any lag, within --timeout.
        if (now() - started > o.timeout.count()) {
          return undo(absl::FailedPreconditionError(absl::StrCat(
              "a full sync is still running at the destination after ", o.timeout.count() / 1000,
              "s; nothing was changed. Wait for it to finish (kvsync status) or raise --timeout")));
        }
        if (o.stop != nullptr && o.stop->WaitFor(std::chrono::milliseconds(50))) {
          return undo(absl::CancelledError("stopped"));
        }
        continue;
      }
      if (target == 0) {
        int64_t sent = now();
        absl::StatusOr<etcd::Header> head = SourceHead(src, o, cp.source_cluster_id);
        if (!head.ok()) return undo(head.status());
        target = head->revision;
        target_ms = sent;
      }
      // Caught up when the destination applied the target, or nothing in scope changed
      // between its checkpoint and the target.
      bool caught_up = role.applied_revision >= target;
      if (!caught_up) {
        absl::StatusOr<bool> changed =
            RangeChanged(src, o.src_key, o.src_range_end, cp.revision, target);
        caught_up = changed.ok() && !*changed;
      }
      if (!caught_up) {
        if (now() - started > o.timeout.count()) {
          return undo(absl::DeadlineExceededError(absl::StrCat(
              "the destination did not catch up with source revision ", target, " within ",
              o.timeout.count() / 1000, "s (applied: ", role.applied_revision,
              "); nothing was changed. Retry, raise --timeout, or fail over with --force")));
        }
        if (o.stop != nullptr && o.stop->WaitFor(std::chrono::milliseconds(50))) {
          return undo(absl::CancelledError("stopped"));
        }
        continue;
      }
      if (!source_demoted) {
        // Caught up with the head seen first: now the cutover point. The source's own role
        // record ("demoted") takes a revision M; every write the source acknowledged before
        // it is below M, and a writer that compares that record in its txns is fenced from
        // here on. Then the destination must hold M too.
        checker::RoleRecord demoted = role;
        demoted.role = "demoted";
        demoted.promoted_ms = now();
        etcd::TxnRequest txn;
        txn.success.push_back(etcd::Op::Put(source_role_key, checker::EncodeRole(demoted)));
        int64_t sent = now();
        absl::StatusOr<etcd::TxnResponse> put = src->Txn(txn);
        if (put.ok()) {
          source_demoted = true;
          report.source_fenced = true;
          target = put->header.revision;
          target_ms = sent;
          continue;
        }
        if (!etcd::IsRefused(put.status())) return undo(put.status());
        // No write permission at the source: no cutover point, writers are not fenced; the
        // late-writes figure below says what happened after the fence.
        report.source_fence_error = std::string(put.status().message());
      }
      role.applied_revision = std::max(role.applied_revision, target);
      role.applied_current_ms = target_ms;
      role.source_head = target;
      role.source_head_ms = target_ms;
    }
    role.promoted_ms = now();
    absl::StatusOr<bool> written = WriteRole(dst, o, records, role);
    if (!written.ok()) return undo(written.status());
    if (*written) break;
    // The mirror applied more meanwhile: read again.
  }
  report.waited_seconds = static_cast<double>(now() - started) / 1000.0;
  if (src != nullptr) {
    // Writes the old primary took after the cutover are not here; say so exactly.
    absl::StatusOr<etcd::Header> head = SourceHead(src, o, role.source_cluster_id);
    if (head.ok()) {
      report.source_head_after = head->revision;
      absl::StatusOr<bool> changed =
          RangeChanged(src, o.src_key, o.src_range_end, role.applied_revision, head->revision);
      report.late_writes = !changed.ok() || *changed;
    } else {
      report.late_writes = true;  // cannot tell: failback will
    }
  }
  ASSIGN_OR_RETURN(report.mirrored_leases, CountLeases(dst, o));
  return report;
}

std::string RenderPromoteText(const PromoteReport& r, const std::string& task) {
  const checker::RoleRecord& role = r.role;
  std::string out = absl::StrCat("promoted: task \"", task, "\" (", role.mode, ")\n");
  if (r.switchover) {
    absl::StrAppend(&out, "  waited for catch-up: ", Seconds(r.waited_seconds), "\n");
    if (!r.late_writes) {
      absl::StrAppend(&out,
                      "  RPO: 0 (the destination holds every source change up to source "
                      "revision ",
                      role.applied_revision, ", the source head at the cutover)\n");
    } else {
      absl::StrAppend(&out, "  RPO: 0 at the cutover (source revision ", role.applied_revision,
                      "), but the old primary took writes after it (its head is now ",
                      r.source_head_after,
                      "): they are not here; `kvsync failback --lost-writes FILE` lists them\n");
    }
  } else {
    int64_t gap = role.source_head - role.applied_revision;
    absl::StrAppend(&out, "  RPO: last applied source revision ", role.applied_revision, "\n");
    absl::StrAppend(&out, "       the source was last observed at or below it at ",
                    checker::FormatWallMs(role.applied_current_ms));
    if (role.applied_current_ms > 0) {
      absl::StrAppend(&out, " (", Seconds((role.promoted_ms - role.applied_current_ms) / 1000.0),
                      " before the promotion)");
    }
    absl::StrAppend(
        &out, "\n       source head last observed: ", role.source_head, " at ",
        checker::FormatWallMs(role.source_head_ms), ": ", gap,
        gap == 1 ? " revision" : " revisions", " known not to be applied",
        gap > 0 ? absl::StrCat(" (", role.applied_revision + 1, "..", role.source_head, ")") : "",
        "\n       writes after the last observation are unknown until the old "
        "primary returns (`kvsync failback --lost-writes FILE` lists every one)\n");
    if (r.full_sync_interrupted) {
      absl::StrAppend(&out,
                      "  WARNING: a full sync was running: the destination holds a mix of "
                      "revisions up to the one above and keys the sync had not reached\n");
    }
  }
  absl::StrAppend(&out,
                  "  fenced: every write of the task now fails (role record), the running "
                  "mirror stops within its --progress-interval, and a task started later "
                  "is refused\n");
  absl::StrAppend(&out, "  leases: ", r.mirrored_leases,
                  " mirrored leases are no longer kept alive by kvsync; each expires after its "
                  "TTL unless its provider keeps the same lease ID alive at this cluster\n");
  absl::StrAppend(
      &out, "  revisions: this cluster's revision is ", role.destination_revision,
      ", the source's was ", role.source_head,
      ": revisions differ between clusters, so a client must re-list (get) and watch from the "
      "revision that read returns, never resume a watch with a source revision\n");
  return out;
}

std::string RenderPromoteJson(const PromoteReport& r, const std::string& task) {
  const checker::RoleRecord& role = r.role;
  nlohmann::json j = {{"task", task},
                      {"mode", role.mode},
                      {"promoted_ms", role.promoted_ms},
                      {"applied_revision", role.applied_revision},
                      {"applied_current_ms", role.applied_current_ms},
                      {"source_head", role.source_head},
                      {"source_head_ms", role.source_head_ms},
                      {"revisions_not_applied", role.source_head - role.applied_revision},
                      {"destination_revision", role.destination_revision},
                      {"waited_seconds", r.waited_seconds},
                      {"late_writes", r.late_writes},
                      {"source_fenced", r.source_fenced},
                      {"source_head_after", r.source_head_after},
                      {"full_sync_interrupted", r.full_sync_interrupted},
                      {"mirrored_leases", r.mirrored_leases}};
  return Dump(j);
}

absl::StatusOr<checker::RoleRecord> Demote(etcd::ClusterApi* dst, const std::string& meta_prefix,
                                           const std::string& task) {
  ASSIGN_OR_RETURN(TaskRecords records, ReadTaskRecords(dst, meta_prefix, task));
  if (!records.role) {
    return absl::FailedPreconditionError(
        absl::StrCat("task \"", task, "\" is not promoted at this destination"));
  }
  const std::string role_key = checker::RoleKey(meta_prefix, task);
  etcd::TxnRequest txn;
  txn.success.push_back(etcd::Op::Delete(role_key));
  if (records.checkpoint) {
    // What was written while promoted is not in the checkpoint's history: a full sync
    // (differences only) brings the destination back to the source.
    checker::Checkpoint cp = *records.checkpoint;
    cp.full_sync_pending = true;
    txn.success.push_back(
        etcd::Op::Put(checker::CheckpointKey(meta_prefix, task), checker::EncodeCheckpoint(cp)));
  }
  ASSIGN_OR_RETURN(etcd::TxnResponse resp, dst->Txn(txn));
  (void)resp;
  return *records.role;
}

absl::Status UndoSourceFence(etcd::ClusterApi* src, const std::string& meta_prefix,
                             const std::string& task) {
  const std::string key = checker::RoleKey(meta_prefix, task);
  ASSIGN_OR_RETURN(std::optional<etcd::KeyValue> kv, Get(src, key));
  if (!kv) return absl::OkStatus();
  absl::StatusOr<checker::RoleRecord> role = checker::DecodeRole(kv->value);
  if (!role.ok() || role->role != "demoted") return absl::OkStatus();
  etcd::TxnRequest txn;
  etcd::Compare same;
  same.key = key;
  same.target = etcd::Compare::Target::kModRevision;
  same.number = kv->mod_revision;
  txn.compares.push_back(same);
  txn.success.push_back(etcd::Op::Delete(key));
  return src->Txn(txn).status();
}

absl::StatusOr<std::vector<LostWrite>> FindDivergence(etcd::KvApi* old_primary,
                                                      const checker::KeyMapper& mapper,
                                                      int64_t since, int page_size,
                                                      const common::StopToken* stop) {
  etcd::RetryCounters retries;
  checker::RangeCursor::Options now_options{mapper.src_prefix(), mapper.src_range_end(), 0,
                                            page_size};
  checker::RangeCursor now_cursor(old_primary, now_options, stop, &retries);
  checker::RangeCursor::Options then_options = now_options;
  then_options.revision = since;
  then_options.keys_only = true;
  checker::RangeCursor then_cursor(old_primary, then_options, stop, &retries);
  std::vector<LostWrite> out;
  // A merge of the sorted key streams at `since` and now.
  while (true) {
    ASSIGN_OR_RETURN(const etcd::KeyValue* n, now_cursor.Current());
    ASSIGN_OR_RETURN(const etcd::KeyValue* t, then_cursor.Current());
    if (n == nullptr && t == nullptr) break;
    if (n != nullptr && (t == nullptr || n->key < t->key)) {
      if (mapper.ToDestination(n->key)) {
        out.push_back({n->key, n->value, n->mod_revision, n->lease, false});
      }
      now_cursor.Advance();
    } else if (t != nullptr && (n == nullptr || t->key < n->key)) {
      if (mapper.ToDestination(t->key)) out.push_back({t->key, "", 0, 0, true});
      then_cursor.Advance();
    } else {
      if (n->mod_revision > since && mapper.ToDestination(n->key)) {
        out.push_back({n->key, n->value, n->mod_revision, n->lease, false});
      }
      now_cursor.Advance();
      then_cursor.Advance();
    }
  }
  return out;
}

std::string LostWriteJson(const LostWrite& w) {
  nlohmann::json j;
  if (IsUtf8(w.key)) {
    j["key"] = w.key;
  } else {
    j["key_base64"] = absl::Base64Escape(w.key);
  }
  if (w.deleted) {
    j["deleted"] = true;
  } else {
    if (IsUtf8(w.value)) {
      j["value"] = w.value;
    } else {
      j["value_base64"] = absl::Base64Escape(w.value);
    }
    j["revision"] = w.revision;
    j["lease"] = w.lease;
  }
  return Dump(j);
}

}  // namespace kvsync::mirror
