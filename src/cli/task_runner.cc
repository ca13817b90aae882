#include "cli/task_runner.h"

#include <map>
#include <memory>

#include "cli/command.h"
#include "common/status_macros.h"
#include "election/elector.h"
#include "election/leader_loop.h"
#include "http/admin_server.h"
#include "log/log.h"
#include "runtime/thread.h"

namespace kvsync::cli {

void AddHaFlags(CLI::App* cmd, bool* ha, std::chrono::milliseconds* lease_ttl,
                std::string* instance_id, config::EtcdConnection* election) {
  cmd->add_flag("--ha", *ha,
                "active/standby: run several replicas; only the elected leader writes, its "
                "txns fenced on its election key")
      ->group("High availability");
  AddDurationFlag(cmd, "--lease-ttl", lease_ttl,
                  "leadership lease; a dead leader is replaced within about this long",
                  kLeaseTtlRange)
      ->group("High availability");
  cmd->add_option("--instance-id", *instance_id,
                  "this replica's name in the election (default: <hostname>-<pid>)")
      ->group("High availability");
  AddConnectionFlags(cmd, "election", "election", election);
}

void AddAdminFlags(CLI::App* cmd, std::string* admin_addr,
                   std::chrono::milliseconds* ready_max_lag) {
  cmd->add_option("--admin-addr", *admin_addr,
                  "admin HTTP server (/metrics, /healthz, /readyz, /status); use 0.0.0.0:9464 "
                  "in a pod, \"\" to disable")
      ->default_val(*admin_addr)
      ->group("Observability");
  AddDurationFlag(cmd, "--ready-max-lag", ready_max_lag,
                  "/readyz fails while the leader lags more than this", kReadyMaxLagRange)
      ->group("Observability");
}

namespace {

absl::StatusOr<std::unique_ptr<http::AdminServer>> StartAdminServer(const TaskSpec& spec,
                                                                    const sink::RoleView& role) {
  using Response = http::AdminServer::Response;
  std::map<std::string, http::AdminServer::Handler> routes;
  routes["/metrics"] = [registry = spec.registry] {
    return Response{200, "text/plain; version=0.0.4; charset=utf-8", registry->Render()};
  };
  routes["/healthz"] = [] { return Response{200, "text/plain; charset=utf-8", "ok\n"}; };
  routes["/readyz"] = [&spec, &role] {
    std::string why;
    if (spec.ready(role, &why)) return Response{200, "text/plain; charset=utf-8", "ready\n"};
    return Response{503, "text/plain; charset=utf-8", "not ready: " + why + "\n"};
  };
  routes["/status"] = [&spec, &role] {
    return http::JsonResponse(200, spec.status_json(role) + "\n");
  };
  return http::AdminServer::Start(spec.admin_addr, std::move(routes));
}

}  // namespace

int RunTask(const TaskSpec& spec, common::StopToken* stop) {
  sink::WriteStats& stats = *spec.stats;
  stats.leading.store(spec.ha ? 0 : 1);
  std::unique_ptr<election::Elector> elector;
  if (spec.ha) {
    elector = std::make_unique<election::Elector>(
        spec.election_client,
        election::ElectorOptions{spec.election_name, spec.instance_id, spec.lease_ttl}, stop);
  }
  sink::RoleView role{spec.ha, spec.instance_id, nullptr, nullptr};
  if (elector) {
    role.leader = [&elector] { return elector->CurrentLeader().value_or(""); };
    role.standby_healthy = [&elector] { return elector->healthy(); };
  }
  std::unique_ptr<http::AdminServer> admin;
  if (!spec.admin_addr.empty()) {
    auto started = StartAdminServer(spec, role);
    if (!started.ok()) return ReportAndExit(spec.command, started.status());
    admin = std::move(*started);
  }

  // Start-up: a stop signal exits at once until the engine runs.
  log::Info("main", "connecting", {{"command", spec.command}, {"task", spec.task}});
  if (absl::Status connected = spec.connect(); !connected.ok()) {
    return ExitAfterRun(spec.command, connected, *stop);
  }
  common::StopToken status_done;
  runtime::Thread status;
  if (spec.status_interval.count() > 0) {
    status = runtime::Thread("status-log", [&] {
      while (!status_done.WaitFor(spec.status_interval)) spec.log_progress();
    });
  }
  EndStartup();
  absl::Status result;
  if (!spec.ha) {
    result = spec.run(*stop, {});
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
    result = election::RunWhileLeader(elector.get(), stop, spec.run, observer);
  }
  status_done.RequestStop();
  status.Join();
  return ExitAfterRun(spec.command, result, *stop);
}

std::string ElectionName(const std::string& meta_prefix, const std::string& task) {
  return meta_prefix + task + "/election";
}

absl::StatusOr<std::unique_ptr<etcd::Client>> ConnectClient(const config::EtcdConnection& conn,
                                                            const std::string& name) {
  ASSIGN_OR_RETURN(std::unique_ptr<etcd::Client> client,
                   etcd::Client::Create(conn.ToClientOptions(name)));
  RETURN_IF_ERROR(client->Connect().status());
  return client;
}

absl::StatusOr<std::vector<etcd::Compare>> CurrentLeaderFence(etcd::Client* election,
                                                              const std::string& election_name) {
  return election::LeaderFence(election, election_name);
}

}  // namespace kvsync::cli
