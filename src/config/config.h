// Configuration of the sync tasks, filled by the CLI (flags and YAML) and checked by
// Validate*(), which also derives defaults (task name, destination prefix). Plain structs;
// built on the main thread, then read-only.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "etcd/client.h"

namespace kvsync::config {

// How to reach one etcd cluster (etcdctl's flags, per side).
struct EtcdConnection {
  std::string endpoints;  // comma-separated
  std::string cacert;
  std::string cert;
  std::string key;
  std::string user;  // "name" or "name:password" as etcdctl accepts
  std::string password;
  std::chrono::milliseconds dial_timeout{5000};
  std::chrono::milliseconds command_timeout{15000};
  int connections = 1;  // TCP connections per endpoint (etcd::ClientOptions::connections)

  // `side` names the cluster in messages ("source", "destination").
  etcd::ClientOptions ToClientOptions(const std::string& side) const;
};

struct MirrorConfig {
  EtcdConnection src;
  EtcdConnection dst;
  std::string prefix;
  std::string dst_prefix;  // empty after parsing means "same as prefix"
  bool dst_prefix_set = false;
  std::vector<std::string> exclude_prefixes;
  std::string name;           // derived from prefix when empty
  bool name_derived = false;  // set by validation when `name` was derived
  std::string meta_prefix = "/kvsync/meta/";
  int max_txn_ops = 128;
  int64_t max_request_bytes = 1536 * 1024;
  int inflight = 16;
  int page_size = 10000;
  // Watch responses buffered between the watch reader and the engine (bytes of memory they
  // take); a slow destination then pushes back on the source stream instead of growing memory.
  int64_t watch_buffer_bytes = 32 << 20;
  bool reset_last_synced_rev = false;
  bool once = false;
  // Active/standby: only the elected leader writes (--ha).
  bool ha = false;
  std::chrono::seconds lease_ttl{5};
  EtcdConnection election;                    // empty endpoints: the destination cluster
  std::string instance_id;                    // default: <hostname>-<pid>
  std::string admin_addr = "127.0.0.1:9464";  // empty: no admin server
  std::chrono::milliseconds ready_max_lag{30000};
  // Continuous checking in the leader: every check_interval (0 = off), full mode every
  // check_full_every-th check and presence mode in between; auto_repair none|src-miss|all.
  std::chrono::milliseconds check_interval{300000};
  int check_full_every = 1;
  std::string auto_repair = "src-miss";
  double check_read_rate = 0;  // keys/s per cluster for continuous checks (0 = unlimited)
  std::chrono::milliseconds progress_interval{5000};
  std::chrono::milliseconds status_interval{10000};
  // Lease-aware mirroring (mirror/lease_keeper.h): a key on source lease L is written on
  // destination lease L, granted with max(source TTL, lease_min_ttl) and kept alive while the
  // source lease lives; held while the source is unreachable for lease_hold (0: until promoted
  // or stopped). no_leases writes every key without a lease.
  bool no_leases = false;
  std::chrono::milliseconds lease_min_ttl{60000};
  std::chrono::milliseconds lease_hold{0};
  // Set by `kvsync failback` (no flag): adopt destination leases that already have a mirrored
  // ID (LeaseKeeper::Options::adopt_existing).
  bool adopt_leases = false;
  std::string log_level = "info";
  std::string log_format = "json";
};

// A ZooKeeper -> etcd task (kvsync zk2etcd and kvsync check zk2etcd).
struct Zk2EtcdConfig {
  std::string zk_servers;  // host:port,host:port[/chroot]
  std::vector<std::string> zk_prefixes;
  std::vector<std::string> zk_excludes;
  std::chrono::milliseconds zk_session_timeout{10000};
  std::string zk_auth;  // digest user:password
  EtcdConnection etcd;
  std::string etcd_prefix;  // prepended to every znode path ("" = keys are the znode paths)
  std::string name;         // derived from the first ZooKeeper prefix when empty
  std::string meta_prefix = "/kvsync/meta/";
  int concurrency = 64;  // ZooKeeper reads in flight
  int inflight = 8;      // etcd txns in flight
  int max_txn_ops = 128;
  int64_t max_request_bytes = 1536 * 1024;
  // Memory bound of the engine's queues: the applier's inbox holds at most this many bytes of
  // ZooKeeper results, the etcd writer's queue half as many.
  int64_t queue_bytes = 32 << 20;
  int page_size = 10000;
  std::chrono::milliseconds fullsync_interval{300000};  // 0 = only at start and on reconnect
  std::chrono::milliseconds coalesce{20};  // a parent's burst of child changes: max delay
  // Per-service parity (zk2etcd/parity.h): a service is the path this many levels below a
  // --zk-prefix; the periodic full sync exports the `parity_top` services without parity with
  // the most differences (0: no parity metrics).
  int service_depth = 1;
  int parity_top = 10;
  // > 0: copies of ephemeral znodes are attached to a lease of this TTL that kvsync keeps
  // alive (zk2etcd/ephemeral_lease.h); 0: they are plain keys.
  std::chrono::milliseconds ephemeral_lease_ttl{0};
  std::string ownership = "etcd";  // redis | etcd | none
  // Deletion guards: a --zk-prefix root (or the chroot) missing at start-up is a configuration
  // error unless allow_missing_prefix; a full-sync round that would delete more than
  // max_delete_fraction of the owned keys, or any key under a root it found missing, deletes
  // nothing unless confirm_mass_delete.
  bool allow_missing_prefix = false;
  double max_delete_fraction = 0.1;
  bool confirm_mass_delete = false;
  std::string redis_addr;
  std::string redis_password;
  int redis_db = 0;
  bool redis_tls = false;
  std::string redis_cacert;
  std::string redis_cert;
  std::string redis_key;
  bool once = false;
  bool ha = false;
  std::chrono::seconds lease_ttl{5};
  EtcdConnection election;  // empty endpoints: the destination cluster
  std::string instance_id;
  std::string admin_addr = "127.0.0.1:9464";
  std::chrono::milliseconds ready_max_lag{30000};
  std::chrono::milliseconds status_interval{10000};
  std::string log_level = "info";
  std::string log_format = "json";

  // The etcd key of a znode path, and back (nullopt for keys outside --etcd-prefix).
  std::string KeyOf(const std::string& path) const { return etcd_prefix + path; }
  // Where kvsync keeps this task's bookkeeping (ownership marks, election).
  std::string TaskMeta() const { return meta_prefix + name + "/"; }
};

// Checks every field of a zk2etcd task and fills defaults (name, election connection).
absl::Status ValidateZk2EtcdConfig(Zk2EtcdConfig* config);

// The default etcd2etcd task name of a prefix, injective so that two scopes never share a
// checkpoint: "/registry/services/" -> "registry-services", "/" -> "root"; prefixes not of the
// form "/seg/.../" with segments of [A-Za-z0-9_.] get a digest: "/a-b/" -> "a-b~<12 hex>".
std::string DeriveTaskName(const std::string& prefix);
// A readable but not injective name ("/a-b" and "/a/b" both give "a-b"; "" or "/" -> "root").
// zk2etcd derives its task names with it (its ownership marks live under that name).
std::string ReadableName(const std::string& prefix);

// Checks every field and fills derived defaults. Errors are InvalidArgument with one sentence
// naming the flag.
absl::Status ValidateMirrorConfig(MirrorConfig* config);

}  // namespace kvsync::config
