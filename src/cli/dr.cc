#include "cli/dr.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "checker/key_mapper.h"
#include "cli/command.h"
#include "cli/etcd2etcd.h"
#include "cli/task_runner.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "config/yaml_config.h"
#include "etcd/client.h"
#include "log/log.h"
#include "mirror/dr.h"
#include "nlohmann/json.hpp"
#include "zk2etcd/migration.h"

namespace kvsync::cli {
namespace {

absl::Status CheckOutput(const std::string& output) {
  if (output == "text" || output == "json") return absl::OkStatus();
  return absl::InvalidArgumentError("--output must be text or json, got \"" + output + "\"");
}

std::string WhoAmI() {
  const char* user = std::getenv("USER");
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return absl::StrCat(user != nullptr ? user : "unknown", "@", host);
}

struct StatusFlags {
  MirrorFlags task;
  std::string output = "text";
  std::chrono::milliseconds max_lag{30000};
};

// Status needs only the destination; with a whole task (source and prefix) it also reads the
// source head live for that task.
absl::Status FinaliseStatus(CLI::App* cmd, StatusFlags* f, bool* whole_task) {
  RETURN_IF_ERROR(CheckOutput(f->output));
  config::MirrorConfig& c = f->task.config;
  if (!f->task.config_file.empty()) {
    RETURN_IF_ERROR(config::ApplyYamlFlags(cmd, f->task.config_file));
  }
  *whole_task = !c.src.endpoints.empty() && !c.prefix.empty();
  if (*whole_task) return LoadMirrorFlags(cmd, &f->task);
  RETURN_IF_ERROR(log::Init(c.log_level, c.log_format));
  if (c.dst.endpoints.empty()) {
    return absl::InvalidArgumentError("--dst-endpoints (or --config with a task) is required");
  }
  if (c.meta_prefix.empty() || c.meta_prefix.back() != '/') {
    return absl::InvalidArgumentError("--meta-prefix must end with '/'");
  }
  return etcd::ValidateClientOptions(c.dst.ToClientOptions("destination"));
}

// The live source head of the task, or nullopt when the source cannot be read (it is what a
// status is for: the source may be gone).
std::optional<int64_t> LiveSourceHead(const config::MirrorConfig& c) {
  config::EtcdConnection src = c.src;
  src.dial_timeout = std::min(src.dial_timeout, std::chrono::milliseconds(2000));
  auto client = ConnectClient(src, "source");
  if (!client.ok()) return std::nullopt;
  etcd::RangeRequest req;
  req.key = c.prefix;
  req.keys_only = true;
  auto resp = (*client)->Range(req);
  if (!resp.ok()) return std::nullopt;
  return resp->header.revision;
}

int RunStatus(CLI::App* cmd, StatusFlags* f) {
  bool whole_task = false;
  if (absl::Status s = FinaliseStatus(cmd, f, &whole_task); !s.ok()) {
    return ReportAndExit("status", s);
  }
  const config::MirrorConfig& c = f->task.config;
  StartSignalThread();
  auto dst = ConnectClient(c.dst, "destination");
  EndStartup();
  // Every error of status is exit 2: its exit codes answer "is every task healthy".
  if (!dst.ok()) {
    ReportAndExit("status", dst.status());
    return Exit(ExitCode::kConfig);
  }
  auto tasks = mirror::ListTasks(dst->get(), c.meta_prefix);
  if (!tasks.ok()) {
    ReportAndExit("status", tasks.status());
    return Exit(ExitCode::kConfig);
  }
  std::optional<int64_t> live_head;
  if (whole_task) live_head = LiveSourceHead(c);
  std::vector<mirror::TaskStatus> statuses;
  for (const std::string& task : *tasks) {
    auto records = mirror::ReadTaskRecords(dst->get(), c.meta_prefix, task);
    if (!records.ok()) {
      ReportAndExit("status", records.status());
      return Exit(ExitCode::kConfig);
    }
    mirror::StatusOptions options;
    options.max_lag = f->max_lag;
    options.now_ms = common::WallMs();
    if (whole_task && task == c.name) options.source_head = live_head;
    statuses.push_back(mirror::DeriveStatus(task, *records, options));
  }
  std::string out = f->output == "json" ? mirror::RenderStatusJson(statuses) + "\n"
                                        : mirror::RenderStatusText(statuses);
  // zk2etcd tasks with migration phases (kvsync migrate) sharing this meta prefix.
  auto migrations = zk2etcd::ListMigrations(dst->get(), c.meta_prefix);
  if (!migrations.ok()) {
    ReportAndExit("status", migrations.status());
    return Exit(ExitCode::kConfig);
  }
  if (!migrations->empty()) {
    if (f->output == "json") {
      nlohmann::json all = nlohmann::json::parse(out, nullptr, false);
      nlohmann::json list = nlohmann::json::array();
      for (const auto& [task, r] : *migrations) {
        list.push_back({{"task", task},
                        {"phase", zk2etcd::PhaseName(r.phase)},
                        {"previous", zk2etcd::PhaseName(r.previous)},
                        {"since_ms", r.since_ms},
                        {"by", r.by}});
      }
      all["migrations"] = list;
      out = all.dump() + "\n";
    } else {
      for (const auto& [task, r] : *migrations) {
        out += absl::StrCat("migration ", task, ": phase ", zk2etcd::PhaseName(r.phase), " since ",
                            absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMillis(r.since_ms),
                                             absl::UTCTimeZone()),
                            " by ", r.by, " (point of no return: done)\n");
      }
    }
  }
  std::fputs(out.c_str(), stdout);
  bool healthy = true;
  for (const auto& s : statuses) healthy = healthy && s.healthy();
  return Exit(healthy ? ExitCode::kOk : ExitCode::kFindings);
}

// The task `c` reversed: from its promoted destination back into its old primary.
absl::StatusOr<config::MirrorConfig> Reverse(const config::MirrorConfig& c,
                                             const std::string& name) {
  config::MirrorConfig r = c;
  r.src = c.dst;
  r.dst = c.src;
  r.prefix = c.dst_prefix;
  r.dst_prefix = c.prefix;
  r.dst_prefix_set = true;
  r.exclude_prefixes.clear();
  for (const std::string& ex : c.exclude_prefixes) {
    r.exclude_prefixes.push_back(c.dst_prefix + ex.substr(std::min(ex.size(), c.prefix.size())));
  }
  r.name = name.empty() ? c.name + "-failback" : name;
  r.name_derived = false;
  // The election follows the destination unless the task names its own cluster.
  if (c.ha && c.election.endpoints == c.dst.endpoints) r.election = config::EtcdConnection();
  r.adopt_leases = true;
  r.reset_last_synced_rev = false;
  RETURN_IF_ERROR(config::ValidateMirrorConfig(&r));
  return r;
}

struct PromoteFlags {
  MirrorFlags task;
  bool reverse = false;
  std::string reverse_name;
  bool force = false;
  std::chrono::milliseconds timeout{60000};
  std::string output = "text";
  bool compact = false;
};

int RunPromote(CLI::App* cmd, PromoteFlags* f) {
  absl::Status valid = CheckOutput(f->output);
  if (valid.ok()) valid = LoadMirrorFlags(cmd, &f->task);
  if (!valid.ok()) return ReportAndExit("promote", valid);
  if (f->reverse) {
    auto reversed = Reverse(f->task.config, f->reverse_name);
    if (!reversed.ok()) return ReportAndExit("promote", reversed.status());
    f->task.config = *reversed;
  }
  const config::MirrorConfig& c = f->task.config;
  common::StopToken& stop = StartSignalThread();
  auto dst = ConnectClient(c.dst, "destination");
  if (!dst.ok()) return ReportAndExit("promote", dst.status());
  std::unique_ptr<etcd::Client> src;
  if (!f->force) {
    auto connected = ConnectClient(c.src, "source");
    if (!connected.ok()) {
      return ReportAndExit(
          "promote", absl::Status(connected.status().code(),
                                  absl::StrCat(connected.status().message(),
                                               " (a switchover needs the source; if it is lost, "
                                               "fail over with --force)")));
    }
    src = std::move(*connected);
  }
  EndStartup();
  checker::KeyMapper mapper(c.prefix, c.dst_prefix, c.exclude_prefixes, c.meta_prefix);
  mirror::PromoteOptions options;
  options.meta_prefix = c.meta_prefix;
  options.task = c.name;
  options.by = WhoAmI();
  options.timeout = f->timeout;
  options.src_key = mapper.src_prefix();
  options.src_range_end = mapper.src_range_end();
  options.stop = &stop;
  auto report = mirror::Promote(dst->get(), src.get(), options);
  if (!report.ok()) return ReportAndExit("promote", report.status());
  if (f->compact) {
    // Watchers resuming with a revision at or below this one get "compacted" and re-list.
    absl::Status compacted = (*dst)->Compact(report->role.destination_revision);
    if (!compacted.ok() && !etcd::IsCompacted(compacted)) {
      log::Warn("promote", "promoted, but compacting the destination failed",
                {{"error", compacted}});
    }
  }
  std::string out = f->output == "json" ? mirror::RenderPromoteJson(*report, c.name) + "\n"
                                        : mirror::RenderPromoteText(*report, c.name);
  std::fputs(out.c_str(), stdout);
  return Exit(ExitCode::kOk);
}

int RunDemote(CLI::App* cmd, MirrorFlags* f) {
  if (absl::Status valid = LoadMirrorFlags(cmd, f); !valid.ok()) {
    return ReportAndExit("demote", valid);
  }
  const config::MirrorConfig& c = f->config;
  StartSignalThread();
  auto dst = ConnectClient(c.dst, "destination");
  if (!dst.ok()) return ReportAndExit("demote", dst.status());
  EndStartup();
  auto role = mirror::Demote(dst->get(), c.meta_prefix, c.name);
  if (!role.ok()) return ReportAndExit("demote", role.status());
  // A switchover left the source "demoted" (its writers fenced): the source is primary again.
  config::EtcdConnection src_conn = c.src;
  src_conn.dial_timeout = std::min(src_conn.dial_timeout, std::chrono::milliseconds(2000));
  if (auto src = ConnectClient(src_conn, "source"); src.ok()) {
    absl::Status undone = mirror::UndoSourceFence(src->get(), c.meta_prefix, c.name);
    if (!undone.ok()) {
      std::fprintf(stderr, "demote: the source's role record could not be removed: %s\n",
                   std::string(undone.message()).c_str());
    }
  } else {
    std::fprintf(stderr,
                 "demote: the source is unreachable; if a switchover demoted it, delete its role "
                 "record %s there\n",
                 checker::RoleKey(c.meta_prefix, c.name).c_str());
  }
  std::printf(
      "demoted: task \"%s\" may mirror into its destination again (it was %s); its next run "
      "is a full sync that overwrites what was written there since\n",
      c.name.c_str(), checker::DescribePromotion(*role).c_str());
  return Exit(ExitCode::kOk);
}

struct FailbackFlags {
  MirrorFlags task;
  std::string lost_writes;
  std::string reverse_name;
};

// Writes the divergence once, before the reverse task first writes into the old primary; a
// summary record at the old primary remembers it for later runs (which must not count the
// reverse task's own writes as lost).
absl::Status WriteLostWrites(etcd::Client* old_primary, const config::MirrorConfig& c,
                             const config::MirrorConfig& reverse, int64_t since,
                             const std::string& file, const common::StopToken* stop) {
  const std::string record_key = reverse.meta_prefix + reverse.name + "/lost-writes";
  etcd::RangeRequest get;
  get.key = record_key;
  ASSIGN_OR_RETURN(etcd::RangeResponse existing, old_primary->Range(get));
  if (!existing.kvs.empty()) {
    log::Info("failback", "divergence already written by an earlier failback run",
              {{"record", existing.kvs[0].value}});
    std::fprintf(stderr, "failback: divergence already written by an earlier run: %s\n",
                 existing.kvs[0].value.c_str());
    return absl::OkStatus();
  }
  checker::KeyMapper mapper(c.prefix, c.dst_prefix, c.exclude_prefixes, c.meta_prefix);
  absl::StatusOr<std::vector<mirror::LostWrite>> lost =
      mirror::FindDivergence(old_primary, mapper, since, c.page_size, stop);
  if (etcd::IsCompacted(lost.status())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the old primary compacted its history past revision ", since,
        " (the last revision the promoted cluster applied): the writes it took after that "
        "cannot be told apart, so failback refuses to overwrite them; save what it holds "
        "(etcdctl get --prefix) before mirroring into it with kvsync etcd2etcd"));
  }
  RETURN_IF_ERROR(lost.status());
  const std::string tmp = file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return absl::InvalidArgumentError("--lost-writes: cannot write " + tmp);
    for (const mirror::LostWrite& w : *lost) out << mirror::LostWriteJson(w) << '\n';
    out.flush();
    if (!out) return absl::InvalidArgumentError("--lost-writes: cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), file.c_str()) != 0) {
    return absl::InvalidArgumentError("--lost-writes: cannot rename " + tmp + " to " + file);
  }
  int64_t deletes = 0;
  for (const auto& w : *lost) deletes += w.deleted ? 1 : 0;
  nlohmann::json summary = {{"since_revision", since},
                            {"writes", lost->size()},
                            {"deletes", deletes},
                            {"file", file},
                            {"written_ms", common::WallMs()}};
  etcd::TxnRequest txn;
  txn.success.push_back(etcd::Op::Put(record_key, summary.dump()));
  RETURN_IF_ERROR(old_primary->Txn(txn).status());
  std::fprintf(stderr,
               "failback: %zu writes the old primary took after revision %lld (%lld deletes) "
               "written to %s\n",
               lost->size(), static_cast<long long>(since), static_cast<long long>(deletes),
               file.c_str());
  log::Info("failback", "lost writes recorded",
            {{"writes", static_cast<int64_t>(lost->size())},
             {"deletes", deletes},
             {"since_revision", since},
             {"file", file}});
  return absl::OkStatus();
}

int RunFailback(CLI::App* cmd, FailbackFlags* f) {
  absl::Status valid = LoadMirrorFlags(cmd, &f->task);
  if (valid.ok() && f->lost_writes.empty()) {
    valid = absl::InvalidArgumentError(
        "--lost-writes FILE is required: the writes the old primary took after the promotion "
        "point are saved there before anything is overwritten");
  }
  absl::StatusOr<config::MirrorConfig> reverse =
      valid.ok() ? Reverse(f->task.config, f->reverse_name) : valid;
  if (!reverse.ok()) return ReportAndExit("failback", reverse.status());
  const config::MirrorConfig& c = f->task.config;
  {
    common::StopToken stop;
    auto promoted = ConnectClient(c.dst, "destination");
    if (!promoted.ok()) return ReportAndExit("failback", promoted.status());
    auto old_primary = ConnectClient(c.src, "source");
    if (!old_primary.ok()) return ReportAndExit("failback", old_primary.status());
    auto records = mirror::ReadTaskRecords(promoted->get(), c.meta_prefix, c.name);
    if (!records.ok()) return ReportAndExit("failback", records.status());
    if (!records->role) {
      return ReportAndExit(
          "failback", absl::FailedPreconditionError(absl::StrCat(
                          "task \"", c.name,
                          "\" is not promoted: failback mirrors a promoted destination back into "
                          "its old primary (run kvsync promote first)")));
    }
    auto head = (*old_primary)->Connect();
    if (!head.ok()) return ReportAndExit("failback", head.status());
    if (head->cluster_id != records->role->source_cluster_id) {
      return ReportAndExit("failback",
                           absl::FailedPreconditionError(absl::StrFormat(
                               "the source is cluster %x, but the promoted task mirrored cluster "
                               "%x: this is not the old primary",
                               head->cluster_id, records->role->source_cluster_id)));
    }
    absl::Status written = WriteLostWrites(old_primary->get(), c, *reverse,
                                           records->role->applied_revision, f->lost_writes, &stop);
    if (!written.ok()) return ReportAndExit("failback", written);
  }
  log::Info("failback", "mirroring the promoted cluster back into the old primary",
            {{"task", reverse->name}});
  return RunMirrorTask(*reverse, "failback");
}

}  // namespace

std::function<int()> AddStatusCommand(CLI::App* app) {
  auto flags = std::make_shared<StatusFlags>();
  CLI::App* cmd = app->add_subcommand(
      "status",
      "One line per etcd2etcd task found in a destination's meta prefix: role (standby or\n"
      "promoted), state (full-sync, streaming, lagging, stalled, no-leader, stopped,\n"
      "promoted), leader, checkpoint, source head and lag, last check. Reads only the\n"
      "destination (and, with a task's --config, its source), so it works while kvsync is\n"
      "down. Exit 0 every task healthy (streaming or promoted), 1 some task not, 2 error.");
  AddMirrorFlags(cmd, &flags->task);
  cmd->add_option("--output", flags->output, "text (a table) or json")
      ->default_val("text")
      ->group("Status");
  AddDurationFlag(cmd, "--max-lag", &flags->max_lag,
                  "a task whose destination is staler than this is lagging", kReadyMaxLagRange)
      ->group("Status");
  return [flags, cmd] { return RunStatus(cmd, flags.get()); };
}

std::function<int()> AddPromoteCommand(CLI::App* app) {
  auto flags = std::make_shared<PromoteFlags>();
  CLI::App* cmd = app->add_subcommand(
      "promote",
      "Make an etcd2etcd task's destination the primary. Switchover (the source reachable):\n"
      "waits until the destination provably holds the source's current revision, then\n"
      "promotes: RPO 0. --force (failover, the source lost): promotes at once and prints\n"
      "the RPO: the last applied source revision, when the source was last seen there, and\n"
      "the revisions known not to be applied. Either way a role record is written in the\n"
      "destination with the fence: the task's writes fail from then on, its lease hold\n"
      "ends, and a task started later is refused. Takes the task's flags (or --config).");
  AddMirrorFlags(cmd, &flags->task);
  cmd->add_flag("--force", flags->force,
                "failover: do not wait for (or read) the source; promote with what the "
                "destination holds and print what was lost")
      ->group("Promote");
  AddDurationFlag(cmd, "--timeout", &flags->timeout,
                  "switchover: how long to wait for the destination to catch up",
                  kConfirmTimeoutRange)
      ->group("Promote");
  cmd->add_flag("--compact", flags->compact,
                "compact the promoted cluster at its current revision, so that a client "
                "resuming a watch with an old revision gets \"compacted\" and re-lists instead "
                "of waiting silently")
      ->group("Promote");
  cmd->add_option("--output", flags->output, "text or json")->default_val("text")->group("Promote");
  cmd->add_flag("--reverse", flags->reverse,
                "promote the task's failback (<name>-failback, old primary <- promoted cluster): "
                "the switchover back after `kvsync failback` caught up")
      ->group("Promote");
  cmd->add_option("--reverse-name", flags->reverse_name,
                  "name of the reversed task (default <name>-failback)")
      ->group("Promote");
  return [flags, cmd] { return RunPromote(cmd, flags.get()); };
}

std::function<int()> AddDemoteCommand(CLI::App* app) {
  auto flags = std::make_shared<MirrorFlags>();
  CLI::App* cmd = app->add_subcommand(
      "demote",
      "Undo a promotion: delete the task's role record so that `kvsync etcd2etcd` mirrors\n"
      "into the destination again. Its next run is a full sync that overwrites whatever was\n"
      "written there while it was promoted (fail back first to keep those writes).");
  AddMirrorFlags(cmd, flags.get());
  return [flags, cmd] { return RunDemote(cmd, flags.get()); };
}

std::function<int()> AddFailbackCommand(CLI::App* app) {
  auto flags = std::make_shared<FailbackFlags>();
  CLI::App* cmd = app->add_subcommand(
      "failback",
      "After a promotion, when the old primary is back: save the writes it took after the\n"
      "last revision the promoted cluster applied (--lost-writes FILE, JSON lines), then\n"
      "mirror the promoted cluster back into it (a full sync writing only differences,\n"
      "then streaming) as task <name>-failback. Takes the original task's flags (or\n"
      "--config): its source is the old primary, its destination the promoted cluster.\n"
      "A switchover back is `kvsync promote` of the reversed task (--reverse-name).");
  AddMirrorFlags(cmd, &flags->task);
  cmd->add_option("--lost-writes", flags->lost_writes,
                  "file for the old primary's writes that never reached the promoted cluster")
      ->group("Failback");
  cmd->add_option("--reverse-name", flags->reverse_name,
                  "name of the reversed task (default <name>-failback)")
      ->group("Failback");
  return [flags, cmd] { return RunFailback(cmd, flags.get()); };
}

}  // namespace kvsync::cli
