// Helpers shared by the integration tests that drive the kvsync binary against real etcd:
// where the binary is, a test etcd client, and a snapshot of a prefix. Any thread.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "etcd/client.h"

namespace kvsync::testing {

// $KVSYNC_BINARY (set by ctest), else src/cli/kvsync in the build tree of the running test.
std::string KvsyncBinary();

// A client for test set-up and checks (3 s request timeout). Aborts on invalid endpoints.
std::unique_ptr<etcd::Client> ConnectEtcd(const std::string& endpoints_csv);

// Every key/value under `prefix`; empty when the read fails.
std::map<std::string, std::string> DumpPrefix(etcd::Client* client, const std::string& prefix);

}  // namespace kvsync::testing
