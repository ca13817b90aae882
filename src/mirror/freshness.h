// Keeps the task's freshness record (checker::Freshness) in the destination while this replica
// leads: written at start, as soon as the task streams (WriteSoon: after a full sync, the first
// record would otherwise say "full sync" for up to an interval and leave a promotion in that
// window without the applied revision's time), and then every --progress-interval, whatever
// the source does, so that a client reading the standby can bound its staleness without asking
// kvsync, and `kvsync status` / `kvsync promote --force` read the last figures even when
// kvsync is gone.
//
// Each write carries the term's fence, whose checker::NotPromoted compare makes it the
// heartbeat that notices a promotion even when nothing else is written (the source is down):
// when the role record exists, `on_promoted` runs once with it and the loop ends. The
// caller's callback stops the term, which ends the lease hold.
//
// Owned by Mirror::Run for one term: Start() spawns "freshness", Stop() (or the destructor)
// ends it. The thread reads Stats and writes one key; `on_promoted` runs on it.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "checker/dr_records.h"
#include "etcd/api.h"
#include "mirror/stats.h"
#include "runtime/thread.h"

namespace kvsync::mirror {

class FreshnessWriter {
 public:
  struct Options {
    std::string key;       // checker::FreshnessKey
    std::string role_key;  // checker::RoleKey
    std::chrono::milliseconds interval{5000};
    std::string writer;
    bool ha = false;
    uint64_t source_cluster_id = 0;
  };

  FreshnessWriter(Options options, etcd::ClusterApi* dst, std::vector<etcd::Compare> fence,
                  Stats* stats, std::function<void(const checker::RoleRecord&)> on_promoted);
  ~FreshnessWriter();

  void Start();
  void Stop();
  // Writes the record now rather than at the next interval (any thread).
  void WriteSoon();

  // The record as of now (the Stats it reads).
  checker::Freshness Current() const;

 private:
  void Loop();
  // One write; true when the loop must end (the destination was promoted).
  bool WriteOnce();
  // Sleeps up to the interval or until WriteSoon(); true when stopping.
  bool Wait();

  Options options_;
  etcd::ClusterApi* dst_;
  std::vector<etcd::Compare> fence_;
  Stats* stats_;
  std::function<void(const checker::RoleRecord&)> on_promoted_;
  struct Wake {
    bool soon = false;
    bool stopping = false;
  };
  absl::Mutex mu_;
  Wake wake_ ABSL_GUARDED_BY(mu_);
  runtime::Thread thread_;
};

// The role record of `role_key` when the destination was promoted, nullopt when not. Errors:
// the read's; InvalidArgument when the key holds something else than a role record.
absl::StatusOr<std::optional<checker::RoleRecord>> ReadRole(etcd::KvApi* dst,
                                                            const std::string& role_key);

// The refusal of a task whose destination was promoted (FailedPrecondition, exit 2).
absl::Status PromotedError(const std::string& task, const checker::RoleRecord& role,
                           const std::string& role_key);

}  // namespace kvsync::mirror
