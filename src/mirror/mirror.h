// The etcd2etcd engine: keeps the destination prefix equal to the source prefix.
//
// Start-up picks the path: a checkpoint whose source history is still available → fast path
// (watch from checkpoint + 1, no copy); no checkpoint, an interrupted full sync, a compacted
// history or --reset-last-synced-rev → slow path (full sync at a pinned revision R, then watch
// from R + 1). The fast path applies each source revision as one destination txn (small
// consecutive revisions coalesced), with the checkpoint in the same txn.
//
// Threads: Run() is the engine thread and owns all engine state. Helper threads (the watch
// reader, range prefetch, the full-sync writer pool) only move data to and from it. stats()
// may be read from any thread. Stop by requesting a stop on the StopToken: the in-flight txn
// finishes and Run() returns OK.
#pragma once

#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "checker/checkpoint.h"
#include "checker/key_mapper.h"
#include "common/stop_token.h"
#include "config/config.h"
#include "etcd/client.h"
#include "mirror/stats.h"
#include "mirror/txn_writer.h"

namespace kvsync::mirror {

class Mirror {
 public:
  // The clients and `stats` must outlive the Mirror; `stats` may be shared by successive
  // Mirrors of one task (one per leadership term) so that counters keep counting.
  Mirror(config::MirrorConfig config, etcd::Client* src, etcd::Client* dst,
         const common::StopToken* stop, Stats* stats);
  ~Mirror();

  // Compares added to every destination txn (the leader's fence); a failed compare makes
  // Run() return election::IsFenced.
  void set_fence(std::vector<etcd::Compare> fence) {
    fence_ = fence;
    writer_.set_fence(std::move(fence));
  }

  // Returns OK when stopped or, with --once, when the destination matched the source at the
  // start revision. Errors: Unavailable (a cluster unreachable at start-up), FailedPrecondition
  // (the source is not the cluster the checkpoint was taken from, or is behind it; a key the
  // destination refuses; election::IsFenced when a fence compare failed), other permanent etcd
  // errors. Transient faults are retried inside.
  absl::Status Run();

 private:
  struct WatchQueue;

  absl::Status Start();
  absl::Status RunSync();
  absl::StatusOr<std::optional<checker::Checkpoint>> LoadCheckpoint();
  absl::StatusOr<int64_t> SourceRevision();
  absl::Status FullSync();
  // Returns OK when stopped or --once is done; IsCompacted when history is gone.
  absl::Status Incremental();
  absl::Status WatchOnce();
  absl::Status WriteCheckpoint(int64_t revision);
  checker::Checkpoint MakeCheckpoint(int64_t revision, bool pending) const;
  bool OnceDone() const;
  // Logs "caught up" the first time the destination reaches the start-up head revision.
  void NoteProgress();

  config::MirrorConfig config_;
  etcd::Client* src_;
  etcd::Client* dst_;
  const common::StopToken* stop_;
  checker::KeyMapper mapper_;
  std::vector<etcd::Compare> fence_;
  Stats& stats_;
  TxnWriter writer_;

  uint64_t source_cluster_id_ = 0;
  // Everything up to applied_ has been written to the destination; persisted_ is the revision
  // in the destination's checkpoint (persisted_ <= applied_).
  int64_t applied_ = 0;
  int64_t persisted_ = 0;
  // Source head revision at start-up: --once stops there, and reaching it is "caught up".
  int64_t start_head_ = 0;
  bool caught_up_logged_ = false;
};

}  // namespace kvsync::mirror
