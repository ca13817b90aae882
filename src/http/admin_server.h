// A tiny HTTP/1.1 admin server for /metrics, /healthz, /readyz and /status, meant for scrapers and
// probes, not for traffic. No TLS, no keep-alive, no request bodies: it answers GET and HEAD for
// the registered paths and closes the connection after each response.
//
// Threading: Start() binds and starts one server thread ("admin-http") running an event loop
// (poll()) over the listening socket and every open connection, all non-blocking, so a slow or
// silent client never holds up another. Handlers run on that thread, one at a time, between reads
// and writes: they must be quick, thread-safe with respect to the state they read, and must not
// destroy the server. The destructor wakes the thread, waits for it and closes every socket,
// promptly whatever the clients do. counters() may be called from any thread. The AdminServer owns
// its thread and sockets; the caller owns the AdminServer.
//
// Limits (Options; defaults in brackets): at most [256] connections are open at once, each
// buffering at most 8 KiB of request, so a flood costs bounded memory and descriptors. A new
// connection arriving at the cap is admitted by closing the oldest connection still waiting for
// its request head (the oldest of all if none is): probes send their request at once and are
// answered at once, so a flood of idle connections evicts itself rather than locking probes out.
// A connection must deliver its request line and headers (at most 8 KiB, else 431) within [5 s]
// of being accepted, else it is closed without a response. The response is written without
// blocking and must be taken by the client within [10 s], else the connection is closed. Then the
// server discards the client's remaining input for up to 0.5 s before closing, so that close()
// does not reset the connection before the client has read the answer.
//
// Why not cpp-httplib (Debian's libcpp-httplib-dev 0.11.4): its server gives each connection to a
// worker of a fixed thread pool, which blocks reading it until a read timeout (5 s by default), so
// a few idle connections per worker occupy the whole pool and queue probes behind them: the
// failure this server exists to avoid. A pool large enough for hundreds of idle connections is
// hundreds of threads.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "runtime/thread.h"

namespace kvsync::http {

class AdminServer {
 public:
  struct Response {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
  };
  using Handler = std::function<Response()>;

  // Resource limits; the defaults suit production, tests shorten them.
  struct Options {
    // Connections open at once (at least 1); see the header comment for who is closed beyond.
    size_t max_connections = 256;
    // From accept to the end of the request head.
    std::chrono::milliseconds header_timeout = std::chrono::seconds(5);
    // From the end of the request head to the last byte of the response taken by the kernel.
    std::chrono::milliseconds write_timeout = std::chrono::seconds(10);
  };

  // What the limits did since Start().
  struct Counters {
    uint64_t accepted = 0;
    uint64_t evicted = 0;          // closed to admit a connection beyond max_connections
    uint64_t header_timeouts = 0;  // closed for not sending the request head in time
    uint64_t write_timeouts = 0;   // closed for not taking the response in time
  };

  // Binds `address` ("host:port": "127.0.0.1:9464", "0.0.0.0:9464", ":9464" for all interfaces,
  // "[::]:9464", "localhost:9464"; port 0 picks a free port) and starts serving `routes`, keyed
  // by exact path ("/metrics"; a query string is ignored when matching). Unknown paths get 404,
  // methods other than GET and HEAD 405, malformed requests 400, request heads over 8 KiB 431.
  // Errors: InvalidArgument for a malformed address, an unresolvable host, a bad route or bad
  // options; PermissionDenied when binding is not allowed (privileged port); FailedPrecondition
  // when the address is in use or not local; Unavailable for other socket failures. Messages are
  // one line naming the flag and address, e.g. `--admin-addr 127.0.0.1:9464: Address already in
  // use`.
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(const std::string& address,
                                                            std::map<std::string, Handler> routes);
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(const std::string& address,
                                                            std::map<std::string, Handler> routes,
                                                            const Options& options);

  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // The bound port (the chosen one when started with port 0).
  int port() const { return port_; }
  // The bound address as "host:port", e.g. "127.0.0.1:43017" or "[::]:9464".
  std::string address() const { return address_; }
  Counters counters() const;

 private:
  struct Connection;
  enum class Next;

  AdminServer(int listen_fd, int wake_fd, std::string address, int port,
              std::map<std::string, Handler> routes, const Options& options);
  void Run();
  // Admits the connections waiting in the listen queue, evicting to stay within the cap.
  void AcceptSome();
  // Moves `c` along as far as its socket allows without blocking.
  Next Progress(Connection& c);
  Next Read(Connection& c);
  Next Write(Connection& c);
  Next Drain(Connection& c);
  // The whole response (status line, headers, body) to the request head `head`.
  std::string Respond(const std::string& head) const;

  const int listen_fd_;
  const int wake_fd_;  // eventfd: written by the destructor to stop Run()
  const std::string address_;
  const int port_;
  const std::map<std::string, Handler> routes_;
  const Options options_;
  // Touched by the server thread only.
  std::list<Connection> connections_;  // in accept order, oldest first
  std::chrono::steady_clock::time_point accept_paused_until_;
  bool accept_failing_ = false;
  std::chrono::steady_clock::time_point last_eviction_log_;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> evicted_{0};
  std::atomic<uint64_t> header_timeouts_{0};
  std::atomic<uint64_t> write_timeouts_{0};
  runtime::Thread thread_;
};

// A response with Content-Type application/json; `body` must already be JSON.
AdminServer::Response JsonResponse(int status, std::string body);

}  // namespace kvsync::http
