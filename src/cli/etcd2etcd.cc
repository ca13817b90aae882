#include "cli/etcd2etcd.h"

#include <unistd.h>

#include <chrono>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/command.h"
#include "common/status_macros.h"
#include "config/config.h"
#include "config/yaml_config.h"
#include "election/elector.h"
#include "election/leader_loop.h"
#include "etcd/client.h"
#include "http/admin_server.h"
#include "log/log.h"
#include "metrics/process_metrics.h"
#include "metrics/registry.h"
#include "mirror/mirror.h"
#include "mirror/observability.h"

namespace kvsync::cli {
namespace {

struct Flags {
  config::MirrorConfig config;
  std::string config_file;
  std::chrono::milliseconds lease_ttl{5000};
};

absl::Status Finalise(Flags* f) {
  f->config.lease_ttl = std::chrono::duration_cast<std::chrono::seconds>(f->lease_ttl);
  if (f->config.instance_id.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    f->config.instance_id = absl::StrFormat("%s-%d", host, getpid());
  }
  RETURN_IF_ERROR(log::Init(f->config.log_level, f->config.log_format));
  return config::ValidateMirrorConfig(&f->config);
}

// Prints one progress line every --status-interval until `done`.
void ReportStatus(const mirror::Stats& s, const std::string& task,
                  std::chrono::milliseconds interval, const common::StopToken& done) {
  while (!done.WaitFor(interval)) {
    int64_t checkpoint = s.last_synced_revision.load();
    int64_t head = s.source_head_revision.load();
    auto phase = static_cast<sink::Phase>(s.phase.load());
    log::Info("status", "progress",
              {{"task", task},
               {"phase", sink::PhaseName(phase)},
               {"synced_revision", checkpoint},
               {"source_revision", head},
               {"lag_revisions", head > checkpoint ? head - checkpoint : int64_t{0}},
               {"lag_seconds", mirror::LagSeconds(s)},
               {"source_head_age_seconds", mirror::HeadAgeSeconds(s)},
               {"watch_stalls", s.watch_stalls.load()},
               {"refused", mirror::RefusalName(mirror::CurrentRefusal(s))},
               {"full_sync_scanned", s.full_sync_scanned.load()},
               {"puts", s.puts.load()},
               {"deletes", s.deletes.load()},
               {"events", s.events_applied.load()},
               {"txns", s.txns.load()},
               {"retries", s.retries.total()}});
  }
}

absl::StatusOr<std::unique_ptr<http::AdminServer>> StartAdminServer(
    const config::MirrorConfig& c, const metrics::Registry& registry, const mirror::Stats& stats,
    const sink::RoleView& role) {
  using Response = http::AdminServer::Response;
  std::map<std::string, http::AdminServer::Handler> routes;
  routes["/metrics"] = [&registry] {
    return Response{200, "text/plain; version=0.0.4; charset=utf-8", registry.Render()};
  };
  routes["/healthz"] = [] { return Response{200, "text/plain; charset=utf-8", "ok\n"}; };
  routes["/readyz"] = [&stats, &role, max_lag = c.ready_max_lag] {
    std::string why;
    if (mirror::Ready(stats, role, max_lag, &why)) {
      return Response{200, "text/plain; charset=utf-8", "ready\n"};
    }
    return Response{503, "text/plain; charset=utf-8", "not ready: " + why + "\n"};
  };
  routes["/status"] = [&stats, &role, task = c.name, max_lag = c.ready_max_lag] {
    return http::JsonResponse(200, mirror::StatusJson(stats, task, role, max_lag) + "\n");
  };
  auto server = http::AdminServer::Start(c.admin_addr, std::move(routes));
  if (!server.ok()) return server.status();
  return server;
}

}  // namespace

std::function<int()> AddEtcd2EtcdCommand(CLI::App* app) {
  auto flags = std::make_shared<Flags>();
  config::MirrorConfig& c = flags->config;
  CLI::App* cmd = app->add_subcommand(
      "etcd2etcd",
      "Mirror a key prefix from a source etcd cluster to a destination cluster, live.\n"
      "Full sync (only differences written) when there is no usable checkpoint, then\n"
      "incremental sync from the source's watch history; the checkpoint lives in the\n"
      "destination under --meta-prefix, written atomically with the data.");
  cmd->add_option("--config", flags->config_file,
                  "YAML file setting any of these flags (flags and environment win)");
  AddConnectionFlags(cmd, "src", "source", &c.src);
  AddConnectionFlags(cmd, "dst", "destination", &c.dst);
  AddScopeFlags(cmd, &c);
  cmd->add_option("--max-txn-ops", c.max_txn_ops,
                  "ops per destination txn (etcd's --max-txn-ops, default 128)")
      ->default_val(c.max_txn_ops)
      ->group("Throughput");
  cmd->add_option("--max-request-bytes", c.max_request_bytes,
                  "bytes per destination txn (etcd's --max-request-bytes, default 1.5 MiB)")
      ->default_val(c.max_request_bytes)
      ->group("Throughput");
  cmd->add_option("--inflight", c.inflight, "concurrent txns during a full sync")
      ->default_val(c.inflight)
      ->group("Throughput");
  cmd->add_option("--page-size", c.page_size,
                  "keys per range page in a full sync (large pages are much faster on etcd 3.4)")
      ->default_val(c.page_size)
      ->group("Throughput");
  cmd->add_option("--watch-buffer-bytes", c.watch_buffer_bytes,
                  "memory for source changes received but not yet written (default 32 MiB); "
                  "bounds kvsync's memory whatever the backlog")
      ->default_val(c.watch_buffer_bytes)
      ->group("Throughput");
  cmd->add_flag("--reset-last-synced-rev", c.reset_last_synced_rev,
                "ignore the checkpoint and run a full sync")
      ->group("Behaviour");
  cmd->add_flag("--once", c.once,
                "sync until the destination matches the source at the start revision, then "
                "exit 0 (one-shot migration)")
      ->group("Behaviour");
  AddDurationFlag(cmd, "--progress-interval", &c.progress_interval,
                  "how often an idle watch asks for progress to advance the checkpoint",
                  kProgressIntervalRange)
      ->group("Behaviour");
  AddDurationFlag(cmd, "--status-interval", &c.status_interval,
                  "how often a progress line is logged (0 = never)", kStatusIntervalRange)
      ->group("Behaviour");
  AddDurationFlag(cmd, "--check-interval", &c.check_interval,
                  "run a two-round consistency check this often while leading (0 = off)",
                  kCheckIntervalRange)
      ->group("Consistency");
  cmd->add_option("--check-full-every", c.check_full_every,
                  "every Nth check is a full check, the others presence-only (1 = always full)")
      ->default_val(c.check_full_every)
      ->group("Consistency");
  cmd->add_option("--check-read-rate", c.check_read_rate,
                  "continuous checks read at most this many keys/s from each cluster (0 = "
                  "unlimited)")
      ->default_val(0)
      ->group("Consistency");
  cmd->add_option("--auto-repair", c.auto_repair,
                  "repair confirmed differences found by full checks: none, src-miss (keys the "
                  "source deleted, e.g. missed during compaction) or all")
      ->default_val(c.auto_repair)
      ->group("Consistency");
  cmd->add_flag("--ha", c.ha,
                "active/standby: run several replicas; only the elected leader writes, its "
                "txns fenced on its election key")
      ->group("High availability");
  AddDurationFlag(cmd, "--lease-ttl", &flags->lease_ttl,
                  "leadership lease; a dead leader is replaced within about this long",
                  kLeaseTtlRange)
      ->group("High availability");
  cmd->add_option("--instance-id", c.instance_id,
                  "this replica's name in the election (default: <hostname>-<pid>)")
      ->group("High availability");
  AddConnectionFlags(cmd, "election", "election", &c.election);
  cmd->add_option("--admin-addr", c.admin_addr,
                  "admin HTTP server (/metrics, /healthz, /readyz, /status); use 0.0.0.0:9464 "
                  "in a pod, \"\" to disable")
      ->default_val(c.admin_addr)
      ->group("Observability");
  AddDurationFlag(cmd, "--ready-max-lag", &c.ready_max_lag,
                  "/readyz fails while the leader lags more than this", kReadyMaxLagRange)
      ->group("Observability");
  AddLogFlags(cmd, &c.log_level, &c.log_format);

  return [flags, cmd]() -> int {
    if (cmd->remaining_size() > 0) {
      return ReportAndExit(
          "etcd2etcd", absl::InvalidArgumentError("unexpected argument " + cmd->remaining()[0]));
    }
    if (!flags->config_file.empty()) {
      absl::Status loaded = config::ApplyYamlFlags(cmd, flags->config_file);
      if (!loaded.ok()) return ReportAndExit("etcd2etcd", loaded);
    }
    absl::Status valid = Finalise(flags.get());
    if (!valid.ok()) return ReportAndExit("etcd2etcd", valid);
    const config::MirrorConfig& c = flags->config;
    common::StopToken stop;
    StartSignalThread(&stop);

    auto src = etcd::Client::Create(c.src.ToClientOptions("source"));
    if (!src.ok()) return ReportAndExit("etcd2etcd", src.status());
    auto dst = etcd::Client::Create(c.dst.ToClientOptions("destination"));
    if (!dst.ok()) return ReportAndExit("etcd2etcd", dst.status());

    std::unique_ptr<etcd::Client> election_client;
    if (c.ha) {
      auto created = etcd::Client::Create(c.election.ToClientOptions("election"));
      if (!created.ok()) return ReportAndExit("etcd2etcd", created.status());
      election_client = std::move(*created);
    }
    absl::Status renamed =
        mirror::CheckRenamedTask(c, election_client ? election_client.get() : dst->get());
    if (!renamed.ok()) return ReportAndExit("etcd2etcd", renamed);

    log::Info("main", "started",
              {{"command", "etcd2etcd"},
               {"version", KVSYNC_VERSION},
               {"task", c.name},
               {"prefix", c.prefix},
               {"dst_prefix", c.dst_prefix},
               {"once", c.once}});
    mirror::Stats stats;
    stats.leading.store(c.ha ? 0 : 1);
    metrics::Registry registry;
    metrics::AddProcessMetrics(&registry);
    mirror::RegisterMetrics(&registry, c.name, &stats);
    std::unique_ptr<election::Elector> elector;
    if (c.ha) {
      elector = std::make_unique<election::Elector>(
          election_client.get(),
          election::ElectorOptions{absl::StrCat(c.meta_prefix, c.name, "/election"), c.instance_id,
                                   c.lease_ttl},
          &stop);
    }
    sink::RoleView role{c.ha, c.instance_id, nullptr, nullptr};
    if (elector) {
      role.leader = [&elector] { return elector->CurrentLeader().value_or(""); };
      role.standby_healthy = [&elector] { return elector->healthy(); };
    }
    std::unique_ptr<http::AdminServer> admin;
    if (!c.admin_addr.empty()) {
      auto started = StartAdminServer(c, registry, stats, role);
      if (!started.ok()) return ReportAndExit("etcd2etcd", started.status());
      admin = std::move(*started);
    }

    // Start-up: a stop signal exits at once until the engine runs. A standby replica needs
    // only the election cluster; a single task needs both sides before anything else.
    log::Info("main", "connecting", {{"command", "etcd2etcd"}, {"task", c.name}});
    std::vector<etcd::Client*> needed = {src->get(), dst->get()};
    if (c.ha) needed = {election_client.get()};
    for (etcd::Client* client : needed) {
      if (auto connected = client->Connect(); !connected.ok()) {
        return ExitAfterRun("etcd2etcd", connected.status(), stop);
      }
    }
    common::StopToken status_done;
    std::thread status;
    if (c.status_interval.count() > 0) {
      status = std::thread(ReportStatus, std::cref(stats), c.name, c.status_interval,
                           std::cref(status_done));
    }
    EndStartup();
    absl::Status result;
    if (!c.ha) {
      mirror::Mirror engine(c, src->get(), dst->get(), &stop, &stats);
      result = engine.Run();
    } else {
      election::LeaderLoopObserver observer;
      observer.on_role = [&stats](bool leading) {
        stats.leading.store(leading ? 1 : 0);
        stats.leadership_changes.fetch_add(1);
      };
      observer.on_fenced = [&stats] {
        stats.fencing_rejections.fetch_add(1);
        stats.errors_fenced.fetch_add(1);
      };
      observer.on_term_error = [&stats](const absl::Status& s) {
        (etcd::IsTransient(s) ? stats.errors_unavailable : stats.errors_other).fetch_add(1);
      };
      result = election::RunWhileLeader(
          elector.get(), &stop,
          [&](const common::StopToken& term_stop, std::vector<etcd::Compare> fence) {
            mirror::Mirror engine(c, src->get(), dst->get(), &term_stop, &stats);
            engine.set_fence(std::move(fence));
            return engine.Run();
          },
          observer);
    }
    status_done.RequestStop();
    if (status.joinable()) status.join();
    return ExitAfterRun("etcd2etcd", result, stop);
  };
}

}  // namespace kvsync::cli
