#include "http/admin_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <list>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "log/log.h"
#include "runtime/thread.h"

namespace kvsync::http {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxHeaderBytes = 8 * 1024;
// After the response, unread input is drained briefly so that close() does not send a RST that
// could destroy the response before the client has read it.
constexpr std::chrono::milliseconds kLingerTimeout(500);
constexpr size_t kMaxLingerBytes = 64 * 1024;

std::string ErrnoText(int err) {
  char buf[256];
  return strerror_r(err, buf, sizeof(buf));  // GNU variant: returns the message
}

absl::Status NotHostPort(const std::string& address) {
  return absl::InvalidArgumentError(
      absl::StrCat("--admin-addr \"", address, "\" is not host:port"));
}

struct HostPort {
  std::string host;  // empty: all interfaces
  std::string port;
  bool numeric_host = false;
};

absl::StatusOr<HostPort> ParseAddress(const std::string& address) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) return NotHostPort(address);
  HostPort hp;
  hp.host = address.substr(0, colon);
  hp.port = address.substr(colon + 1);
  if (!hp.host.empty() && hp.host.front() == '[') {
    if (hp.host.size() < 3 || hp.host.back() != ']') return NotHostPort(address);
    hp.host = hp.host.substr(1, hp.host.size() - 2);
    if (hp.host.find(':') == std::string::npos) return NotHostPort(address);
    hp.numeric_host = true;
  }
  if (hp.host.find_first_of(hp.numeric_host ? "[]/ " : "[]:/ ") != std::string::npos) {
    return NotHostPort(address);
  }
  if (hp.port.empty() || hp.port.size() > 5 ||
      !std::all_of(hp.port.begin(), hp.port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      std::stoi(hp.port) > 65535) {
    return NotHostPort(address);
  }
  return hp;
}

absl::Status BindError(const std::string& address, int err) {
  std::string message = absl::StrCat("--admin-addr ", address, ": ", ErrnoText(err));
  switch (err) {
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case EADDRINUSE:
    case EADDRNOTAVAIL:
      return absl::FailedPreconditionError(message);
    default:
      return absl::UnavailableError(message);
  }
}

// "127.0.0.1:9464" or "[::]:9464".
std::string FormatSockaddr(const sockaddr_storage& ss, int* port) {
  char ip[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
    *port = ntohs(a->sin6_port);
    return absl::StrCat("[", ip, "]:", *port);
  }
  const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
  inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
  *port = ntohs(a->sin_port);
  return absl::StrCat(ip, ":", *port);
}

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

bool IsTokenChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

// False once the bytes received cannot start a request line (say a TLS hello): the method must
// be a token. Lets garbage get its 400 at once instead of holding the connection until timeout.
bool PlausibleStart(const std::string& buf) {
  for (char c : buf) {
    if (c == ' ') return true;
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

struct Request {
  std::string method;
  std::string path;  // without query string
};

// Parses the request line and checks the header lines of `head` (everything before the blank
// line). Returns false for anything that is not an HTTP/1.x request.
bool ParseRequest(const std::string& head, Request* request) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= head.size()) {
    size_t end = head.find('\n', start);
    if (end == std::string::npos) end = head.size();
    std::string line = head.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = end + 1;
  }
  const std::string& first = lines.front();
  size_t sp1 = first.find(' ');
  size_t sp2 = sp1 == std::string::npos ? sp1 : first.find(' ', sp1 + 1);
  if (sp2 == std::string::npos || first.find(' ', sp2 + 1) != std::string::npos) return false;
  request->method = first.substr(0, sp1);
  std::string target = first.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string version = first.substr(sp2 + 1);
  if (request->method.empty() ||
      !std::all_of(request->method.begin(), request->method.end(), IsTokenChar)) {
    return false;
  }
  if (target.empty() || target.front() != '/') return false;
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return false;
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    size_t colon = line.find(':');
    if (colon == std::string::npos || colon == 0 || line.front() == ' ' || line.front() == '\t') {
      return false;
    }
  }
  request->path = target.substr(0, target.find_first_of("?#"));
  return true;
}

}  // namespace

AdminServer::Response JsonResponse(int status, std::string body) {
  return AdminServer::Response{status, "application/json", std::move(body)};
}

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(
    const std::string& address, std::map<std::string, Handler> routes) {
  return Start(address, std::move(routes), Options());
}

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(
    const std::string& address, std::map<std::string, Handler> routes, const Options& options) {
  if (options.max_connections == 0 || options.header_timeout.count() <= 0 ||
      options.write_timeout.count() <= 0) {
    return absl::InvalidArgumentError(
        "admin server options need max_connections >= 1 and positive timeouts");
  }
  for (const auto& [path, handler] : routes) {
    if (path.empty() || path.front() != '/' || !handler) {
      return absl::InvalidArgumentError(
          absl::StrCat("admin route \"", path, "\" needs a path starting with / and a handler"));
    }
  }
  auto parsed = ParseAddress(address);
  if (!parsed.ok()) return parsed.status();

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | (parsed->numeric_host ? AI_NUMERICHOST : 0);
  addrinfo* result = nullptr;
  int rc = getaddrinfo(parsed->host.empty() ? nullptr : parsed->host.c_str(), parsed->port.c_str(),
                       &hints, &result);
  if (rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--admin-addr \"", address, "\": cannot resolve host: ", gai_strerror(rc)));
  }
  std::vector<const addrinfo*> candidates;
  for (const addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) candidates.push_back(ai);
  // For all interfaces prefer the IPv6 wildcard: with IPV6_V6ONLY off it also accepts IPv4.
  if (parsed->host.empty()) {
    std::stable_sort(candidates.begin(), candidates.end(),
                     [](const addrinfo* a, const addrinfo* b) {
                       return a->ai_family == AF_INET6 && b->ai_family != AF_INET6;
                     });
  }
  int listen_fd = -1;
  int first_error = 0;
  for (const addrinfo* ai : candidates) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
      if (first_error == 0) first_error = errno;
      continue;
    }
    int one = 1;
    int zero = 0;
    // SO_REUSEADDR lets a restarted kvsync bind while old connections sit in TIME_WAIT; it does
    // not allow two listeners on one port.
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0) {
      listen_fd = fd;
      break;
    }
    if (first_error == 0) first_error = errno;
    close(fd);
  }
  freeaddrinfo(result);
  if (listen_fd < 0) return BindError(address, first_error != 0 ? first_error : EADDRNOTAVAIL);

  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0 || getsockname(listen_fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0) {
    int err = errno;
    close(listen_fd);
    if (wake_fd >= 0) close(wake_fd);
    return BindError(address, err);
  }
  int port = 0;
  std::string bound_address = FormatSockaddr(bound, &port);
  std::unique_ptr<AdminServer> server(
      new AdminServer(listen_fd, wake_fd, bound_address, port, std::move(routes), options));
  log::Info("http", "admin server listening", {{"address", bound_address}});
  return server;
}

AdminServer::AdminServer(int listen_fd, int wake_fd, std::string address, int port,
                         std::map<std::string, Handler> routes, const Options& options)
    : listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      address_(std::move(address)),
      port_(port),
      routes_(std::move(routes)),
      options_(options) {
  thread_ = runtime::Thread("admin-http", [this] { Run(); });
}

AdminServer::~AdminServer() {
  uint64_t one = 1;
  // The eventfd stays readable from now on, so the poll in Run() returns at once.
  while (write(wake_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
  thread_.Join();
  close(listen_fd_);
  close(wake_fd_);
}

AdminServer::Counters AdminServer::counters() const {
  return Counters{accepted_.load(std::memory_order_relaxed),
                  evicted_.load(std::memory_order_relaxed),
                  header_timeouts_.load(std::memory_order_relaxed),
                  write_timeouts_.load(std::memory_order_relaxed)};
}

struct AdminServer::Connection {
  enum class State {
    kReading,   // the request head, until header_timeout from accept
    kWriting,   // the response, until write_timeout
    kDraining,  // after shutdown(SHUT_WR): the client's leftover input, until kLingerTimeout
  };
  Connection(int fd, Clock::time_point deadline) : fd(fd), deadline(deadline) {}

  const int fd;
  State state = State::kReading;
  Clock::time_point deadline;  // of the current state
  std::string in;              // the request head so far, at most kMaxHeaderBytes
  std::string out;             // the response; out[sent..] is still to write
  size_t sent = 0;
  size_t drained = 0;
};

enum class AdminServer::Next { kKeep, kClose };

namespace {

// At most this many accepts per loop turn, so that a connect flood cannot starve the connections
// already open (eviction keeps the count bounded either way).
constexpr int kAcceptsPerTurn = 64;
// After accept() fails for lack of descriptors or memory the listener stays readable; it is left
// out of the poll set for this long instead of spinning.
constexpr std::chrono::milliseconds kAcceptPause(100);
constexpr std::chrono::minutes kEvictionLogInterval(1);

std::string Serialize(const AdminServer::Response& response, const std::string& extra_headers,
                      bool head_only) {
  std::string out = absl::StrCat("HTTP/1.1 ", response.status, " ", Reason(response.status),
                                 "\r\nContent-Type: ", response.content_type,
                                 "\r\nContent-Length: ", response.body.size(), "\r\n",
                                 extra_headers, "Connection: close\r\n\r\n");
  if (!head_only) out += response.body;
  return out;
}

std::string PlainError(int status, const char* body) {
  return Serialize(AdminServer::Response{status, "text/plain; charset=utf-8", body}, "", false);
}

}  // namespace

void AdminServer::Run() {
  std::vector<pollfd> fds;
  std::vector<std::list<Connection>::iterator> polled;  // polled[i] goes with fds[i + 2]
  while (true) {
    auto now = Clock::now();
    auto wake_at = Clock::time_point::max();
    for (auto it = connections_.begin(); it != connections_.end();) {
      if (it->deadline > now) {
        wake_at = std::min(wake_at, it->deadline);
        ++it;
        continue;
      }
      // A client that is this late gets no response: for one still reading, that is also what
      // an idle connection deserves.
      if (it->state == Connection::State::kReading) {
        header_timeouts_.fetch_add(1, std::memory_order_relaxed);
      } else if (it->state == Connection::State::kWriting) {
        write_timeouts_.fetch_add(1, std::memory_order_relaxed);
      }
      close(it->fd);
      it = connections_.erase(it);
    }
    bool listening = now >= accept_paused_until_;
    if (!listening) wake_at = std::min(wake_at, accept_paused_until_);

    fds.clear();
    polled.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    fds.push_back({listening ? listen_fd_ : -1, POLLIN, 0});  // poll() skips a negative fd
    for (auto it = connections_.begin(); it != connections_.end(); ++it) {
      short events = it->state == Connection::State::kWriting ? POLLOUT : POLLIN;
      fds.push_back({it->fd, events, 0});
      polled.push_back(it);
    }
    int timeout_ms = -1;
    if (wake_at != Clock::time_point::max()) {
      timeout_ms = static_cast<int>(std::max<int64_t>(
          0, std::chrono::ceil<std::chrono::milliseconds>(wake_at - now).count()));
    }
    int n = poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) log::Error("http", "admin server poll failed", {{"error", ErrnoText(errno)}});
    if (n < 0 || fds[0].revents != 0) break;
    for (size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      auto it = polled[i - 2];
      if (Progress(*it) == Next::kClose) {
        close(it->fd);
        connections_.erase(it);  // other iterators in `polled` stay valid
      }
    }
    if (listening && fds[1].revents != 0) AcceptSome();
  }
  for (const Connection& c : connections_) close(c.fd);
  connections_.clear();
}

void AdminServer::AcceptSome() {
  for (int i = 0; i < kAcceptsPerTurn; ++i) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err == EINTR || err == ECONNABORTED) continue;
      if (!accept_failing_) {
        log::Warn("http", "admin server accept failed", {{"error", ErrnoText(err)}});
        accept_failing_ = true;
      }
      accept_paused_until_ = Clock::now() + kAcceptPause;
      return;
    }
    accept_failing_ = false;
    accepted_.fetch_add(1, std::memory_order_relaxed);
    auto now = Clock::now();
    if (connections_.size() >= options_.max_connections) {
      auto victim = std::find_if(connections_.begin(), connections_.end(), [](const Connection& c) {
        return c.state == Connection::State::kReading;
      });
      if (victim == connections_.end()) victim = connections_.begin();
      close(victim->fd);
      connections_.erase(victim);
      uint64_t evicted = evicted_.fetch_add(1, std::memory_order_relaxed) + 1;
      if (now - last_eviction_log_ >= kEvictionLogInterval) {
        log::Warn("http", "admin server at its connection limit, closing the oldest",
                  {{"max_connections", static_cast<uint64_t>(options_.max_connections)},
                   {"evicted_total", evicted}});
        last_eviction_log_ = now;
      }
    }
    connections_.emplace_back(fd, now + options_.header_timeout);
    // A probe's request has usually arrived with the connection: answer it now.
    if (Progress(connections_.back()) == Next::kClose) {
      close(fd);
      connections_.pop_back();
    }
  }
}

AdminServer::Next AdminServer::Progress(Connection& c) {
  switch (c.state) {
    case Connection::State::kReading:
      return Read(c);
    case Connection::State::kWriting:
      return Write(c);
    case Connection::State::kDraining:
      return Drain(c);
  }
  return Next::kClose;
}

AdminServer::Next AdminServer::Read(Connection& c) {
  std::string response;
  while (response.empty()) {
    char chunk[4096];
    size_t want = std::min(sizeof(chunk), kMaxHeaderBytes - c.in.size());
    ssize_t n = recv(c.fd, chunk, want, 0);
    if (n == 0) return Next::kClose;  // the client went away before finishing its request
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? Next::kKeep : Next::kClose;
    }
    size_t search_from = c.in.size() >= 3 ? c.in.size() - 3 : 0;
    c.in.append(chunk, static_cast<size_t>(n));
    size_t crlf = c.in.find("\r\n\r\n", search_from);
    size_t lf = c.in.find("\n\n", search_from);
    size_t head_end = std::min(crlf, lf);  // bare LF line ends are tolerated
    if (!PlausibleStart(c.in)) {
      response = PlainError(400, "bad request\n");
    } else if (head_end != std::string::npos) {
      response = Respond(c.in.substr(0, head_end));
    } else if (c.in.size() >= kMaxHeaderBytes) {
      response = PlainError(431, "request headers too large\n");
    }
  }
  std::string().swap(c.in);
  c.out = std::move(response);
  c.state = Connection::State::kWriting;
  c.deadline = Clock::now() + options_.write_timeout;
  return Write(c);
}

AdminServer::Next AdminServer::Write(Connection& c) {
  while (c.sent < c.out.size()) {
    ssize_t n = send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (n > 0) {
      c.sent += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? Next::kKeep : Next::kClose;
    }
  }
  std::string().swap(c.out);
  shutdown(c.fd, SHUT_WR);
  c.state = Connection::State::kDraining;
  c.deadline = Clock::now() + kLingerTimeout;
  return Drain(c);
}

AdminServer::Next AdminServer::Drain(Connection& c) {
  while (c.drained < kMaxLingerBytes) {
    char chunk[4096];
    ssize_t n = recv(c.fd, chunk, sizeof(chunk), 0);
    if (n == 0) return Next::kClose;
    if (n > 0) {
      c.drained += static_cast<size_t>(n);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return Next::kKeep;
    } else if (errno != EINTR) {
      return Next::kClose;
    }
  }
  return Next::kClose;
}

std::string AdminServer::Respond(const std::string& head) const {
  Request request;
  if (!ParseRequest(head, &request)) return PlainError(400, "bad request\n");
  auto route = routes_.find(request.path);
  if (route == routes_.end()) return PlainError(404, "404 page not found\n");
  if (request.method != "GET" && request.method != "HEAD") {
    return Serialize(Response{405, "text/plain; charset=utf-8", "method not allowed\n"},
                     "Allow: GET, HEAD\r\n", false);
  }
  return Serialize(route->second(), "", request.method == "HEAD");
}

}  // namespace kvsync::http
