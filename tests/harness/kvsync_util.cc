#include "tests/harness/kvsync_util.h"

#include <cstdlib>
#include <filesystem>

#include "common/strings.h"

namespace kvsync::testing {

std::string KvsyncBinary() {
  if (const char* b = std::getenv("KVSYNC_BINARY")) return b;
  // <build>/tests/integration/<test> -> <build>/src/cli/kvsync
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe");
  return self.parent_path().parent_path().parent_path() / "src/cli/kvsync";
}

std::unique_ptr<etcd::Client> ConnectEtcd(const std::string& endpoints_csv) {
  etcd::ClientOptions o;
  o.endpoints = etcd::SplitEndpoints(endpoints_csv);
  o.request_timeout = std::chrono::milliseconds(3000);
  auto c = etcd::Client::Create(o);
  if (!c.ok()) std::abort();
  return std::move(*c);
}

std::map<std::string, std::string> DumpPrefix(etcd::Client* client, const std::string& prefix) {
  etcd::RangeRequest r;
  r.key = prefix;
  r.range_end = common::PrefixEnd(prefix);
  std::map<std::string, std::string> out;
  auto resp = client->Range(r);
  if (resp.ok()) {
    for (auto& kv : resp->kvs) out[kv.key] = std::move(kv.value);
  }
  return out;
}

EventRecorder::EventRecorder(etcd::Client* cluster, const etcd::WatchOptions& options) {
  auto stream = cluster->Watch(options);
  if (!stream.ok()) std::abort();
  stream_ = std::move(*stream);
  thread_ = std::thread([this] {
    while (true) {
      auto resp = stream_->Next();
      if (!resp.ok()) return;
      absl::MutexLock lock(&mu_);
      events_.insert(events_.end(), resp->events.begin(), resp->events.end());
    }
  });
}

EventRecorder::~EventRecorder() {
  stream_->Cancel();
  thread_.join();
}

std::vector<etcd::Event> EventRecorder::events() {
  absl::MutexLock lock(&mu_);
  return events_;
}

Provider::Provider(etcd::Client* cluster, std::vector<int64_t> leases)
    : cluster_(cluster), leases_(std::move(leases)), thread_([this] {
        do {
          cluster_->LeaseKeepAlive(leases_).IgnoreError();
        } while (!done_.WaitFor(std::chrono::milliseconds(1000)));
      }) {}

Provider::~Provider() { Stop(); }

void Provider::Stop() {
  done_.RequestStop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace kvsync::testing
