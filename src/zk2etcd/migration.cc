#include "zk2etcd/migration.h"

#include "absl/strings/str_cat.h"
#include "etcd/names.h"
#include "nlohmann/json.hpp"

namespace kvsync::zk2etcd {

const char* PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kMirroring:
      return "mirroring";
    case Phase::kDual:
      return "dual";
    case Phase::kEtcdPrimary:
      return "etcd-primary";
    case Phase::kDone:
      return "done";
  }
  return "unknown";
}

std::optional<Phase> ParsePhase(std::string_view name) {
  for (Phase p : {Phase::kMirroring, Phase::kDual, Phase::kEtcdPrimary, Phase::kDone}) {
    if (name == PhaseName(p)) return p;
  }
  return std::nullopt;
}

std::string MigrationKey(const std::string& meta_prefix, const std::string& task) {
  return absl::StrCat(meta_prefix, task, "/migration");
}

absl::StatusOr<MigrationRecord> ReadMigration(etcd::KvApi* kv, const std::string& meta_prefix,
                                              const std::string& task) {
  etcd::RangeRequest req;
  req.key = MigrationKey(meta_prefix, task);
  auto resp = kv->Range(req);
  if (!resp.ok()) return resp.status();
  MigrationRecord r;
  if (resp->kvs.empty()) return r;
  const etcd::KeyValue& kvp = resp->kvs[0];
  nlohmann::json j = nlohmann::json::parse(kvp.value, nullptr, false);
  std::optional<Phase> phase;
  std::optional<Phase> previous;
  if (j.is_object() && j.contains("phase") && j["phase"].is_string()) {
    phase = ParsePhase(j["phase"].get<std::string>());
    previous = ParsePhase(j.value("previous", std::string("mirroring")));
  }
  if (!phase || !previous) {
    return absl::FailedPreconditionError(
        absl::StrCat("migration record ", req.key,
                     " is not a kvsync migration record: ", kvp.value.substr(0, 80)));
  }
  r.exists = true;
  r.phase = *phase;
  r.previous = *previous;
  r.since_ms = j.value("since_ms", int64_t{0});
  r.by = j.value("by", std::string());
  r.mod_revision = kvp.mod_revision;
  return r;
}

absl::Status CheckTransition(Phase from, Phase to) {
  int a = static_cast<int>(from);
  int b = static_cast<int>(to);
  if (from == Phase::kDone) {
    return absl::FailedPreconditionError(
        "the migration is done, the point of no return: nothing leaves that phase");
  }
  if (b == a + 1 || b == a - 1) return absl::OkStatus();
  std::string allowed = absl::StrCat(PhaseName(static_cast<Phase>(a + 1)));
  if (a > 0) absl::StrAppend(&allowed, " or ", PhaseName(static_cast<Phase>(a - 1)));
  return absl::FailedPreconditionError(absl::StrCat("the migration is in phase ", PhaseName(from),
                                                    ": it can move to ", allowed, " only, not ",
                                                    PhaseName(to), " (one step at a time)"));
}

absl::Status WriteMigration(etcd::TxnApi* txn, const std::string& meta_prefix,
                            const std::string& task, const MigrationRecord& current, Phase to,
                            const std::string& by, int64_t now_ms) {
  nlohmann::json j = {{"phase", PhaseName(to)},
                      {"previous", PhaseName(current.phase)},
                      {"since_ms", now_ms},
                      {"by", by}};
  etcd::TxnRequest req;
  etcd::Compare unchanged;
  unchanged.key = MigrationKey(meta_prefix, task);
  unchanged.target = etcd::Compare::Target::kModRevision;
  unchanged.result = etcd::Compare::Result::kEqual;
  unchanged.number = current.exists ? current.mod_revision : 0;
  req.compares.push_back(unchanged);
  req.success.push_back(etcd::Op::Put(unchanged.key, j.dump()));
  auto resp = txn->Txn(req);
  if (!resp.ok()) return resp.status();
  if (!resp->succeeded) {
    return absl::AbortedError(absl::StrCat("the migration record of task ", task,
                                           " changed meanwhile (another kvsync migrate?): "
                                           "nothing was written; read it again and retry"));
  }
  return absl::OkStatus();
}

absl::Status AllowedToRun(const MigrationRecord& record, const std::string& task, bool reverse) {
  if (!record.exists) return absl::OkStatus();
  const Phase p = record.phase;
  bool runs = reverse ? (p == Phase::kDual || p == Phase::kEtcdPrimary)
                      : (p == Phase::kMirroring || p == Phase::kDual);
  if (runs) return absl::OkStatus();
  std::string revert;
  if (p == Phase::kDone) {
    revert = "the migration is done (point of no return)";
  } else if (reverse) {
    revert = "`kvsync migrate --to dual` starts it";
  } else {
    revert = "`kvsync migrate --to dual` reverts";
  }
  return absl::FailedPreconditionError(
      absl::StrCat("migration of task ", task, " is in phase ", PhaseName(p), ": the ",
                   reverse ? "etcd2zk" : "zk2etcd", " direction does not run then; ", revert));
}

void RegisterPhaseMetric(metrics::Registry* registry, const std::string& task,
                         const std::atomic<int>* observed) {
  for (Phase p : {Phase::kMirroring, Phase::kDual, Phase::kEtcdPrimary, Phase::kDone}) {
    registry->AddGaugeCallback(
        "kvsync_migration_phase",
        "1 for the migration phase the task last read from its record, 0 for the others (all 0: "
        "no phase recorded)",
        {{"task", task}, {"phase", PhaseName(p)}},
        [observed, p] { return observed->load() == static_cast<int>(p) ? 1.0 : 0.0; });
  }
}

absl::StatusOr<std::vector<std::pair<std::string, MigrationRecord>>> ListMigrations(
    etcd::KvApi* kv, const std::string& meta_prefix) {
  auto names = etcd::ListNames(kv, meta_prefix);  // a skip-scan: never the tasks' marks
  if (!names.ok()) return names.status();
  std::vector<std::pair<std::string, MigrationRecord>> out;
  for (const std::string& task : *names) {
    auto record = ReadMigration(kv, meta_prefix, task);
    if (!record.ok()) return record.status();
    if (record->exists) out.emplace_back(task, *record);
  }
  return out;
}

}  // namespace kvsync::zk2etcd
