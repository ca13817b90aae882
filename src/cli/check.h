// `kvsync check etcd2etcd`: flag registration and the run function of the consistency check.
#pragma once

#include <functional>

#include "CLI/CLI.hpp"

namespace kvsync::cli {

// Adds `check` (with its `etcd2etcd` subcommand) to `app`; returns the function main calls when
// it was selected.
std::function<int()> AddCheckCommand(CLI::App* app);

}  // namespace kvsync::cli
