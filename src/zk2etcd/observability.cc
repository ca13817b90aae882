#include "zk2etcd/observability.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace kvsync::zk2etcd {

const char* SessionStateName(int state) {
  switch (state) {
    case 0:
      return "connecting";
    case 1:
      return "connected";
    case 2:
      return "expired";
    case 3:
      return "auth_failed";
    default:
      return "closed";
  }
}

namespace {

// The per-service parity families: totals, and the services without parity as the last
// periodic full sync saw them, at most --parity-top of them (bounded cardinality).
void RegisterParityMetrics(metrics::Registry* r, const metrics::TaskFamilies& f, Stats* s) {
  const metrics::Labels& t = f.labels();
  r->AddGaugeCallback("kvsync_zk2etcd_parity_services",
                      "Services the last periodic full sync counted (per-service parity)", t,
                      [s] { return static_cast<double>(s->parity.Get().services); });
  r->AddGaugeCallback(
      "kvsync_zk2etcd_parity_services_broken",
      "Services without parity at the last periodic full sync: confirmed differences, or etcd "
      "keys of other writers",
      t, [s] { return static_cast<double>(s->parity.Get().without_parity); });
  r->AddGaugeCallback("kvsync_zk2etcd_parity_checked_timestamp_seconds",
                      "Unix time the last periodic full sync counted parity (0: not yet)", t,
                      [s] { return static_cast<double>(s->parity.Get().checked_unix_ms) / 1000; });
  // Bounded: the --parity-top services without parity, most differences first.
  auto each = [s, t](const std::function<void(const ServiceParity&, const metrics::Labels&,
                                              std::vector<metrics::Registry::Sample>*)>& add) {
    std::vector<metrics::Registry::Sample> out;
    for (const ServiceParity& svc : s->parity.Get().top) {
      metrics::Labels labels = t;
      labels.emplace_back("service", svc.service);
      add(svc, labels, &out);
    }
    return out;
  };
  r->AddGaugeFamilyCallback(
      "kvsync_zk2etcd_service_providers",
      "Providers of a service without parity (the --parity-top with most differences), by side",
      [each] {
        return each([](const ServiceParity& svc, const metrics::Labels& labels, auto* out) {
          metrics::Labels zk = labels;
          zk.emplace_back("side", "zookeeper");
          out->push_back({zk, static_cast<double>(svc.zk_providers)});
          metrics::Labels etcd = labels;
          etcd.emplace_back("side", "etcd");
          out->push_back({etcd, static_cast<double>(svc.etcd_providers)});
        });
      });
  r->AddGaugeFamilyCallback(
      "kvsync_zk2etcd_service_differences",
      "Confirmed differences plus keys of other writers of a service without parity (the "
      "--parity-top with most)",
      [each] {
        return each([](const ServiceParity& svc, const metrics::Labels& labels, auto* out) {
          out->push_back({labels, static_cast<double>(svc.differences() + svc.foreign)});
        });
      });
}

}  // namespace

void RegisterMetrics(metrics::Registry* r, const std::string& task, Stats* s,
                     std::function<bool()> owners_available,
                     std::function<int64_t()> owners_pending) {
  sink::RegisterWriteMetrics(r, task, &s->common,
                             [s] { return sink::PendingLagSeconds(s->common); });
  metrics::TaskFamilies f(r, task);
  const metrics::Labels& t = f.labels();

  f.Gauge("kvsync_zk2etcd_znodes_watched", "Znodes mirrored and watched (data watch each)", t,
          [s] { return static_cast<double>(s->znodes_watched.load()); });
  for (int state = 0; state <= 4; ++state) {
    f.Gauge("kvsync_zk2etcd_session_state",
            "1 for the ZooKeeper session's current state, 0 for the others",
            f.With("state", SessionStateName(state)),
            [s, state] { return s->session_state.load() == state ? 1.0 : 0.0; });
  }
  f.Counter("kvsync_zk2etcd_session_expirations_total", "ZooKeeper sessions that expired",
            s->session_expirations, t);
  f.Counter("kvsync_zk2etcd_reconnects_total",
            "ZooKeeper connections re-established within a session (each reconciled)",
            s->reconnects, t);
  const char* zk_help = "ZooKeeper reads issued, by operation";
  f.Counter("kvsync_zk2etcd_zk_requests_total", zk_help, s->zk_get_data, f.With("op", "get_data"));
  f.Counter("kvsync_zk2etcd_zk_requests_total", zk_help, s->zk_get_children,
            f.With("op", "get_children"));
  f.Counter("kvsync_zk2etcd_zk_errors_total",
            "ZooKeeper reads that failed (connection loss, expiry); reconciled by a full sync",
            s->zk_errors, t);
  s->zk_latency =
      r->AddHistogram("kvsync_zk2etcd_zk_request_duration_seconds",
                      "Latency of incremental ZooKeeper reads", metrics::LatencyBuckets(), t);
  s->event_lag =
      r->AddHistogram("kvsync_zk2etcd_event_lag_seconds",
                      "From a ZooKeeper watch event arriving to its change committed in etcd",
                      metrics::LatencyBuckets(), t);
  const char* ev_help = "ZooKeeper watch events received, by type";
  f.Counter("kvsync_zk2etcd_events_total", ev_help, s->events_created, f.With("type", "created"));
  f.Counter("kvsync_zk2etcd_events_total", ev_help, s->events_deleted, f.With("type", "deleted"));
  f.Counter("kvsync_zk2etcd_events_total", ev_help, s->events_data, f.With("type", "data"));
  f.Counter("kvsync_zk2etcd_events_total", ev_help, s->events_children, f.With("type", "children"));
  const char* found_help = "Differences found by full-sync rounds, by kind";
  f.Counter("kvsync_zk2etcd_diffs_total", found_help, s->found_dst_miss,
            f.With("kind", "dst_miss"));
  f.Counter("kvsync_zk2etcd_diffs_total", found_help, s->found_src_miss,
            f.With("kind", "src_miss"));
  f.Counter("kvsync_zk2etcd_diffs_total", found_help, s->found_mismatch,
            f.With("kind", "mismatch"));
  const char* fixed_help =
      "Differences fixed by full syncs, by kind (the start-up sync fixes at once, periodic "
      "syncs only what two rounds confirm)";
  f.Counter("kvsync_zk2etcd_fixed_total", fixed_help, s->fixed_dst_miss,
            f.With("kind", "dst_miss"));
  f.Counter("kvsync_zk2etcd_fixed_total", fixed_help, s->fixed_src_miss,
            f.With("kind", "src_miss"));
  f.Counter("kvsync_zk2etcd_fixed_total", fixed_help, s->fixed_mismatch,
            f.With("kind", "mismatch"));
  f.Gauge("kvsync_zk2etcd_full_sync_walked", "Znodes walked by the current or last full sync", t,
          [s] { return static_cast<double>(s->full_sync_walked.load()); });
  f.Counter("kvsync_zk2etcd_reverse_skipped_total",
            "Znodes read that were the etcd2zk direction's copies (never copied back)",
            s->reverse_skipped, t);
  f.Counter("kvsync_zk2etcd_reverse_lookups_total",
            "etcd reads made to tell whether an ephemeral znode's owner is an etcd2zk session",
            s->reverse_lookups, t);
  f.Counter("kvsync_zk2etcd_unowned_skipped_total",
            "etcd keys left alone because kvsync does not own them", s->unowned_skipped, t);
  f.Gauge(
      "kvsync_zk2etcd_ownership_available",
      "1 while the ownership store answers (always 1 for etcd/none)", t,
      [owners_available = std::move(owners_available)] { return owners_available() ? 1.0 : 0.0; });
  f.Gauge("kvsync_zk2etcd_ownership_pending", "Ownership records waiting for the store to return",
          t, [owners_pending = std::move(owners_pending)] {
            return static_cast<double>(owners_pending());
          });
  f.Gauge("kvsync_zk2etcd_deletes_deferred",
          "Deletes waiting because ownership is unknown (store down)", t,
          [s] { return static_cast<double>(s->deletes_deferred.load()); });
  f.Gauge("kvsync_zk2etcd_deletes_held",
          "Deletes the deletion guard holds: the last full sync inferred them but a root was "
          "missing or they exceeded --max-delete-fraction (0 = none held)",
          t, [s] { return static_cast<double>(s->deletes_held.load()); });
  f.Counter("kvsync_zk2etcd_delete_holds_total", "Full-sync rounds whose deletes the guard held",
            s->delete_holds, t);
  f.Gauge("kvsync_zk2etcd_missing_roots", "--zk-prefix roots the last full-sync walk found missing",
          t, [s] { return static_cast<double>(s->missing_roots.load()); });
  f.Gauge("kvsync_zk2etcd_unreadable_znodes",
          "Znodes kvsync may not read (ZooKeeper ACL): skipped with their subtree, etcd keys kept",
          t, [s] { return static_cast<double>(s->unreadable_znodes.load()); });
  f.Counter("kvsync_zk2etcd_inbox_overflows_total",
            "ZooKeeper changes dropped because the applier's inbox was full (a full sync follows)",
            s->inbox_overflows, t);
  f.Gauge("kvsync_zk2etcd_resync_pending",
          "1 while a full sync that makes up for dropped ZooKeeper changes is still to run", t,
          [s] { return static_cast<double>(s->resync_pending.load()); });
  f.Counter("kvsync_zk2etcd_repairs_paused_total",
            "Full-sync repairs skipped because ownership was unknown", s->repairs_paused, t);
  f.Gauge("kvsync_zk2etcd_ephemeral_lease_remaining_seconds",
          "Remaining TTL of the lease of ephemeral copies as last renewed (--ephemeral-lease-ttl; "
          "0 when off or gone)",
          t, [s] { return static_cast<double>(s->ephemeral_lease.remaining_ttl.load()); });
  f.Counter("kvsync_zk2etcd_ephemeral_lease_replaced_total",
            "Leases of ephemeral copies granted because the previous one was gone (its copies "
            "expired; a full sync put them back)",
            s->ephemeral_lease.replaced, t);
  f.Counter("kvsync_zk2etcd_ephemeral_lease_keepalive_failures_total",
            "Keep-alives of the ephemeral copies' lease that failed (etcd unreachable)",
            s->ephemeral_lease.keepalive_failures, t);
  RegisterParityMetrics(r, f, s);
}

bool Ready(const Stats& s, const sink::RoleView& role, std::chrono::milliseconds max_lag,
           std::string* why) {
  if (role.ha && s.common.leading.load() == 0) {
    if (role.standby_healthy && role.standby_healthy()) return true;
    *why = "standby without a healthy election session";
    return false;
  }
  if (s.session_state.load() != 1) {
    *why = std::string("zookeeper session ") + SessionStateName(s.session_state.load());
    return false;
  }
  auto phase = static_cast<sink::Phase>(s.common.phase.load());
  if (phase == sink::Phase::kStarting ||
      (phase == sink::Phase::kFullSync && s.common.last_full_sync_ms.load() == 0)) {
    *why = "first full sync not done";
    return false;
  }
  if (s.resync_pending.load() != 0) {
    *why =
        "waiting for the full sync that repairs dropped ZooKeeper changes (applier inbox full) "
        "or puts back the copies of a replaced ephemeral lease";
    return false;
  }
  if (int64_t held = s.deletes_held.load(); held > 0) {
    *why = std::to_string(held) +
           " deletes held by the deletion guard (see the log; --confirm-mass-delete)";
    return false;
  }
  double lag = sink::PendingLagSeconds(s.common);
  if (lag * 1000.0 > static_cast<double>(max_lag.count())) {
    *why = "lag " + std::to_string(lag) + " s above the readiness threshold";
    return false;
  }
  return true;
}

std::string StatusJson(const Stats& s, const std::string& task, const sink::RoleView& role,
                       std::chrono::milliseconds max_lag, bool owners_available) {
  nlohmann::json j;
  bool leading = s.common.leading.load() != 0;
  j["task"] = task;
  j["instance_id"] = role.instance_id;
  j["role"] = !role.ha ? "single" : (leading ? "leader" : "standby");
  j["leader"] = !role.ha ? role.instance_id
                         : (leading ? role.instance_id : (role.leader ? role.leader() : ""));
  j["phase"] = sink::PhaseName(static_cast<sink::Phase>(s.common.phase.load()));
  j["zk_session"] = SessionStateName(s.session_state.load());
  j["zk_session_id"] = absl::StrCat("0x", absl::Hex(s.session_id.load()));
  j["znodes_watched"] = s.znodes_watched.load();
  j["lag_seconds"] = sink::PendingLagSeconds(s.common);
  j["full_syncs"] = s.common.full_syncs.load();
  j["fixed"] = {{"dst_miss", s.fixed_dst_miss.load()},
                {"src_miss", s.fixed_src_miss.load()},
                {"mismatch", s.fixed_mismatch.load()}};
  j["ownership_available"] = owners_available;
  j["deletes_deferred"] = s.deletes_deferred.load();
  j["inbox_overflows"] = s.inbox_overflows.load();
  j["resync_pending"] = s.resync_pending.load() != 0;
  j["deletes_held"] = s.deletes_held.load();
  j["missing_roots"] = s.missing_roots.load();
  j["unreadable_znodes"] = s.unreadable_znodes.load();
  if (int64_t lease = s.ephemeral_lease.id.load(); lease != 0) {
    j["ephemeral_lease"] = {{"id", absl::StrCat(absl::Hex(lease))},
                            {"remaining_ttl_s", s.ephemeral_lease.remaining_ttl.load()},
                            {"replaced", s.ephemeral_lease.replaced.load()}};
  }
  ParitySummary parity = s.parity.Get();
  j["parity"] = {{"services", parity.services},
                 {"without_parity", parity.without_parity},
                 {"checked_unix_ms", parity.checked_unix_ms},
                 {"broken", nlohmann::json::parse(RenderParityJson(parity.top))}};
  std::string why;
  j["ready"] = Ready(s, role, max_lag, &why);
  if (!why.empty()) j["not_ready_reason"] = why;
  return j.dump();
}

}  // namespace kvsync::zk2etcd
