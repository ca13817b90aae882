// The disaster-recovery commands: `kvsync status`, `kvsync promote`, `kvsync demote` and
// `kvsync failback` (mirror/dr.h does the work; this file parses and dispatches).
#pragma once

#include <functional>

#include "CLI/CLI.hpp"

namespace kvsync::cli {

// Each adds its subcommand to `app` and returns the function main calls when it was selected.
std::function<int()> AddStatusCommand(CLI::App* app);
std::function<int()> AddPromoteCommand(CLI::App* app);
std::function<int()> AddDemoteCommand(CLI::App* app);
std::function<int()> AddFailbackCommand(CLI::App* app);

}  // namespace kvsync::cli
