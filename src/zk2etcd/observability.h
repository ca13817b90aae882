// What a zk2etcd task shows the outside: its Prometheus metrics (the shared kvsync_* families
// plus kvsync_zk2etcd_*, documented in docs/metrics.md), readiness and the /status document.
// Functions read Stats atomics only; any thread.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "metrics/registry.h"
#include "sink/observability.h"
#include "zk2etcd/stats.h"

namespace kvsync::zk2etcd {

// Registers every metric of `task` and sets the histograms in `stats`; `owners_available`
// and `owners_pending` report the ownership store (Redis) state.
void RegisterMetrics(metrics::Registry* registry, const std::string& task, Stats* stats,
                     std::function<bool()> owners_available,
                     std::function<int64_t()> owners_pending);

const char* SessionStateName(int state);

// Ready: a standby with a healthy election session, or a leader (or single instance) whose
// ZooKeeper session is connected, past its first full sync, and lagging less than `max_lag`.
bool Ready(const Stats& stats, const sink::RoleView& role, std::chrono::milliseconds max_lag,
           std::string* why);

std::string StatusJson(const Stats& stats, const std::string& task, const sink::RoleView& role,
                       std::chrono::milliseconds max_lag, bool owners_available);

}  // namespace kvsync::zk2etcd
