// "Which destination keys did this sync task write?" A sync task (zk2etcd) deletes from etcd
// only keys it owns, so that keys written by others under the same prefix survive. Three
// backends:
//
//   etcd   an ownership mark key (mark_prefix + "/" + hex digest of the key, empty value) is
//          put in the same etcd txn
//          as the data, and a delete is a nested txn guarded by the mark's existence. etcd
//          itself decides, atomically; Lookup always answers kOwned.
//   redis  a Redis set "<namespace>:<task>:owned" lists every key written. Keys are added
//          before the etcd txn that writes them (write-ahead) and removed after the txn that
//          deleted them. While Redis is down, syncing continues: records and forgets queue in
//          memory (and count as decided for Lookup), other keys are kUnknown so their deletes
//          wait; a background thread reconnects with backoff and flushes the queue.
//   none   every key counts as owned (the task owns its whole destination prefix).
//
// Threading: every Store is thread-safe; the Redis store runs one background thread
// ("redis-owners", stopped
// and joined by its destructor). The caller owns the Store (unique_ptr).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "etcd/types.h"
#include "redis/client.h"

namespace kvsync::ownership {

enum class Owner { kOwned, kNotOwned, kUnknown };

// Records which destination keys a sync task wrote, so that it deletes only those.
class Store {
 public:
  virtual ~Store() = default;
  // "redis" | "etcd" | "none".
  virtual std::string_view backend() const = 0;
  // True while ownership can be decided (Redis reachable). Always true for etcd/none.
  virtual bool available() const = 0;
  // Appends the ops that write `key`=`value` into etcd, including the ownership mark for the
  // etcd backend.
  virtual void AppendPut(const std::string& key, const std::string& value,
                         std::vector<etcd::Op>* ops) const = 0;
  // Appends the ops that delete `key` only if owned. etcd backend: one nested txn
  // {compare version(mark) > 0; success: delete key, delete mark} (TxnResponse::
  // nested_succeeded tells whether the delete happened); redis/none: a plain delete (the
  // caller checked Lookup first).
  virtual void AppendDelete(const std::string& key, std::vector<etcd::Op>* ops) const = 0;
  // Called BEFORE the etcd txn that puts `keys` (write-ahead: a crash never leaves a written
  // key unrecorded while the backend is up). Never fails; blocks at most for one Redis round
  // trip (io_timeout). While the backend is down the keys are queued (they count as owned)
  // and recorded when it returns.
  virtual void RecordWrites(const std::vector<std::string>& keys) = 0;
  // Called AFTER the etcd txn that deleted `keys`; same queueing while down.
  virtual void ForgetDeletes(const std::vector<std::string>& keys) = 0;
  // Ownership of each key (same order). etcd and none: kOwned (for etcd the txn's compare
  // decides). redis: set membership; while down, keys whose latest queued operation is a
  // record are kOwned, a forget kNotOwned, all others kUnknown.
  virtual std::vector<Owner> Lookup(const std::vector<std::string>& keys) = 0;
  // The etcd backend's mark key for `key` (empty for other backends), so full syncs can read
  // marks.
  virtual std::string MarkKey(const std::string& key) const { return {}; }
  // The etcd backend's mark prefix (every mark is MarkPrefix() + 32 hex digits of the key's
  // common::KeyDigest); empty for other backends.
  virtual std::string MarkPrefix() const { return {}; }
  // For metrics: records/forgets queued while the backend is down, and failed backend calls
  // (connects and commands) since start.
  virtual int64_t pending() const { return 0; }
  virtual int64_t errors() const { return 0; }
};

std::unique_ptr<Store> NewNoneStore();

// Marks live under `mark_prefix` (e.g. "/kvsync/meta/<task>/owned") + "/" + the key's digest
// (common::DigestHex(common::KeyDigest(key))), value empty.
std::unique_ptr<Store> NewEtcdStore(std::string mark_prefix);

// The Redis set "<ns>:<task>:owned". Fails with InvalidArgument on bad options and
// PermissionDenied when Redis refuses AUTH/SELECT at start. When Redis cannot be reached at
// start (Unavailable), the store is still returned, in down mode (available() false, one
// warning logged), so that a Redis outage never stops syncing.
//
// Down and up: any failed Redis call marks the store down (one warning line); a background
// thread reconnects with capped jittered backoff (100 ms .. 5 s), flushes the queue, and only
// then marks it up (one info line). While up it PINGs every second so that an idle store
// notices an outage. Queued operations keep their order per key: only the latest operation of
// each key is kept and applied (SADD/SREM are idempotent and keys are independent), so a key
// recorded then forgotten while down ends forgotten, and forgotten then recorded ends
// recorded. The queue lives in memory only: a crash while Redis is down loses it (keys then
// read as not owned, so they are never deleted: the safe side).
absl::StatusOr<std::unique_ptr<Store>> NewRedisStore(redis::Options options, std::string task,
                                                     const std::string& ns = "kvsync");

}  // namespace kvsync::ownership
