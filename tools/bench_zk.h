// ZooKeeper subcommands of kvsync-bench (zk-load, zk-walk, zk-count, zk-churn), defined in
// bench_zk.cc. Called once from kvsync-bench's main thread before parsing.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "CLI/CLI.hpp"

namespace kvsync::bench {

// Adds the zk-* subcommands to `app` and their runners to `commands` (keyed by name). The flag
// storage is static: one parse per process.
void AddZkCommands(CLI::App& app, std::map<std::string, std::function<int()>>& commands);

}  // namespace kvsync::bench
