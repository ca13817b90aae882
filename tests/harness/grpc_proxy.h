// etcd's gRPC proxy (`etcd grpc-proxy start`, from the Debian etcd binary) in front of a test
// cluster, for tests that prove kvsync and etcdwatch work through one.
//
// Start() runs the proxy as a Subprocess on 127.0.0.1:<free port> (log file in its own temp
// dir) and returns once a Range through it answers (20 s deadline; the error carries the log
// tail). The proxy speaks plain gRPC to its clients; with `ca_file` set it talks TLS (and,
// with cert/key, client certificates) to the cluster. Stop() and Restart() keep the port.
//
// Threading: one test thread at a time. Ownership: the proxy owns its process and temp dir;
// the destructor stops it (SIGTERM, then SIGKILL) and removes the dir unless KVSYNC_KEEP_TEMP
// is set.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/harness/subprocess.h"

namespace kvsync::testing {

struct GrpcProxyOptions {
  // Cluster endpoints (host:port or http[s]://host:port).
  std::vector<std::string> endpoints;
  // TLS to the cluster (all empty: plain).
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string name = "grpc-proxy";
};

class GrpcProxy {
 public:
  // Errors: NotFound when /usr/bin/etcd is missing, DeadlineExceeded or Unavailable (with the
  // log tail) when the proxy does not answer in time; retries with a fresh port (3 times)
  // when the port was taken.
  static absl::StatusOr<std::unique_ptr<GrpcProxy>> Start(GrpcProxyOptions options);

  GrpcProxy(const GrpcProxy&) = delete;
  GrpcProxy& operator=(const GrpcProxy&) = delete;
  ~GrpcProxy();

  // "127.0.0.1:port": the endpoint clients use.
  std::string address() const;
  int port() const { return port_; }

  // SIGTERM (SIGKILL after 5 s); the port stays reserved for Restart.
  void Stop();
  // Stops if running, starts again on the same port and waits until it answers (20 s).
  absl::Status Restart();
  bool Running();
  std::string LogTail() const;

 private:
  explicit GrpcProxy(GrpcProxyOptions options);
  absl::Status Launch();
  absl::Status WaitReady();

  GrpcProxyOptions options_;
  std::string temp_dir_;
  std::string log_path_;
  int port_ = 0;
  std::unique_ptr<Subprocess> process_;
};

}  // namespace kvsync::testing
