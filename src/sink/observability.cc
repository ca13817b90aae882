#include "sink/observability.h"

namespace kvsync::sink {

void RegisterWriteMetrics(metrics::Registry* r, const std::string& task, WriteStats* s,
                          std::function<double()> lag_seconds) {
  const metrics::Labels t = {{"task", task}};
  auto with = [&](const char* name, const char* value) {
    metrics::Labels l = t;
    l.emplace_back(name, value);
    return l;
  };
  auto counter = [&](const char* name, const char* help, const std::atomic<int64_t>& v,
                     metrics::Labels labels) {
    r->AddCounterCallback(name, help, std::move(labels),
                          [&v] { return static_cast<double>(v.load()); });
  };
  auto gauge = [&](const char* name, const char* help, std::function<double()> fn) {
    r->AddGaugeCallback(name, help, t, std::move(fn));
  };

  gauge("kvsync_is_leader", "1 while this replica leads the task (always 1 without --ha)",
        [s] { return static_cast<double>(s->leading.load()); });
  counter("kvsync_leadership_changes_total", "Times this replica became or stopped being leader",
          s->leadership_changes, t);
  counter("kvsync_fencing_rejections_total",
          "Destination txns of this replica rejected by the leader fence", s->fencing_rejections,
          t);
  gauge("kvsync_lag_seconds",
        "Seconds since the source had a revision (seen by the head monitor or received on the "
        "watch) that is not yet applied; 0 when caught up",
        std::move(lag_seconds));
  counter("kvsync_puts_total", "Destination puts written", s->puts, t);
  counter("kvsync_deletes_total", "Destination deletes written", s->deletes, t);
  counter("kvsync_txns_total", "Destination txns committed", s->txns, t);
  s->txn_latency =
      r->AddHistogram("kvsync_txn_duration_seconds", "Latency of destination txns (each attempt)",
                      metrics::LatencyBuckets(), t);
  const char* retries_help = "Transient failures retried, by reason";
  counter("kvsync_retries_total", retries_help, s->retries.unavailable,
          with("reason", "unavailable"));
  counter("kvsync_retries_total", retries_help, s->retries.deadline, with("reason", "deadline"));
  counter("kvsync_retries_total", retries_help, s->retries.other, with("reason", "other"));
  const char* errors_help = "Errors that ended a leadership term or the task, by reason";
  counter("kvsync_errors_total", errors_help, s->errors_fenced, with("reason", "fenced"));
  counter("kvsync_errors_total", errors_help, s->errors_unavailable, with("reason", "unavailable"));
  counter("kvsync_errors_total", errors_help, s->errors_other, with("reason", "other"));
  counter("kvsync_full_syncs_total", "Full syncs started", s->full_syncs, t);
  gauge("kvsync_full_sync_duration_seconds", "Duration of the last completed full sync",
        [s] { return static_cast<double>(s->last_full_sync_ms.load()) / 1000.0; });
}

}  // namespace kvsync::sink
