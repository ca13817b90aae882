#include "watchcheck/report.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace kvsync::watchcheck {
namespace {

double Quantile(std::vector<int32_t>* us, double q) {
  size_t k = static_cast<size_t>(q * static_cast<double>(us->size() - 1));
  std::nth_element(us->begin(), us->begin() + static_cast<std::ptrdiff_t>(k), us->end());
  return (*us)[k] / 1000.0;
}

}  // namespace

void SetLatencies(std::vector<int32_t>* us, Report* r) {
  r->latency_samples = static_cast<int64_t>(us->size());
  if (us->empty()) return;
  r->latency_max_ms = *std::max_element(us->begin(), us->end()) / 1000.0;
  r->latency_p99_ms = Quantile(us, 0.99);
  r->latency_p50_ms = Quantile(us, 0.50);
}

std::string RenderText(const Report& r) {
  std::string out = absl::StrFormat(
      "etcdwatch: %s\n"
      "  total tasks:       %d\n"
      "  failed tasks:      %d\n"
      "  current revision:  %d\n"
      "  least revision:    %d\n"
      "  tasks not synced:  %d\n"
      "  writes:            %d (every %.0f ms for %.1f s)\n"
      "  events received:   %d over %d connection(s)\n"
      "  re-watches:        %d forced, %d after stream failures, %d server cancels\n",
      r.passed() ? "PASSED" : "FAILED", r.total_tasks, r.failed_tasks, r.current_revision,
      r.least_revision, r.not_synced, r.writes, r.span_ms, r.duration_s, r.events, r.connections,
      r.forced_restarts, r.stream_restarts, r.server_cancels);
  if (r.injected_drops > 0) {
    absl::StrAppend(&out,
                    absl::StrFormat("  injected drops:    %d (test hook)\n", r.injected_drops));
  }
  absl::StrAppend(&out, "  violations:\n");
  for (int p = 0; p < kNumProperties; ++p) {
    absl::StrAppend(&out,
                    absl::StrFormat("    %-10s %d%s\n", PropertyName(static_cast<Property>(p)),
                                    r.violations[p], r.violations[p] > 0 ? "  VIOLATED" : ""));
  }
  absl::StrAppend(
      &out,
      absl::StrFormat("  delivery latency:  p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d)\n",
                      r.latency_p50_ms, r.latency_p99_ms, r.latency_max_ms, r.latency_samples));
  if (!r.samples.empty()) {
    absl::StrAppend(&out, "  first violations:\n");
    for (const std::string& s : r.samples) absl::StrAppend(&out, "    ", s, "\n");
  }
  return out;
}

std::string RenderJson(const Report& r) {
  nlohmann::ordered_json j;
  j["passed"] = r.passed();
  j["total_tasks"] = r.total_tasks;
  j["failed_tasks"] = r.failed_tasks;
  j["current_revision"] = r.current_revision;
  j["least_revision"] = r.least_revision;
  j["not_synced"] = r.not_synced;
  j["writes"] = r.writes;
  j["events"] = r.events;
  j["connections"] = r.connections;
  j["forced_restarts"] = r.forced_restarts;
  j["stream_restarts"] = r.stream_restarts;
  j["server_cancels"] = r.server_cancels;
  j["injected_drops"] = r.injected_drops;
  nlohmann::ordered_json v;
  std::vector<std::string> violated;
  for (int p = 0; p < kNumProperties; ++p) {
    const char* name = PropertyName(static_cast<Property>(p));
    v[name] = r.violations[p];
    if (r.violations[p] > 0) violated.push_back(name);
  }
  j["violations"] = v;
  j["violated"] = violated;
  j["latency_ms"] = {{"p50", r.latency_p50_ms},
                     {"p99", r.latency_p99_ms},
                     {"max", r.latency_max_ms},
                     {"samples", r.latency_samples}};
  j["span_ms"] = r.span_ms;
  j["duration_s"] = r.duration_s;
  j["samples"] = r.samples;
  return j.dump();
}

}  // namespace kvsync::watchcheck
