// Standard process metrics, named and documented exactly like the Prometheus Go and Python
// clients (process_cpu_seconds_total, process_resident_memory_bytes, ...), so that stock
// dashboards and alerts work. Linux only: values come from /proc/self at scrape time. Call
// AddProcessMetrics once per Registry, at start-up; the callbacks are thread-safe.
#pragma once

#include "metrics/registry.h"

namespace kvsync::metrics {

// Registers process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds and
// process_start_time_seconds as scrape-time callbacks. A value that cannot be read is NaN.
void AddProcessMetrics(Registry* registry);

}  // namespace kvsync::metrics
