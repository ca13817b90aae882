#include "cli/command.h"

#include <pthread.h>
#include <signal.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "log/log.h"
#include "runtime/thread.h"

namespace kvsync::cli {

namespace {

sigset_t HandledSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

// Held by the signal thread while it acts on a signal, and by EndStartup, so that a stop
// during start-up either exits before the engine runs or is left to the engine. Never destroyed:
// the detached signal thread may still use it while exit runs static destructors.
absl::Mutex& g_startup_mu = *new absl::Mutex;
bool g_starting ABSL_GUARDED_BY(g_startup_mu) = true;

}  // namespace

void BlockStopSignals() {
  sigset_t set = HandledSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

common::StopToken& StartSignalThread() {
  // Never destroyed (see command.h): ThreadSanitizer saw main() destroy a stack token while the
  // signal thread still held its mutex.
  static common::StopToken* const stop = new common::StopToken();
  sigset_t set = HandledSignals();
  runtime::Thread("signals", [set] {
    int count = 0;
    while (true) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (sig == SIGHUP) {
        log::Warn("main",
                  "SIGHUP ignored: kvsync does not reload configuration; restart to apply changes",
                  {{"signal", sig}});
        continue;
      }
      absl::MutexLock lock(&g_startup_mu);
      if (g_starting) {
        // Nothing written and no leadership held yet, while connects may block for a whole
        // dial timeout without looking at `stop`: stopping now is exiting now.
        log::Info("main", "signal received during start-up, exiting", {{"signal", sig}});
        std::_Exit(Exit(ExitCode::kOk));
      }
      if (++count > 1) {
        log::Warn("main", "second signal, exiting now", {{"signal", sig}});
        std::_Exit(kExitSecondSignal);
      }
      log::Info("main", "signal received, stopping", {{"signal", sig}});
      stop->RequestStop();
    }
  }).Detach();
  return *stop;
}

void EndStartup() {
  absl::MutexLock lock(&g_startup_mu);
  g_starting = false;
}

int ExitAfterRun(const std::string& command, const absl::Status& result,
                 const common::StopToken& stop) {
  // After a stop request, an engine still trying to reach a server returns Cancelled, or
  // Unavailable once a connect that does not watch the stop gives up: both are the stop.
  bool reaching =
      absl::IsCancelled(result) || absl::IsUnavailable(result) || absl::IsDeadlineExceeded(result);
  if (!result.ok() && reaching && stop.stopped()) {
    log::Info("main", "stopped on request", {{"command", command}, {"last_error", result}});
    return Exit(ExitCode::kOk);
  }
  if (!result.ok()) log::Error("main", "exiting on error", {{"error", result}});
  return ReportAndExit(command, result);
}

ExitCode ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return ExitCode::kOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated:
      return ExitCode::kConfig;
    default:
      return ExitCode::kRuntime;
  }
}

const char kExitCodesHelp[] =
    "Exit codes (the same for every kvsync command):\n"
    "  0  success: stopped on request, --once done, consistent, every property held\n"
    "  1  findings: check found differences or was inconclusive (ownership unknown,\n"
    "     unreadable znodes); etcdwatch saw a property fail\n"
    "  2  usage or configuration, or a refusal an operator must resolve: a bad flag or\n"
    "     file, refused credentials or permission, a checkpoint of another cluster or scope,\n"
    "     deletes held by the deletion guard, a value the destination can never accept\n"
    "  3  runtime failure: a cluster unreachable at start-up, a check or test that could\n"
    "     not complete; restarting may help\n"
    "  130  a second SIGINT/SIGTERM (the first stops cleanly and exits 0)";

void AddExitCodesFooter(CLI::App* app) {
  app->footer(kExitCodesHelp);
  for (CLI::App* sub : app->get_subcommands([](CLI::App*) { return true; })) {
    AddExitCodesFooter(sub);
  }
}

int ReportAndExit(const std::string& command, const absl::Status& status) {
  if (status.ok()) return Exit(ExitCode::kOk);
  std::fprintf(stderr, "kvsync %s: error: %s\n", command.c_str(),
               std::string(status.message()).c_str());
  return Exit(ExitCodeFor(status));
}

void AddConnectionFlags(CLI::App* app, const std::string& side, const std::string& what,
                        config::EtcdConnection* conn) {
  const std::string group = what + " etcd";
  app->add_option("--" + side + "-endpoints", conn->endpoints,
                  "comma-separated " + what + " endpoints (host:port, http[s]://host:port)")
      ->group(group);
  app->add_option("--" + side + "-cacert", conn->cacert,
                  "verify " + what + " certificates with this CA bundle (enables TLS)")
      ->group(group);
  app->add_option("--" + side + "-cert", conn->cert, what + " client TLS certificate file")
      ->group(group);
  app->add_option("--" + side + "-key", conn->key, what + " client TLS key file")->group(group);
  app->add_option("--" + side + "-user", conn->user, what + " username, or username:password")
      ->group(group);
  std::string env = "KVSYNC_" + side + "_PASSWORD";
  for (char& ch : env) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  app->add_option("--" + side + "-password", conn->password,
                  what + " password (prefer the config file or " + env + ")")
      ->envname(env)
      ->group(group);
  AddDurationFlag(app, "--" + side + "-dial-timeout", &conn->dial_timeout,
                  "give up on reaching the " + what + " at start-up after this long",
                  kDialTimeoutRange)
      ->group(group);
  AddDurationFlag(app, "--" + side + "-command-timeout", &conn->command_timeout,
                  "deadline of each " + what + " request", kCommandTimeoutRange)
      ->group(group);
}

void AddScopeFlags(CLI::App* cmd, config::MirrorConfig* config) {
  config::MirrorConfig& c = *config;
  cmd->add_option("--prefix", c.prefix, "source key prefix to mirror (required; / for all)")
      ->group("What to sync");
  cmd->add_option_function<std::string>(
         "--dst-prefix",
         [config](const std::string& v) {
           config->dst_prefix = v;
           config->dst_prefix_set = true;
         },
         "destination prefix replacing --prefix in every key (default: same as --prefix)")
      ->group("What to sync");
  cmd->add_option("--exclude-prefix", c.exclude_prefixes,
                  "source prefix to leave alone on both sides (repeatable)")
      ->group("What to sync");
  cmd->add_option("--name", c.name, "task name, namespaces the checkpoint (default: from --prefix)")
      ->group("What to sync");
  cmd->add_option("--meta-prefix", c.meta_prefix,
                  "where kvsync keeps its checkpoints in the destination; never synced")
      ->default_val(c.meta_prefix)
      ->group("What to sync");
}

CLI::Option* AddDurationFlag(CLI::App* app, const std::string& name,
                             std::chrono::milliseconds* target, const std::string& help,
                             DurationRange range) {
  return app
      ->add_option_function<std::string>(
          name,
          [name, target, range](const std::string& text) {
            absl::Status s = ParseDuration(name, text, range, target);
            if (!s.ok()) throw CLI::ValidationError(std::string(s.message()));
          },
          help + " (" + DescribeRange(range) + ")")
      ->default_str(absl::FormatDuration(absl::FromChrono(*target)));
}

std::string DescribeRange(DurationRange range) {
  std::string between = "a duration between " + absl::FormatDuration(range.min) + " and " +
                        absl::FormatDuration(range.max);
  return range.zero_is_off ? "0 (off) or " + between : between;
}

absl::Status ParseDuration(const std::string& flag, const std::string& text, DurationRange range,
                           std::chrono::milliseconds* out) {
  absl::Duration d;
  // The range is checked before rounding to milliseconds: "500us" is not a way to say 0.
  bool parsed = absl::ParseDuration(text, &d);
  bool off = parsed && range.zero_is_off && d == absl::ZeroDuration();
  if (!off && (!parsed || d < range.min || d > range.max)) {
    return absl::InvalidArgumentError(flag + " must be " + DescribeRange(range) +
                                      " (like 500ms, 5s or 1m), got \"" + text + "\"");
  }
  *out = std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
  return absl::OkStatus();
}

void AcceptTaskFlags(CLI::App* check, CLI::App* task) {
  for (const CLI::Option* opt : task->get_options()) {
    std::string names;
    bool known = false;
    for (const std::string& name : opt->get_lnames()) {
      known = known || check->get_option_no_throw("--" + name) != nullptr;
      names += (names.empty() ? "--" : ",--") + name;
    }
    if (known || names.empty()) continue;
    CLI::Option* ignored =
        opt->get_type_size_max() == 0
            ? check->add_flag_callback(
                  names, [] {}, "ignored by check")
            : check->add_option_function<std::vector<std::string>>(
                  names, [](const std::vector<std::string>&) {}, "ignored by check");
    ignored->group("");
  }
}

void AddLogFlags(CLI::App* app, std::string* level, std::string* format) {
  app->add_option("--log-level", *level, "debug, info, warn or error")
      ->default_val("info")
      ->group("Logging");
  app->add_option("--log-format", *format, "json (one object per line) or text")
      ->default_val("json")
      ->group("Logging");
}

}  // namespace kvsync::cli
