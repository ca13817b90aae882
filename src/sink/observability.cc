#include "sink/observability.h"

namespace kvsync::sink {

void RegisterWriteMetrics(metrics::Registry* r, const std::string& task, WriteStats* s,
                          std::function<double()> lag_seconds) {
  metrics::TaskFamilies f(r, task);
  const metrics::Labels& t = f.labels();

  f.Gauge("kvsync_is_leader", "1 while this replica leads the task (always 1 without --ha)",
          [s] { return static_cast<double>(s->leading.load()); });
  f.Counter("kvsync_leadership_changes_total", "Times this replica became or stopped being leader",
            s->leadership_changes, t);
  f.Counter("kvsync_fencing_rejections_total",
            "Destination txns of this replica rejected by the leader fence", s->fencing_rejections,
            t);
  f.Gauge("kvsync_lag_seconds",
          "Seconds since the source had a revision (seen by the head monitor or received on the "
          "watch) that is not yet applied; 0 when caught up",
          std::move(lag_seconds));
  f.Counter("kvsync_puts_total", "Destination puts written", s->puts, t);
  f.Counter("kvsync_deletes_total", "Destination deletes written", s->deletes, t);
  f.Counter("kvsync_txns_total", "Destination txns committed", s->txns, t);
  f.Gauge("kvsync_txns_inflight", "Chained incremental txns on their way to the destination",
          [s] { return static_cast<double>(s->txns_inflight.load()); });
  f.Counter("kvsync_txn_resends_total",
            "Chained txns sent again because they reached the destination before the txn they "
            "follow",
            s->txn_resends, t);
  s->txn_latency =
      r->AddHistogram("kvsync_txn_duration_seconds", "Latency of destination txns (each attempt)",
                      metrics::LatencyBuckets(), t);
  const char* retries_help = "Transient failures retried, by reason";
  f.Counter("kvsync_retries_total", retries_help, s->retries.unavailable,
            f.With("reason", "unavailable"));
  f.Counter("kvsync_retries_total", retries_help, s->retries.deadline,
            f.With("reason", "deadline"));
  f.Counter("kvsync_retries_total", retries_help, s->retries.other, f.With("reason", "other"));
  const char* errors_help = "Errors that ended a leadership term or the task, by reason";
  f.Counter("kvsync_errors_total", errors_help, s->errors_fenced, f.With("reason", "fenced"));
  f.Counter("kvsync_errors_total", errors_help, s->errors_unavailable,
            f.With("reason", "unavailable"));
  f.Counter("kvsync_errors_total", errors_help, s->errors_other, f.With("reason", "other"));
  f.Counter("kvsync_full_syncs_total", "Full syncs started", s->full_syncs, t);
  f.Gauge("kvsync_full_sync_duration_seconds", "Duration of the last completed full sync",
          [s] { return static_cast<double>(s->last_full_sync_ms.load()) / 1000.0; });
}

}  // namespace kvsync::sink
