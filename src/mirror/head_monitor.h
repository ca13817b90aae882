// Observes the source's head revision on its own, independently of the watch stream: one
// single-key range request (the cheapest read that returns the head) every interval, through
// the task's source client, so it sees what the engine would see through the same endpoints
// and proxies. Each observation goes to Stats (source_head_revision, the HeadTracker behind
// kvsync_lag_seconds), so a stuck stream can never look like zero lag. Failures are counted
// (head_poll_failures) and logged once per new kind; the age of the last observation is
// exported and fails readiness when it grows.
//
// Owned by Mirror::Run for one leadership term: Start() spawns the thread ("head-monitor"), Stop()
// (or the destructor, or `term_stop`) ends it. The thread only reads the source and writes atomics.
#pragma once

#include <chrono>
#include <string>

#include "common/stop_token.h"
#include "etcd/api.h"
#include "mirror/stats.h"
#include "runtime/thread.h"

namespace kvsync::mirror {

class HeadMonitor {
 public:
  HeadMonitor(etcd::KvApi* src, std::string key, std::chrono::milliseconds interval,
              const common::StopToken* term_stop, Stats* stats);
  ~HeadMonitor();

  void Start();
  void Stop();

 private:
  void Loop();

  etcd::KvApi* src_;
  std::string key_;
  std::chrono::milliseconds interval_;
  const common::StopToken* term_stop_;
  Stats* stats_;
  common::StopToken stop_;
  runtime::Thread thread_;
};

}  // namespace kvsync::mirror
