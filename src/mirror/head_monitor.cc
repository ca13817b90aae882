#include "mirror/head_monitor.h"

#include "common/clock.h"
#include "common/error_series.h"
#include "log/log.h"
#include "runtime/thread.h"

namespace kvsync::mirror {
HeadMonitor::HeadMonitor(etcd::KvApi* src, std::string key, std::chrono::milliseconds interval,
                         const common::StopToken* term_stop, Stats* stats)
    : src_(src), key_(std::move(key)), interval_(interval), term_stop_(term_stop), stats_(stats) {}

HeadMonitor::~HeadMonitor() { Stop(); }

void HeadMonitor::Start() {
  stats_->head.Reset();
  stats_->head_refusal.store(0);
  thread_ = runtime::Thread("head-monitor", [this] { Loop(); });
}

void HeadMonitor::Stop() {
  stop_.RequestStop();
  thread_.Join();
}

void HeadMonitor::Loop() {
  common::ErrorSeries failures;
  etcd::RangeRequest req;
  req.key = key_;
  req.keys_only = true;
  while (!stop_.stopped() && !term_stop_->stopped()) {
    // The head a reply carries was current no earlier than the request was sent.
    int64_t sent_ms = common::WallMs();
    auto resp = src_->Range(req);
    if (resp.ok()) {
      if (!failures.empty()) log::Info("mirror", "source head observed again");
      failures.Reset();
      stats_->head_refusal.store(0);
      stats_->source_head_revision.store(resp->header.revision);
      stats_->head.Observe(resp->header.revision, sent_ms, stats_->last_synced_revision.load());
    } else {
      stats_->head_poll_failures.fetch_add(1);
      Refusal refusal = RefusalOf(resp.status());
      if (refusal != Refusal::kNone) {
        stats_->head_refusal.store(static_cast<int>(refusal));
        stats_->refusals[static_cast<int>(refusal)].fetch_add(1);
      }
      if (failures.IsNew(resp.status())) {
        log::Warn("mirror", "cannot observe the source head revision", {{"error", resp.status()}});
      }
    }
    if (stop_.WaitFor(interval_)) break;
  }
}

}  // namespace kvsync::mirror
