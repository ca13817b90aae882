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
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "log/log.h"

namespace kvsync::http {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kMaxHeaderBytes = 8 * 1024;
constexpr std::chrono::seconds kReadTimeout(2);
constexpr std::chrono::seconds kWriteTimeout(10);
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
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0) {
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
      new AdminServer(listen_fd, wake_fd, bound_address, port, std::move(routes)));
  log::Info("http", "admin server listening", {{"address", bound_address}});
  return server;
}

AdminServer::AdminServer(int listen_fd, int wake_fd, std::string address, int port,
                         std::map<std::string, Handler> routes)
    : listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      address_(std::move(address)),
      port_(port),
      routes_(std::move(routes)) {
  thread_ = std::thread([this] { Run(); });
}

AdminServer::~AdminServer() {
  uint64_t one = 1;
  // The eventfd stays readable from now on, so every poll in Run() and Serve() returns at once.
  while (write(wake_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
  }
  thread_.join();
  close(listen_fd_);
  close(wake_fd_);
}

namespace {

enum class Ready { kYes, kTimeout, kStop };

// Waits until `fd` has `events`, the deadline passes, or the server is asked to stop.
Ready WaitFor(int fd, short events, int wake_fd, Clock::time_point deadline) {
  while (true) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return Ready::kTimeout;
    pollfd fds[2] = {{wake_fd, POLLIN, 0}, {fd, events, 0}};
    int n = poll(fds, 2, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || fds[0].revents != 0) return Ready::kStop;
    if (fds[1].revents != 0) return Ready::kYes;
  }
}

// Writes all of `data`; false when the peer is gone, too slow, or the server is stopping.
bool WriteAll(int fd, const std::string& data, int wake_fd) {
  auto deadline = Clock::now() + kWriteTimeout;
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (WaitFor(fd, POLLOUT, wake_fd, deadline) != Ready::kYes) return false;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

void AdminServer::Run() {
  bool accept_failing = false;
  while (true) {
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    int n = poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || fds[0].revents != 0) return;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED) continue;
      if (!accept_failing) {
        log::Warn("http", "admin server accept failed", {{"error", ErrnoText(err)}});
        accept_failing = true;
      }
      // Out of descriptors or memory: the listener stays readable, so pause instead of spinning.
      pollfd wake = {wake_fd_, POLLIN, 0};
      if (poll(&wake, 1, 100) > 0) return;
      continue;
    }
    accept_failing = false;
    Serve(fd);
    close(fd);
  }
}

void AdminServer::Serve(int fd) {
  std::string buf;
  size_t head_end = std::string::npos;
  bool garbage = false;
  auto deadline = Clock::now() + kReadTimeout;
  while (head_end == std::string::npos) {
    if (buf.size() >= kMaxHeaderBytes) break;
    char chunk[4096];
    size_t want = std::min(sizeof(chunk), kMaxHeaderBytes - buf.size());
    ssize_t n = recv(fd, chunk, want, 0);
    if (n == 0) return;  // the client went away before finishing its request
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return;
      // A slow or idle client is dropped without a response; a stop request ends at once.
      if (WaitFor(fd, POLLIN, wake_fd_, deadline) != Ready::kYes) return;
      continue;
    }
    size_t search_from = buf.size() >= 3 ? buf.size() - 3 : 0;
    buf.append(chunk, static_cast<size_t>(n));
    if (!PlausibleStart(buf)) {
      garbage = true;
      break;
    }
    size_t crlf = buf.find("\r\n\r\n", search_from);
    size_t lf = buf.find("\n\n", search_from);
    head_end = std::min(crlf, lf);  // bare LF line ends are tolerated
  }

  Response response;
  bool head_only = false;
  std::string extra_headers;
  Request request;
  if (garbage) {
    response = Response{400, "text/plain; charset=utf-8", "bad request\n"};
  } else if (head_end == std::string::npos) {
    response = Response{431, "text/plain; charset=utf-8", "request headers too large\n"};
  } else if (!ParseRequest(buf.substr(0, head_end), &request)) {
    response = Response{400, "text/plain; charset=utf-8", "bad request\n"};
  } else if (auto route = routes_.find(request.path); route == routes_.end()) {
    response = Response{404, "text/plain; charset=utf-8", "404 page not found\n"};
  } else if (request.method != "GET" && request.method != "HEAD") {
    response = Response{405, "text/plain; charset=utf-8", "method not allowed\n"};
    extra_headers = "Allow: GET, HEAD\r\n";
  } else {
    head_only = request.method == "HEAD";
    response = route->second();
  }

  std::string out = absl::StrCat("HTTP/1.1 ", response.status, " ", Reason(response.status),
                                 "\r\nContent-Type: ", response.content_type,
                                 "\r\nContent-Length: ", response.body.size(), "\r\n",
                                 extra_headers, "Connection: close\r\n\r\n");
  if (!head_only) out += response.body;
  if (!WriteAll(fd, out, wake_fd_)) return;

  shutdown(fd, SHUT_WR);
  auto linger_deadline = Clock::now() + kLingerTimeout;
  size_t drained = 0;
  while (drained < kMaxLingerBytes) {
    char chunk[4096];
    ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n == 0) return;
    if (n > 0) {
      drained += static_cast<size_t>(n);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (WaitFor(fd, POLLIN, wake_fd_, linger_deadline) != Ready::kYes) return;
    } else if (errno != EINTR) {
      return;
    }
  }
}

}  // namespace kvsync::http
