// `kvsync etcd2etcd`: flag registration and the run function for the mirror engine.
#pragma once

#include <functional>

#include "CLI/CLI.hpp"

namespace kvsync::cli {

// Adds the subcommand to `app`; returns the function main calls when it was selected.
std::function<int()> AddEtcd2EtcdCommand(CLI::App* app);

}  // namespace kvsync::cli
