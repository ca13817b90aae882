#include "mirror/continuous_check.h"

#include <chrono>

#include "checker/checkpoint.h"
#include "checker/etcd_check.h"
#include "common/clock.h"
#include "log/log.h"
#include "runtime/thread.h"

namespace kvsync::mirror {
namespace {
constexpr char kLog[] = "check";
}  // namespace

ContinuousChecker::ContinuousChecker(const config::MirrorConfig& config, etcd::KvApi* src,
                                     etcd::ClusterApi* dst, const checker::KeyMapper& mapper,
                                     std::vector<etcd::Compare> fence,
                                     const common::StopToken* term_stop, Stats* stats)
    : config_(config),
      src_(src),
      dst_(dst),
      mapper_(mapper),
      fence_(std::move(fence)),
      term_stop_(term_stop),
      stats_(stats) {}

ContinuousChecker::~ContinuousChecker() { Stop(); }

void ContinuousChecker::Start() {
  thread_ = runtime::Thread("check-periodic", [this] { Loop(); });
}

void ContinuousChecker::Stop() {
  stop_.RequestStop();
  thread_.Join();
}

void ContinuousChecker::Loop() {
  int64_t n = 0;
  // The end of the term stops the checker too.
  common::StopCallback on_term_end(*term_stop_, [this] { stop_.RequestStop(); });
  while (!stop_.WaitFor(config_.check_interval)) {
    if (static_cast<sink::Phase>(stats_->phase.load()) != sink::Phase::kIncremental) continue;
    bool full = config_.check_full_every <= 1 || n % config_.check_full_every == 0;
    ++n;
    CheckOnce(full);
  }
}

void ContinuousChecker::CheckOnce(bool full) {
  checker::CheckOptions options;
  options.keys_only = !full;
  options.page_size = config_.page_size;
  options.show = 3;
  options.read_rate = config_.check_read_rate;
  options.confirm = true;
  options.checkpoint_key = checker::CheckpointKey(config_.meta_prefix, config_.name);
  options.confirm_timeout = std::chrono::milliseconds(60000);
  options.collect_repairs = full && config_.auto_repair != "none";
  options.compare_leases = !config_.no_leases;
  // Stops with the term or with Stop(), whichever comes first.
  common::StopToken check_stop;
  auto report = [&] {
    common::StopCallback on_stop(stop_, [&check_stop] { check_stop.RequestStop(); });
    common::StopCallback on_term(*term_stop_, [&check_stop] { check_stop.RequestStop(); });
    return checker::Check(src_, dst_, mapper_, options, &check_stop, &stats_->retries);
  }();
  if (!report.ok()) {
    if (!absl::IsCancelled(report.status())) {
      log::Warn(kLog, "continuous check failed", {{"error", report.status()}});
    }
    return;
  }
  stats_->check_dst_miss.store(report->counts.dst_miss);
  stats_->check_src_miss.store(report->counts.src_miss);
  if (full) stats_->check_mismatch.store(report->counts.mismatch);
  stats_->check_lease_mismatch.store(report->counts.lease_mismatch);
  stats_->check_last_ms.store(common::WallMs());
  stats_->check_duration_ms.store(static_cast<int64_t>(report->seconds * 1000));
  (full ? stats_->checks_full : stats_->checks_presence).fetch_add(1);
  if (!report->consistent()) {
    log::Warn(kLog, "consistency differences confirmed",
              {{"mode", full ? "full" : "presence"},
               {"dst_miss", report->counts.dst_miss},
               {"src_miss", report->counts.src_miss},
               {"mismatch", report->counts.mismatch},
               {"lease_mismatch", report->counts.lease_mismatch},
               {"source_revision", report->source_revision}});
  }
  if (!options.collect_repairs || report->repairs.empty()) return;
  if (config_.auto_repair == "src-miss") {
    std::erase_if(report->repairs,
                  [](const checker::Repair& r) { return r.kind != checker::DiffKind::kSrcMiss; });
  }
  if (report->repairs.empty()) return;
  absl::Status repaired = checker::RepairDifferences(
      dst_, fence_,
      checker::TaskLeases(dst_, checker::LeaseRecordPrefix(config_.meta_prefix, config_.name)),
      &check_stop, &stats_->retries, &*report);
  stats_->check_repairs.fetch_add(report->fixed);
  if (!repaired.ok()) {
    log::Warn(kLog, "auto-repair failed", {{"error", repaired}});
  }
}

}  // namespace kvsync::mirror
