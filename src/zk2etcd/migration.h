// Migration phases of a zk2etcd task (`kvsync migrate`), recorded in etcd at
// `<meta-prefix><name>/migration` so that both directions, `kvsync status` and every operator
// see the same one:
//
//   mirroring     zk2etcd copies ZooKeeper into etcd; etcd2zk is stopped.
//   dual          both directions run: etcd registrations are published into ZooKeeper.
//   etcd-primary  zk2etcd is stopped (etcd is the registry); etcd2zk still publishes for
//                 consumers that still read ZooKeeper (stragglers).
//   done          both stopped: ZooKeeper no longer sees etcd registrations. THE POINT OF NO
//                 RETURN: nothing leaves `done`.
//
// A transition is one step forward or back (never out of `done`), written with a compare on the
// record's mod revision (two operators cannot both move it). Forward steps have preconditions,
// checked by the command (cli): mirroring → dual: no confirmed difference for the services
// concerned (etcd keys of other writers are expected: they are what etcd2zk will publish);
// dual → etcd-primary: full parity (no difference and no etcd registration ZooKeeper does not
// see); etcd-primary → done: no consumer registered in ZooKeeper, and an explicit
// confirmation. No record means phases are not in use: both directions may run.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "etcd/api.h"
#include "metrics/registry.h"

namespace kvsync::zk2etcd {

enum class Phase { kMirroring = 0, kDual = 1, kEtcdPrimary = 2, kDone = 3 };
const char* PhaseName(Phase phase);  // "mirroring", "dual", "etcd-primary", "done"
std::optional<Phase> ParsePhase(std::string_view name);

struct MigrationRecord {
  bool exists = false;  // false: phases not in use (both directions may run)
  Phase phase = Phase::kMirroring;
  Phase previous = Phase::kMirroring;
  int64_t since_ms = 0;  // wall time of the last transition
  std::string by;        // who made it (host and user)
  int64_t mod_revision = 0;
};

std::string MigrationKey(const std::string& meta_prefix, const std::string& task);
absl::StatusOr<MigrationRecord> ReadMigration(etcd::KvApi* kv, const std::string& meta_prefix,
                                              const std::string& task);

// OK when `to` is one step from `from`; FailedPrecondition naming the allowed steps otherwise.
absl::Status CheckTransition(Phase from, Phase to);

// Writes the transition to `to` iff the record is still `current`. Aborted when someone moved
// it meanwhile.
absl::Status WriteMigration(etcd::TxnApi* txn, const std::string& meta_prefix,
                            const std::string& task, const MigrationRecord& current, Phase to,
                            const std::string& by, int64_t now_ms);

// Whether a direction may run in the recorded phase: OK, or FailedPrecondition (exit 2) with one
// line naming the phase and how to revert. `reverse`: the etcd2zk direction.
absl::Status AllowedToRun(const MigrationRecord& record, const std::string& task, bool reverse);

// kvsync_migration_phase{task, phase}: 1 for the phase `observed` holds (a Phase as an int, as
// the direction last read it; -1: no record, every series 0), 0 for the others. `observed`
// must outlive the registry's scrapes.
void RegisterPhaseMetric(metrics::Registry* registry, const std::string& task,
                         const std::atomic<int>* observed);

// Every migration record under `meta_prefix` (task name and record), for `kvsync status`.
absl::StatusOr<std::vector<std::pair<std::string, MigrationRecord>>> ListMigrations(
    etcd::KvApi* kv, const std::string& meta_prefix);

}  // namespace kvsync::zk2etcd
