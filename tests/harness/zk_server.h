// A real standalone ZooKeeper 3.8 server (Debian package `zookeeper`, run with the system Java)
// for integration tests and benchmarks.
//
// Start() writes zoo.cfg into a fresh temp dir (data dir, config and log file all live there),
// launches `java ... org.apache.zookeeper.server.ZooKeeperServerMain zoo.cfg` on 127.0.0.1 with a
// free client port and returns once the server answers the `srvr` four-letter word as serving
// (30 s deadline; the error carries the log tail). The admin HTTP server is disabled, all
// four-letter words are whitelisted, fsync is off by default (tests and benchmarks measure the
// client, not the disk), the JVM heap is capped (256 MB by default) and the server logs through
// slf4j-simple to its log file. tickTime defaults to 200 ms, so session timeouts from 400 ms up
// to 60 s are accepted and expired sessions are detected within a tick.
//
// Threading: accessors are fixed after Start() and may be called from any thread; the control
// methods (Stop, Kill, Restart) from one test thread at a time, and — because of the
// Subprocess death-signal rule — from the thread that should own the server (the test's main
// thread). Ownership: the server owns its process and temp dir; the destructor stops the
// process (SIGTERM, then SIGKILL) and removes the temp dir unless KVSYNC_KEEP_TEMP is set.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/harness/subprocess.h"

namespace kvsync::testing {

struct ZkServerOptions {
  // ZooKeeper's time unit. minSessionTimeout is 2 ticks; maxSessionTimeout is fixed at 60 s.
  std::chrono::milliseconds tick_time{200};
  int heap_mb = 256;
  // fsync every transaction log write (ZooKeeper's default); off here for speed.
  bool force_sync = false;
  // Server-side jute.maxbuffer in bytes (largest request or znode listing); 0: ZooKeeper's
  // default (1 MB). Large Dubbo-like trees with 1 KB names need more.
  int jute_maxbuffer = 64 << 20;
  // Extra zoo.cfg lines ("key=value"), appended after ours (a repeated key overrides).
  std::vector<std::string> extra_config;
  // Prefix of the temp dir name.
  std::string name = "zk";
};

class ZkServer {
 public:
  // Starts the server and waits until it serves. Retries with a fresh port (up to 3 times)
  // when another process took the port. Errors: NotFound when java or the ZooKeeper jars are
  // missing, Internal when the config cannot be written, DeadlineExceeded or Unavailable (with
  // the log tail) when the server does not serve in time or exits.
  static absl::StatusOr<std::unique_ptr<ZkServer>> Start(ZkServerOptions options = {});

  ZkServer(const ZkServer&) = delete;
  ZkServer& operator=(const ZkServer&) = delete;
  ~ZkServer();

  // "127.0.0.1:port".
  std::string connect_string() const;
  int port() const { return port_; }
  const std::string& temp_dir() const { return temp_dir_; }
  const std::string& log_path() const { return log_path_; }
  const ZkServerOptions& options() const { return options_; }

  // SIGTERM (SIGKILL after 5 s) and waits until the process is gone. A no-op when stopped.
  void Stop();
  // SIGKILL, and waits until the process is gone.
  void Kill();
  // Stops the server if it runs, starts it again on the same port and data dir (sessions and
  // znodes survive: they are in the data dir) and waits until it serves (30 s).
  absl::Status Restart();
  // True while the server process runs.
  bool running();
  // Sends a four-letter word ("srvr", "mntr", "cons", ...) and returns the reply (2 s timeout).
  absl::StatusOr<std::string> FourLetterWord(const std::string& word) const;
  // The last `bytes` bytes of the server log.
  std::string LogTail(size_t bytes = 4000) const;

 private:
  explicit ZkServer(ZkServerOptions options);
  absl::Status Init();
  absl::Status Launch();
  absl::Status WaitServing(std::chrono::milliseconds deadline);

  ZkServerOptions options_;
  std::string temp_dir_;
  std::string data_dir_;
  std::string config_path_;
  std::string log_path_;
  int port_ = 0;
  std::unique_ptr<Subprocess> process_;
};

}  // namespace kvsync::testing
