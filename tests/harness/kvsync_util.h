// Helpers shared by the integration tests that drive the kvsync binary against real etcd:
// where the binary is, a test etcd client, and a snapshot of a prefix. Any thread.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/stop_token.h"
#include "etcd/client.h"

namespace kvsync::testing {

// $KVSYNC_BINARY (set by ctest), else src/cli/kvsync in the build tree of the running test.
std::string KvsyncBinary();

// A client for test set-up and checks (3 s request timeout). Aborts on invalid endpoints.
std::unique_ptr<etcd::Client> ConnectEtcd(const std::string& endpoints_csv);

// Every key/value under `prefix`; empty when the read fails.
std::map<std::string, std::string> DumpPrefix(etcd::Client* client, const std::string& prefix);

// Every event of a watch (a key or range of one cluster, from a start revision), recorded by a
// reader thread of its own until destroyed. Aborts when the watch cannot be opened.
class EventRecorder {
 public:
  EventRecorder(etcd::Client* cluster, const etcd::WatchOptions& options);
  ~EventRecorder();
  EventRecorder(const EventRecorder&) = delete;
  EventRecorder& operator=(const EventRecorder&) = delete;
  std::vector<etcd::Event> events();

 private:
  std::unique_ptr<etcd::WatchStream> stream_;
  absl::Mutex mu_;
  std::vector<etcd::Event> events_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// A service provider's registration client: keeps leases alive on one cluster (one keep-alive
// round a second, as clients pace theirs) on a thread of its own until stopped or destroyed.
class Provider {
 public:
  Provider(etcd::Client* cluster, std::vector<int64_t> leases);
  ~Provider();
  Provider(const Provider&) = delete;
  Provider& operator=(const Provider&) = delete;
  void Stop();

 private:
  etcd::Client* cluster_;
  std::vector<int64_t> leases_;
  common::StopToken done_;
  std::thread thread_;
};

}  // namespace kvsync::testing
