#include "http/admin_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kvsync::http {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Evaluates `cond` until it holds or `timeout` passes; returns the last result.
bool WaitUntil(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return cond();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

int CountOpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  int count = 0;
  while (const dirent* e = readdir(dir)) count += e->d_name[0] != '.';
  closedir(dir);
  return count - 1;
}

// A blocking client socket connected to 127.0.0.1:`port`, with a 10 s receive timeout as a
// safety net so that a broken server fails the test instead of hanging it.
int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << strerror(errno);
  return fd;
}

void SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    ASSERT_GT(n, 0) << strerror(errno);
    sent += static_cast<size_t>(n);
  }
}

// Reads until the server closes the connection.
std::string ReadToEof(int fd) {
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0) break;
    if (n < 0) {
      ADD_FAILURE() << "recv: " << strerror(errno);
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

struct Reply {
  int status = 0;
  std::string status_line;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

Reply Parse(const std::string& raw) {
  Reply r;
  size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos) {
    ADD_FAILURE() << "no header end in: " << raw;
    return r;
  }
  std::string head = raw.substr(0, end);
  r.body = raw.substr(end + 4);
  size_t line_end = head.find("\r\n");
  r.status_line = head.substr(0, line_end);
  if (r.status_line.size() >= 12) r.status = std::stoi(r.status_line.substr(9, 3));
  while (line_end != std::string::npos) {
    size_t start = line_end + 2;
    line_end = head.find("\r\n", start);
    std::string line =
        head.substr(start, line_end == std::string::npos ? line_end : line_end - start);
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    r.headers[absl::AsciiStrToLower(line.substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return r;
}

// Sends `request` verbatim on a fresh connection and returns the parsed reply.
Reply Exchange(int port, const std::string& request) {
  int fd = Connect(port);
  SendAll(fd, request);
  std::string raw = ReadToEof(fd);
  close(fd);
  return Parse(raw);
}

Reply Get(int port, const std::string& path, const std::string& method = "GET") {
  return Exchange(port, absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: test\r\n\r\n"));
}

sockaddr_in Loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// `n` non-blocking sockets connecting to 127.0.0.1:`port` that never send anything. connect()
// does not wait for the server, so a server that stops accepting cannot hang the test.
std::vector<int> ConnectIdle(int port, int n) {
  sockaddr_in addr = Loopback(port);
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      ADD_FAILURE() << "socket: " << strerror(errno);
      break;
    }
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 &&
        errno != EINPROGRESS) {
      ADD_FAILURE() << "connect: " << strerror(errno);
    }
    fds.push_back(fd);
  }
  return fds;
}

void CloseAll(const std::vector<int>& fds) {
  for (int fd : fds) close(fd);
}

// Waits until at least `want` of the non-blocking sockets `fds` have been closed by the server
// (EOF or reset), or `timeout` passes. Returns how many were closed; `bytes` counts what the
// server sent on them before closing.
int WaitForServerClose(const std::vector<int>& fds, int want, std::chrono::milliseconds timeout,
                       size_t* bytes) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<pollfd> open;
  open.reserve(fds.size());
  for (int fd : fds) open.push_back({fd, POLLIN, 0});
  int closed = 0;
  *bytes = 0;
  while (closed < want) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    if (poll(open.data(), open.size(), static_cast<int>(left.count())) <= 0) continue;
    for (pollfd& p : open) {
      if (p.fd < 0 || p.revents == 0) continue;
      char buf[4096];
      ssize_t n = recv(p.fd, buf, sizeof(buf), 0);
      if (n > 0) {
        *bytes += static_cast<size_t>(n);
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        ++closed;
        p.fd = -1;  // poll() ignores negative descriptors
      }
    }
  }
  return closed;
}

// GET `path` as a liveness probe would, on a fresh connection with a 1 s receive timeout: the
// test fails if the answer does not arrive before that timeout.
Reply Probe(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0);
  timeval tv{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));  // bounds connect() too
  sockaddr_in addr = Loopback(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ADD_FAILURE() << "probe " << path << ": connect: " << strerror(errno);
    close(fd);
    return Reply{};
  }
  SendAll(fd, absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: test\r\n\r\n"));
  std::string raw;
  char buf[4096];
  while (true) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0) break;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ADD_FAILURE() << "probe " << path << ": "
                    << (errno == EAGAIN || errno == EWOULDBLOCK ? "no answer within 1 s"
                                                                : strerror(errno));
      close(fd);
      return Reply{};
    }
    raw.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return Parse(raw);
}

// Both probes the Deployment uses answer correctly within the probe's 1 s receive timeout.
void ExpectProbesAnswer(int port) {
  Reply health = Probe(port, "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, R"({"status":"ok"})");
  Reply metrics = Probe(port, "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.body, HasSubstr("up 1"));
}

std::map<std::string, AdminServer::Handler> Routes() {
  return {
      {"/metrics",
       [] {
         return AdminServer::Response{200, "text/plain; version=0.0.4; charset=utf-8",
                                      "# HELP up Up.\n# TYPE up gauge\nup 1\n"};
       }},
      {"/healthz", [] { return JsonResponse(200, R"({"status":"ok"})"); }},
      {"/readyz", [] { return JsonResponse(503, R"({"ready":false})"); }},
  };
}

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = AdminServer::Start("127.0.0.1:0", Routes());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    port_ = server_->port();
  }

  std::unique_ptr<AdminServer> server_;
  int port_ = 0;
};

// Port 0 picks a free port, reported by port() and address().
TEST_F(AdminServerTest, ReportsTheBoundAddress) {
  EXPECT_GT(port_, 0);
  EXPECT_EQ(server_->address(), absl::StrCat("127.0.0.1:", port_));
}

// Registered paths answer 200 with the handler's content type, length and Connection: close.
TEST_F(AdminServerTest, GetServesRoutes) {
  Reply metrics = Get(port_, "/metrics");
  EXPECT_EQ(metrics.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(metrics.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(metrics.headers["connection"], "close");
  EXPECT_EQ(metrics.body, "# HELP up Up.\n# TYPE up gauge\nup 1\n");
  EXPECT_EQ(metrics.headers["content-length"], std::to_string(metrics.body.size()));

  Reply health = Get(port_, "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.headers["content-type"], "application/json");
  EXPECT_EQ(health.body, R"({"status":"ok"})");
}

// The handler's status code is passed through with its reason phrase.
TEST_F(AdminServerTest, HandlerStatusIsPassedThrough) {
  Reply ready = Get(port_, "/readyz");
  EXPECT_EQ(ready.status_line, "HTTP/1.1 503 Service Unavailable");
  EXPECT_EQ(ready.body, R"({"ready":false})");
}

// A query string does not change which route matches.
TEST_F(AdminServerTest, QueryStringIsIgnoredForRouting) {
  EXPECT_EQ(Get(port_, "/healthz?verbose=1").status, 200);
}

// HEAD sends the headers GET would send, with the same Content-Length, and no body.
TEST_F(AdminServerTest, HeadHasHeadersButNoBody) {
  Reply head = Get(port_, "/metrics", "HEAD");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(head.headers["content-length"], std::to_string(Get(port_, "/metrics").body.size()));
  EXPECT_EQ(head.body, "");
}

// Unknown paths are 404, also for other methods.
TEST_F(AdminServerTest, UnknownPathIsNotFound) {
  Reply r = Get(port_, "/nope");
  EXPECT_EQ(r.status_line, "HTTP/1.1 404 Not Found");
  EXPECT_EQ(r.headers["content-type"], "text/plain; charset=utf-8");
  EXPECT_EQ(Get(port_, "/", "POST").status, 404);
}

// Methods other than GET and HEAD on a known path are 405 with an Allow header.
TEST_F(AdminServerTest, OtherMethodsAreNotAllowed) {
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS"}) {
    Reply r = Get(port_, "/metrics", method);
    EXPECT_EQ(r.status_line, "HTTP/1.1 405 Method Not Allowed") << method;
    EXPECT_EQ(r.headers["allow"], "GET, HEAD") << method;
  }
}

// Anything that is not an HTTP/1.x request line with well-formed headers is 400.
TEST_F(AdminServerTest, GarbageIsBadRequest) {
  for (const char* request : {
           "garbage\r\n\r\n",
           "GET /metrics\r\n\r\n",
           "GET metrics HTTP/1.1\r\n\r\n",
           "GET /metrics HTTP/2.0\r\n\r\n",
           "GET  /metrics HTTP/1.1\r\n\r\n",
           "G(T /metrics HTTP/1.1\r\n\r\n",
           "GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n",
       }) {
    EXPECT_EQ(Exchange(port_, request).status_line, "HTTP/1.1 400 Bad Request") << request;
  }
}

// A stream that cannot be HTTP (here the start of a TLS hello, with no line end at all) gets its
// 400 as soon as the method is seen to be invalid, not after the read timeout.
TEST_F(AdminServerTest, NonHttpStreamIsBadRequestWithoutWaitingForHeaders) {
  const char hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0x03, 0x03};
  int fd = Connect(port_);
  SendAll(fd, std::string(hello, sizeof(hello)));
  // Read the reply without closing our side: only the early check can produce it.
  char buf[4096];
  ssize_t n = recv(fd, buf, sizeof(buf), 0);
  ASSERT_GT(n, 0) << strerror(errno);
  EXPECT_THAT(std::string(buf, static_cast<size_t>(n)), StartsWith("HTTP/1.1 400 Bad Request"));
  close(fd);
}

// Bare LF line endings are tolerated, as most servers do.
TEST_F(AdminServerTest, BareLineFeedsAreAccepted) {
  EXPECT_EQ(Exchange(port_, "GET /healthz HTTP/1.0\nHost: x\n\n").status, 200);
}

// Request headers beyond 8 KiB are refused with 431 (and the reply still reaches the client).
TEST_F(AdminServerTest, OversizedHeadersAreRefused) {
  std::string request = "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n";
  EXPECT_EQ(Exchange(port_, request).status, 431);
}

// Many clients in parallel are all served.
TEST_F(AdminServerTest, ConcurrentClientsAreAllServed) {
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) ok += Get(port_, "/healthz").status == 200;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 100);
}

// A client that sent part of a request line and then stalls does not hold up other clients.
TEST_F(AdminServerTest, SlowHeaderClientDoesNotDelayProbes) {
  int fds_before = CountOpenFds();
  int slow = Connect(port_);
  SendAll(slow, "GET /heal");
  // Connected: our socket is one more descriptor; accepted: the server's side is another.
  ASSERT_TRUE(WaitUntil([&] { return CountOpenFds() == fds_before + 2; }, std::chrono::seconds(5)));
  ExpectProbesAnswer(port_);
  close(slow);
}

// 200 connections that send nothing, all accepted and held, do not delay /healthz or /metrics.
TEST_F(AdminServerTest, TwoHundredIdleConnectionsDoNotDelayProbes) {
  int fds_before = CountOpenFds();
  std::vector<int> idle = ConnectIdle(port_, 200);
  EXPECT_TRUE(
      WaitUntil([&] { return CountOpenFds() == fds_before + 400; }, std::chrono::seconds(5)))
      << "the server should accept all 200 connections";
  ExpectProbesAnswer(port_);
  CloseAll(idle);
}

// Past the connection cap (256) the oldest connections still waiting for their request are
// closed to make room, so a flood of idle connections cannot lock probes out.
TEST(AdminServer, FloodBeyondTheConnectionCapEvictsTheOldestAndProbesStillAnswer) {
  AdminServer::Options options;
  options.header_timeout = std::chrono::minutes(1);  // only eviction can close connections
  auto server = AdminServer::Start("127.0.0.1:0", Routes(), options);
  ASSERT_TRUE(server.ok()) << server.status();
  int port = (*server)->port();
  const int flood = 300;
  std::vector<int> idle = ConnectIdle(port, flood);
  size_t bytes = 0;
  int evicted = WaitForServerClose(idle, flood - 256, std::chrono::seconds(5), &bytes);
  EXPECT_GE(evicted, flood - 256);
  EXPECT_EQ(bytes, 0u) << "evicted connections get no response";
  ExpectProbesAnswer(port);
  AdminServer::Counters counters = (*server)->counters();
  EXPECT_GE(counters.evicted, static_cast<uint64_t>(flood - 256));
  EXPECT_EQ(counters.header_timeouts, 0u);
  CloseAll(idle);
}

// Connections that do not complete their request head within the header deadline are closed
// without a response: silent ones and one that sent part of a request line.
TEST(AdminServer, IncompleteRequestsAreClosedAtTheHeaderDeadline) {
  AdminServer::Options options;
  options.header_timeout = std::chrono::milliseconds(300);
  auto server = AdminServer::Start("127.0.0.1:0", Routes(), options);
  ASSERT_TRUE(server.ok()) << server.status();
  int port = (*server)->port();
  std::vector<int> idle = ConnectIdle(port, 200);
  int slow = Connect(port);
  SendAll(slow, "GET /heal");
  idle.push_back(slow);
  size_t bytes = 0;
  EXPECT_EQ(WaitForServerClose(idle, 201, std::chrono::seconds(10), &bytes), 201);
  EXPECT_EQ(bytes, 0u);
  EXPECT_EQ((*server)->counters().header_timeouts, 201u);
  EXPECT_EQ((*server)->counters().evicted, 0u);
  ExpectProbesAnswer(port);
  CloseAll(idle);
}

// A client that requests a large response and never reads it does not hold up other clients,
// and is closed once the write deadline passes.
TEST(AdminServer, ClientThatDoesNotReadItsResponseDoesNotDelayProbes) {
  AdminServer::Options options;
  options.write_timeout = std::chrono::milliseconds(300);
  auto routes = Routes();
  routes["/big"] = [] {
    return AdminServer::Response{200, "text/plain", std::string(32 << 20, 'x')};
  };
  auto server = AdminServer::Start("127.0.0.1:0", std::move(routes), options);
  ASSERT_TRUE(server.ok()) << server.status();
  int port = (*server)->port();
  int stuck = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int small = 4096;
  setsockopt(stuck, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));  // keeps the window small
  sockaddr_in addr = Loopback(port);
  ASSERT_EQ(connect(stuck, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  SendAll(stuck, "GET /big HTTP/1.1\r\n\r\n");
  ExpectProbesAnswer(port);
  EXPECT_TRUE(WaitUntil([&] { return (*server)->counters().write_timeouts == 1; },
                        std::chrono::seconds(5)));
  close(stuck);
}

// The destructor wakes the server even while it waits for a silent client.
TEST(AdminServer, StopsPromptlyWhileAClientHoldsAnIdleConnection) {
  auto server = AdminServer::Start("127.0.0.1:0", Routes());
  ASSERT_TRUE(server.ok()) << server.status();
  int fds_before = CountOpenFds();
  int idle = Connect((*server)->port());
  // Connected: our socket is one more descriptor; accepted: the server's side is another.
  ASSERT_TRUE(WaitUntil([&] { return CountOpenFds() == fds_before + 2; }, std::chrono::seconds(5)));
  auto start = std::chrono::steady_clock::now();
  server->reset();
  auto took = std::chrono::steady_clock::now() - start;
  // The header deadline is 5 s; returning well before it shows the wake-up path was taken.
  EXPECT_LT(took, std::chrono::seconds(1));
  char c;
  EXPECT_EQ(recv(idle, &c, 1, 0), 0);
  close(idle);
}

// Malformed addresses are InvalidArgument with one clear sentence.
TEST(AdminServer, MalformedAddressesAreInvalidArgument) {
  auto bad = AdminServer::Start("xyz", Routes());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "--admin-addr \"xyz\" is not host:port");
  for (const char* address :
       {"", "9464", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:65536", "127.0.0.1:-1", "::1:9464",
        "[::1:9464", "[]:9464", "[1.2.3.4]:9464", "a b:9464"}) {
    auto r = AdminServer::Start(address, Routes());
    ASSERT_FALSE(r.ok()) << address;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << address;
    EXPECT_EQ(r.status().message(),
              absl::StrCat("--admin-addr \"", address, "\" is not host:port"));
  }
}

// A host that does not resolve is InvalidArgument naming the address.
TEST(AdminServer, UnresolvableHostIsInvalidArgument) {
  auto r = AdminServer::Start("no-such-host.invalid:0", Routes());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()),
              StartsWith("--admin-addr \"no-such-host.invalid:0\": cannot resolve host: "));
}

// Routes must be absolute paths with a handler.
TEST(AdminServer, BadRoutesAreInvalidArgument) {
  auto r = AdminServer::Start("127.0.0.1:0", {{"metrics", [] { return AdminServer::Response{}; }}});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  r = AdminServer::Start("127.0.0.1:0", {{"/metrics", nullptr}});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
}

// Binding a port that is in use names the address and the system's reason.
TEST(AdminServer, AddressInUseNamesAddressAndErrno) {
  auto first = AdminServer::Start("127.0.0.1:0", Routes());
  ASSERT_TRUE(first.ok()) << first.status();
  std::string address = absl::StrCat("127.0.0.1:", (*first)->port());
  auto second = AdminServer::Start(address, Routes());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(second.status().message(),
            absl::StrCat("--admin-addr ", address, ": Address already in use"));
}

// A non-local address cannot be bound.
TEST(AdminServer, NonLocalAddressIsFailedPrecondition) {
  auto r = AdminServer::Start("192.0.2.1:0", Routes());  // TEST-NET-1, never assigned locally
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(), "--admin-addr 192.0.2.1:0: Cannot assign requested address");
}

// ":port" and "0.0.0.0:port" listen on all interfaces, reachable through loopback.
TEST(AdminServer, AllInterfacesAreReachableOverLoopback) {
  for (const char* address : {":0", "0.0.0.0:0", "localhost:0"}) {
    auto server = AdminServer::Start(address, Routes());
    ASSERT_TRUE(server.ok()) << address << ": " << server.status();
    if (std::string(address) == "localhost:0" && (*server)->address()[0] == '[') continue;
    EXPECT_EQ(Get((*server)->port(), "/healthz").status, 200) << (*server)->address();
  }
  auto any = AdminServer::Start(":0", Routes());
  ASSERT_TRUE(any.ok());
  EXPECT_THAT((*any)->address(), testing::AnyOf(StartsWith("[::]:"), StartsWith("0.0.0.0:")));
}

// A bracketed IPv6 address is accepted where the host has IPv6.
TEST(AdminServer, BracketedIpv6Address) {
  int probe = socket(AF_INET6, SOCK_STREAM, 0);
  sockaddr_in6 loop{};
  loop.sin6_family = AF_INET6;
  loop.sin6_addr = in6addr_loopback;
  bool has_ipv6 = probe >= 0 && bind(probe, reinterpret_cast<sockaddr*>(&loop), sizeof(loop)) == 0;
  if (probe >= 0) close(probe);
  if (!has_ipv6) GTEST_SKIP() << "no IPv6 loopback on this host";
  auto server = AdminServer::Start("[::1]:0", Routes());
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->address(), absl::StrCat("[::1]:", (*server)->port()));
  auto all = AdminServer::Start("[::]:0", Routes());
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(Get((*all)->port(), "/healthz").status, 200);  // dual-stack: IPv4 loopback works
}

}  // namespace
}  // namespace kvsync::http
