// The per-watcher state machine of etcdwatch: fed with one watcher's responses in arrival
// order, it checks every delivered event against the writer's History and counts violations
// of each property:
//
//   ordered    revisions strictly increase (an older, never-seen revision arrived late)
//   unique     no event is delivered twice
//   reliable   every written change of the watched keys arrives, exactly as written, and
//              nothing that was not written arrives
//   atomic     all events of one revision arrive in one response
//   prev_kv    prev_kv is present with the previous value and revision for updates and
//              deletes, absent for creates
//   created    each watch answers "created" before its first event (with the expected watch
//              id), and put events carry the right version and create_revision
//   resumable  after a re-watch from the last seen revision + 1, the first event continues
//              exactly where the old watch stopped (no gap, no repeat)
//   synced     at the end the watcher has seen the last written revision
//
// An event can arrive before the writer has recorded its revision (the put's response is
// still on its way), so events wait in a queue until History covers them; Drain(at_end=true)
// settles the rest once the writer has stopped.
//
// Threading: one thread at a time (the watcher's connection thread, then the main thread
// after that thread has been joined). The History is shared and read-only here.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "etcd/types.h"
#include "watchcheck/history.h"

namespace kvsync::watchcheck {

enum class Property {
  kOrdered,
  kUnique,
  kReliable,
  kAtomic,
  kPrevKv,
  kCreated,
  kResumable,
  kSynced
};
inline constexpr int kNumProperties = 8;
const char* PropertyName(Property p);

class WatcherCheck {
 public:
  // `keys` maps each written key to its index in the WriteOps; `start_revision` is the first
  // revision the initial watch asks for; `prev_kv` whether the watch requested prev_kv.
  WatcherCheck(int id, const History* history, const absl::flat_hash_map<std::string, int>* keys,
               int64_t start_revision, bool prev_kv);

  // A watch (re)created with this expected id: the next response must be its "created".
  void ExpectCreated(int64_t watch_id);
  void OnCreated(const etcd::WatchResponse& response);
  // A response carrying events, received at `recv_ns` (steady clock).
  void OnEvents(const etcd::WatchResponse& response, int64_t recv_ns);
  // The old watch was abandoned and a new one asked for `start_revision`: the first event
  // after this point is checked for "resumable".
  void OnResume(int64_t start_revision);
  // Checks queued events that History now covers; with at_end, settles every queued event
  // (the writer has stopped, so an unknown revision was never written).
  void Drain(bool at_end);
  // End of run (after Drain(true)): counts "synced" and an incomplete last revision.
  void Finish();

  // Highest revision received so far (where a re-watch resumes from, minus one).
  int64_t max_received() const { return max_received_; }
  // Last revision checked in order (the "least revision" of a report is the minimum).
  int64_t last_revision() const { return cur_rev_; }
  int64_t events() const { return events_; }
  const std::array<int64_t, kNumProperties>& violations() const { return violations_; }
  bool failed() const;
  // The first few violations, one line each ("watcher 3: reliable: ...").
  const std::vector<std::string>& samples() const { return samples_; }
  // Delivery latency of each revision first seen: receipt minus the writer's ack, clamped at
  // 0, microseconds.
  const std::vector<int32_t>& latencies_us() const { return latencies_us_; }

 private:
  struct Seen {
    bool resume_marker = false;
    int64_t resume_start = 0;
    int64_t revision = 0;
    int key = -1;
    bool is_delete = false;
    int64_t value = -1;
    int64_t version = 0;
    int64_t create_revision = 0;
    bool has_prev = false;
    int64_t prev_value = -1;
    int64_t prev_mod_revision = 0;
    int64_t recv_ns = 0;
    int64_t response = 0;
  };

  void Check(const Seen& s, size_t known);
  void CloseRevision();
  void Violate(Property p, const std::string& detail);

  const int id_;
  const History* history_;
  const absl::flat_hash_map<std::string, int>* keys_;
  const bool prev_kv_;

  std::deque<Seen> pending_;
  int64_t max_received_ = 0;
  int64_t responses_ = 0;
  int64_t events_ = 0;
  bool awaiting_created_ = false;
  int64_t expected_watch_id_ = 0;

  // In-order position: the last checked revision, its history index, which of its keys came,
  // and in which response.
  int64_t cur_rev_ = 0;
  int64_t cur_idx_ = -1;
  uint64_t cur_mask_ = 0;
  int64_t cur_response_ = -1;
  int64_t next_idx_ = 0;  // first history index not yet delivered in order
  bool after_resume_ = false;
  int64_t resume_start_ = 0;
  std::vector<bool> seen_;  // per history index

  std::array<int64_t, kNumProperties> violations_{};
  std::vector<std::string> samples_;
  std::vector<int32_t> latencies_us_;
};

}  // namespace kvsync::watchcheck
