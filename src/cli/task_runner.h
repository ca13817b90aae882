// What `kvsync etcd2etcd` and `kvsync zk2etcd` run around their engine, built once here: the
// high-availability and observability flags, the elector and the role view, the admin server
// (/metrics, /healthz, /readyz, /status), the progress line, and the engine run either directly
// or while leading (each term fenced, the shared role and error counters updated). The engine
// brings its own readiness, status document and progress line.
//
// Threading: RunTask blocks the main thread; the admin server ("admin-http") and the progress
// line ("status-log") each run on a thread owned here for the duration of the call; the callbacks
// must be thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "common/stop_token.h"
#include "config/config.h"
#include "etcd/client.h"
#include "metrics/registry.h"
#include "sink/observability.h"
#include "sink/write_stats.h"

namespace kvsync::cli {

// --ha, --lease-ttl, --instance-id and the --election-* connection.
void AddHaFlags(CLI::App* cmd, bool* ha, std::chrono::milliseconds* lease_ttl,
                std::string* instance_id, config::EtcdConnection* election);
// --admin-addr and --ready-max-lag.
void AddAdminFlags(CLI::App* cmd, std::string* admin_addr,
                   std::chrono::milliseconds* ready_max_lag);

struct TaskSpec {
  std::string command;  // "etcd2etcd", for messages
  std::string task;
  bool ha = false;
  std::string instance_id;
  std::string election_name;  // the election key prefix (with --ha)
  std::chrono::seconds lease_ttl{5};
  etcd::Client* election_client = nullptr;  // with --ha
  std::string admin_addr;                   // "" = no admin server
  std::chrono::milliseconds status_interval{0};
  sink::WriteStats* stats = nullptr;
  const metrics::Registry* registry = nullptr;
  // The engine's view of itself, given this replica's role.
  std::function<bool(const sink::RoleView&, std::string* why)> ready;
  std::function<std::string(const sink::RoleView&)> status_json;
  std::function<void()> log_progress;
  // Connects what the first term needs (after the admin server is up, so probes answer).
  std::function<absl::Status()> connect;
  // Runs the engine until `stop` (or --once done); `fence` is empty without --ha.
  std::function<absl::Status(const common::StopToken& stop, std::vector<etcd::Compare> fence)> run;
};

// Runs the task and returns its exit code (ExitAfterRun's rules).
int RunTask(const TaskSpec& spec, common::StopToken* stop);

}  // namespace kvsync::cli
