// `kvsync zk2etcd` and `kvsync check zk2etcd`: flag registration and run functions.
#pragma once

#include <functional>

#include "CLI/CLI.hpp"

namespace kvsync::cli {

// Adds `zk2etcd` to `app`; returns the function main calls when it was selected.
std::function<int()> AddZk2EtcdCommand(CLI::App* app);

// Adds `etcd2zk` (the reverse direction, with the zk2etcd task's flags) to `app`.
std::function<int()> AddEtcd2ZkCommand(CLI::App* app);

// Adds `migrate` (the migration phases of a zk2etcd task) to `app`.
std::function<int()> AddMigrateCommand(CLI::App* app);

// Adds `zk2etcd` under the `check` command; returns its run function.
std::function<int()> AddCheckZk2EtcdCommand(CLI::App* check);

}  // namespace kvsync::cli
