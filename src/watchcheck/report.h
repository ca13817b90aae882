// The result of one etcdwatch run and its two renderings (a text table for people, one JSON
// object for scripts). The article's fields come first: total tasks (watchers), failed tasks,
// current revision (last written), least revision (slowest watcher's last seen), tasks not
// synced. Plain value type; built by Run on the main thread.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "watchcheck/watcher.h"

namespace kvsync::watchcheck {

struct Report {
  int64_t total_tasks = 0;
  int64_t failed_tasks = 0;
  int64_t current_revision = 0;
  int64_t least_revision = 0;
  int64_t not_synced = 0;

  int64_t writes = 0;
  int64_t events = 0;
  int64_t connections = 0;
  int64_t forced_restarts = 0;  // --restart-every re-watches
  int64_t stream_restarts = 0;  // streams that failed and were re-opened
  int64_t server_cancels = 0;   // watches the server canceled
  int64_t injected_drops = 0;   // responses discarded by the --inject-drop-every test hook
  std::array<int64_t, kNumProperties> violations{};
  std::vector<std::string> samples;
  // Delivery latency over every (watcher, revision): receipt - writer's ack, clamped at 0.
  double latency_p50_ms = 0;
  double latency_p99_ms = 0;
  double latency_max_ms = 0;
  int64_t latency_samples = 0;
  double span_ms = 0;
  double duration_s = 0;

  bool passed() const { return failed_tasks == 0; }
};

// Fills the latency fields from microsecond samples (reorders `us`).
void SetLatencies(std::vector<int32_t>* us, Report* report);

std::string RenderText(const Report& report);
std::string RenderJson(const Report& report);  // one line, no trailing newline

}  // namespace kvsync::watchcheck
