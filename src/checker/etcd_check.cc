#include "checker/etcd_check.h"

#include <chrono>

#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "nlohmann/json.hpp"

namespace kvsync::checker {

absl::StatusOr<CheckReport> CheckOnce(etcd::Client* src, etcd::Client* dst, const KeyMapper& mapper,
                                      const CheckOptions& options, const common::StopToken* stop,
                                      etcd::RetryCounters* retries) {
  auto started = std::chrono::steady_clock::now();
  RangeCursor src_cursor(src,
                         {mapper.src_prefix(), mapper.src_range_end(), 0, options.page_size,
                          options.keys_only, options.serializable},
                         stop, retries);
  RangeCursor dst_cursor(dst,
                         {mapper.dst_prefix(), mapper.dst_range_end(), 0, options.page_size,
                          options.keys_only, options.serializable},
                         stop, retries);
  CheckReport report;
  report.keys_only = options.keys_only;
  std::array<int, 3> kept = {0, 0, 0};
  auto on_diff = [&](const Difference& d) {
    int& n = kept[static_cast<int>(d.kind)];
    if (n < options.show) {
      ++n;
      report.samples.push_back({d.kind, d.src ? d.src->key : "", d.dst_key});
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(
      MergeJoin(&src_cursor, &dst_cursor, mapper, options.keys_only, on_diff, &report.counts));
  report.source_revision = src_cursor.revision();
  report.destination_revision = dst_cursor.revision();
  report.source_bytes = src_cursor.bytes_read();
  report.destination_bytes = dst_cursor.bytes_read();
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return report;
}

std::string RenderText(const CheckReport& r) {
  std::string out =
      absl::StrFormat("%s check at source revision %d (destination revision %d): %s\n",
                      r.keys_only ? "presence" : "full", r.source_revision, r.destination_revision,
                      r.consistent() ? "CONSISTENT" : "DIFFERENCES FOUND");
  absl::StrAppendFormat(&out, "  %-12s %12d\n", "source keys", r.counts.source_keys);
  absl::StrAppendFormat(&out, "  %-12s %12d\n", "dest keys", r.counts.destination_keys);
  absl::StrAppendFormat(&out, "  %-12s %12d\n", "dst miss", r.counts.dst_miss);
  absl::StrAppendFormat(&out, "  %-12s %12d\n", "src miss", r.counts.src_miss);
  if (r.keys_only) {
    absl::StrAppendFormat(&out, "  %-12s %12s\n", "mismatch", "n/a");
  } else {
    absl::StrAppendFormat(&out, "  %-12s %12d\n", "mismatch", r.counts.mismatch);
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
  j["source_bytes"] = r.source_bytes;
  j["destination_bytes"] = r.destination_bytes;
  j["seconds"] = r.seconds;
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
