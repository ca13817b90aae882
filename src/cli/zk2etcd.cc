#include "cli/zk2etcd.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <optional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/command.h"
#include "cli/task_runner.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "config/config.h"
#include "config/yaml_config.h"
#include "etcd/client.h"
#include "etcd2zk/observability.h"
#include "etcd2zk/publisher.h"
#include "log/log.h"
#include "metrics/process_metrics.h"
#include "metrics/registry.h"
#include "nlohmann/json.hpp"
#include "ownership/store.h"
#include "redis/client.h"
#include "runtime/thread.h"
#include "zk/session.h"
#include "zk2etcd/check.h"
#include "zk2etcd/guards.h"
#include "zk2etcd/migration.h"
#include "zk2etcd/observability.h"
#include "zk2etcd/parity.h"
#include "zk2etcd/syncer.h"

namespace kvsync::cli {
namespace {

constexpr const char* kAliases = "Aliases of the open-source zk2etcd's flags";

struct Flags {
  config::Zk2EtcdConfig config;
  std::string config_file;
  std::chrono::milliseconds lease_ttl{5000};
  // check only
  std::string output = "text";
  int show = 10;
  bool single_round = false;
  bool fix = false;
  bool by_service = false;
  // migrate only
  std::string to;
  std::vector<std::string> services;
  bool point_of_no_return = false;
};

// What a direction asks before it runs and while it runs (migration.h): OK unless the recorded
// phase stops it. A record that cannot be read does not stop a running task (logged; asked
// again at the next check); a record that is not a migration record does. The phase read is
// kept in `observed` (kvsync_migration_phase).
std::function<absl::Status()> PhaseCheck(etcd::KvApi* kv, std::string meta_prefix, std::string task,
                                         bool reverse, std::atomic<int>* observed) {
  return [kv, meta_prefix = std::move(meta_prefix), task = std::move(task), reverse, observed] {
    auto record = zk2etcd::ReadMigration(kv, meta_prefix, task);
    if (!record.ok()) {
      if (absl::IsFailedPrecondition(record.status())) return record.status();
      log::Warn("main", "cannot read the migration phase", {{"error", record.status()}});
      return absl::OkStatus();
    }
    observed->store(record->exists ? static_cast<int>(record->phase) : -1);
    return zk2etcd::AllowedToRun(*record, task, reverse);
  };
}

// Flags shared by the task and its check: what to sync, where, and who owns what.
void AddTaskFlags(CLI::App* cmd, Flags* f) {
  config::Zk2EtcdConfig& c = f->config;
  cmd->add_option("--config", f->config_file,
                  "YAML file setting any of these flags (flags and environment win)");
  const char* zk = "ZooKeeper";
  cmd->add_option("--zk-servers,--zookeeper-servers", c.zk_servers,
                  "ZooKeeper ensemble, host:port[,host:port...][/chroot]")
      ->group(zk);
  AddDurationFlag(cmd, "--zk-session-timeout", &c.zk_session_timeout,
                  "ZooKeeper session timeout (ephemeral znodes of a dead session vanish after "
                  "this long)",
                  kZkSessionTimeoutRange)
      ->group(zk);
  cmd->add_option("--zk-auth", c.zk_auth, "ZooKeeper digest auth, user:password")
      ->envname("KVSYNC_ZK_AUTH")
      ->group(zk);
  cmd->add_option("--zk-prefix,--zookeeper-prefix", c.zk_prefixes,
                  "znode subtree to sync (repeatable; path-aware: /dubbo does not cover /dubbo2)")
      ->group("What to sync");
  cmd->add_option("--zk-exclude-prefix,--zookeeper-exclude-prefix", c.zk_excludes,
                  "znode subtree to leave alone (repeatable, path-aware)")
      ->group("What to sync");
  cmd->add_option("--etcd-prefix", c.etcd_prefix,
                  "prepended to every znode path to form the etcd key (default: none, keys are "
                  "the znode paths)")
      ->group("What to sync");
  cmd->add_option("--service-depth", c.service_depth,
                  "path levels below a --zk-prefix that name a service, for per-service parity "
                  "(1: /dubbo/<service>)")
      ->default_val(c.service_depth)
      ->check(CLI::Range(1, 16))
      ->group("What to sync");
  cmd->add_option("--name", c.name,
                  "task name: namespaces ownership records and the election (default: from "
                  "the first --zk-prefix)")
      ->group("What to sync");
  cmd->add_option("--meta-prefix", c.meta_prefix,
                  "where kvsync keeps ownership marks and the election in etcd; never synced")
      ->default_val(c.meta_prefix)
      ->group("What to sync");
  AddConnectionFlags(cmd, "etcd", "destination", &c.etcd);
  cmd->add_option("--etcd-servers", c.etcd.endpoints, "same as --etcd-endpoints")->group(kAliases);
  const char* own = "Ownership";
  cmd->add_option("--ownership", c.ownership,
                  "how kvsync remembers the keys it wrote, so that it deletes only those: etcd "
                  "(a mark written in the same txn), redis (a set per task, as the original "
                  "tool), none (delete any key under the prefix without a znode)")
      ->default_val(c.ownership)
      ->group(own);
  const char* guard = "Deletion guards";
  cmd->add_flag("--zk-allow-missing-prefix", c.allow_missing_prefix,
                "start even when a --zk-prefix root (or the --zk-servers chroot) does not exist "
                "yet; by default that is a configuration error (exit 2), since a typo would "
                "look like an empty tree. Keys under a missing root are never deleted")
      ->group(guard);
  cmd->add_option("--max-delete-fraction", c.max_delete_fraction,
                  "a full sync that would delete more than this fraction of the owned keys in "
                  "one round deletes nothing and reports the hold (metric, /readyz, log)")
      ->default_val(c.max_delete_fraction)
      ->group(guard);
  cmd->add_flag("--confirm-mass-delete", c.confirm_mass_delete,
                "confirm a real mass removal: lift both guards for this run (use it with --once "
                "or check --fix, then drop it)")
      ->group(guard);
  cmd->add_option("--redis-addr", c.redis_addr, "Redis host:port (--ownership redis)")->group(own);
  cmd->add_option("--redis-password", c.redis_password, "Redis password (or KVSYNC_REDIS_PASSWORD)")
      ->envname("KVSYNC_REDIS_PASSWORD")
      ->group(own);
  cmd->add_option("--redis-db", c.redis_db, "Redis database number")->default_val(0)->group(own);
  cmd->add_flag("--redis-tls", c.redis_tls, "connect to Redis over TLS")->group(own);
  cmd->add_option("--redis-cacert", c.redis_cacert, "CA bundle verifying Redis (implies TLS)")
      ->group(own);
  cmd->add_option("--redis-cert", c.redis_cert, "Redis client TLS certificate")->group(own);
  cmd->add_option("--redis-key", c.redis_key, "Redis client TLS key")->group(own);
  cmd->add_option("--concurrency,--concurrent", c.concurrency,
                  "ZooKeeper reads in flight during tree walks")
      ->default_val(c.concurrency)
      ->group("Throughput");
  cmd->add_option("--page-size", c.page_size, "etcd keys per range page")
      ->default_val(c.page_size)
      ->group("Throughput");
  AddLogFlags(cmd, &c.log_level, &c.log_format);
}

absl::Status Finalise(Flags* f) {
  config::Zk2EtcdConfig& c = f->config;
  c.lease_ttl = std::chrono::duration_cast<std::chrono::seconds>(f->lease_ttl);
  if (c.instance_id.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    c.instance_id = absl::StrFormat("%s-%d", host, getpid());
  }
  if (!c.redis_cacert.empty() || !c.redis_cert.empty()) c.redis_tls = true;
  RETURN_IF_ERROR(log::Init(c.log_level, c.log_format));
  RETURN_IF_ERROR(config::ValidateZk2EtcdConfig(&c));
  if (c.ownership == "redis") {
    RETURN_IF_ERROR(redis::ValidateOptions(redis::Options{
        .addr = c.redis_addr,
        .password = c.redis_password,
        .db = c.redis_db,
        .tls = c.redis_tls,
        .ca_file = c.redis_cacert,
        .cert_file = c.redis_cert,
        .key_file = c.redis_key,
    }));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ownership::Store>> OpenOwnership(const config::Zk2EtcdConfig& c) {
  if (c.ownership == "none") return ownership::NewNoneStore();
  if (c.ownership == "etcd") return ownership::NewEtcdStore(c.TaskMeta() + "owned");
  return ownership::NewRedisStore(
      redis::Options{
          .addr = c.redis_addr,
          .password = c.redis_password,
          .db = c.redis_db,
          .tls = c.redis_tls,
          .ca_file = c.redis_cacert,
          .cert_file = c.redis_cert,
          .key_file = c.redis_key,
      },
      c.name);
}

zk::SessionOptions ZkOptions(const config::Zk2EtcdConfig& c) {
  zk::SessionOptions options;
  options.servers = c.zk_servers;
  options.session_timeout = c.zk_session_timeout;
  options.connect_timeout = std::max(c.zk_session_timeout, std::chrono::milliseconds(5000));
  options.digest_auth = c.zk_auth;
  return options;
}

absl::StatusOr<std::unique_ptr<zk::Session>> OpenZk(const config::Zk2EtcdConfig& c) {
  return zk::Session::Open(ZkOptions(c), [](const zk::WatchEvent&) {});
}

int LoadAndValidate(const char* what, Flags* f, CLI::App* cmd) {
  if (cmd->remaining_size() > 0) {
    return ReportAndExit(what,
                         absl::InvalidArgumentError("unexpected argument " + cmd->remaining()[0]));
  }
  if (!f->config_file.empty()) {
    absl::Status loaded = config::ApplyYamlFlags(cmd, f->config_file);
    if (!loaded.ok()) return ReportAndExit(what, loaded);
  }
  absl::Status valid = Finalise(f);
  if (!valid.ok()) return ReportAndExit(what, valid);
  return -1;
}

// The clients a ZooKeeper task needs, connected, after checking that its tree exists (a
// root missing would look like an empty tree: guards.h).
struct ZkTaskClients {
  std::unique_ptr<etcd::Client> etcd;
  std::unique_ptr<etcd::Client> election;  // with --ha
};
absl::StatusOr<ZkTaskClients> ConnectZkTask(const config::Zk2EtcdConfig& c,
                                            const std::string& command) {
  ZkTaskClients out;
  ASSIGN_OR_RETURN(out.etcd, etcd::Client::Create(c.etcd.ToClientOptions("etcd")));
  log::Info("main", "connecting", {{"command", command}, {"task", c.name}});
  RETURN_IF_ERROR(out.etcd->Connect().status());
  if (c.ha) {
    ASSIGN_OR_RETURN(out.election, etcd::Client::Create(c.election.ToClientOptions("election")));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<zk::Session> preflight, OpenZk(c));
  RETURN_IF_ERROR(zk2etcd::CheckRootsExist(preflight.get(), c));
  return out;
}

// What RunTask needs of a ZooKeeper task besides its engine, readiness, status and progress.
TaskSpec ZkTaskSpec(const std::string& command, const config::Zk2EtcdConfig& c,
                    etcd::Client* election, sink::WriteStats* stats,
                    const metrics::Registry* registry) {
  TaskSpec spec;
  spec.command = command;
  spec.task = c.name;
  spec.ha = c.ha;
  spec.instance_id = c.instance_id;
  spec.election_name = ElectionName(c.meta_prefix, c.name);
  spec.lease_ttl = c.lease_ttl;
  spec.election_client = election;
  spec.admin_addr = c.admin_addr;
  spec.status_interval = c.status_interval;
  spec.stats = stats;
  spec.registry = registry;
  spec.connect = [] { return absl::OkStatus(); };  // connected by ConnectZkTask
  return spec;
}

// One progress line (every --status-interval).
void LogProgress(const zk2etcd::Stats& s, const std::string& task) {
  log::Info("status", "progress",
            {{"task", task},
             {"phase", sink::PhaseName(static_cast<sink::Phase>(s.common.phase.load()))},
             {"zk_session", zk2etcd::SessionStateName(s.session_state.load())},
             {"znodes_watched", s.znodes_watched.load()},
             {"lag_seconds", sink::PendingLagSeconds(s.common)},
             {"puts", s.common.puts.load()},
             {"deletes", s.common.deletes.load()},
             {"txns", s.common.txns.load()},
             {"fixed", s.fixed_dst_miss.load() + s.fixed_src_miss.load() + s.fixed_mismatch.load()},
             {"deletes_deferred", s.deletes_deferred.load()}});
}

int RunSync(Flags* f, CLI::App* cmd) {
  if (int rc = LoadAndValidate("zk2etcd", f, cmd); rc >= 0) return rc;
  const config::Zk2EtcdConfig& c = f->config;
  common::StopToken& stop = StartSignalThread();
  auto clients = ConnectZkTask(c, "zk2etcd");
  if (!clients.ok()) return ReportAndExit("zk2etcd", clients.status());
  etcd::Client* etcd_client = clients->etcd.get();
  if (c.confirm_mass_delete && !c.once) {
    log::Warn("main", "deletion guard lifted for the life of this process (--confirm-mass-delete)",
              {{"hint", "use it with --once or check --fix, then drop it"}});
  }
  auto owners = OpenOwnership(c);
  if (!owners.ok()) return ReportAndExit("zk2etcd", owners.status());
  ownership::Store* store = owners->get();

  log::Info("main", "started",
            {{"command", "zk2etcd"},
             {"version", KVSYNC_VERSION},
             {"task", c.name},
             {"zk_servers", c.zk_servers},
             {"etcd_prefix", c.etcd_prefix},
             {"ownership", c.ownership},
             {"once", c.once}});
  zk2etcd::Stats stats;
  metrics::Registry registry;
  metrics::AddProcessMetrics(&registry);
  zk2etcd::RegisterMetrics(
      &registry, c.name, &stats, [store] { return store->available(); },
      [store] { return store->pending(); });
  std::atomic<int> migration_phase{-1};
  zk2etcd::RegisterPhaseMetric(&registry, c.name, &migration_phase);
  TaskSpec spec = ZkTaskSpec("zk2etcd", c, clients->election.get(), &stats.common, &registry);
  spec.ready = [&stats, max_lag = c.ready_max_lag](const sink::RoleView& role, std::string* why) {
    return zk2etcd::Ready(stats, role, max_lag, why);
  };
  spec.status_json = [&stats, store, task = c.name,
                      max_lag = c.ready_max_lag](const sink::RoleView& role) {
    return zk2etcd::StatusJson(stats, task, role, max_lag, store->available());
  };
  spec.log_progress = [&stats, task = c.name] { LogProgress(stats, task); };
  std::unique_ptr<zk::SessionFactory> zk_sessions = zk::NewSessionFactory(ZkOptions(c));
  spec.run = [&](const common::StopToken& term_stop, std::vector<etcd::Compare> fence) {
    zk2etcd::Syncer engine(c, zk_sessions.get(), etcd_client, etcd_client, store, &term_stop,
                           &stats);
    engine.set_fence(std::move(fence));
    engine.set_leases(etcd_client);
    engine.set_phase_check(PhaseCheck(etcd_client, c.meta_prefix, c.name, false, &migration_phase));
    return engine.Run();
  };
  return RunTask(spec, &stop);
}

// `kvsync etcd2zk`: the forward task's flags; its own task is "<name>-etcd2zk".
int RunEtcd2Zk(Flags* f, CLI::App* cmd) {
  if (int rc = LoadAndValidate("etcd2zk", f, cmd); rc >= 0) return rc;
  const config::Zk2EtcdConfig& forward = f->config;
  if (forward.ownership != "etcd") {
    return ReportAndExit(
        "etcd2zk", absl::InvalidArgumentError(
                       "etcd2zk tells the zk2etcd direction's keys by their ownership marks in "
                       "etcd: the zk2etcd task must run with --ownership etcd, got --ownership " +
                       forward.ownership));
  }
  config::Zk2EtcdConfig c = forward;
  c.name = forward.name + "-etcd2zk";
  const std::string forward_marks = forward.TaskMeta() + "owned/";
  common::StopToken& stop = StartSignalThread();
  auto clients = ConnectZkTask(c, "etcd2zk");
  if (!clients.ok()) return ReportAndExit("etcd2zk", clients.status());
  etcd::Client* etcd_client = clients->etcd.get();
  log::Info("main", "started",
            {{"command", "etcd2zk"},
             {"version", KVSYNC_VERSION},
             {"task", c.name},
             {"forward_task", forward.name},
             {"zk_servers", c.zk_servers},
             {"etcd_prefix", c.etcd_prefix}});
  etcd2zk::Stats stats;
  metrics::Registry registry;
  metrics::AddProcessMetrics(&registry);
  etcd2zk::RegisterMetrics(&registry, c.name, &stats);
  std::atomic<int> migration_phase{-1};
  zk2etcd::RegisterPhaseMetric(&registry, c.name, &migration_phase);
  TaskSpec spec = ZkTaskSpec("etcd2zk", c, clients->election.get(), &stats.common, &registry);
  spec.ready = [&stats](const sink::RoleView& role, std::string* why) {
    return etcd2zk::Ready(stats, role, why);
  };
  spec.status_json = [&stats, task = c.name](const sink::RoleView& role) {
    return etcd2zk::StatusJson(stats, task, role);
  };
  spec.log_progress = [&stats, task = c.name] {
    log::Info("status", "progress",
              {{"task", task},
               {"phase", sink::PhaseName(static_cast<sink::Phase>(stats.common.phase.load()))},
               {"zk_session", zk2etcd::SessionStateName(stats.session_state.load())},
               {"published", stats.published.load()},
               {"held_exists", stats.held_exists.load()},
               {"held_no_parent", stats.held_no_parent.load()},
               {"applied_revision", stats.applied_revision.load()}});
  };
  spec.run = [&](const common::StopToken& term_stop, std::vector<etcd::Compare> fence) {
    etcd2zk::Publisher engine(c, forward_marks, ZkOptions(c), etcd_client, &term_stop, &stats);
    engine.set_fence(std::move(fence));
    engine.set_phase_check(
        PhaseCheck(etcd_client, c.meta_prefix, forward.name, true, &migration_phase));
    return engine.Run();
  };
  return RunTask(spec, &stop);
}

// The precondition of done: no consumer of the services concerned (all, or --service) still
// registered in ZooKeeper (Dubbo consumers register under <service>/consumers).
absl::StatusOr<std::string> CountZkConsumers(const config::Zk2EtcdConfig& c,
                                             const std::vector<std::string>& only,
                                             zk::Session* session, const common::StopToken& stop) {
  std::set<std::string> concerned(only.begin(), only.end());
  zk2etcd::ParityCounter naming(c.zk_prefixes, c.service_depth);
  int64_t consumers = 0;
  std::string first;
  absl::Mutex mu;  // visits run on the session's loop thread
  zk::WalkOptions walk;
  walk.roots = c.zk_prefixes;
  walk.excludes = c.zk_excludes;
  walk.read_data = false;
  auto walked = session->Walk(
      walk,
      [&](const std::string& path, const std::string&, const zk::Stat&) {
        if (!absl::EndsWith(zk::ParentPath(path), "/consumers")) return;
        if (!concerned.empty() && !concerned.contains(naming.ServiceOf(path))) return;
        absl::MutexLock lock(&mu);
        if (consumers++ == 0) first = path;
      },
      &stop);
  if (!walked.ok()) return walked.status();
  if (consumers > 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(consumers, " consumers still registered in ZooKeeper (e.g. ", first,
                     "): moving to done would hide etcd's providers from them; nothing was "
                     "changed"));
  }
  return std::string("no consumer left in ZooKeeper");
}

// The precondition of a forward step, from one check of the services concerned (all, or
// --service): to dual, no confirmed difference; to etcd-primary, full parity; to done, no
// consumer registered in ZooKeeper. Returns a one-line summary, or FailedPrecondition.
absl::StatusOr<std::string> CheckStep(const config::Zk2EtcdConfig& c, zk2etcd::Phase to,
                                      const std::vector<std::string>& only, zk::Session* session,
                                      etcd::Client* etcd, ownership::Store* owners,
                                      const common::StopToken& stop) {
  if (to == zk2etcd::Phase::kDone) {
    // zk2etcd is stopped in etcd-primary: parity no longer applies, only who still reads.
    return CountZkConsumers(c, only, session, stop);
  }
  std::vector<zk2etcd::ServiceParity> services;
  zk2etcd::CheckOptions options;
  options.show = 0;
  options.service_depth = c.service_depth;
  options.services = &services;
  etcd::RetryCounters retries;
  auto report = zk2etcd::Check(c, session, etcd, etcd, owners, options, stop, &retries);
  if (!report.ok()) return report.status();
  std::set<std::string> wanted(only.begin(), only.end());
  std::vector<std::string> broken;
  size_t concerned = 0;
  for (const zk2etcd::ServiceParity& svc : services) {
    if (!wanted.empty() && !wanted.erase(svc.service)) continue;
    ++concerned;
    bool ok = to == zk2etcd::Phase::kDual ? svc.differences() == 0 : svc.equal();
    if (!ok) broken.push_back(svc.service);
  }
  if (!wanted.empty()) {
    return absl::InvalidArgumentError("--service " + *wanted.begin() +
                                      " is not a service of this task (kvsync check zk2etcd "
                                      "--by-service lists them)");
  }
  if (report->unreadable > 0 || report->ownership_unknown > 0) {
    return absl::FailedPreconditionError(
        "the parity check was inconclusive (unreadable znodes or ownership unknown): kvsync "
        "check zk2etcd --by-service says why");
  }
  if (!broken.empty()) {
    std::string names =
        absl::StrJoin(broken.begin(), broken.begin() + std::min<size_t>(5, broken.size()), ", ");
    return absl::FailedPreconditionError(absl::StrCat(
        broken.size(), " of ", concerned, " services ",
        to == zk2etcd::Phase::kDual ? "have confirmed differences" : "are without parity", " (",
        names, broken.size() > 5 ? ", ..." : "",
        "): nothing was changed; kvsync check zk2etcd --by-service shows them"));
  }
  return absl::StrCat(concerned, " services checked, ",
                      to == zk2etcd::Phase::kDual ? "no differences" : "parity ok");
}

// `kvsync migrate`: shows or moves the migration phase of a zk2etcd task (migration.h).
int RunMigrate(Flags* f, CLI::App* cmd) {
  if (f->output != "text" && f->output != "json") {
    return ReportAndExit(
        "migrate",
        absl::InvalidArgumentError("--output must be text or json, got \"" + f->output + "\""));
  }
  std::optional<zk2etcd::Phase> to;
  if (!f->to.empty()) {
    to = zk2etcd::ParsePhase(f->to);
    if (!to) {
      return ReportAndExit(
          "migrate",
          absl::InvalidArgumentError("--to must be mirroring, dual, etcd-primary or done, got \"" +
                                     f->to + "\""));
    }
  }
  if (int rc = LoadAndValidate("migrate", f, cmd); rc >= 0) return rc;
  const config::Zk2EtcdConfig& c = f->config;
  common::StopToken& stop = StartSignalThread();
  auto etcd_client = ConnectClient(c.etcd, "etcd");
  if (!etcd_client.ok()) return ReportAndExit("migrate", etcd_client.status());
  auto current = zk2etcd::ReadMigration(etcd_client->get(), c.meta_prefix, c.name);
  if (!current.ok()) return ReportAndExit("migrate", current.status());
  const char* kNoReturn = "point of no return: done (nothing leaves it)";
  auto render = [&](const zk2etcd::MigrationRecord& r, const std::string& summary) {
    if (f->output == "json") {
      nlohmann::json j = {{"task", c.name},
                          {"phase", r.exists ? zk2etcd::PhaseName(r.phase) : "none"},
                          {"previous", zk2etcd::PhaseName(r.previous)},
                          {"since_ms", r.since_ms},
                          {"by", r.by},
                          {"check", summary},
                          {"point_of_no_return", "done"}};
      return j.dump() + "\n";
    }
    if (!r.exists) {
      return absl::StrCat("task ", c.name,
                          ": no migration phase recorded (both directions may run); start with "
                          "kvsync migrate --to mirroring\n");
    }
    std::string line = absl::StrCat("task ", c.name, ": phase ", zk2etcd::PhaseName(r.phase));
    if (!summary.empty()) absl::StrAppend(&line, " (", summary, ")");
    if (r.phase != zk2etcd::Phase::kDone) {
      int p = static_cast<int>(r.phase);
      absl::StrAppend(&line, "; next: kvsync migrate --to ",
                      zk2etcd::PhaseName(static_cast<zk2etcd::Phase>(p + 1)));
      if (p > 0) {
        absl::StrAppend(&line, "; revert: kvsync migrate --to ",
                        zk2etcd::PhaseName(static_cast<zk2etcd::Phase>(p - 1)));
      }
    }
    absl::StrAppend(&line, "; ", kNoReturn, "\n");
    return line;
  };
  if (!to) {
    EndStartup();
    std::fputs(render(*current, "").c_str(), stdout);
    return Exit(ExitCode::kOk);
  }
  zk2etcd::Phase from = current->exists ? current->phase : zk2etcd::Phase::kMirroring;
  if (current->exists || *to != zk2etcd::Phase::kMirroring) {
    if (absl::Status step = zk2etcd::CheckTransition(from, *to); !step.ok()) {
      return ReportAndExit("migrate", step);
    }
  }
  std::string summary;
  bool forward_step = static_cast<int>(*to) > static_cast<int>(from);
  if (forward_step) {
    if (*to == zk2etcd::Phase::kDone && !f->point_of_no_return) {
      return ReportAndExit("migrate",
                           absl::FailedPreconditionError(
                               "done is the point of no return (etcd2zk stops, ZooKeeper consumers "
                               "lose etcd's providers, and nothing leaves done): confirm with "
                               "--point-of-no-return"));
    }
    auto session = OpenZk(c);
    if (!session.ok()) return ReportAndExit("migrate", session.status());
    auto owners = OpenOwnership(c);
    if (!owners.ok()) return ReportAndExit("migrate", owners.status());
    auto checked =
        CheckStep(c, *to, f->services, session->get(), etcd_client->get(), owners->get(), stop);
    if (!checked.ok()) return ReportAndExit("migrate", checked.status());
    summary = *checked;
  }
  EndStartup();
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  absl::Status written = zk2etcd::WriteMigration(etcd_client->get(), c.meta_prefix, c.name,
                                                 *current, *to, host, common::WallMs());
  if (!written.ok()) return ReportAndExit("migrate", written);
  auto now = zk2etcd::ReadMigration(etcd_client->get(), c.meta_prefix, c.name);
  if (!now.ok()) return ReportAndExit("migrate", now.status());
  log::Info("main", "migration phase changed",
            {{"task", c.name},
             {"from", current->exists ? zk2etcd::PhaseName(from) : "none"},
             {"to", zk2etcd::PhaseName(*to)}});
  std::fputs(render(*now, summary).c_str(), stdout);
  return Exit(ExitCode::kOk);
}

int RunCheck(Flags* f, CLI::App* cmd) {
  if (f->output != "text" && f->output != "json") {
    return ReportAndExit("check", absl::InvalidArgumentError(
                                      "--output must be text or json, got \"" + f->output + "\""));
  }
  if (f->show < 0) {
    return ReportAndExit("check", absl::InvalidArgumentError("--show must not be negative"));
  }
  if (int rc = LoadAndValidate("check", f, cmd); rc >= 0) return rc;
  const config::Zk2EtcdConfig& c = f->config;
  common::StopToken& stop = StartSignalThread();
  auto etcd_client = etcd::Client::Create(c.etcd.ToClientOptions("etcd"));
  if (!etcd_client.ok()) return ReportAndExit("check", etcd_client.status());
  if (auto connected = (*etcd_client)->Connect(); !connected.ok()) {
    return ReportAndExit("check", connected.status());
  }
  auto session = OpenZk(c);
  if (!session.ok()) return ReportAndExit("check", session.status());
  if (absl::Status roots = zk2etcd::CheckRootsExist(session->get(), c); !roots.ok()) {
    return ReportAndExit("check", roots);
  }
  auto owners = OpenOwnership(c);
  if (!owners.ok()) return ReportAndExit("check", owners.status());
  EndStartup();
  std::atomic<int64_t> walked{0};
  zk2etcd::CheckOptions options;
  options.show = f->show;
  options.confirm = !f->single_round;
  options.fix = f->fix;
  options.progress = &walked;
  std::vector<zk2etcd::ServiceParity> services;
  if (f->by_service) {
    options.service_depth = f->config.service_depth;
    options.services = &services;
  }
  common::StopToken progress_done;
  runtime::Thread progress;
  if (isatty(STDERR_FILENO)) {
    progress = runtime::Thread("progress-log", [&] {
      while (!progress_done.WaitFor(std::chrono::milliseconds(500))) {
        std::fprintf(stderr, "\rcheck: %lld znodes read", static_cast<long long>(walked));
        std::fflush(stderr);
      }
      std::fprintf(stderr, "\rcheck: %lld znodes read\n", static_cast<long long>(walked));
    });
  }
  etcd::RetryCounters retries;
  auto report = zk2etcd::Check(c, session->get(), etcd_client->get(), etcd_client->get(),
                               owners->get(), options, stop, &retries);
  progress_done.RequestStop();
  progress.Join();
  if (!report.ok()) return ReportAndExit("check", report.status());
  std::string out =
      f->output == "json" ? checker::RenderJson(*report) + "\n" : checker::RenderText(*report);
  if (f->by_service && f->output == "json") {
    // One document: the report with the services beside its figures.
    nlohmann::json doc = nlohmann::json::parse(out, nullptr, false);
    doc["services"] = nlohmann::json::parse(zk2etcd::RenderParityJson(services), nullptr, false);
    out = doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  } else if (f->by_service) {
    out += "\nper-service parity (providers: znodes under <service>/providers)\n" +
           zk2etcd::RenderParityText(services, static_cast<size_t>(std::max(f->show, 1)) * 10);
  }
  std::fputs(out.c_str(), stdout);
  if (report->fix_held > 0) {
    return ReportAndExit(
        "check", absl::FailedPreconditionError(absl::StrCat("--fix ", report->fix_held_reason)));
  }
  return Exit(report->consistent() ? ExitCode::kOk : ExitCode::kFindings);
}

}  // namespace

std::function<int()> AddZk2EtcdCommand(CLI::App* app) {
  auto flags = std::make_shared<Flags>();
  config::Zk2EtcdConfig& c = flags->config;
  CLI::App* cmd = app->add_subcommand(
      "zk2etcd",
      "Mirror ZooKeeper subtrees into etcd, live: a parallel full sync (only differences\n"
      "written), then data and child watches on every znode; a periodic full sync repairs\n"
      "differences confirmed in two rounds. Deletes only keys it owns (--ownership), and\n"
      "only what a walk it can trust proves gone (see Deletion guards).\n"
      "Flags of the open-source zk2etcd are accepted as aliases (--zookeeper-servers,\n"
      "--zookeeper-prefix, --zookeeper-exclude-prefix, --etcd-servers, --concurrent).");
  AddTaskFlags(cmd, flags.get());
  cmd->add_option("--inflight", c.inflight, "etcd txns in flight")
      ->default_val(c.inflight)
      ->group("Throughput");
  cmd->add_option("--max-txn-ops", c.max_txn_ops, "ops per etcd txn (etcd's --max-txn-ops)")
      ->default_val(c.max_txn_ops)
      ->group("Throughput");
  cmd->add_option("--max-request-bytes", c.max_request_bytes,
                  "bytes per etcd txn (etcd's --max-request-bytes)")
      ->default_val(c.max_request_bytes)
      ->group("Throughput");
  cmd->add_option(
         "--queue-bytes", c.queue_bytes,
         "memory bound of the applier's inbox (the etcd writer's queue gets half); a "
         "ZooKeeper change that finds the inbox full is dropped and a full sync repairs it")
      ->default_val(c.queue_bytes)
      ->group("Throughput");
  AddDurationFlag(cmd, "--fullsync-interval", &c.fullsync_interval,
                  "run a two-round full sync this often (0 = only at start and after reconnects)",
                  kFullsyncIntervalRange)
      ->group("Behaviour");
  AddDurationFlag(cmd, "--coalesce", &c.coalesce,
                  "a parent's child changes are listed at most this long after the first one "
                  "(one listing per burst; 0 = list at once)",
                  kCoalesceRange)
      ->group("Behaviour");
  cmd->add_flag("--once", c.once, "one full sync (no watches), then exit 0")->group("Behaviour");
  AddDurationFlag(cmd, "--ephemeral-lease-ttl", &c.ephemeral_lease_ttl,
                  "attach the etcd copies of ephemeral znodes to a lease of this TTL that kvsync "
                  "keeps alive (the same lease across restarts and takeovers), so they expire if "
                  "kvsync is gone longer than that; 0 = plain keys (see README: trade-off)",
                  kEphemeralLeaseTtlRange)
      ->group("Behaviour");
  cmd->add_option("--parity-top", c.parity_top,
                  "per-service parity metrics: the periodic full sync exports this many services "
                  "without parity, most differences first, plus totals (0 = none)")
      ->default_val(c.parity_top)
      ->check(CLI::Range(0, 1000))
      ->group("Behaviour");
  AddDurationFlag(cmd, "--status-interval", &c.status_interval,
                  "how often a progress line is logged (0 = never)", kStatusIntervalRange)
      ->group("Behaviour");
  AddHaFlags(cmd, &c.ha, &flags->lease_ttl, &c.instance_id, &c.election);
  AddAdminFlags(cmd, &c.admin_addr, &c.ready_max_lag);
  return [flags, cmd] { return RunSync(flags.get(), cmd); };
}

std::function<int()> AddEtcd2ZkCommand(CLI::App* app) {
  auto flags = std::make_shared<Flags>();
  config::Zk2EtcdConfig& c = flags->config;
  CLI::App* cmd = app->add_subcommand(
      "etcd2zk",
      "The way back of a migration: publish etcd registrations into ZooKeeper, so that\n"
      "consumers still reading ZooKeeper find services that already register in etcd. Takes\n"
      "the zk2etcd task's own flags (or --config); its task is \"<name>-etcd2zk\". Every etcd\n"
      "key of that scope the zk2etcd task did not write (no ownership mark: the zk2etcd task\n"
      "must use --ownership etcd) becomes an EPHEMERAL znode of kvsync's own ZooKeeper session:\n"
      "it vanishes when kvsync's session ends and the (new) leader publishes it again. The\n"
      "session is recorded in etcd before any znode is created, and zk2etcd never copies a\n"
      "znode of a recorded session: the two directions never echo each other. Parents are\n"
      "never created (a key under a missing parent is held, counted and logged), and a path\n"
      "another znode holds is left alone until that znode goes.");
  AddTaskFlags(cmd, flags.get());
  cmd->add_option("--queue-bytes", c.queue_bytes,
                  "memory bound of the queue of etcd changes waiting for ZooKeeper; when full "
                  "they are dropped and the scope is re-read instead (nothing is lost)")
      ->default_val(c.queue_bytes)
      ->group("Throughput");
  AddDurationFlag(cmd, "--status-interval", &c.status_interval,
                  "how often a progress line is logged (0 = never)", kStatusIntervalRange)
      ->group("Behaviour");
  AddHaFlags(cmd, &c.ha, &flags->lease_ttl, &c.instance_id, &c.election);
  AddAdminFlags(cmd, &c.admin_addr, &c.ready_max_lag);
  // The zk2etcd task's other flags are accepted and ignored, so that its config file works.
  CLI::App task_flags;
  AddZk2EtcdCommand(&task_flags);
  AcceptTaskFlags(cmd, task_flags.get_subcommand("zk2etcd"));
  return [flags, cmd] { return RunEtcd2Zk(flags.get(), cmd); };
}

std::function<int()> AddMigrateCommand(CLI::App* app) {
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app->add_subcommand(
      "migrate",
      "Show or move the migration phase of a zk2etcd task, recorded in etcd\n"
      "(<meta-prefix><name>/migration) and shown by kvsync status:\n"
      "  mirroring     zk2etcd runs, etcd2zk does not\n"
      "  dual          both directions run (etcd registrations published into ZooKeeper)\n"
      "  etcd-primary  zk2etcd stops (within --fullsync-interval); etcd2zk keeps publishing\n"
      "                for consumers still on ZooKeeper\n"
      "  done          etcd2zk stops too. THE POINT OF NO RETURN: nothing leaves done.\n"
      "One step at a time, forward or back. Forward steps check first (nothing changes if the\n"
      "check fails, exit 2): to dual, no confirmed difference; to etcd-primary, full parity\n"
      "(every etcd registration visible in ZooKeeper and the reverse); to done, no consumer\n"
      "registered in ZooKeeper, and --point-of-no-return. --service limits the checks to some\n"
      "services. Without --to: show the phase. Takes the zk2etcd task's flags (or --config).");
  AddTaskFlags(cmd, flags.get());
  cmd->add_option("--to", flags->to, "mirroring, dual, etcd-primary or done")->group("Migrate");
  cmd->add_option("--service", flags->services,
                  "check only this service (repeatable; its znode path, e.g. "
                  "/dubbo/com.foo.DemoService)")
      ->group("Migrate");
  cmd->add_flag("--point-of-no-return", flags->point_of_no_return,
                "confirm the move to done, which cannot be reverted")
      ->group("Migrate");
  cmd->add_option("--output", flags->output, "text or json")->default_val("text")->group("Migrate");
  CLI::App task_flags;
  AddZk2EtcdCommand(&task_flags);
  AcceptTaskFlags(cmd, task_flags.get_subcommand("zk2etcd"));
  return [flags, cmd] { return RunMigrate(flags.get(), cmd); };
}

std::function<int()> AddCheckZk2EtcdCommand(CLI::App* check) {
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = check->add_subcommand(
      "zk2etcd",
      "Compare a zk2etcd task's ZooKeeper subtrees with etcd: dst miss (znode missing in etcd),\n"
      "src miss (a key kvsync owns left after its znode went), mismatch (different data).\n"
      "Keys of other writers are counted as not owned and never deleted; keys whose ownership\n"
      "cannot be read (Redis down) and znodes kvsync may not read (ACL) make the check\n"
      "inconclusive. Exit 0 consistent, 1 differences or inconclusive, 2 configuration or a\n"
      "--fix whose deletes the deletion guard held, 3 ZooKeeper or etcd unreachable or the\n"
      "check could not complete. Takes the same flags (or --config) as `kvsync zk2etcd`;\n"
      "those only the sync uses are accepted and ignored.");
  AddTaskFlags(cmd, flags.get());
  cmd->add_option("--show", flags->show, "sample keys printed per kind of difference")
      ->default_val(10)
      ->group("Check");
  cmd->add_option("--output", flags->output, "text (a summary table) or json")
      ->default_val("text")
      ->group("Check");
  cmd->add_flag("--single-round", flags->single_round,
                "report round 1 as is; by default a difference counts only if a second round "
                "sees it again")
      ->group("Check");
  cmd->add_flag("--fix", flags->fix,
                "repair confirmed differences (put dst miss and mismatch, delete owned src miss); "
                "a key changed meanwhile is left alone")
      ->group("Check");
  cmd->add_flag("--by-service", flags->by_service,
                "per-service parity: for each service (the path --service-depth levels below "
                "each --zk-prefix, e.g. /dubbo/<service>) its providers and znodes in ZooKeeper "
                "and in etcd and its differences; the gate before moving its consumers")
      ->group("Check");
  // Every flag of zk2etcd (--ha, --fullsync-interval, election: {...}, ...) is accepted and
  // ignored, so that a check runs with its task's own config file.
  CLI::App task_flags;
  AddZk2EtcdCommand(&task_flags);
  AcceptTaskFlags(cmd, task_flags.get_subcommand("zk2etcd"));
  return [flags, cmd] { return RunCheck(flags.get(), cmd); };
}

}  // namespace kvsync::cli
