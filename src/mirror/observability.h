// How a mirror task shows itself: Prometheus metrics read from its Stats at scrape time, the
// /status JSON document, and the /readyz decision. Used by the CLI's admin server; any thread
// (everything reads atomics).
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "metrics/registry.h"
#include "mirror/stats.h"

namespace kvsync::mirror {

// Registers the kvsync_* metrics of `task` (documented in docs/metrics.md) and points
// stats->txn_latency at the txn latency histogram. `stats` must outlive `registry` scrapes.
void RegisterMetrics(metrics::Registry* registry, const std::string& task, Stats* stats);
// The families every engine shares (role, fencing, lag, puts, deletes, txns, retries, errors,
// full syncs); RegisterMetrics includes them, zk2etcd registers them with its own.
void RegisterCommonMetrics(metrics::Registry* registry, const std::string& task, Stats* stats);

// Seconds since the source had a revision not yet applied: the older of the oldest change
// received on the watch and the first head-monitor observation above the applied revision
// (0: caught up). A stuck stream therefore shows growing lag, never 0.
double LagSeconds(const Stats& stats);
// Seconds since the head monitor last observed the source head (-1: never).
double HeadAgeSeconds(const Stats& stats);
// The refusal the task currently meets, from the engine or the head monitor.
Refusal CurrentRefusal(const Stats& stats);

struct RoleView {
  bool ha = false;
  std::string instance_id;
  // HA only: identity of the current leader (may do an RPC), and whether this standby's
  // election session is healthy (keep-alives succeeding).
  std::function<std::string()> leader;
  std::function<bool()> standby_healthy;
};

// Ready when leading (or single), not refused by etcd, in the incremental phase, with the
// source head observed within `max_lag` and the lag within `max_lag`; or a healthy standby.
// `why` explains a "not ready".
bool Ready(const Stats& stats, const RoleView& role, std::chrono::milliseconds max_lag,
           std::string* why);

std::string StatusJson(const Stats& stats, const std::string& task, const RoleView& role,
                       std::chrono::milliseconds max_lag);

}  // namespace kvsync::mirror
