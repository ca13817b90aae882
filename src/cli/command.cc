#include "cli/command.h"

#include <pthread.h>
#include <signal.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "absl/time/time.h"
#include "log/log.h"

namespace kvsync::cli {

namespace {
sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}
}  // namespace

void BlockStopSignals() {
  sigset_t set = StopSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

void StartSignalThread(common::StopToken* stop) {
  sigset_t set = StopSignals();
  std::thread([set, stop] {
    int count = 0;
    while (true) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (++count > 1) {
        log::Warn("main", "second signal, exiting now", {{"signal", sig}});
        std::_Exit(130);
      }
      log::Info("main", "signal received, stopping", {{"signal", sig}});
      stop->RequestStop();
    }
  }).detach();
}

int ReportAndExit(const std::string& command, const absl::Status& status) {
  if (status.ok()) return kExitOk;
  bool config = status.code() == absl::StatusCode::kInvalidArgument ||
                status.code() == absl::StatusCode::kFailedPrecondition ||
                status.code() == absl::StatusCode::kPermissionDenied ||
                status.code() == absl::StatusCode::kUnauthenticated;
  std::fprintf(stderr, "kvsync %s: error: %s\n", command.c_str(),
               std::string(status.message()).c_str());
  return config ? kExitConfig : kExitFailure;
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
                  "give up on reaching the " + what + " at start-up after this long")
      ->group(group);
  AddDurationFlag(app, "--" + side + "-command-timeout", &conn->command_timeout,
                  "deadline of each " + what + " request")
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
                             std::chrono::milliseconds* target, const std::string& help) {
  return app
      ->add_option_function<std::string>(
          name,
          [name, target](const std::string& text) {
            absl::Status s = ParseDuration(name, text, target);
            if (!s.ok()) throw CLI::ValidationError(std::string(s.message()));
          },
          help)
      ->default_str(absl::FormatDuration(absl::FromChrono(*target)));
}

absl::Status ParseDuration(const std::string& flag, const std::string& text,
                           std::chrono::milliseconds* out) {
  absl::Duration d;
  if (!absl::ParseDuration(text, &d) || d < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(flag + " must be a duration like 500ms, 5s or 1m, got \"" +
                                      text + "\"");
  }
  *out = std::chrono::milliseconds(absl::ToInt64Milliseconds(d));
  return absl::OkStatus();
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
