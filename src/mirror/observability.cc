#include "mirror/observability.h"

#include <algorithm>

#include "common/clock.h"
#include "nlohmann/json.hpp"

namespace kvsync::mirror {
namespace {

int64_t LagRevisions(const Stats& s) {
  int64_t head = s.source_head_revision.load();
  int64_t synced = s.last_synced_revision.load();
  return head > synced ? head - synced : 0;
}

}  // namespace

double LagSeconds(const Stats& s) {
  return std::max(sink::PendingLagSeconds(s),
                  s.head.BehindSeconds(s.last_synced_revision.load(), common::WallMs()));
}

Refusal CurrentRefusal(const Stats& s) {
  int engine = s.refusal.load();
  return static_cast<Refusal>(engine != 0 ? engine : s.head_refusal.load());
}

double HeadAgeSeconds(const Stats& s) {
  int64_t at = s.head.last_observed_ms();
  return at > 0 ? static_cast<double>(common::WallMs() - at) / 1000.0 : -1.0;
}

void RegisterMetrics(metrics::Registry* r, const std::string& task, Stats* s) {
  metrics::TaskFamilies f(r, task);
  const metrics::Labels& t = f.labels();

  sink::RegisterWriteMetrics(r, task, s, [s] { return LagSeconds(*s); });
  f.Counter("kvsync_sync_path_total",
            "Sync paths taken: fast = resume from checkpoint, slow = "
            "full sync",
            s->fast_path_resumes, f.With("path", "fast"));
  f.Counter("kvsync_sync_path_total",
            "Sync paths taken: fast = resume from checkpoint, slow = "
            "full sync",
            s->full_syncs, f.With("path", "slow"));
  f.Gauge("kvsync_last_synced_revision", "Last source revision applied to the destination",
          [s] { return static_cast<double>(s->last_synced_revision.load()); });
  f.Gauge("kvsync_source_head_revision",
          "Source head revision, observed by a request of its own (not from the watch)",
          [s] { return static_cast<double>(s->source_head_revision.load()); });
  f.Gauge("kvsync_source_head_age_seconds",
          "Seconds since the source head revision was last observed (-1: never, e.g. a standby)",
          [s] { return HeadAgeSeconds(*s); });
  f.Counter("kvsync_source_head_failures_total", "Failed observations of the source head revision",
            s->head_poll_failures, t);
  f.Counter("kvsync_watch_stalls_total",
            "Source watches re-created by the watchdog: silent while the source changed in scope, "
            "or never confirmed",
            s->watch_stalls, t);
  f.Counter("kvsync_watch_quiet_proofs_total",
            "Silent watch periods proven free of changes in scope by reading the source",
            s->quiet_proofs, t);
  f.Gauge("kvsync_watch_buffer_bytes",
          "Memory held by source changes received but not yet handed to the writer",
          [s] { return static_cast<double>(s->watch_buffer_bytes.load()); });
  f.Gauge("kvsync_refused", "1 while etcd permanently refuses this task's requests (not ready)",
          [s] { return CurrentRefusal(*s) != Refusal::kNone ? 1.0 : 0.0; });
  const char* refusals_help =
      "Permanent refusals by etcd (permission denied, auth, a watch cancelled by the server)";
  for (int i = 1; i < kRefusalKinds; ++i) {
    f.Counter("kvsync_permanent_errors_total", refusals_help, s->refusals[i],
              f.With("reason", RefusalName(static_cast<Refusal>(i))));
  }
  f.Gauge("kvsync_lag_revisions", "Source head revision minus last synced revision",
          [s] { return static_cast<double>(LagRevisions(*s)); });
  f.Counter("kvsync_events_applied_total", "Source events applied", s->events_applied, t);
  f.Gauge("kvsync_checkpoint_age_seconds",
          "Seconds since this replica last wrote the checkpoint (0 before its first write)", [s] {
            int64_t at = s->last_checkpoint_write_ms.load();
            return at > 0 ? static_cast<double>(common::WallMs() - at) / 1000.0 : 0.0;
          });
  f.Gauge("kvsync_check_dst_miss",
          "Last continuous check: keys at the source missing at the "
          "destination (confirmed in two rounds)",
          [s] { return static_cast<double>(s->check_dst_miss.load()); });
  f.Gauge("kvsync_check_src_miss",
          "Last continuous check: destination keys missing at the "
          "source (confirmed in two rounds)",
          [s] { return static_cast<double>(s->check_src_miss.load()); });
  f.Gauge("kvsync_check_mismatch",
          "Last full continuous check: keys with different values "
          "(confirmed in two rounds)",
          [s] { return static_cast<double>(s->check_mismatch.load()); });
  f.Gauge("kvsync_check_last_timestamp_seconds", "Unix time of the last completed check (0: none)",
          [s] { return static_cast<double>(s->check_last_ms.load()) / 1000.0; });
  f.Gauge("kvsync_check_duration_seconds", "Duration of the last completed check",
          [s] { return static_cast<double>(s->check_duration_ms.load()) / 1000.0; });
  const char* checks_help = "Continuous checks completed, by mode";
  f.Counter("kvsync_checks_total", checks_help, s->checks_full, f.With("mode", "full"));
  f.Counter("kvsync_checks_total", checks_help, s->checks_presence, f.With("mode", "presence"));
  f.Counter("kvsync_check_repairs_total", "Differences repaired by --auto-repair", s->check_repairs,
            t);
  f.Gauge("kvsync_check_lease_mismatch",
          "Last continuous check: keys with the source's value but not on the destination lease "
          "with the source lease's ID (confirmed in two rounds)",
          [s] { return static_cast<double>(s->check_lease_mismatch.load()); });
  f.Gauge("kvsync_leases_mirrored",
          "Destination leases kvsync manages (same ID as a live source lease, kept alive)",
          [s] { return static_cast<double>(s->leases_mirrored.load()); });
  f.Gauge("kvsync_lease_conflicts",
          "Mirrored lease IDs held at the destination by someone else: their keys are written "
          "without a lease (not ready)",
          [s] { return static_cast<double>(s->lease_conflicts.load()); });
  f.Gauge("kvsync_leases_held",
          "Destination leases kept alive while the source's leases cannot be listed (hold)",
          [s] { return static_cast<double>(s->leases_held.load()); });
  f.Gauge("kvsync_lease_hold_expired",
          "1 once --lease-hold passed without reaching the source: destination leases are left "
          "to expire",
          [s] { return static_cast<double>(s->lease_hold_expired.load()); });
  f.Counter("kvsync_lease_grants_total", "Destination leases granted with a source lease's ID",
            s->lease_grants, t);
  f.Counter("kvsync_lease_revokes_total",
            "Destination leases revoked after their source lease was gone", s->lease_revokes, t);
  f.Counter("kvsync_lease_keepalives_total", "Destination lease keep-alives sent and answered",
            s->lease_keepalives, t);
  f.Counter("kvsync_lease_keepalive_failures_total",
            "Destination lease keep-alives that failed (transport or destination errors)",
            s->lease_keepalive_failures, t);
  f.Counter("kvsync_leases_lost_total",
            "Managed destination leases found gone with their keys (each forces a full sync)",
            s->leases_lost, t);
  f.Counter("kvsync_freshness_writes_total",
            "Freshness records written to the destination (the leader's heartbeat there)",
            s->freshness_writes, t);
  f.Counter("kvsync_freshness_write_failures_total",
            "Freshness record writes that failed (the destination unreachable or refusing)",
            s->freshness_write_failures, t);
  f.Gauge("kvsync_destination_fresh_timestamp_seconds",
          "Wall time (Unix seconds) at which the source was last observed at or below the applied "
          "revision: the destination held everything the source held then (0: not yet)",
          [s] {
            return static_cast<double>(s->head.FreshAsOf(s->last_synced_revision.load())) / 1000.0;
          });
  f.Counter("kvsync_watch_restarts_total", "Source watch streams re-established", s->watch_restarts,
            t);
  f.Counter("kvsync_split_revisions_total",
            "Source revisions too large for one destination txn, applied in parts",
            s->split_revisions, t);
}

bool Ready(const Stats& s, const sink::RoleView& role, std::chrono::milliseconds max_lag,
           std::string* why) {
  if (role.ha && s.leading.load() == 0) {
    if (role.standby_healthy && role.standby_healthy()) return true;
    *why = "standby without a healthy election session";
    return false;
  }
  if (CurrentRefusal(s) != Refusal::kNone) {
    *why = std::string("refused by etcd: ") + RefusalName(CurrentRefusal(s)) +
           " (see the log; fix the permission or credentials)";
    return false;
  }
  auto phase = static_cast<sink::Phase>(s.phase.load());
  if (phase != sink::Phase::kIncremental) {
    *why = std::string("phase ") + sink::PhaseName(phase);
    return false;
  }
  if (int64_t conflicts = s.lease_conflicts.load(); conflicts > 0) {
    *why = std::to_string(conflicts) +
           " lease ID conflict(s): the destination has a lease with a mirrored ID that kvsync "
           "did not grant; its keys are mirrored without a lease (see the runbook)";
    return false;
  }
  double head_age = HeadAgeSeconds(s);
  if (head_age < 0 || head_age * 1000.0 > static_cast<double>(max_lag.count())) {
    *why = head_age < 0 ? "source head revision not observed yet"
                        : "source head revision not observed for " + std::to_string(head_age) +
                              " s: staleness unknown";
    return false;
  }
  double lag = LagSeconds(s);
  if (lag * 1000.0 > static_cast<double>(max_lag.count())) {
    *why = "lag " + std::to_string(lag) + " s above the readiness threshold";
    return false;
  }
  return true;
}

std::string StatusJson(const Stats& s, const std::string& task, const sink::RoleView& role,
                       std::chrono::milliseconds max_lag) {
  nlohmann::json j;
  bool leading = s.leading.load() != 0;
  auto phase = static_cast<sink::Phase>(s.phase.load());
  j["task"] = task;
  j["instance_id"] = role.instance_id;
  j["role"] = !role.ha ? "single" : (leading ? "leader" : "standby");
  j["leader"] = !role.ha ? role.instance_id
                         : (leading ? role.instance_id : (role.leader ? role.leader() : ""));
  j["phase"] = sink::PhaseName(phase);
  j["path"] = phase == sink::Phase::kFullSync ? "slow" : "fast";
  j["checkpoint_revision"] = s.last_synced_revision.load();
  j["source_head_revision"] = s.source_head_revision.load();
  j["lag_revisions"] = LagRevisions(s);
  j["lag_seconds"] = LagSeconds(s);
  j["source_head_age_seconds"] = HeadAgeSeconds(s);
  j["watch_stalls"] = s.watch_stalls.load();
  j["refused"] = RefusalName(CurrentRefusal(s));
  std::string why;
  j["ready"] = Ready(s, role, max_lag, &why);
  if (!why.empty()) j["not_ready_reason"] = why;
  j["full_syncs"] = s.full_syncs.load();
  j["fencing_rejections"] = s.fencing_rejections.load();
  j["leases_mirrored"] = s.leases_mirrored.load();
  j["lease_conflicts"] = s.lease_conflicts.load();
  j["leases_held"] = s.leases_held.load();
  return j.dump();
}

}  // namespace kvsync::mirror
