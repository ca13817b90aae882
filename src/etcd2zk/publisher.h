// The etcd → ZooKeeper direction of a migration (`kvsync etcd2zk`): services that already
// register in etcd stay discoverable by consumers that still read ZooKeeper. Every etcd key
// under the task's scope (zk2etcd/scope.h, the same flags as the forward task) that the
// zk2etcd direction did not write is published as an EPHEMERAL znode of this task's own
// ZooKeeper session: if kvsync dies, its session dies and its znodes vanish with it (after the
// session timeout); a new leader publishes them again.
//
// Loop prevention never looks at the data:
//   - before its first create, each session is recorded in etcd
//     (`<meta-prefix>zk-sessions/<id>`, zk2etcd/reverse_sessions.h, with the leader's fence),
//     and the zk2etcd direction never copies a znode owned by a recorded session;
//   - a key the zk2etcd direction wrote carries that task's ownership mark, put in the same txn
//     (`<meta-prefix><forward>/owned/<digest>`, ownership/store.h): a key whose mark exists at
//     the key's own revision is never published (the forward task must use --ownership etcd).
//
// A published znode carries a watch: another client that changes or deletes it is undone (the
// znode is restored from etcd, counted as a repair), so consumers never see a stale copy.
//
// What it never does: create parents (a key whose parent znode is missing is held and counted,
// `no-parent`), touch a znode it did not create in its current session (a path held by another
// znode, e.g. a provider registered in both registries, is `exists`: watched, and published
// when that znode goes), or write to etcd except its session records.
//
// Flow (one control thread, Run's caller): open a session, record it, read the scope and the
// forward marks at one revision, converge ZooKeeper to it, then apply the watch's events in
// revision order (one stream per scope root, each read by its own thread into one queue). A
// compacted or broken watch, a reconnect after a disconnection, or a queue holding more than
// --queue-bytes of events (ZooKeeper slower than etcd's changes: memory stays bounded) re-reads
// and converges again; an expired session starts over with a new session (its znodes are gone).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/stop_token.h"
#include "config/config.h"
#include "etcd/api.h"
#include "etcd/retry.h"
#include "runtime/thread.h"
#include "sink/write_stats.h"
#include "zk/session.h"
#include "zk2etcd/scope.h"

namespace kvsync::etcd2zk {

struct Stats {
  sink::WriteStats common;            // phase and role, as every task
  std::atomic<int> session_state{0};  // zk::SessionState as an int
  std::atomic<int64_t> session_id{0};
  std::atomic<int64_t> sessions{0};        // sessions opened and recorded
  std::atomic<int64_t> published{0};       // znodes the current session holds
  std::atomic<int64_t> held_exists{0};     // keys whose path another znode holds
  std::atomic<int64_t> held_no_parent{0};  // keys whose parent znode is missing (or ephemeral)
  std::atomic<int64_t> creates{0};
  std::atomic<int64_t> updates{0};
  std::atomic<int64_t> removes{0};
  std::atomic<int64_t> forward_skipped{0};  // key changes the zk2etcd direction wrote
  std::atomic<int64_t> zk_errors{0};
  std::atomic<int64_t> resyncs{0};    // scope re-read and converged (start included)
  std::atomic<int64_t> repairs{0};    // published znodes another client changed or deleted
  std::atomic<int64_t> overflows{0};  // event queue over its bound: replaced by a re-read
  std::atomic<int64_t> applied_revision{0};
  etcd::RetryCounters retries;
};

class Publisher {
 public:
  // `forward_mark_prefix`: the zk2etcd task's ownership mark prefix (ends with "/"); `zk`:
  // how to open sessions. `etcd` reads, watches and records sessions; not owned.
  Publisher(const config::Zk2EtcdConfig& config, std::string forward_mark_prefix,
            zk::SessionOptions zk, etcd::ClusterApi* etcd, const common::StopToken* stop,
            Stats* stats);
  ~Publisher();
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  void set_fence(std::vector<etcd::Compare> fence) { fence_ = std::move(fence); }
  // Asked at start and every 10 s: a non-OK answer (the migration phase stopped this
  // direction) ends Run() with it, closing the session.
  void set_phase_check(std::function<absl::Status()> check) { phase_check_ = std::move(check); }

  // Runs until stopped (OK). Errors: ZooKeeper refused auth, a fenced record write,
  // non-transient etcd errors. Closing the session on return removes every published znode.
  absl::Status Run();

 private:
  struct Work {
    enum class Kind { kEvents, kResync, kRetry, kExpired };
    Kind kind = Kind::kResync;
    std::vector<etcd::Event> events;  // kEvents
    std::string path;                 // kRetry
  };
  enum class Held { kExists, kNoParent };

  void Push(Work work);
  void OnZkEvent(const zk::WatchEvent& event);
  absl::Status OpenSession();
  absl::Status RecordSession();
  // Reads the scope and the forward marks at one revision into desired_; returns it.
  absl::StatusOr<int64_t> Load();
  absl::Status StartWatches(int64_t from_revision);
  void StopWatches();
  // Converges one path's znode to desired_; false when ZooKeeper failed transiently.
  bool Converge(const std::string& path);
  // A watch on `path` fired: a published znode is read again and restored if another client
  // changed or deleted it; any other path is converged.
  bool Recheck(const std::string& path);
  // An exists watch (fires on change and delete); with `version`, a re-check follows unless the
  // znode is still this session's at that version when the watch is armed.
  void Watch(const std::string& path, std::optional<int32_t> version);
  // Applies one revision's events; error: the mark could not be read (resync).
  absl::Status Apply(const std::vector<etcd::Event>& events);
  void Publish();  // held/published gauges

  const config::Zk2EtcdConfig& config_;
  const std::string forward_marks_;
  const zk::SessionOptions zk_options_;
  etcd::ClusterApi* etcd_;
  const common::StopToken* stop_;
  Stats* stats_;
  zk2etcd::Scope scope_;
  std::vector<etcd::Compare> fence_;
  std::function<absl::Status()> phase_check_;
  std::unique_ptr<zk::Session> session_;

  // Control thread state.
  std::map<std::string, std::string> desired_;    // path -> data: what ZooKeeper should have
  std::map<std::string, std::string> published_;  // path -> data: znodes this session created
  std::map<std::string, Held> held_;
  int64_t revision_ = 0;         // the last revision applied
  int64_t loaded_revision_ = 0;  // the last re-read's: older queued events are skipped

  // The work queue: watch threads and the session's callback feed it.
  absl::Mutex mu_;
  std::deque<Work> queue_ ABSL_GUARDED_BY(mu_);
  int64_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // of the kEvents work
  std::vector<std::unique_ptr<etcd::WatchStream>> streams_;
  std::vector<runtime::Thread> watchers_;
};

}  // namespace kvsync::etcd2zk
