// Runs an engine only while this instance leads its task (active/standby replicas).
//
// RunWhileLeader campaigns; once leading it calls `term(term_stop, fence)`. The term ends when
// the process is asked to stop, when the lease is lost (keep-alives failed for a TTL), or when
// the engine returns (a fenced write returns IsFenced). Then: on a stop request the instance
// resigns, so a standby takes over at once, and the function returns what the term returned
// (OK or the interrupted call's error; cli::ExitAfterRun treats both as the stop); on lost
// leadership or a fenced write it logs, counts, and campaigns again; on a transient engine
// error (etcd::IsTransient: a cluster unreachable) it resigns, backs off and campaigns again,
// so another replica may try. Any other engine error (a refusal, an error nobody classified)
// ends the loop with that error after resigning: it is never retried forever. A term never
// runs without a fence (checked: a violation aborts). Engine thread only.
#pragma once

#include <functional>

#include "absl/status/status.h"
#include "common/stop_token.h"
#include "election/elector.h"

namespace kvsync::election {

struct LeaderLoopObserver {
  std::function<void(bool leading)> on_role;               // after winning and after losing a term
  std::function<void()> on_fenced;                         // a write was rejected by the fence
  std::function<void(const absl::Status&)> on_term_error;  // a term ended with an error
};

// `term` must return soon after `term_stop` is stopped; it returns OK when stopped or done.
using TermFn = std::function<absl::Status(const common::StopToken& term_stop,
                                          std::vector<etcd::Compare> fence)>;

absl::Status RunWhileLeader(Elector* elector, const common::StopToken* stop, const TermFn& term,
                            const LeaderLoopObserver& observer = {});

}  // namespace kvsync::election
