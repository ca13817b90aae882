// A TCP proxy that sits between a client and one server (usually an etcd member) and injects
// network faults: cut connections, a silent blackhole, and added one-way latency.
//
// One background thread runs a poll() loop over every proxied connection; data is read in
// 256 KiB chunks and written on as soon as it is due, so in kPass mode without delay the proxy
// adds no noticeable latency or throughput limit on loopback. Bytes are opaque: TLS passes
// through unchanged.
//
// Modes:
//   kPass       forward normally. Connections that were blackholed are reset when the proxy
//               returns to kPass: their streams lost bytes silently and cannot be resumed, so
//               clients see a clean failure and reconnect.
//   kCut        reset every open connection (RST, via SO_LINGER 0) and reset new ones right
//               after accepting them: clients see "connection reset" at once.
//   kBlackhole  keep connections open but discard every byte in both directions; new
//               connections are accepted and never connected upstream. Clients notice only
//               through deadlines and keep-alives.
// SetDelay(d) holds each chunk for d before forwarding it (in both directions, order kept,
// chunks pipelined rather than throttled); it applies to bytes read after the call, and
// SetConnectionDelay adds to one connection's delay only. At most
// 8 MiB wait per direction, so like a real link a delay d caps throughput at 8 MiB / d.
//
// Threading: all public methods are thread-safe. SetMode returns once the loop has applied
// the mode (connections are already reset when it returns). The destructor stops the loop and
// closes every socket.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace kvsync::testing {

class FaultProxy {
 public:
  enum class Mode { kPass, kCut, kBlackhole };

  // Listens on 127.0.0.1:<free port> and forwards to `upstream` ("host:port"; an http:// or
  // https:// prefix is ignored). InvalidArgument when upstream does not resolve; Internal when
  // the listening socket or the thread cannot be set up.
  static absl::StatusOr<std::unique_ptr<FaultProxy>> Start(std::string upstream);

  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;
  ~FaultProxy();

  // "127.0.0.1:port": give this to clients instead of the upstream address.
  std::string address() const;
  int port() const { return port_; }

  void SetMode(Mode mode);
  void SetDelay(std::chrono::milliseconds one_way);
  // Adds `one_way` to the delay of the connection accepted `index`-th (0 the first): a client
  // spreading requests over several connections then sees them overtake each other.
  void SetConnectionDelay(int index, std::chrono::milliseconds one_way);
  // Bytes written towards either side so far.
  uint64_t bytes_forwarded() const { return bytes_forwarded_.load(); }
  // Connections currently open through the proxy.
  int connections() const { return connections_.load(); }

 private:
  struct Conn;

  FaultProxy(int listen_fd, int wake_fd, int port, std::vector<char> upstream_addr);
  void Run();
  void ApplyMode(Mode mode) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Accept();
  // Moves bytes for one connection; returns false when it must be reset.
  bool Pump(Conn& conn, short client_events, short upstream_events);

  const int listen_fd_;
  const int wake_fd_;
  const int port_;
  const std::vector<char> upstream_addr_;  // a sockaddr of the upstream
  std::atomic<int64_t> delay_ms_{0};
  std::atomic<int> delayed_index_{-1};
  std::atomic<int64_t> delayed_index_ms_{0};
  int accepted_ = 0;  // loop thread only
  std::atomic<uint64_t> bytes_forwarded_{0};
  std::atomic<int> connections_{0};

  absl::Mutex mu_;
  absl::CondVar applied_cv_;
  Mode mode_ ABSL_GUARDED_BY(mu_) = Mode::kPass;
  uint64_t requested_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t applied_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;

  // Loop thread only.
  Mode loop_mode_ = Mode::kPass;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<char> buffer_;
  std::thread thread_;
};

}  // namespace kvsync::testing
