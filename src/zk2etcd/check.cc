#include "zk2etcd/check.h"

#include <mutex>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "log/log.h"
#include "zk2etcd/guards.h"
#include "zk2etcd/node_table.h"
#include "zk2etcd/reverse_sessions.h"
#include "zk2etcd/scope.h"
#include "zk2etcd/snapshot.h"

namespace kvsync::zk2etcd {
namespace {

using checker::DiffKind;

struct Found {
  DiffKind kind;
  std::string path;  // empty for a src miss
  std::string key;
  std::string data;
  int64_t mod_revision = 0;  // 0: the key was absent
};

struct RoundResult {
  absl::flat_hash_map<KeyHash, Found> diffs;
  checker::DiffCounts counts;
  int64_t not_owned = 0;
  int64_t ownership_unknown = 0;
  int64_t unreadable = 0;
  int64_t owned = 0;  // owned keys in scope (the deletion guard's denominator)
  bool unreadable_unnamed = false;
  std::vector<std::string> missing_roots;
  int64_t zk_bytes = 0;
  int64_t etcd_bytes = 0;
  int64_t etcd_revision = 0;
  std::optional<ParityCounter> parity;  // with CheckOptions::service_depth
  int64_t reverse_copies = 0;           // znodes of the etcd2zk direction, not compared
};

absl::StatusOr<RoundResult> Round(const config::Zk2EtcdConfig& config, const Scope& scope,
                                  zk::Reader* session, etcd::KvApi* etcd, ownership::Store* owners,
                                  ReverseSessions* reverse, const CheckOptions& options,
                                  const common::StopToken& stop, etcd::RetryCounters* retries) {
  RoundResult out;
  if (absl::Status loaded = reverse->Preload(); !loaded.ok()) return loaded;
  if (options.service_depth > 0) out.parity.emplace(scope.roots(), options.service_depth);
  ASSIGN_OR_RETURN(Snapshot snap, Snapshot::Load(etcd, scope, owners->MarkPrefix(),
                                                 config.page_size, stop, retries));
  out.etcd_revision = snap.revision();
  out.etcd_bytes = snap.bytes_read();
  out.counts.destination_keys = snap.keys();
  std::mutex mu;  // visits run on the ZooKeeper session's loop thread
  zk::WalkOptions walk;
  walk.roots = scope.roots();
  walk.excludes = scope.walk_excludes();
  walk.concurrency = config.concurrency;
  walk.watch = false;
  walk.skip_unreadable = true;
  auto walked = session->Walk(
      walk,
      [&](const std::string& path, const std::string& data, const zk::Stat& stat) {
        if (!scope.Covers(path)) return;
        // The etcd2zk direction's copy of an etcd key: that key is its original, not a
        // difference (reverse_sessions.h).
        bool reverse_copy = stat.ephemeral_owner != 0 && reverse->IsReverse(stat.ephemeral_owner);
        std::lock_guard<std::mutex> lock(mu);
        if (reverse_copy) {
          Snapshot::Entry* e = snap.Find(HashKey(scope.KeyOf(path)));
          if (e != nullptr) e->visited = true;
          if (out.parity) {
            out.parity->CountZk(path);
            if (e != nullptr) out.parity->CountEtcd(path);
          }
          out.reverse_copies++;
          return;
        }
        out.counts.source_keys++;
        out.zk_bytes += static_cast<int64_t>(path.size() + data.size());
        if (options.progress != nullptr) options.progress->store(out.counts.source_keys);
        std::string key = scope.KeyOf(path);
        KeyHash h = HashKey(key);
        Snapshot::Entry* e = snap.Find(h);
        if (e != nullptr) e->visited = true;
        if (out.parity) {
          out.parity->CountZk(path);
          if (e != nullptr) out.parity->CountEtcd(path);
        }
        if (e != nullptr && e->value_hash == HashValue(data)) return;
        DiffKind kind = e == nullptr ? DiffKind::kDstMiss : DiffKind::kMismatch;
        (kind == DiffKind::kDstMiss ? out.counts.dst_miss : out.counts.mismatch)++;
        out.diffs[h] = Found{kind, path, key, data, e == nullptr ? 0 : e->mod_revision};
      },
      &stop);
  if (!walked.ok()) return walked.status();
  out.unreadable = walked->unreadable_count;
  out.missing_roots = walked->missing_roots;
  out.unreadable_unnamed =
      walked->unreadable_count > static_cast<int64_t>(walked->unreadable.size());
  absl::flat_hash_set<std::string> unreadable_nodes(walked->unreadable.begin(),
                                                    walked->unreadable.end());
  auto unreadable = [&](const std::string& key) {
    std::optional<std::string> path = scope.PathOf(key);
    return path && UnderAny(*path, unreadable_nodes);
  };
  std::vector<std::pair<std::string, Snapshot::Entry>> unvisited;
  RETURN_IF_ERROR(snap.ForEachUnvisited(
      etcd, scope, config.page_size, stop, retries,
      [&](const std::string& key, Snapshot::Entry& e) { unvisited.emplace_back(key, e); }));
  std::vector<std::string> keys;
  keys.reserve(unvisited.size());
  for (const auto& u : unvisited) keys.push_back(u.first);
  if (out.parity) {
    // Every key in etcd counts for its service, whoever wrote it.
    for (const std::string& key : keys) {
      if (std::optional<std::string> path = scope.PathOf(key)) out.parity->CountEtcd(*path);
    }
  }
  std::vector<ownership::Owner> owned = owners->Lookup(keys);
  // The deletion guard's denominator, as the syncer counts it.
  if (owners->backend() == "etcd") {
    out.owned = snap.marked_keys();
  } else {
    out.owned = snap.visited_keys();
    for (ownership::Owner o : owned) out.owned += o == ownership::Owner::kOwned ? 1 : 0;
  }
  for (size_t i = 0; i < unvisited.size(); ++i) {
    // Unknown ownership is never a src miss: nothing may delete a key it cannot prove is
    // kvsync's. Keys under an unreadable znode are not compared at all.
    if (unreadable(unvisited[i].first)) continue;
    if (owners->backend() != "etcd" && owned[i] == ownership::Owner::kUnknown) {
      out.ownership_unknown++;
      continue;
    }
    bool mine = owners->backend() == "etcd" ? unvisited[i].second.marked
                                            : owned[i] == ownership::Owner::kOwned;
    if (!mine) {
      out.not_owned++;
      if (out.parity) {
        if (std::optional<std::string> path = scope.PathOf(unvisited[i].first)) {
          out.parity->CountForeign(*path);
        }
      }
      continue;
    }
    out.counts.src_miss++;
    out.diffs[HashKey(unvisited[i].first)] =
        Found{DiffKind::kSrcMiss, "", unvisited[i].first, "", unvisited[i].second.mod_revision};
  }
  return out;
}

}  // namespace

absl::StatusOr<checker::CheckReport> Check(const config::Zk2EtcdConfig& config, zk::Reader* session,
                                           etcd::KvApi* etcd, etcd::TxnApi* etcd_txn,
                                           ownership::Store* owners, const CheckOptions& options,
                                           const common::StopToken& stop,
                                           etcd::RetryCounters* retries) {
  auto started = std::chrono::steady_clock::now();
  Scope scope(config.zk_prefixes, config.zk_excludes, config.etcd_prefix, config.meta_prefix);
  ReverseSessions reverse(etcd, config.meta_prefix);
  ASSIGN_OR_RETURN(RoundResult result,
                   Round(config, scope, session, etcd, owners, &reverse, options, stop, retries));
  checker::CheckReport report;
  report.zookeeper_source = true;
  if (options.confirm && !result.diffs.empty()) {
    ASSIGN_OR_RETURN(RoundResult second,
                     Round(config, scope, session, etcd, owners, &reverse, options, stop, retries));
    report.rounds = 2;
    int64_t first_total = static_cast<int64_t>(result.diffs.size());
    // Keep round 2's view of the differences round 1 also saw, with the same kind.
    absl::flat_hash_map<KeyHash, Found> confirmed;
    checker::DiffCounts counts = second.counts;
    counts.dst_miss = counts.src_miss = counts.mismatch = 0;
    for (auto& [h, f] : second.diffs) {
      auto it = result.diffs.find(h);
      if (it == result.diffs.end() || it->second.kind != f.kind) continue;
      (f.kind == DiffKind::kDstMiss   ? counts.dst_miss
       : f.kind == DiffKind::kSrcMiss ? counts.src_miss
                                      : counts.mismatch)++;
      confirmed.emplace(h, std::move(f));
    }
    second.diffs = std::move(confirmed);
    second.counts = counts;
    report.unconfirmed = std::max<int64_t>(0, first_total - counts.total());
    result = std::move(second);
  }
  if (result.parity && options.services != nullptr) {
    for (const auto& [h, f] : result.diffs) {
      std::string path = f.path.empty() ? scope.PathOf(f.key).value_or("") : f.path;
      result.parity->CountDifference(path, f.kind);
    }
    *options.services = result.parity->Services();
  }
  report.counts = result.counts;
  report.not_owned = result.not_owned;
  report.ownership_unknown = result.ownership_unknown;
  report.unreadable = result.unreadable;
  report.destination_revision = result.etcd_revision;
  report.source_bytes = result.zk_bytes;
  report.destination_bytes = result.etcd_bytes;
  // Samples in key order, so reports are stable.
  std::vector<const Found*> ordered;
  for (const auto& [h, f] : result.diffs) ordered.push_back(&f);
  std::sort(ordered.begin(), ordered.end(),
            [](const Found* a, const Found* b) { return a->key < b->key; });
  absl::flat_hash_map<int, int> shown;
  for (const Found* f : ordered) {
    if (shown[static_cast<int>(f->kind)]++ >= options.show) continue;
    report.samples.push_back(checker::CheckSample{f->kind, f->path, f->key});
  }
  if (options.fix) {
    // The syncer's deletion guard: a fix deletes src misses only when the walk saw every root
    // and they are not a mass removal.
    DeletePlan plan;
    plan.owned = result.owned;
    plan.missing_roots = result.missing_roots;
    plan.unreadable_unnamed = result.unreadable_unnamed;
    for (const Found* f : ordered) {
      if (f->kind != DiffKind::kSrcMiss) continue;
      plan.deletes++;
      for (const std::string& root : plan.missing_roots) {
        if (common::PathUnder(scope.PathOf(f->key).value_or(""), root)) {
          plan.under_missing_root++;
          break;
        }
      }
    }
    absl::Status judged =
        JudgeDeletes(plan, config.max_delete_fraction, config.confirm_mass_delete);
    if (!judged.ok()) {
      report.fix_held = plan.deletes;
      report.fix_held_reason = std::string(judged.message());
    }
    for (const Found* f : ordered) {
      if (f->kind == DiffKind::kSrcMiss && !judged.ok()) continue;
      etcd::TxnRequest txn;
      etcd::Compare cmp;
      cmp.key = f->key;
      if (f->mod_revision == 0) {
        cmp.target = etcd::Compare::Target::kVersion;
        cmp.number = 0;
      } else {
        cmp.target = etcd::Compare::Target::kModRevision;
        cmp.number = f->mod_revision;
      }
      txn.compares.push_back(cmp);
      if (f->kind == DiffKind::kSrcMiss) {
        owners->AppendDelete(f->key, &txn.success);
      } else {
        owners->AppendPut(f->key, f->data, &txn.success);
      }
      if (f->kind != DiffKind::kSrcMiss) owners->RecordWrites({f->key});
      auto resp =
          etcd::RetryTransient(stop, "fix txn", retries, [&] { return etcd_txn->Txn(txn); });
      if (!resp.ok()) return resp.status();
      if (resp->succeeded) {
        report.fixed++;
        if (f->kind == DiffKind::kSrcMiss) owners->ForgetDeletes({f->key});
      } else {
        report.fix_skipped++;
      }
    }
    log::Info("check", "repair done", {{"fixed", report.fixed}, {"skipped", report.fix_skipped}});
  }
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return report;
}

}  // namespace kvsync::zk2etcd
