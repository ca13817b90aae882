// What an etcd2zk task shows the outside: the shared kvsync_* families plus kvsync_etcd2zk_*
// (docs/metrics.md), readiness and the /status document. Reads Stats atomics only; any thread.
#pragma once

#include <string>

#include "etcd2zk/publisher.h"
#include "metrics/registry.h"
#include "sink/observability.h"

namespace kvsync::etcd2zk {

void RegisterMetrics(metrics::Registry* registry, const std::string& task, Stats* stats);

// Ready: a standby with a healthy election session, or a leader (or single instance) whose
// ZooKeeper session is connected and recorded, past its first convergence, with no key held
// for a missing parent.
bool Ready(const Stats& stats, const sink::RoleView& role, std::string* why);

std::string StatusJson(const Stats& stats, const std::string& task, const sink::RoleView& role);

}  // namespace kvsync::etcd2zk
