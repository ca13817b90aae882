// One consistency check of an etcd2etcd task: the source prefix at one pinned revision against
// the destination prefix, merge-joined in key order (O(page) memory), counting dst miss, src
// miss and mismatch and keeping up to `show` sample keys of each kind. Presence mode
// (`keys_only`) reads keys without values and reports dst miss and src miss only. Reads only;
// used by `kvsync check etcd2etcd` on one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "checker/key_mapper.h"
#include "checker/merge.h"
#include "common/stop_token.h"
#include "etcd/api.h"
#include "etcd/retry.h"

namespace kvsync::checker {

struct CheckOptions {
  bool keys_only = false;
  int page_size = 10000;
  bool serializable = false;  // read from the nearest member instead of the leader
  double read_rate = 0;       // keys/s per cluster (0 = unlimited), so a check never disturbs
                              // the primary
  int show = 10;              // sample keys kept per kind
  // Two rounds: differences of round 1 count only if still there in round 2, taken after the
  // running syncer's checkpoint (`checkpoint_key`) passed round 1's source revision.
  bool confirm = true;
  std::string checkpoint_key;
  std::chrono::milliseconds confirm_timeout{60000};
  size_t max_tracked = 1000000;  // round-1 differences remembered; beyond, no confirmation
  // Keep every confirmed difference (with the source value and the destination's observed
  // mod revision) in CheckReport::repairs, for Repair().
  bool collect_repairs = false;
  // Compare lease attachment too (lease mismatch): the task mirrors leases (no --no-leases).
  bool compare_leases = false;
  // Optional (not owned): source keys read so far, for a progress display.
  std::atomic<int64_t>* progress = nullptr;
};

// One confirmed difference and what the destination looked like when it was read.
struct Repair {
  DiffKind kind;
  std::string dst_key;
  std::string src_value;         // dst miss and mismatch
  int64_t src_lease = 0;         // the source key's lease (with CheckOptions::compare_leases)
  int64_t dst_mod_revision = 0;  // 0 for a dst miss (the key was absent)
};

struct CheckSample {
  DiffKind kind;
  std::string src_key;  // empty for a src miss
  std::string dst_key;
};

struct CheckReport {
  bool keys_only = false;
  DiffCounts counts;
  std::vector<CheckSample> samples;
  int64_t source_revision = 0;
  int64_t destination_revision = 0;
  int64_t source_bytes = 0;  // key and value bytes read
  int64_t destination_bytes = 0;
  double seconds = 0;
  int rounds = 1;
  int64_t unconfirmed = 0;      // differences seen in only one round (in-flight changes), dropped
  std::vector<Repair> repairs;  // with CheckOptions::collect_repairs
  int64_t fixed = 0;            // set by Repair()
  int64_t fix_skipped = 0;      // changed at the destination since it was read: left alone
  // zk2etcd checks: the source is a ZooKeeper tree (no revision), and destination keys that
  // no znode matches but another writer owns are counted here, not as src miss.
  bool zookeeper_source = false;
  int64_t not_owned = 0;
  // zk2etcd checks that cannot prove a key right or wrong: keys no znode matched whose
  // ownership could not be read (store down), and znodes kvsync may not read (ACL), whose
  // subtrees' keys are left out. Either makes the check inconclusive, so not consistent.
  int64_t ownership_unknown = 0;
  int64_t unreadable = 0;
  // Deletes a --fix held (deletion guard); the reason is fix_held_reason.
  int64_t fix_held = 0;
  std::string fix_held_reason;
  bool consistent() const {
    return counts.total() == 0 && ownership_unknown == 0 && unreadable == 0;
  }
};

// Errors: IsCompacted when the pinned source revision was compacted during the check (run it
// again), Cancelled on stop, other etcd errors after transient ones were retried.
absl::StatusOr<CheckReport> CheckOnce(etcd::KvApi* src, etcd::KvApi* dst, const KeyMapper& mapper,
                                      const CheckOptions& options, const common::StopToken* stop,
                                      etcd::RetryCounters* retries);

// Round 1, and when it finds differences and options.confirm is set, round 2 as described in
// CheckOptions. Counts and samples are round 2's confirmed differences. If the checkpoint does
// not reach round 1's revision within confirm_timeout (no syncer running), round 2 runs anyway.
absl::StatusOr<CheckReport> Check(etcd::KvApi* src, etcd::KvApi* dst, const KeyMapper& mapper,
                                  const CheckOptions& options, const common::StopToken* stop,
                                  etcd::RetryCounters* retries);

// Repairs the differences in report->repairs at the destination: puts the source value for a
// dst miss or mismatch, deletes a src miss. Each write carries a compare on what the check
// saw (key absent, or its mod revision), so a key the syncer changed meanwhile is never
// overwritten: it is skipped and counted. `fence` (the running leader's election compare, if
// any) rides in every txn, so a fix never races a leadership change. Counts go to
// report->fixed and report->fix_skipped. A source lease is attached at the destination only when
// `lease_usable` says the destination lease with that ID is the task's (alive, granted by
// kvsync); otherwise the value is repaired without a lease and a lease mismatch is left to the
// running task (skipped).
using LeaseUsable = std::function<bool(int64_t lease)>;
absl::Status RepairDifferences(etcd::TxnApi* dst, std::vector<etcd::Compare> fence,
                               const LeaseUsable& lease_usable, const common::StopToken* stop,
                               etcd::RetryCounters* retries, CheckReport* report);

// A LeaseUsable for a task's leases at the destination: its lease record exists (see
// LeaseRecordPrefix) and the lease is alive there. Reads on each call.
LeaseUsable TaskLeases(etcd::ClusterApi* dst, std::string records_prefix);

// A human summary table with sample keys (keys rendered printable, never values).
std::string RenderText(const CheckReport& report);
// One JSON object: counts, samples, revisions, bytes, seconds, consistent.
std::string RenderJson(const CheckReport& report);

}  // namespace kvsync::checker
