#include "etcd2zk/observability.h"

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "zk2etcd/observability.h"

namespace kvsync::etcd2zk {

void RegisterMetrics(metrics::Registry* r, const std::string& task, Stats* s) {
  sink::RegisterWriteMetrics(r, task, &s->common, [] { return 0.0; });
  metrics::TaskFamilies f(r, task);
  const metrics::Labels& t = f.labels();
  for (int state = 0; state <= 4; ++state) {
    f.Gauge("kvsync_etcd2zk_session_state",
            "1 for the ZooKeeper session's current state, 0 for the others",
            f.With("state", zk2etcd::SessionStateName(state)),
            [s, state] { return s->session_state.load() == state ? 1.0 : 0.0; });
  }
  f.Counter("kvsync_etcd2zk_sessions_total",
            "ZooKeeper sessions opened and recorded in etcd (each publishes everything again)",
            s->sessions, t);
  f.Gauge("kvsync_etcd2zk_published_znodes",
          "Ephemeral znodes the current session holds (published etcd keys)", t,
          [s] { return static_cast<double>(s->published.load()); });
  const char* held_help = "etcd keys not published, by reason";
  f.Gauge("kvsync_etcd2zk_held_keys", held_help, f.With("reason", "exists"),
          [s] { return static_cast<double>(s->held_exists.load()); });
  f.Gauge("kvsync_etcd2zk_held_keys", held_help, f.With("reason", "no_parent"),
          [s] { return static_cast<double>(s->held_no_parent.load()); });
  const char* writes_help = "ZooKeeper writes, by operation";
  f.Counter("kvsync_etcd2zk_zk_writes_total", writes_help, s->creates, f.With("op", "create"));
  f.Counter("kvsync_etcd2zk_zk_writes_total", writes_help, s->updates, f.With("op", "set"));
  f.Counter("kvsync_etcd2zk_zk_writes_total", writes_help, s->removes, f.With("op", "delete"));
  f.Counter("kvsync_etcd2zk_zk_errors_total",
            "ZooKeeper writes that failed transiently (each followed by a re-read)", s->zk_errors,
            t);
  f.Counter("kvsync_etcd2zk_forward_skipped_total",
            "etcd key changes not published because the zk2etcd direction wrote them",
            s->forward_skipped, t);
  f.Counter("kvsync_etcd2zk_resyncs_total",
            "Times the scope was re-read and ZooKeeper converged to it (start, reconnect, "
            "broken watch)",
            s->resyncs, t);
  f.Counter("kvsync_etcd2zk_repairs_total",
            "Published znodes another client changed or deleted, restored from etcd", s->repairs,
            t);
  f.Counter("kvsync_etcd2zk_queue_overflows_total",
            "Times more etcd events were queued than the bound and a re-read replaced them",
            s->overflows, t);
  f.Gauge("kvsync_etcd2zk_applied_revision", "etcd revision the published znodes reflect", t,
          [s] { return static_cast<double>(s->applied_revision.load()); });
}

bool Ready(const Stats& s, const sink::RoleView& role, std::string* why) {
  if (role.ha && s.common.leading.load() == 0) {
    if (role.standby_healthy && role.standby_healthy()) return true;
    *why = "standby without a healthy election session";
    return false;
  }
  if (s.session_state.load() != 1) {
    *why = std::string("zookeeper session ") + zk2etcd::SessionStateName(s.session_state.load());
    return false;
  }
  if (static_cast<sink::Phase>(s.common.phase.load()) != sink::Phase::kIncremental) {
    *why = "publishing not converged yet";
    return false;
  }
  if (int64_t held = s.held_no_parent.load(); held > 0) {
    *why = std::to_string(held) + " keys held: their parent znode is missing (see the log)";
    return false;
  }
  return true;
}

std::string StatusJson(const Stats& s, const std::string& task, const sink::RoleView& role) {
  nlohmann::json j;
  bool leading = s.common.leading.load() != 0;
  j["task"] = task;
  j["instance_id"] = role.instance_id;
  j["role"] = !role.ha ? "single" : (leading ? "leader" : "standby");
  j["phase"] = sink::PhaseName(static_cast<sink::Phase>(s.common.phase.load()));
  j["zk_session"] = zk2etcd::SessionStateName(s.session_state.load());
  j["zk_session_id"] = absl::StrCat("0x", absl::Hex(s.session_id.load()));
  j["published"] = s.published.load();
  j["held"] = {{"exists", s.held_exists.load()}, {"no_parent", s.held_no_parent.load()}};
  j["forward_skipped"] = s.forward_skipped.load();
  j["applied_revision"] = s.applied_revision.load();
  std::string why;
  j["ready"] = Ready(s, role, &why);
  if (!why.empty()) j["not_ready_reason"] = why;
  return j.dump();
}

}  // namespace kvsync::etcd2zk
