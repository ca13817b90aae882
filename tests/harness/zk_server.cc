#include "tests/harness/zk_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "tests/harness/wait.h"

namespace kvsync::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr char kJava[] = "/usr/bin/java";
// zookeeper.jar's manifest lists its own dependencies (netty, slf4j-api, jute, ...);
// slf4j-simple gives the server a log (without a binding slf4j discards everything).
constexpr char kClasspath[] = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar";
constexpr char kMainClass[] = "org.apache.zookeeper.server.ZooKeeperServerMain";
constexpr milliseconds kReadyDeadline(30000);
constexpr milliseconds kStopGrace(5000);
constexpr milliseconds kFourLetterTimeout(2000);
constexpr int kStartAttempts = 3;

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

}  // namespace

ZkServer::ZkServer(ZkServerOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<ZkServer>> ZkServer::Start(ZkServerOptions options) {
  if (options.tick_time.count() <= 0) return absl::InvalidArgumentError("tick_time must be > 0");
  for (const char* path : {kJava, "/usr/share/java/zookeeper.jar"}) {
    if (!std::filesystem::exists(path)) {
      return absl::NotFoundError(absl::StrCat(path, " is missing (install zookeeper and java)"));
    }
  }
  for (int attempt = 1;; ++attempt) {
    std::unique_ptr<ZkServer> server(new ZkServer(options));
    absl::Status status = server->Init();
    if (status.ok()) return server;
    bool lost_port = absl::StrContains(server->LogTail(), "Address already in use");
    if (attempt == kStartAttempts || !lost_port) return status;
  }
}

absl::Status ZkServer::Init() {
  temp_dir_ = MakeTempDir(options_.name);
  data_dir_ = temp_dir_ + "/data";
  config_path_ = temp_dir_ + "/zoo.cfg";
  log_path_ = temp_dir_ + "/zookeeper.log";
  port_ = FreePort();
  std::error_code ec;
  std::filesystem::create_directories(data_dir_, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", data_dir_, ": ", ec.message()));
  {
    std::ofstream out(config_path_);
    out << "tickTime=" << options_.tick_time.count() << "\n"
        << "dataDir=" << data_dir_ << "\n"
        << "clientPort=" << port_ << "\n"
        << "clientPortAddress=127.0.0.1\n"
        << "minSessionTimeout=" << 2 * options_.tick_time.count() << "\n"
        << "maxSessionTimeout=60000\n"
        << "maxClientCnxns=0\n"
        << "admin.enableServer=false\n"
        << "4lw.commands.whitelist=*\n"
        << "forceSync=" << (options_.force_sync ? "yes" : "no") << "\n"
        << "autopurge.purgeInterval=0\n";
    for (const std::string& line : options_.extra_config) out << line << "\n";
    if (!out) return absl::InternalError("cannot write " + config_path_);
  }
  RETURN_IF_ERROR(Launch());
  return WaitServing(kReadyDeadline);
}

absl::Status ZkServer::Launch() {
  std::vector<std::string> argv = {
      kJava,
      absl::StrCat("-Xmx", options_.heap_mb, "m"),
      "-Dzookeeper.admin.enableServer=false",
      "-Dorg.slf4j.simpleLogger.showDateTime=true",
      "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
      "-cp",
      kClasspath,
  };
  if (options_.jute_maxbuffer > 0) {
    argv.push_back(absl::StrCat("-Djute.maxbuffer=", options_.jute_maxbuffer));
  }
  argv.push_back(kMainClass);
  argv.push_back(config_path_);
  ASSIGN_OR_RETURN(process_, Subprocess::Start(std::move(argv), log_path_));
  return absl::OkStatus();
}

absl::Status ZkServer::WaitServing(milliseconds deadline) {
  auto end = Clock::now() + deadline;
  std::string last;
  while (true) {
    if (!process_->Running()) {
      return absl::UnavailableError(absl::StrCat("zookeeper on port ", port_,
                                                 " exited during start; log tail:\n", LogTail()));
    }
    absl::StatusOr<std::string> reply = FourLetterWord("srvr");
    if (reply.ok() && absl::StrContains(*reply, "Mode:")) return absl::OkStatus();
    last = reply.ok() ? *reply : std::string(reply.status().message());
    if (Clock::now() >= end) {
      return absl::DeadlineExceededError(
          absl::StrCat("zookeeper on port ", port_, " not serving after ", deadline.count(),
                       " ms (last srvr reply: ", last, "); log tail:\n", LogTail()));
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
}

absl::StatusOr<std::string> ZkServer::FourLetterWord(const std::string& word) const {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port_);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return absl::UnavailableError(absl::StrCat("connect to 127.0.0.1:", port_, " failed"));
  }
  if (send(fd, word.data(), word.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(word.size())) {
    close(fd);
    return absl::UnavailableError("send failed");
  }
  // The server answers and closes the connection; read until EOF.
  std::string reply;
  auto deadline = Clock::now() + kFourLetterTimeout;
  char buf[4096];
  while (true) {
    pollfd p{fd, POLLIN, 0};
    int left = RemainingMs(deadline);
    if (left == 0 || poll(&p, 1, left) <= 0) {
      close(fd);
      return absl::DeadlineExceededError(absl::StrCat("no reply to ", word));
    }
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    reply.append(buf, n);
  }
  close(fd);
  return reply;
}

std::string ZkServer::connect_string() const { return absl::StrCat("127.0.0.1:", port_); }

bool ZkServer::running() { return process_ != nullptr && process_->Running(); }

void ZkServer::Stop() {
  if (process_ != nullptr) process_->Stop(kStopGrace);
}

void ZkServer::Kill() {
  if (process_ == nullptr) return;
  process_->Signal(SIGKILL);
  process_->Wait(kStopGrace);
}

absl::Status ZkServer::Restart() {
  Stop();
  RETURN_IF_ERROR(Launch());
  return WaitServing(kReadyDeadline);
}

std::string ZkServer::LogTail(size_t bytes) const {
  if (process_ != nullptr) return process_->LogTail(bytes);
  return "";
}

ZkServer::~ZkServer() {
  Stop();
  process_.reset();
  if (temp_dir_.empty()) return;
  if (std::getenv("KVSYNC_KEEP_TEMP") != nullptr) {
    std::fprintf(stderr, "kvsync harness: kept zookeeper temp dir %s\n", temp_dir_.c_str());
    return;
  }
  std::error_code ignored;
  std::filesystem::remove_all(temp_dir_, ignored);
}

}  // namespace kvsync::testing
