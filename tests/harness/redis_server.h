// A real redis-server (/usr/bin/redis-server, Debian's 7.0 built with TLS) for integration
// tests of the Redis client and the Redis ownership store.
//
// Start() launches one server on a free 127.0.0.1 port with its own temp dir (working dir and
// log file; no RDB snapshots, no AOF), optionally with a password and/or TLS only (generated
// throwaway CA and server certificate for 127.0.0.1/localhost; clients need no certificate),
// and returns once it answers PING through redis-cli (10 s deadline; the error carries the log
// tail). Restart() starts it again on the same port; data does not survive (no persistence).
//
// Threading: accessors are fixed after Start() and may be called from any thread; the control
// methods (Stop, Kill, Restart) from one test thread at a time. Ownership: the server owns its
// process and temp dir; the destructor stops the process (SIGTERM, SIGKILL after 5 s) and
// removes the temp dir unless KVSYNC_KEEP_TEMP is set in the environment.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "redis/client.h"
#include "tests/harness/subprocess.h"

namespace kvsync::testing {

struct RedisServerOptions {
  // Non-empty: --requirepass.
  std::string password;
  // TLS on the port (plain TCP disabled), certificates generated with openssl.
  bool tls = false;
  // Appended to the command line.
  std::vector<std::string> extra_flags;
};

class RedisServer {
 public:
  // Starts the server and waits until it answers PING. Retries with a fresh port (up to 3
  // times) when another process took the port. Errors: NotFound/Internal when redis-server or
  // openssl cannot run, DeadlineExceeded/Unavailable when the server does not become ready
  // (message includes the log tail).
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start(RedisServerOptions options = {});

  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;
  ~RedisServer();

  // "127.0.0.1:port".
  std::string addr() const;
  int port() const { return port_; }
  // CA that signed the server certificate (empty without TLS).
  const std::string& ca_file() const { return ca_file_; }
  const std::string& temp_dir() const { return temp_dir_; }
  // Client options that reach this server: addr, password, TLS with ca_file, 2 s timeouts.
  redis::Options client_options() const;

  // SIGTERM and wait (SIGKILL after 5 s).
  void Stop();
  // SIGKILL and wait until the process is gone.
  void Kill();
  // Stops the server if it runs, starts it on the same port and waits until it answers PING.
  absl::Status Restart();
  bool running() const;
  std::string LogTail() const;

 private:
  explicit RedisServer(RedisServerOptions options);
  absl::Status Init();
  absl::Status MakeCertificates();
  absl::Status Launch();
  absl::Status WaitReady();
  bool LostPort() const;

  RedisServerOptions options_;
  std::string temp_dir_;
  std::string log_path_;
  int port_ = 0;
  std::string ca_file_;
  std::string cert_file_;
  std::string key_file_;
  std::unique_ptr<Subprocess> process_;
};

}  // namespace kvsync::testing
