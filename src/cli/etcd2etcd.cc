#include "cli/etcd2etcd.h"

#include <unistd.h>

#include <chrono>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/command.h"
#include "cli/task_runner.h"
#include "common/status_macros.h"
#include "config/config.h"
#include "config/yaml_config.h"
#include "etcd/client.h"
#include "log/log.h"
#include "metrics/process_metrics.h"
#include "metrics/registry.h"
#include "mirror/mirror.h"
#include "mirror/observability.h"

namespace kvsync::cli {
namespace {

absl::Status Finalise(MirrorFlags* f) {
  f->config.lease_ttl = std::chrono::duration_cast<std::chrono::seconds>(f->lease_ttl);
  if (f->config.instance_id.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    f->config.instance_id = absl::StrFormat("%s-%d", host, getpid());
  }
  RETURN_IF_ERROR(log::Init(f->config.log_level, f->config.log_format));
  return config::ValidateMirrorConfig(&f->config);
}

// One progress line (every --status-interval).
void LogProgress(const mirror::Stats& s, const std::string& task) {
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

}  // namespace

void AddMirrorFlags(CLI::App* cmd, MirrorFlags* flags) {
  config::MirrorConfig& c = flags->config;
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
  cmd->add_option("--inflight", c.inflight,
                  "destination txns in flight: concurrent txns of a full sync, and the depth of "
                  "the incremental pipeline (chained, so they still apply in source order); "
                  "raise it for a distant destination")
      ->default_val(c.inflight)
      ->group("Throughput");
  cmd->add_option("--dst-connections", c.dst.connections,
                  "TCP connections to each destination endpoint, txns spread over them (for a "
                  "link that limits each flow)")
      ->default_val(c.dst.connections)
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
  cmd->add_flag("--no-leases", c.no_leases,
                "write destination keys without leases (as etcdctl make-mirror); by default a key "
                "on source lease L is written on destination lease L, kept alive while L lives")
      ->group("Leases");
  AddDurationFlag(cmd, "--lease-min-ttl", &c.lease_min_ttl,
                  "floor of a destination lease's TTL: max(source TTL, this). Registrations "
                  "survive a kvsync outage this long; after a promotion, dead providers' keys "
                  "vanish within this long (0 = exactly the source TTL)",
                  kLeaseMinTtlRange)
      ->group("Leases");
  AddDurationFlag(cmd, "--lease-hold", &c.lease_hold,
                  "while the source cannot be reached, keep destination leases alive this long "
                  "(0 = until the task is promoted or stopped), so the standby keeps serving the "
                  "last known registry",
                  kLeaseHoldRange)
      ->group("Leases");
  AddHaFlags(cmd, &c.ha, &flags->lease_ttl, &c.instance_id, &c.election);
  AddAdminFlags(cmd, &c.admin_addr, &c.ready_max_lag);
  AddLogFlags(cmd, &c.log_level, &c.log_format);
}

absl::Status LoadMirrorFlags(CLI::App* cmd, MirrorFlags* flags) {
  if (cmd->remaining_size() > 0) {
    return absl::InvalidArgumentError("unexpected argument " + cmd->remaining()[0]);
  }
  if (!flags->config_file.empty()) {
    RETURN_IF_ERROR(config::ApplyYamlFlags(cmd, flags->config_file));
  }
  return Finalise(flags);
}

std::function<int()> AddEtcd2EtcdCommand(CLI::App* app) {
  auto flags = std::make_shared<MirrorFlags>();
  CLI::App* cmd = app->add_subcommand(
      "etcd2etcd",
      "Mirror a key prefix from a source etcd cluster to a destination cluster, live.\n"
      "Full sync (only differences written) when there is no usable checkpoint, then\n"
      "incremental sync from the source's watch history; the checkpoint lives in the\n"
      "destination under --meta-prefix, written atomically with the data.");
  AddMirrorFlags(cmd, flags.get());
  return [flags, cmd]() -> int {
    absl::Status valid = LoadMirrorFlags(cmd, flags.get());
    if (!valid.ok()) return ReportAndExit("etcd2etcd", valid);
    return RunMirrorTask(flags->config, "etcd2etcd");
  };
}

int RunMirrorTask(const config::MirrorConfig& c, const std::string& command) {
  common::StopToken& stop = StartSignalThread();

  auto src = etcd::Client::Create(c.src.ToClientOptions("source"));
  if (!src.ok()) return ReportAndExit(command, src.status());
  auto dst = etcd::Client::Create(c.dst.ToClientOptions("destination"));
  if (!dst.ok()) return ReportAndExit(command, dst.status());

  std::unique_ptr<etcd::Client> election_client;
  if (c.ha) {
    auto created = etcd::Client::Create(c.election.ToClientOptions("election"));
    if (!created.ok()) return ReportAndExit(command, created.status());
    election_client = std::move(*created);
  }
  absl::Status renamed =
      mirror::CheckRenamedTask(c, election_client ? election_client.get() : dst->get());
  if (!renamed.ok()) return ReportAndExit(command, renamed);

  log::Info("main", "started",
            {{"command", command},
             {"version", KVSYNC_VERSION},
             {"task", c.name},
             {"prefix", c.prefix},
             {"dst_prefix", c.dst_prefix},
             {"once", c.once}});
  mirror::Stats stats;
  metrics::Registry registry;
  metrics::AddProcessMetrics(&registry);
  mirror::RegisterMetrics(&registry, c.name, &stats);
  TaskSpec spec;
  spec.command = command;
  spec.task = c.name;
  spec.ha = c.ha;
  spec.instance_id = c.instance_id;
  spec.election_name = ElectionName(c.meta_prefix, c.name);
  spec.lease_ttl = c.lease_ttl;
  spec.election_client = election_client.get();
  spec.admin_addr = c.admin_addr;
  spec.status_interval = c.status_interval;
  spec.stats = &stats;
  spec.registry = &registry;
  spec.ready = [&stats, max_lag = c.ready_max_lag](const sink::RoleView& role, std::string* why) {
    return mirror::Ready(stats, role, max_lag, why);
  };
  spec.status_json = [&stats, task = c.name,
                      max_lag = c.ready_max_lag](const sink::RoleView& role) {
    return mirror::StatusJson(stats, task, role, max_lag);
  };
  spec.log_progress = [&stats, task = c.name] { LogProgress(stats, task); };
  // A standby replica needs only the election cluster; a single task needs both sides
  // before anything else.
  spec.connect = [&]() -> absl::Status {
    // The destination first: a promoted one refuses the task whatever the source's state
    // (after a failover the source is usually gone).
    std::vector<etcd::Client*> needed = {dst->get(), src->get()};
    if (c.ha) needed = {election_client.get()};
    for (etcd::Client* client : needed) {
      if (auto connected = client->Connect(); !connected.ok()) return connected.status();
      if (client == dst->get()) RETURN_IF_ERROR(mirror::CheckNotPromoted(client, c));
    }
    return absl::OkStatus();
  };
  spec.run = [&](const common::StopToken& term_stop, std::vector<etcd::Compare> fence) {
    mirror::Mirror engine(c, src->get(), dst->get(), &term_stop, &stats);
    engine.set_fence(std::move(fence));
    return engine.Run();
  };
  return RunTask(spec, &stop);
}

}  // namespace kvsync::cli
