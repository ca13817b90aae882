#include "cli/check.h"

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <memory>

#include "checker/checkpoint.h"
#include "checker/dr_records.h"
#include "checker/etcd_check.h"
#include "cli/command.h"
#include "cli/etcd2etcd.h"
#include "cli/task_runner.h"
#include "cli/zk2etcd.h"
#include "common/status_macros.h"
#include "config/config.h"
#include "config/yaml_config.h"
#include "etcd/client.h"
#include "log/log.h"
#include "mirror/mirror.h"
#include "runtime/thread.h"

namespace kvsync::cli {
namespace {

struct Flags {
  config::MirrorConfig config;
  std::string config_file;
  checker::CheckOptions options;
  std::string output = "text";
  bool single_round = false;
  bool fix = false;
};

absl::Status Finalise(Flags* f) {
  if (f->output != "text" && f->output != "json") {
    return absl::InvalidArgumentError("--output must be text or json, got \"" + f->output + "\"");
  }
  if (f->options.show < 0) return absl::InvalidArgumentError("--show must not be negative");
  if (!std::isfinite(f->options.read_rate) || f->options.read_rate < 0) {
    return absl::InvalidArgumentError("--read-rate must be a finite number >= 0 (0 = unlimited)");
  }
  f->config.page_size = f->options.page_size;
  f->options.confirm = !f->single_round;
  if (f->fix && f->options.keys_only) {
    return absl::InvalidArgumentError("--fix needs values: it cannot be combined with --keys-only");
  }
  f->options.collect_repairs = f->fix;
  f->options.compare_leases = !f->config.no_leases;
  RETURN_IF_ERROR(log::Init(f->config.log_level, f->config.log_format));
  RETURN_IF_ERROR(config::ValidateMirrorConfig(&f->config));
  f->options.checkpoint_key = checker::CheckpointKey(f->config.meta_prefix, f->config.name);
  return absl::OkStatus();
}

int Run(Flags* f, CLI::App* cmd) {
  if (!f->config_file.empty()) {
    absl::Status loaded = config::ApplyYamlFlags(cmd, f->config_file);
    if (!loaded.ok()) return ReportAndExit("check", loaded);
  }
  if (absl::Status valid = Finalise(f); !valid.ok()) return ReportAndExit("check", valid);
  const config::MirrorConfig& c = f->config;
  common::StopToken& stop = StartSignalThread();
  auto src = ConnectClient(c.src, "source");
  if (!src.ok()) return ReportAndExit("check", src.status());
  auto dst = ConnectClient(c.dst, "destination");
  if (!dst.ok()) return ReportAndExit("check", dst.status());
  EndStartup();
  checker::KeyMapper mapper(c.prefix, c.dst_prefix, c.exclude_prefixes, c.meta_prefix);
  etcd::RetryCounters retries;
  // On a terminal, a progress line on stderr while the check runs.
  std::atomic<int64_t> scanned{0};
  f->options.progress = &scanned;
  common::StopToken progress_done;
  runtime::Thread progress;
  if (isatty(STDERR_FILENO)) {
    progress = runtime::Thread("progress-log", [&] {
      while (!progress_done.WaitFor(std::chrono::milliseconds(500))) {
        std::fprintf(stderr, "\rcheck: %lld source keys read", static_cast<long long>(scanned));
        std::fflush(stderr);
      }
      std::fprintf(stderr, "\rcheck: %lld source keys read\n", static_cast<long long>(scanned));
    });
  }
  absl::StatusOr<checker::CheckReport> report;
  // A compaction of the pinned source revision mid-check restarts it at a fresh revision.
  for (int attempt = 0; attempt < 3; ++attempt) {
    report = checker::Check(src->get(), dst->get(), mapper, f->options, &stop, &retries);
    if (report.ok() || !etcd::IsCompacted(report.status())) break;
    log::Warn("check", "source compacted during the check, restarting");
  }
  progress_done.RequestStop();
  progress.Join();
  if (!report.ok()) return ReportAndExit("check", report.status());
  if (f->fix && !report->repairs.empty()) {
    if (absl::Status open = mirror::CheckNotPromoted(dst->get(), c); !open.ok()) {
      return ReportAndExit("check", open);
    }
    // While a task leads (--ha), every repair txn carries its leader's fence, read from the
    // task's election cluster (the destination unless --election-endpoints says otherwise).
    etcd::Client* election = dst->get();
    std::unique_ptr<etcd::Client> election_client;
    if (!c.election.endpoints.empty()) {
      auto connected = ConnectClient(c.election, "election");
      if (!connected.ok()) return ReportAndExit("check", connected.status());
      election_client = std::move(*connected);
      election = election_client.get();
    }
    auto fence = CurrentLeaderFence(election, ElectionName(c.meta_prefix, c.name));
    if (!fence.ok()) return ReportAndExit("check", fence.status());
    // A promoted destination is not the task's to repair: the role record fences repairs too.
    fence->push_back(checker::NotPromoted(checker::RoleKey(c.meta_prefix, c.name)));
    absl::Status fixed = checker::RepairDifferences(
        dst->get(), std::move(*fence),
        checker::TaskLeases(dst->get(), checker::LeaseRecordPrefix(c.meta_prefix, c.name)), &stop,
        &retries, &*report);
    if (!fixed.ok()) return ReportAndExit("check", fixed);
  }
  std::string out =
      f->output == "json" ? checker::RenderJson(*report) + "\n" : checker::RenderText(*report);
  std::fputs(out.c_str(), stdout);
  return Exit(report->consistent() ? ExitCode::kOk : ExitCode::kFindings);
}

}  // namespace

std::function<int()> AddCheckCommand(CLI::App* app) {
  auto flags = std::make_shared<Flags>();
  config::MirrorConfig& c = flags->config;
  CLI::App* check = app->add_subcommand(
      "check", "Compare a destination with its source and report the differences (--fix repairs)");
  check->require_subcommand(1);
  CLI::App* cmd = check->add_subcommand(
      "etcd2etcd",
      "Compare an etcd2etcd task's destination prefix with its source prefix at one source\n"
      "revision: dst miss (missing at the destination), src miss (left at the destination\n"
      "after the source deleted it), mismatch (different values). Exit 0 consistent,\n"
      "1 differences found, 2 configuration, 3 a cluster unreachable or the check could not\n"
      "complete. Takes the same connection and scope flags (or --config) as\n"
      "`kvsync etcd2etcd`; its other flags are accepted and ignored (--election-* tell\n"
      "--fix where the task's leader and its fence are).");
  cmd->add_option("--config", flags->config_file,
                  "YAML file of an etcd2etcd task (flags and environment win)");
  AddConnectionFlags(cmd, "src", "source", &c.src);
  AddConnectionFlags(cmd, "dst", "destination", &c.dst);
  AddScopeFlags(cmd, &c);
  AddConnectionFlags(cmd, "election", "election", &c.election);
  cmd->add_flag("--keys-only", flags->options.keys_only,
                "presence mode: compare keys only (dst miss and src miss), no values transferred")
      ->group("Check");
  cmd->add_option("--show", flags->options.show, "sample keys printed per kind of difference")
      ->default_val(10)
      ->group("Check");
  cmd->add_option("--output", flags->output, "text (a summary table) or json")
      ->default_val("text")
      ->group("Check");
  cmd->add_option("--page-size", flags->options.page_size, "keys per range page")
      ->default_val(10000)
      ->group("Check");
  cmd->add_flag("--single-round", flags->single_round,
                "report round 1 as is; by default a difference counts only if it is still there "
                "in a second round taken after the task's checkpoint passed round 1's revision")
      ->group("Check");
  AddDurationFlag(cmd, "--confirm-timeout", &flags->options.confirm_timeout,
                  "how long round 2 waits for the running syncer's checkpoint",
                  kConfirmTimeoutRange)
      ->group("Check");
  cmd->add_flag("--fix", flags->fix,
                "repair confirmed differences at the destination (put dst miss and mismatch from "
                "the source, delete src miss); a key changed meanwhile is left alone")
      ->group("Check");
  cmd->add_option("--read-rate", flags->options.read_rate,
                  "at most this many keys/s read from each cluster (0 = unlimited)")
      ->default_val(0)
      ->group("Check");
  cmd->add_flag("--no-leases", c.no_leases,
                "the task runs with --no-leases: do not compare lease attachment (by default a "
                "key must be on the destination lease with its source key's lease ID: lease "
                "mismatch)")
      ->group("Check");
  cmd->add_flag("--serializable", flags->options.serializable,
                "read from the nearest member instead of the leader")
      ->group("Check");
  AddLogFlags(cmd, &c.log_level, &c.log_format);
  // Every flag of etcd2etcd (--ha, --lease-ttl, election: {...}, ...) is accepted and ignored,
  // so that a check runs with its task's own config file.
  CLI::App task_flags;
  AddEtcd2EtcdCommand(&task_flags);
  AcceptTaskFlags(cmd, task_flags.get_subcommand("etcd2etcd"));
  std::function<int()> zk = AddCheckZk2EtcdCommand(check);
  return [flags, cmd, zk] { return cmd->parsed() ? Run(flags.get(), cmd) : zk(); };
}

}  // namespace kvsync::cli
