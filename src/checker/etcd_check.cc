#include "checker/etcd_check.h"

#include <chrono>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "checker/checkpoint.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "log/log.h"
#include "nlohmann/json.hpp"

namespace kvsync::checker {

namespace {

// One merge-join pass. With `collect`, remembers the destination key of every difference (up to
// max_tracked; *overflow is set beyond). With `confirmed_only`, counts and samples only
// differences whose key is in it (or untracked after an overflow); the others are
// `unconfirmed`.
absl::StatusOr<CheckReport> Round(etcd::KvApi* src, etcd::KvApi* dst, const KeyMapper& mapper,
                                  const CheckOptions& options, const common::StopToken* stop,
                                  etcd::RetryCounters* retries,
                                  absl::flat_hash_set<std::string>* collect, bool* overflow,
                                  const absl::flat_hash_set<std::string>* confirmed_only,
                                  bool confirmed_overflow) {
  auto started = std::chrono::steady_clock::now();
  // Rate-limited pages hold at most one second of budget, so pacing stays smooth.
  CheckOptions paced = options;
  if (options.read_rate > 0) {
    paced.page_size = static_cast<int>(
        std::max<double>(100, std::min<double>(options.page_size, options.read_rate)));
  }
  common::RateLimiter src_rate(options.read_rate);
  common::RateLimiter dst_rate(options.read_rate);
  RangeCursor src_cursor(src,
                         {mapper.src_prefix(), mapper.src_range_end(), 0, paced.page_size,
                          options.keys_only, options.serializable, &src_rate, options.progress},
                         stop, retries);
  RangeCursor dst_cursor(dst,
                         {mapper.dst_prefix(), mapper.dst_range_end(), 0, paced.page_size,
                          options.keys_only, options.serializable, &dst_rate},
                         stop, retries);
  CheckReport report;
  report.keys_only = options.keys_only;
  DiffCounts seen;
  std::array<int, 4> kept = {0, 0, 0, 0};
  auto on_diff = [&](const Difference& d) {
    if (collect != nullptr) {
      if (collect->size() < options.max_tracked) {
        collect->insert(d.dst_key);
      } else {
        *overflow = true;
      }
    }
    if (confirmed_only != nullptr && !confirmed_only->contains(d.dst_key) && !confirmed_overflow) {
      ++report.unconfirmed;
      return absl::OkStatus();
    }
    DiffCounts& c = report.counts;
    (d.kind == DiffKind::kDstMiss    ? c.dst_miss
     : d.kind == DiffKind::kSrcMiss  ? c.src_miss
     : d.kind == DiffKind::kMismatch ? c.mismatch
                                     : c.lease_mismatch)++;
    if (options.collect_repairs) {
      report.repairs.push_back({d.kind, d.dst_key, d.src ? d.src->value : "",
                                d.src && options.compare_leases ? d.src->lease : 0,
                                d.dst ? d.dst->mod_revision : 0});
    }
    int& n = kept[static_cast<int>(d.kind)];
    if (n < options.show) {
      ++n;
      report.samples.push_back({d.kind, d.src ? d.src->key : "", d.dst_key});
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(MergeJoin(&src_cursor, &dst_cursor, mapper, options.keys_only,
                            options.compare_leases, on_diff, &seen));
  report.counts.source_keys = seen.source_keys;
  report.counts.destination_keys = seen.destination_keys;
  report.source_revision = src_cursor.revision();
  report.destination_revision = dst_cursor.revision();
  report.source_bytes = src_cursor.bytes_read();
  report.destination_bytes = dst_cursor.bytes_read();
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return report;
}

// Waits until the task checkpoint in the destination reaches `revision`. Returns false when
// there is no checkpoint or it does not get there in time (no syncer running).
bool WaitForCheckpoint(etcd::KvApi* dst, const CheckOptions& options, int64_t revision,
                       const common::StopToken* stop) {
  if (options.checkpoint_key.empty()) return false;
  auto deadline = std::chrono::steady_clock::now() + options.confirm_timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    etcd::RangeRequest req;
    req.key = options.checkpoint_key;
    auto resp = dst->Range(req);
    if (resp.ok()) {
      if (resp->kvs.empty()) return false;
      auto cp = DecodeCheckpoint(resp->kvs[0].value);
      if (!cp.ok()) return false;
      if (cp->revision >= revision) return true;
    }
    if (stop->WaitFor(std::chrono::milliseconds(200))) return false;
  }
  return false;
}

}  // namespace

absl::StatusOr<CheckReport> CheckOnce(etcd::KvApi* src, etcd::KvApi* dst, const KeyMapper& mapper,
                                      const CheckOptions& options, const common::StopToken* stop,
                                      etcd::RetryCounters* retries) {
  return Round(src, dst, mapper, options, stop, retries, nullptr, nullptr, nullptr, false);
}

absl::StatusOr<CheckReport> Check(etcd::KvApi* src, etcd::KvApi* dst, const KeyMapper& mapper,
                                  const CheckOptions& options, const common::StopToken* stop,
                                  etcd::RetryCounters* retries) {
  absl::flat_hash_set<std::string> first;
  bool overflow = false;
  ASSIGN_OR_RETURN(CheckReport round1, Round(src, dst, mapper, options, stop, retries, &first,
                                             &overflow, nullptr, false));
  if (round1.consistent() || !options.confirm) return round1;
  if (!WaitForCheckpoint(dst, options, round1.source_revision, stop)) {
    log::Info("check", "no running syncer passed the first round's revision, confirming now",
              {{"revision", round1.source_revision}});
  }
  ASSIGN_OR_RETURN(CheckReport round2, Round(src, dst, mapper, options, stop, retries, nullptr,
                                             nullptr, &first, overflow));
  // Round-1 differences gone in round 2 were in flight too.
  round2.unconfirmed += round1.counts.total() - round2.counts.total();
  if (round2.unconfirmed < 0) round2.unconfirmed = 0;
  round2.rounds = 2;
  round2.source_bytes += round1.source_bytes;
  round2.destination_bytes += round1.destination_bytes;
  round2.seconds += round1.seconds;
  return round2;
}

absl::Status RepairDifferences(etcd::TxnApi* dst, std::vector<etcd::Compare> fence,
                               const LeaseUsable& lease_usable, const common::StopToken* stop,
                               etcd::RetryCounters* retries, CheckReport* report) {
  constexpr size_t kBatch = 64;
  // Leases the task does not manage at the destination: never attached. A lease mismatch
  // cannot be repaired without one, so it is left to the task (its next full sync).
  std::vector<Repair> repairs;
  for (Repair& r : report->repairs) {
    if (r.src_lease != 0 && !(lease_usable && lease_usable(r.src_lease))) {
      r.src_lease = 0;
      if (r.kind == DiffKind::kLeaseMismatch) {
        ++report->fix_skipped;
        continue;
      }
    }
    repairs.push_back(std::move(r));
  }
  report->repairs = std::move(repairs);
  auto build = [&](size_t from, size_t to) {
    etcd::TxnRequest txn;
    txn.compares = fence;
    for (size_t i = from; i < to; ++i) {
      const Repair& r = report->repairs[i];
      etcd::Compare c;
      c.key = r.dst_key;
      if (r.kind == DiffKind::kDstMiss) {
        c.target = etcd::Compare::Target::kVersion;
        c.number = 0;
      } else {
        c.target = etcd::Compare::Target::kModRevision;
        c.number = r.dst_mod_revision;
      }
      txn.compares.push_back(c);
      etcd::Op op = r.kind == DiffKind::kSrcMiss ? etcd::Op::Delete(r.dst_key)
                                                 : etcd::Op::Put(r.dst_key, r.src_value);
      op.lease = r.kind == DiffKind::kSrcMiss ? 0 : r.src_lease;
      txn.success.push_back(std::move(op));
    }
    return txn;
  };
  auto commit = [&](const etcd::TxnRequest& txn) -> absl::StatusOr<bool> {
    ASSIGN_OR_RETURN(etcd::TxnResponse resp, etcd::RetryTransient(*stop, "repair txn", retries,
                                                                  [&] { return dst->Txn(txn); }));
    return resp.succeeded;
  };
  for (size_t from = 0; from < report->repairs.size(); from += kBatch) {
    size_t to = std::min(report->repairs.size(), from + kBatch);
    ASSIGN_OR_RETURN(bool ok, commit(build(from, to)));
    if (ok) {
      report->fixed += static_cast<int64_t>(to - from);
      continue;
    }
    // Some key changed meanwhile (or leadership moved): go key by key.
    for (size_t i = from; i < to; ++i) {
      ASSIGN_OR_RETURN(bool one, commit(build(i, i + 1)));
      if (one) {
        ++report->fixed;
      } else {
        ++report->fix_skipped;
      }
    }
  }
  log::Info("check", "repair done", {{"fixed", report->fixed}, {"skipped", report->fix_skipped}});
  return absl::OkStatus();
}

LeaseUsable TaskLeases(etcd::ClusterApi* dst, std::string records_prefix) {
  return [dst, prefix = std::move(records_prefix)](int64_t lease) {
    etcd::RangeRequest req;
    req.key = LeaseRecordKey(prefix, lease);
    req.keys_only = true;
    absl::StatusOr<etcd::RangeResponse> record = dst->Range(req);
    if (!record.ok() || record->kvs.empty()) return false;
    absl::StatusOr<etcd::LeaseInfo> info = dst->LeaseTimeToLive(lease);
    return info.ok() && info->exists();
  };
}

std::string RenderText(const CheckReport& r) {
  const char* verdict = r.consistent() ? "CONSISTENT" : "DIFFERENCES FOUND";
  std::string out =
      r.zookeeper_source
          ? absl::StrFormat("ZooKeeper -> etcd check (etcd revision %d): %s\n",
                            r.destination_revision, verdict)
          : absl::StrFormat("%s check at source revision %d (destination revision %d): %s\n",
                            r.keys_only ? "presence" : "full", r.source_revision,
                            r.destination_revision, verdict);
  absl::StrAppendFormat(&out, "  %-12s %12d\n", "source keys", r.counts.source_keys);
  absl::StrAppendFormat(&out, "  %-12s %12d\n", "dest keys", r.counts.destination_keys);
  absl::StrAppendFormat(&out, "  %-12s %12d\n", "dst miss", r.counts.dst_miss);
  absl::StrAppendFormat(&out, "  %-12s %12d\n", "src miss", r.counts.src_miss);
  if (r.keys_only) {
    absl::StrAppendFormat(&out, "  %-12s %12s\n", "mismatch", "n/a");
  } else {
    absl::StrAppendFormat(&out, "  %-12s %12d\n", "mismatch", r.counts.mismatch);
  }
  if (r.counts.lease_mismatch > 0) {
    absl::StrAppendFormat(&out, "  %-12s %12d  (same value, not on the source's lease ID)\n",
                          "lease mismatch", r.counts.lease_mismatch);
  }
  if (r.not_owned > 0) {
    absl::StrAppendFormat(&out, "  %-12s %12d  (etcd keys of other writers, left alone)\n",
                          "not owned", r.not_owned);
  }
  if (r.ownership_unknown > 0) {
    absl::StrAppendFormat(&out,
                          "  %-12s %12d  (no znode, ownership store unreachable: left alone)\n",
                          "owner unknown", r.ownership_unknown);
  }
  if (r.unreadable > 0) {
    absl::StrAppendFormat(&out,
                          "  %-12s %12d  (znodes kvsync may not read: subtrees not compared)\n",
                          "unreadable", r.unreadable);
  }
  if (r.fix_held > 0) {
    absl::StrAppendFormat(&out, "  %-12s %12d  (%s)\n", "fix held", r.fix_held, r.fix_held_reason);
  }
  absl::StrAppendFormat(&out,
                        "  read %d bytes from the source, %d from the destination in %.3f s\n",
                        r.source_bytes, r.destination_bytes, r.seconds);
  for (const CheckSample& s : r.samples) {
    absl::StrAppendFormat(
        &out, "  %-9s %s\n", DiffKindName(s.kind),
        common::PrintableKey(s.kind == DiffKind::kSrcMiss ? s.dst_key : s.src_key));
  }
  return out;
}

std::string RenderJson(const CheckReport& r) {
  nlohmann::json j;
  j["mode"] = r.keys_only ? "presence" : "full";
  j["consistent"] = r.consistent();
  j["source_revision"] = r.source_revision;
  j["destination_revision"] = r.destination_revision;
  j["source_keys"] = r.counts.source_keys;
  j["destination_keys"] = r.counts.destination_keys;
  j["dst_miss"] = r.counts.dst_miss;
  j["src_miss"] = r.counts.src_miss;
  if (!r.keys_only) j["mismatch"] = r.counts.mismatch;
  j["lease_mismatch"] = r.counts.lease_mismatch;
  j["source_bytes"] = r.source_bytes;
  j["destination_bytes"] = r.destination_bytes;
  j["seconds"] = r.seconds;
  j["rounds"] = r.rounds;
  j["unconfirmed"] = r.unconfirmed;
  j["fixed"] = r.fixed;
  j["fix_skipped"] = r.fix_skipped;
  if (r.zookeeper_source) {
    j["source"] = "zookeeper";
    j["not_owned"] = r.not_owned;
    j["ownership_unknown"] = r.ownership_unknown;
    j["unreadable"] = r.unreadable;
    j["fix_held"] = r.fix_held;
  }
  nlohmann::json samples = nlohmann::json::array();
  for (const CheckSample& s : r.samples) {
    samples.push_back({{"kind", DiffKindName(s.kind)},
                       {"source_key", common::PrintableKey(s.src_key)},
                       {"destination_key", common::PrintableKey(s.dst_key)}});
  }
  j["samples"] = samples;
  return j.dump();
}

}  // namespace kvsync::checker
