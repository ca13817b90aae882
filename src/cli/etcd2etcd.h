// `kvsync etcd2etcd`: flag registration and the run function for the mirror engine.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "config/config.h"

namespace kvsync::cli {

// Adds the subcommand to `app`; returns the function main calls when it was selected.
std::function<int()> AddEtcd2EtcdCommand(CLI::App* app);

// The flags of an etcd2etcd task, shared by the commands that act on one (failback runs the
// task reversed).
struct MirrorFlags {
  config::MirrorConfig config;
  std::string config_file;
  std::chrono::milliseconds lease_ttl{5000};
};
void AddMirrorFlags(CLI::App* cmd, MirrorFlags* flags);
// After parsing: applies --config, initialises logging, validates. Errors: InvalidArgument.
absl::Status LoadMirrorFlags(CLI::App* cmd, MirrorFlags* flags);
// Runs the mirror task `c` until stopped (with --ha, while leading); returns the exit code.
int RunMirrorTask(const config::MirrorConfig& c, const std::string& command);

}  // namespace kvsync::cli
