// `kvsync etcdwatch`: the watch-consistency tester (flags, run, report). The checks live in
// src/watchcheck/; this file parses flags and dispatches. Main thread only.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"

namespace kvsync::cli {

// Adds `etcdwatch` to `app`; returns the function main calls when it was selected.
std::function<int()> AddEtcdwatchCommand(CLI::App* app);

// For `kvsync etcdwatch` only, turns the article tool's single-dash long flags (-num 100,
// -span=10, -endpoint x) into CLI11's double-dash form; every other argument is unchanged.
std::vector<std::string> RewriteSingleDashFlags(int argc, char** argv);

}  // namespace kvsync::cli
