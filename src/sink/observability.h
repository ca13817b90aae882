// How any sync task shows its shared state: the Prometheus families every engine exports
// (role, fencing, lag, puts, deletes, txns, retries, errors, full syncs) read from a WriteStats
// at scrape time, and the task's role as /readyz and /status see it. Any thread.
#pragma once

#include <functional>
#include <string>

#include "metrics/registry.h"
#include "sink/write_stats.h"

namespace kvsync::sink {

// Registers the shared kvsync_* families of `task` (docs/metrics.md) and points
// stats->txn_latency at the txn latency histogram. `lag_seconds` is the engine's own lag
// (kvsync_lag_seconds). `stats` must outlive `registry` scrapes.
void RegisterWriteMetrics(metrics::Registry* registry, const std::string& task, WriteStats* stats,
                          std::function<double()> lag_seconds);

// This replica's role, for readiness and status.
struct RoleView {
  bool ha = false;
  std::string instance_id;
  // HA only: identity of the current leader (may do an RPC), and whether this standby's
  // election session is healthy (keep-alives succeeding).
  std::function<std::string()> leader;
  std::function<bool()> standby_healthy;
};

}  // namespace kvsync::sink
