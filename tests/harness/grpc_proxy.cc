#include "tests/harness/grpc_proxy.h"

#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "etcd/client.h"
#include "tests/harness/wait.h"

namespace kvsync::testing {
namespace {

constexpr char kEtcd[] = "/usr/bin/etcd";
constexpr std::chrono::seconds kReadyDeadline(20);

}  // namespace

GrpcProxy::GrpcProxy(GrpcProxyOptions options) : options_(std::move(options)) {}

GrpcProxy::~GrpcProxy() {
  Stop();
  if (!temp_dir_.empty() && std::getenv("KVSYNC_KEEP_TEMP") == nullptr) {
    std::error_code ignored;
    std::filesystem::remove_all(temp_dir_, ignored);
  }
}

absl::StatusOr<std::unique_ptr<GrpcProxy>> GrpcProxy::Start(GrpcProxyOptions options) {
  if (!std::filesystem::exists(kEtcd)) return absl::NotFoundError("no /usr/bin/etcd");
  std::unique_ptr<GrpcProxy> proxy(new GrpcProxy(std::move(options)));
  proxy->temp_dir_ = MakeTempDir(proxy->options_.name);
  proxy->log_path_ = proxy->temp_dir_ + "/proxy.log";
  absl::Status last;
  for (int attempt = 0; attempt < 3; ++attempt) {
    proxy->port_ = FreePort();
    last = proxy->Launch();
    if (last.ok()) last = proxy->WaitReady();
    if (last.ok()) return proxy;
    bool lost_port = absl::StrContains(proxy->LogTail(), "address already in use");
    proxy->Stop();
    if (!lost_port) break;
  }
  return last;
}

std::string GrpcProxy::address() const { return absl::StrCat("127.0.0.1:", port_); }

absl::Status GrpcProxy::Launch() {
  std::vector<std::string> argv = {kEtcd, "grpc-proxy", "start",
                                   "--endpoints=" + absl::StrJoin(options_.endpoints, ","),
                                   "--listen-addr=" + address()};
  if (!options_.ca_file.empty()) argv.push_back("--cacert=" + options_.ca_file);
  if (!options_.cert_file.empty()) argv.push_back("--cert=" + options_.cert_file);
  if (!options_.key_file.empty()) argv.push_back("--key=" + options_.key_file);
  auto p = Subprocess::Start(argv, log_path_);
  if (!p.ok()) return p.status();
  process_ = std::move(*p);
  return absl::OkStatus();
}

absl::Status GrpcProxy::WaitReady() {
  etcd::ClientOptions o;
  o.endpoints = {address()};
  o.request_timeout = std::chrono::milliseconds(1000);
  o.name = options_.name;
  etcd::RangeRequest probe;
  probe.key = "/kvsync-harness-probe";
  bool exited = false;
  absl::Status last;
  bool ready = WaitFor(
      [&] {
        if (!process_->Running()) {
          exited = true;
          return true;
        }
        // A fresh channel per attempt: a channel whose first connection raced the proxy's
        // start-up was seen to stay unusable for the whole deadline.
        auto client = etcd::Client::Create(o);
        if (!client.ok()) {
          last = client.status();
          return false;
        }
        last = (*client)->Range(probe).status();
        return last.ok();
      },
      kReadyDeadline, std::chrono::milliseconds(50));
  if (exited) {
    return absl::UnavailableError(absl::StrCat(options_.name, " exited:\n", LogTail()));
  }
  if (!ready) {
    return absl::DeadlineExceededError(absl::StrCat(options_.name, " did not answer within 20 s (",
                                                    last.ToString(), "):\n", LogTail()));
  }
  return absl::OkStatus();
}

void GrpcProxy::Stop() {
  if (process_) process_->Stop();
}

absl::Status GrpcProxy::Restart() {
  Stop();
  if (absl::Status s = Launch(); !s.ok()) return s;
  return WaitReady();
}

bool GrpcProxy::Running() { return process_ && process_->Running(); }

std::string GrpcProxy::LogTail() const { return process_ ? process_->LogTail() : ""; }

}  // namespace kvsync::testing
