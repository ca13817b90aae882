#include "election/leader_loop.h"

#include <thread>

#include "common/backoff.h"
#include "common/check.h"
#include "common/error_series.h"
#include "etcd/types.h"
#include "log/log.h"

namespace kvsync::election {
namespace {
constexpr char kLog[] = "election";
}  // namespace

absl::Status RunWhileLeader(Elector* elector, const common::StopToken* stop, const TermFn& term,
                            const LeaderLoopObserver& observer) {
  common::Backoff backoff(std::chrono::milliseconds(200), std::chrono::milliseconds(5000));
  common::ErrorSeries failures;
  while (!stop->stopped()) {
    absl::Status campaigned = elector->Campaign();
    if (absl::IsCancelled(campaigned)) break;
    // Every campaign starts from a fresh lease, so its failures (unreachable, a lease that
    // expired meanwhile, a refusal an operator fixes) are retried, logged once per kind.
    if (!campaigned.ok()) {
      if (failures.IsNew(campaigned)) {
        log::Warn(kLog, "campaign failed, retrying",
                  {{"error", campaigned}, {"attempt", backoff.attempt() + 1}});
      }
      if (stop->WaitFor(backoff.Next())) break;
      continue;
    }
    backoff.Reset();
    failures.Reset();
    if (observer.on_role) observer.on_role(true);

    // The term ends on a stop request or a lost lease, whichever comes first.
    std::vector<etcd::Compare> fence = elector->Fence();
    KVSYNC_CHECK(!fence.empty()) << "a term would write unfenced: Campaign succeeded but "
                                    "the elector holds no leader key";
    common::StopToken term_stop;
    absl::Status result = [&] {
      common::StopCallback on_stop(*stop, [&term_stop] { term_stop.RequestStop(); });
      common::StopCallback on_lost(elector->lost_token(),
                                   [&term_stop] { term_stop.RequestStop(); });
      return term(term_stop, std::move(fence));
    }();
    if (observer.on_role) observer.on_role(false);

    if (IsFenced(result)) {
      log::Warn(kLog, "fenced: a write was rejected, stepping down", {{"error", result}});
      if (observer.on_fenced) observer.on_fenced();
      elector->Resign();
      continue;
    }
    if (stop->stopped()) {
      // Whatever the term returned while stopping (Cancelled, an interrupted connect) is the
      // stop; the caller maps it (cli::ExitAfterRun).
      elector->Resign();
      return result;
    }
    // A term cut short by the lost lease ends OK or Cancelled: campaign again.
    if (elector->lost() && (result.ok() || absl::IsCancelled(result))) {
      log::Warn(kLog, "lost leadership, campaigning again");
      elector->Resign();
      continue;
    }
    if (!result.ok() && observer.on_term_error) observer.on_term_error(result);
    if (etcd::IsTransient(result)) {
      // E.g. the source is unreachable: let another replica try while this one backs off.
      log::Warn(kLog, "term failed, stepping down", {{"error", result}});
      elector->Resign();
      if (stop->WaitFor(backoff.Next())) break;
      continue;
    }
    // Done on its own (e.g. --once), or an error that is not transient (a refusal, an error
    // nobody classified): hand over and return it, never retried forever.
    elector->Resign();
    return result;
  }
  return absl::OkStatus();
}

}  // namespace kvsync::election
