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
#include <memory>
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

// The election key prefix of a task: <meta-prefix><name>/election (etcd2etcd, zk2etcd, check).
std::string ElectionName(const std::string& meta_prefix, const std::string& task);

// A client for `conn`, created and connected (blocks up to its dial timeout). Errors: the
// configuration's (InvalidArgument, exit 2), refused credentials (PermissionDenied, exit 2),
// an unreachable cluster (Unavailable, exit 3).
absl::StatusOr<std::unique_ptr<etcd::Client>> ConnectClient(const config::EtcdConnection& conn,
                                                            const std::string& name);

// The fence of the task's current leader on the election cluster, for a writer outside the
// election (check --fix): what the leader's own txns carry, so that a repair can never land
// after a takeover it did not see; empty when nobody leads. Errors: the election cluster's.
absl::StatusOr<std::vector<etcd::Compare>> CurrentLeaderFence(etcd::Client* election,
                                                              const std::string& election_name);

}  // namespace kvsync::cli
