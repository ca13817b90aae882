// One etcdwatch run: a writer updates the watched keys every `span` for `duration` while
// `watchers` watchers follow them, spread over one multiplexed watch stream per watch client
// (connection); then the watchers get `settle` to catch up, every watcher's checks are
// settled and the report is built.
//
// Threads: the caller's thread writes (and waits); one thread per connection
// ("etcdwatch-conn") reads its stream
// and runs the checks of its watchers (they are touched only there until it is joined).
// Ownership: the caller owns the clients, which must outlive Run.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/stop_token.h"
#include "etcd/client.h"
#include "watchcheck/report.h"

namespace kvsync::watchcheck {

struct RunOptions {
  int watchers = 100;
  std::chrono::milliseconds span{500};
  std::chrono::milliseconds duration{10000};
  // Exactly one of: a single key, or a prefix under which `keys` keys (<prefix>k0, k1, ...)
  // are written together, one txn (one revision) per tick, and watched as a range.
  std::string key;
  std::string prefix;
  int keys = 1;
  // Key 0 is deleted every this many ticks and re-created on the next (0: never).
  int delete_every = 10;
  // Every prev_kv_every-th watcher asks for and checks prev_kv (1: all, 0: none). etcd reads
  // the previous value from its store for every event of every such watcher, which dominates
  // its CPU with hundreds of watchers on a busy key.
  int prev_kv_every = 1;
  // Every restart_every-th watcher cancels its watch and re-watches from its last received
  // revision + 1 after every restart_every event responses (0: never).
  int restart_every = 0;
  // How long watchers may take to receive the last write after the writer stops.
  std::chrono::milliseconds settle{5000};
  // How long creating every watch may take.
  std::chrono::milliseconds create_timeout{20000};
  // Test hook: each connection discards every Nth response that carries events (0: never).
  int inject_drop_every = 0;
  // Delete the written keys before and after the run.
  bool cleanup = true;
};

// Runs the test. `writer` writes, `watch_clients` (one per connection) watch; both must reach
// the same cluster (revisions are compared). Errors: InvalidArgument for bad options,
// Unavailable/DeadlineExceeded when etcd cannot be written or watches cannot be created,
// Cancelled when `stop` was requested. Property violations are not errors: they are in the
// report.
absl::StatusOr<Report> Run(etcd::Client* writer, const std::vector<etcd::Client*>& watch_clients,
                           const RunOptions& options, const common::StopToken* stop);

}  // namespace kvsync::watchcheck
