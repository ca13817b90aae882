// How a mirror task shows itself: Prometheus metrics read from its Stats at scrape time, the
// /status JSON document, and the /readyz decision. Used by the CLI's admin server; any thread
// (everything reads atomics).
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "metrics/registry.h"
#include "mirror/stats.h"
#include "sink/observability.h"

namespace kvsync::mirror {

// Registers the kvsync_* metrics of `task` (documented in docs/metrics.md): the shared families
// (sink::RegisterWriteMetrics, with LagSeconds as the lag) and the engine's own. `stats` must
// outlive `registry` scrapes.
void RegisterMetrics(metrics::Registry* registry, const std::string& task, Stats* stats);

// Seconds since the source had a revision not yet applied: the older of the oldest change
// received on the watch and the first head-monitor observation above the applied revision
// (0: caught up). A stuck stream therefore shows growing lag, never 0.
double LagSeconds(const Stats& stats);
// Seconds since the head monitor last observed the source head (-1: never).
double HeadAgeSeconds(const Stats& stats);
// The refusal the task currently meets, from the engine or the head monitor.
Refusal CurrentRefusal(const Stats& stats);

// Ready when leading (or single), not refused by etcd, in the incremental phase, with the
// source head observed within `max_lag` and the lag within `max_lag`; or a healthy standby.
// `why` explains a "not ready".
bool Ready(const Stats& stats, const sink::RoleView& role, std::chrono::milliseconds max_lag,
           std::string* why);

std::string StatusJson(const Stats& stats, const std::string& task, const sink::RoleView& role,
                       std::chrono::milliseconds max_lag);

}  // namespace kvsync::mirror
