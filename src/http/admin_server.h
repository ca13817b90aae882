// A tiny HTTP/1.1 admin server for /metrics, /healthz, /readyz and /status. No TLS, no keep-alive,
// no request bodies: one thread accepts connections and serves them one at a time (request line
// and headers up to 8 KiB, read within 2 s), answers GET and HEAD for the registered paths and
// closes the connection after each response. Meant for scrapers and probes, not for traffic.
// Start() binds and starts the thread; the destructor wakes it, waits for it and closes the
// sockets (an idle client does not delay it). Handlers run on the server thread, one at a time:
// they must be quick, thread-safe with respect to the state they read, and must not destroy the
// server. The AdminServer owns its thread and sockets; the caller owns the AdminServer.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace kvsync::http {

class AdminServer {
 public:
  struct Response {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
  };
  using Handler = std::function<Response()>;

  // Binds `address` ("host:port": "127.0.0.1:9464", "0.0.0.0:9464", ":9464" for all interfaces,
  // "[::]:9464", "localhost:9464"; port 0 picks a free port) and starts serving `routes`, keyed
  // by exact path ("/metrics"; a query string is ignored when matching). Unknown paths get 404,
  // methods other than GET and HEAD 405, malformed requests 400.
  // Errors: InvalidArgument for a malformed address, an unresolvable host or a bad route;
  // PermissionDenied when binding is not allowed (privileged port); FailedPrecondition when the
  // address is in use or not local; Unavailable for other socket failures. Messages are one line
  // naming the flag and address, e.g. `--admin-addr 127.0.0.1:9464: Address already in use`.
  static absl::StatusOr<std::unique_ptr<AdminServer>> Start(const std::string& address,
                                                            std::map<std::string, Handler> routes);

  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // The bound port (the chosen one when started with port 0).
  int port() const { return port_; }
  // The bound address as "host:port", e.g. "127.0.0.1:43017" or "[::]:9464".
  std::string address() const { return address_; }

 private:
  AdminServer(int listen_fd, int wake_fd, std::string address, int port,
              std::map<std::string, Handler> routes);
  void Run();
  void Serve(int fd);

  const int listen_fd_;
  const int wake_fd_;  // eventfd: written by the destructor to stop Run()
  const std::string address_;
  const int port_;
  const std::map<std::string, Handler> routes_;
  std::thread thread_;
};

// A response with Content-Type application/json; `body` must already be JSON.
AdminServer::Response JsonResponse(int status, std::string body);

}  // namespace kvsync::http
