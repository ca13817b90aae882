#include "tests/harness/wait.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace kvsync::testing {

bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds deadline,
             std::chrono::milliseconds poll) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (true) {
    if (cond()) return true;
    auto now = std::chrono::steady_clock::now();
    if (now >= end) return cond();
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(poll, end - now));
  }
}

namespace {

absl::Mutex ports_mu(absl::kConstInit);
std::set<int>& HandedOutPorts() ABSL_EXCLUSIVE_LOCKS_REQUIRED(ports_mu) {
  static auto* ports = new std::set<int>();
  return *ports;
}

}  // namespace

int FreePort() {
  absl::MutexLock lock(&ports_mu);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
              getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
    close(fd);
    if (!ok) continue;
    int port = ntohs(addr.sin_port);
    if (HandedOutPorts().insert(port).second) return port;
  }
  std::fprintf(stderr, "kvsync harness: no free port on 127.0.0.1: %s\n", std::strerror(errno));
  std::abort();
}

std::string MakeTempDir(const std::string& tag) {
  const char* base = std::getenv("TMPDIR");
  std::string safe_tag = tag;
  for (char& c : safe_tag) {
    if (c == '/' || c == ' ') c = '_';
  }
  std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/kvsync-" +
                        safe_tag + "-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    std::fprintf(stderr, "kvsync harness: mkdtemp(%s) failed: %s\n", pattern.c_str(),
                 std::strerror(errno));
    std::abort();
  }
  return std::string(buf.data());
}

}  // namespace kvsync::testing
