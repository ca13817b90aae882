// Periodic consistency checks inside the running etcd2etcd leader (--check-interval).
//
// A thread ("check-periodic") that, every interval, runs a two-round checker::Check of the task
// (presence mode between full checks when --check-full-every > 1), publishes the confirmed counts
// in Stats (kvsync_check_* metrics) and, with --auto-repair, repairs confirmed differences through
// checker::RepairDifferences with the leader's fence. It reads and writes with its own calls
// on the shared clients, so a check never blocks syncing; it skips rounds while a full sync
// runs. Owned by Mirror::Run for one leadership term; Stop() joins it.
#pragma once

#include <vector>

#include "checker/key_mapper.h"
#include "common/stop_token.h"
#include "config/config.h"
#include "etcd/api.h"
#include "mirror/stats.h"
#include "runtime/thread.h"

namespace kvsync::mirror {

class ContinuousChecker {
 public:
  ContinuousChecker(const config::MirrorConfig& config, etcd::KvApi* src, etcd::ClusterApi* dst,
                    const checker::KeyMapper& mapper, std::vector<etcd::Compare> fence,
                    const common::StopToken* term_stop, Stats* stats);
  ~ContinuousChecker();

  void Start();
  void Stop();

 private:
  void Loop();
  void CheckOnce(bool full);

  const config::MirrorConfig& config_;
  etcd::KvApi* src_;
  etcd::ClusterApi* dst_;
  const checker::KeyMapper& mapper_;
  std::vector<etcd::Compare> fence_;
  const common::StopToken* term_stop_;
  Stats* stats_;
  common::StopToken stop_;
  runtime::Thread thread_;
};

}  // namespace kvsync::mirror
