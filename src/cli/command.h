// Shared plumbing of the subcommands: signal handling (SIGINT/SIGTERM request a stop; a second
// signal exits at once), exit codes, and flag helpers. Called from main's thread only.
#pragma once

#include <chrono>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "common/stop_token.h"
#include "config/config.h"

namespace kvsync::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitConfig = 2;

// Blocks SIGINT/SIGTERM (and ignores SIGPIPE) in the calling thread. main() calls it first,
// before any library starts a thread, so that every thread inherits the mask and the signals
// reach only the thread of StartSignalThread.
void BlockStopSignals();
// Starts the thread that turns the first SIGINT/SIGTERM into stop->RequestStop(); a second one
// exits at once with 130.
void StartSignalThread(common::StopToken* stop);

// Maps an engine or validation status to an exit code and prints one line for errors.
int ReportAndExit(const std::string& command, const absl::Status& status);

// Registers etcdctl-style connection flags for one side ("src" / "dst"): --src-endpoints,
// --src-cacert, --src-cert, --src-key, --src-user, --src-password, plus timeouts.
void AddConnectionFlags(CLI::App* app, const std::string& side, const std::string& what,
                        config::EtcdConnection* conn);

// Registers a duration flag ("500ms", "5s", "1m") that parses straight into `target`; a bad
// value is a flag error (exit 2). `target` keeps its value when the flag is absent.
CLI::Option* AddDurationFlag(CLI::App* app, const std::string& name,
                             std::chrono::milliseconds* target, const std::string& help);

// Registers what a task covers: --prefix, --dst-prefix, --exclude-prefix, --name,
// --meta-prefix (shared by etcd2etcd and check).
void AddScopeFlags(CLI::App* app, config::MirrorConfig* config);

// Parses "500ms", "5s", "1m" into milliseconds; InvalidArgument naming `flag` otherwise.
absl::Status ParseDuration(const std::string& flag, const std::string& text,
                           std::chrono::milliseconds* out);

// Registers --log-level and --log-format.
void AddLogFlags(CLI::App* app, std::string* level, std::string* format);

}  // namespace kvsync::cli
