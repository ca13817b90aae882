// `kvsync check zk2etcd`: compares a ZooKeeper tree with its etcd mirror without writing
// (unless asked to fix). A round loads the etcd keys into a Snapshot, walks the tree (no
// watches) comparing each znode's data, and names etcd keys no znode matched with a keys-only
// second pass. Keys of other writers (not owned per the task's ownership backend) are counted
// as not owned, never as src miss. With `confirm`, a second round runs and only differences
// seen in both count. Fix writes each confirmed difference in its own txn, with a compare on
// what the check read (key absent, or its mod revision), so a key the syncer changed meanwhile
// is skipped. One thread. ZooKeeper and etcd are reached through their seams (zk/api.h,
// etcd/api.h).
#pragma once

#include <atomic>
#include <vector>

#include "absl/status/statusor.h"
#include "checker/etcd_check.h"
#include "common/stop_token.h"
#include "config/config.h"
#include "etcd/api.h"
#include "etcd/retry.h"
#include "ownership/store.h"
#include "zk/api.h"
#include "zk2etcd/parity.h"

namespace kvsync::zk2etcd {

struct CheckOptions {
  int show = 10;
  bool confirm = true;
  bool fix = false;
  std::atomic<int64_t>* progress = nullptr;  // znodes walked (optional)
  // > 0: per-service parity (zk2etcd/parity.h) with services this many levels below each
  // root, written to `services` (required then).
  int service_depth = 0;
  std::vector<ServiceParity>* services = nullptr;
};

absl::StatusOr<checker::CheckReport> Check(const config::Zk2EtcdConfig& config, zk::Reader* session,
                                           etcd::KvApi* etcd, etcd::TxnApi* etcd_txn,
                                           ownership::Store* owners, const CheckOptions& options,
                                           const common::StopToken& stop,
                                           etcd::RetryCounters* retries);

}  // namespace kvsync::zk2etcd
