// A real etcd 3.4 cluster (/usr/bin/etcd) for integration tests.
//
// Start() launches N members on free 127.0.0.1 ports, each with its data dir and log file in
// one temp dir, and returns once every member answers `etcdctl endpoint health` (20 s
// deadline; the error carries every member's log tail). Options add TLS with generated
// certificates (client certificates required) and auth with user root. Members use a 100 ms
// heartbeat and a 1 s election timeout, so leader loss resolves in about a second without
// spurious elections on a loaded machine; no auto-compaction.
//
// Threading: the accessors are fixed after Start() and may be called from any thread; the
// control methods (Kill, Pause, Resume, Restart, LeaderIndex, Etcdctl, LogTails) from one test
// thread at a time. Ownership: the cluster owns its processes and temp dir; the destructor
// stops members one at a time with SIGTERM (SIGKILL after 5 s) while the rest keep a quorum,
// SIGKILLs the rest (see the .cc for why), and removes the temp dir unless KVSYNC_KEEP_TEMP is
// set in the environment.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/harness/subprocess.h"

namespace kvsync::testing {

struct EtcdClusterOptions {
  int members = 1;
  // Client URLs become https with client-certificate auth; peers stay on http.
  bool tls = false;
  // Non-empty: create user root with this password and enable auth after start.
  std::string auth_root_password;
  // Appended to every member's command line (a repeated flag overrides ours).
  std::vector<std::string> extra_flags;
  // Prefix of member names, the temp dir and the cluster token.
  std::string name = "etcd";
};

class EtcdCluster {
 public:
  // Starts the cluster and waits until it is ready. Retries with fresh ports (up to 3 times)
  // when a member lost its port to another process. Errors: Internal/NotFound when a process
  // cannot be started or certificates cannot be made, DeadlineExceeded or Unavailable when a
  // member is not healthy in time or exits (message includes log tails).
  static absl::StatusOr<std::unique_ptr<EtcdCluster>> Start(EtcdClusterOptions options);

  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;
  ~EtcdCluster();

  int size() const { return static_cast<int>(members_.size()); }
  // Client endpoints: "127.0.0.1:port", or "https://127.0.0.1:port" with TLS.
  std::vector<std::string> endpoints() const;
  std::string endpoints_csv() const;
  std::string endpoint(int member) const;
  // TLS material (empty without TLS). The client certificate is signed by the same CA.
  const std::string& ca_file() const { return ca_file_; }
  const std::string& client_cert_file() const { return client_cert_file_; }
  const std::string& client_key_file() const { return client_key_file_; }
  const std::string& temp_dir() const { return temp_dir_; }
  const EtcdClusterOptions& options() const { return options_; }

  // SIGKILL, and waits until the process is gone.
  void Kill(int member);
  // SIGSTOP / SIGCONT: the member keeps its sockets but stops answering. Pause returns once
  // every thread of the member is stopped.
  void Pause(int member);
  void Resume(int member);
  // Stops the member if it still runs, starts it again on the same ports and data dir
  // (--initial-cluster-state existing) and waits until it is healthy (20 s).
  absl::Status Restart(int member);
  // Wipes every member (SIGKILL, data dirs removed) and starts the cluster again as a new
  // cluster with the same names, ports and token, so it has the same cluster ID but a new,
  // empty history (a source rebuilt from scratch). Auth is not re-enabled.
  absl::Status Rebuild();
  // Index of the member that reports itself leader (asked with `etcdctl endpoint status` on
  // every running, unpaused member; the highest raft term wins if two claim it). Unavailable
  // when no member currently claims leadership.
  absl::StatusOr<int> LeaderIndex();
  // Runs `etcdctl <args>` (API v3) against all endpoints with the cluster's TLS and auth
  // flags. Returns Internal with stderr when etcdctl exits non-zero; `out` receives stdout.
  absl::Status Etcdctl(std::vector<std::string> args, std::string* out = nullptr);
  // The tail of every member's log, for failure messages.
  std::string LogTails() const;

 private:
  struct Member {
    std::string name;
    int client_port = 0;
    int peer_port = 0;
    std::string data_dir;
    std::string log_path;
    std::unique_ptr<Subprocess> process;
    bool paused = false;
  };

  explicit EtcdCluster(EtcdClusterOptions options);
  absl::Status Init();
  absl::Status MakeCertificates();
  absl::Status StartMember(int member, bool existing);
  absl::Status WaitReady(int member, std::chrono::steady_clock::time_point deadline);
  bool Healthy(int member);
  bool LostPort() const;
  std::vector<std::string> EtcdctlArgs(const std::vector<std::string>& endpoints,
                                       const std::vector<std::string>& args) const;

  EtcdClusterOptions options_;
  std::string temp_dir_;
  std::string token_;
  std::string ca_file_;
  std::string server_cert_file_;
  std::string server_key_file_;
  std::string client_cert_file_;
  std::string client_key_file_;
  bool auth_enabled_ = false;
  std::vector<Member> members_;
};

}  // namespace kvsync::testing
