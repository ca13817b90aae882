// Loop prevention between the two directions over one subtree, without looking at the data:
// the etcd2zk direction (etcd2zk/publisher.h) publishes etcd keys as ephemeral znodes of its
// own ZooKeeper sessions, and records each session's id in etcd BEFORE it creates any znode:
// `<meta-prefix>zk-sessions/<session id, 16 hex digits>` = the task's name. The zk2etcd
// direction asks this registry about the owner of every ephemeral znode it reads; a znode of
// a recorded session is the other direction's copy and is never copied back (nor are its etcd
// keys claimed or deleted because of it).
//
// Why the answer is exact: a znode with owner S exists only after S's record was committed, so
// a linearizable read made after the znode was seen finds the record if S is a reverse session;
// not finding it proves S never will be one (a reverse registers a session before its first
// create). Both answers are therefore cached for good; an unknown owner costs one read, once.
// When etcd cannot be read the answer is "reverse" (skip the znode: never copy what might be
// an echo) and nothing is cached, so the next read asks again.
//
// Threading: any thread (a mutex guards the cache; the etcd read runs outside it).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "etcd/api.h"

namespace kvsync::zk2etcd {

// The registry's prefix in `meta_prefix` and one session's record key.
std::string ReverseSessionPrefix(const std::string& meta_prefix);
std::string ReverseSessionKey(const std::string& meta_prefix, int64_t session_id);

class ReverseSessions {
 public:
  // `kv` is not owned and must outlive this.
  ReverseSessions(etcd::KvApi* kv, std::string meta_prefix);

  // Loads every recorded session (one range read); on error the cache is left as it was.
  absl::Status Preload();
  // Whether ephemeral owner `session_id` is a reverse session (see above); 0 is never one.
  bool IsReverse(int64_t session_id);

  // For metrics: etcd reads made for unknown owners, and owners found to be reverse sessions.
  int64_t lookups() const { return lookups_.load(); }

 private:
  etcd::KvApi* kv_;
  const std::string prefix_;
  absl::Mutex mu_;
  absl::flat_hash_map<int64_t, bool> known_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> lookups_{0};
};

}  // namespace kvsync::zk2etcd
