// kvsync-bench kv-latency: put or range latency and throughput against one endpoint (a member
// or a grpc-proxy), for bench/proxy.sh. Registered by kvsync_bench.cc's Main; runs on its
// own worker threads, which share one etcd client.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "CLI/CLI.hpp"

namespace kvsync::bench {

// Adds the `kv-latency` subcommand to `app` and its run function to `commands`.
void AddKvLatencyCommand(CLI::App* app, std::map<std::string, std::function<int()>>* commands);

}  // namespace kvsync::bench
