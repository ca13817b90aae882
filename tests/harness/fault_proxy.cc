#include "tests/harness/fault_proxy.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace kvsync::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kReadSize = 256 << 10;
// Per direction; beyond this the proxy stops reading, so a slow side pushes back on the other.
constexpr size_t kMaxQueued = 8 << 20;
constexpr int kReadsPerWake = 8;

struct Chunk {
  Clock::time_point due;
  std::string data;
  size_t offset = 0;
};

void Reset(int fd) {
  if (fd < 0) return;
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  close(fd);
}

void SetNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

}  // namespace

struct FaultProxy::Conn {
  struct Direction {
    std::deque<Chunk> queue;
    size_t queued = 0;
    bool eof = false;   // the source sent FIN
    bool shut = false;  // FIN passed on to the sink
    void Clear() {
      queue.clear();
      queued = 0;
    }
  };
  int client = -1;
  int upstream = -1;  // -1 for connections accepted while blackholed
  bool connecting = false;
  bool blackholed = false;
  bool closed = false;
  int index = 0;   // accept order
  Direction up;    // client -> upstream
  Direction down;  // upstream -> client

  void Close(bool reset) {
    if (reset) {
      Reset(client);
      Reset(upstream);
    } else {
      close(client);
      if (upstream >= 0) close(upstream);
    }
    client = upstream = -1;
    closed = true;
  }
};

absl::StatusOr<std::unique_ptr<FaultProxy>> FaultProxy::Start(std::string upstream) {
  absl::string_view target = upstream;
  absl::ConsumePrefix(&target, "http://") || absl::ConsumePrefix(&target, "https://");
  size_t colon = target.rfind(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("upstream \"", upstream, "\" is not host:port"));
  }
  std::string host(target.substr(0, colon));
  std::string port(target.substr(colon + 1));
  if (absl::StartsWith(host, "[") && absl::EndsWith(host, "]"))
    host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* info = nullptr;
  int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &info);
  if (rc != 0 || info == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("upstream \"", upstream, "\" does not resolve: ", gai_strerror(rc)));
  }
  std::vector<char> addr(reinterpret_cast<char*>(info->ai_addr),
                         reinterpret_cast<char*>(info->ai_addr) + info->ai_addrlen);
  freeaddrinfo(info);

  int listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(local);
  if (listen_fd < 0 || bind(listen_fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0 ||
      listen(listen_fd, 512) != 0 ||
      getsockname(listen_fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) {
    int e = errno;
    if (listen_fd >= 0) close(listen_fd);
    return absl::InternalError(absl::StrCat("fault proxy listen: ", std::strerror(e)));
  }
  int wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    int e = errno;
    close(listen_fd);
    return absl::InternalError(absl::StrCat("fault proxy eventfd: ", std::strerror(e)));
  }
  std::unique_ptr<FaultProxy> proxy(
      new FaultProxy(listen_fd, wake_fd, ntohs(local.sin_port), std::move(addr)));
  proxy->thread_ = std::thread([p = proxy.get()] { p->Run(); });
  return proxy;
}

FaultProxy::FaultProxy(int listen_fd, int wake_fd, int port, std::vector<char> upstream_addr)
    : listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      port_(port),
      upstream_addr_(std::move(upstream_addr)),
      buffer_(kReadSize) {}

FaultProxy::~FaultProxy() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    applied_cv_.SignalAll();
  }
  uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof(one)) < 0) {
    // The eventfd counter cannot overflow here; nothing to do.
  }
  if (thread_.joinable()) thread_.join();
  for (auto& conn : conns_) conn->Close(/*reset=*/true);
  close(listen_fd_);
  close(wake_fd_);
}

std::string FaultProxy::address() const { return absl::StrCat("127.0.0.1:", port_); }

void FaultProxy::SetMode(Mode mode) {
  absl::MutexLock lock(&mu_);
  mode_ = mode;
  uint64_t generation = ++requested_;
  uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof(one)) < 0) {
    // See the destructor.
  }
  while (applied_ < generation && !stop_) applied_cv_.Wait(&mu_);
}

void FaultProxy::SetDelay(std::chrono::milliseconds one_way) { delay_ms_ = one_way.count(); }

void FaultProxy::SetConnectionDelay(int index, std::chrono::milliseconds one_way) {
  delayed_index_ms_ = one_way.count();
  delayed_index_ = index;
}

void FaultProxy::ApplyMode(Mode mode) {
  for (auto& conn : conns_) {
    switch (mode) {
      case Mode::kCut:
        conn->Close(/*reset=*/true);
        break;
      case Mode::kBlackhole:
        conn->blackholed = true;
        conn->up.Clear();
        conn->down.Clear();
        break;
      case Mode::kPass:
        if (conn->blackholed) conn->Close(/*reset=*/true);
        break;
    }
  }
  std::erase_if(conns_, [](const auto& c) { return c->closed; });
  connections_ = static_cast<int>(conns_.size());
  loop_mode_ = mode;
}

void FaultProxy::Accept() {
  while (true) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (loop_mode_ == Mode::kCut) {
      Reset(fd);
      continue;
    }
    SetNoDelay(fd);
    auto conn = std::make_unique<Conn>();
    conn->client = fd;
    conn->index = accepted_++;
    if (loop_mode_ == Mode::kBlackhole) {
      conn->blackholed = true;
      conns_.push_back(std::move(conn));
      continue;
    }
    const auto* addr = reinterpret_cast<const sockaddr*>(upstream_addr_.data());
    int up = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (up < 0) {
      Reset(fd);
      continue;
    }
    SetNoDelay(up);
    conn->upstream = up;
    if (connect(up, addr, upstream_addr_.size()) != 0) {
      if (errno != EINPROGRESS) {
        conn->Close(/*reset=*/true);
        continue;
      }
      conn->connecting = true;
    }
    conns_.push_back(std::move(conn));
  }
}

bool FaultProxy::Pump(Conn& c, short client_events, short upstream_events) {
  constexpr short kReadable = POLLIN | POLLHUP | POLLERR;
  auto discard = [this](int fd) {
    while (true) {
      ssize_t n = recv(fd, buffer_.data(), buffer_.size(), 0);
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
  };
  if (c.blackholed) {
    if ((client_events & kReadable) && !discard(c.client)) return false;
    if (c.upstream >= 0 && (upstream_events & kReadable) && !discard(c.upstream)) return false;
    return true;
  }

  auto delay = std::chrono::milliseconds(
      delay_ms_.load() + (c.index == delayed_index_.load() ? delayed_index_ms_.load() : 0));
  auto read = [&](int fd, Conn::Direction& d) {
    for (int i = 0; i < kReadsPerWake && d.queued < kMaxQueued; ++i) {
      ssize_t n = recv(fd, buffer_.data(), buffer_.size(), 0);
      if (n > 0) {
        d.queue.push_back(Chunk{Clock::now() + delay, std::string(buffer_.data(), n)});
        d.queued += n;
        if (static_cast<size_t>(n) < buffer_.size()) break;
      } else if (n == 0) {
        d.eof = true;
        break;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        break;
      } else if (errno != EINTR) {
        return false;
      }
    }
    return true;
  };
  auto flush = [&](Conn::Direction& d, int fd) {
    auto now = Clock::now();
    while (!d.queue.empty() && d.queue.front().due <= now) {
      Chunk& chunk = d.queue.front();
      ssize_t n = send(fd, chunk.data.data() + chunk.offset, chunk.data.size() - chunk.offset,
                       MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK;
      }
      chunk.offset += n;
      d.queued -= n;
      bytes_forwarded_ += n;
      if (chunk.offset == chunk.data.size()) d.queue.pop_front();
    }
    return true;
  };

  if (c.connecting && (upstream_events & (POLLOUT | POLLERR | POLLHUP))) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c.upstream, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) return false;
    c.connecting = false;
    upstream_events = 0;
  }
  if ((client_events & POLLERR) || (upstream_events & POLLERR)) return false;
  // Both directions of a socket closed by the peer while we already saw its FIN: nothing more
  // can be delivered to it.
  if (((client_events & POLLHUP) && c.up.eof) || ((upstream_events & POLLHUP) && c.down.eof)) {
    return false;
  }
  if ((client_events & kReadable) && !read(c.client, c.up)) return false;
  if (!c.connecting && (upstream_events & kReadable) && !read(c.upstream, c.down)) return false;
  if (!c.connecting && !flush(c.up, c.upstream)) return false;
  if (!flush(c.down, c.client)) return false;
  // Pass half-closes on once the queued bytes are through.
  if (!c.connecting && c.up.eof && c.up.queue.empty() && !c.up.shut) {
    shutdown(c.upstream, SHUT_WR);
    c.up.shut = true;
  }
  if (c.down.eof && c.down.queue.empty() && !c.down.shut) {
    shutdown(c.client, SHUT_WR);
    c.down.shut = true;
  }
  if (c.up.shut && c.down.shut) c.Close(/*reset=*/false);
  return true;
}

void FaultProxy::Run() {
  std::vector<pollfd> fds;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      if (applied_ != requested_) {
        ApplyMode(mode_);
        applied_ = requested_;
        applied_cv_.SignalAll();
      }
    }
    auto now = Clock::now();
    std::optional<Clock::time_point> next_due;
    auto want_write = [&](const Conn::Direction& d) -> short {
      if (d.queue.empty()) return 0;
      if (d.queue.front().due <= now) return POLLOUT;
      if (!next_due || d.queue.front().due < *next_due) next_due = d.queue.front().due;
      return 0;
    };
    fds.clear();
    fds.push_back({listen_fd_, POLLIN, 0});
    fds.push_back({wake_fd_, POLLIN, 0});
    for (const auto& c : conns_) {
      short client_events = 0;
      short upstream_events = 0;
      if (c->blackholed) {
        client_events = upstream_events = POLLIN;
      } else {
        if (!c->up.eof && c->up.queued < kMaxQueued) client_events |= POLLIN;
        client_events |= want_write(c->down);
        if (c->connecting) {
          upstream_events = POLLOUT;
        } else {
          if (!c->down.eof && c->down.queued < kMaxQueued) upstream_events |= POLLIN;
          upstream_events |= want_write(c->up);
        }
      }
      fds.push_back({c->client, client_events, 0});
      fds.push_back({c->upstream, upstream_events, 0});  // poll() skips a negative fd
    }
    int timeout_ms = -1;
    if (next_due) {
      auto wait = std::chrono::ceil<std::chrono::milliseconds>(*next_due - now);
      timeout_ms = static_cast<int>(std::max<int64_t>(wait.count(), 0));
    }
    if (poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) {
      // Only EFAULT/EINVAL/ENOMEM are possible; retrying is the best a test proxy can do.
      continue;
    }
    if (fds[1].revents & POLLIN) {
      uint64_t ignored;
      while (read(wake_fd_, &ignored, sizeof(ignored)) > 0) {
      }
    }
    // Pump only the connections that were polled; Accept() may append new ones below.
    size_t polled = conns_.size();
    for (size_t i = 0; i < polled; ++i) {
      Conn& c = *conns_[i];
      if (!Pump(c, fds[2 + 2 * i].revents, fds[3 + 2 * i].revents)) c.Close(/*reset=*/true);
    }
    if (fds[0].revents & POLLIN) Accept();
    std::erase_if(conns_, [](const auto& c) { return c->closed; });
    connections_ = static_cast<int>(conns_.size());
  }
}

}  // namespace kvsync::testing
