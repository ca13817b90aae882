#include "zk2etcd/guards.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace kvsync::zk2etcd {

absl::Status CheckRootsExist(zk::Reader* session, const config::Zk2EtcdConfig& config) {
  if (config.allow_missing_prefix) return absl::OkStatus();
  const std::string& servers = config.zk_servers;
  size_t slash = servers.find('/');
  std::string hosts = servers.substr(0, slash);
  // With a chroot every path is relative to it: "/" is the chroot itself.
  if (slash != std::string::npos && servers.size() > slash + 1) {
    absl::Status s = session->Get("/", nullptr).status();
    if (absl::IsNotFound(s)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "ZooKeeper chroot \"", servers.substr(slash), "\" (in --zk-servers) does not exist on ",
          hosts,
          "; check the path, or pass --zk-allow-missing-prefix if it will be created later"));
    }
    if (!s.ok() && !absl::IsPermissionDenied(s)) return s;
  }
  for (const std::string& root : config.zk_prefixes) {
    absl::Status s = session->Get(root, nullptr).status();
    if (absl::IsNotFound(s)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--zk-prefix \"", root, "\" does not exist in ZooKeeper ", servers,
          "; check the prefix and the chroot, or pass --zk-allow-missing-prefix if it will be "
          "created later"));
    }
    // An unreadable root exists: the walk skips it and keeps its keys.
    if (!s.ok() && !absl::IsPermissionDenied(s)) return s;
  }
  return absl::OkStatus();
}

bool UnderAny(absl::string_view path, const absl::flat_hash_set<std::string>& nodes) {
  if (nodes.empty()) return false;
  while (!path.empty()) {
    if (nodes.contains(path)) return true;
    size_t slash = path.rfind('/');
    if (slash == absl::string_view::npos) break;
    // "/a/b" -> "/a" -> "/" (the root covers everything).
    path = slash == 0 ? (path.size() > 1 ? path.substr(0, 1) : absl::string_view())
                      : path.substr(0, slash);
  }
  return false;
}

absl::Status JudgeDeletes(const DeletePlan& plan, double max_fraction, bool confirmed) {
  if (confirmed || plan.deletes == 0) return absl::OkStatus();
  if (plan.unreadable_unnamed) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "held %d deletes: the walk met more unreadable znodes than it can name, so it cannot "
        "tell which keys lie under them; grant kvsync read access (--zk-auth) or exclude them "
        "(--zk-exclude-prefix)",
        plan.deletes));
  }
  if (plan.under_missing_root > 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "held %d deletes: ZooKeeper root %s missing, so the walk cannot prove these keys' "
        "znodes are gone; if the removal is real, run once with --confirm-mass-delete",
        plan.deletes, absl::StrJoin(plan.missing_roots, ", ")));
  }
  double limit = max_fraction * static_cast<double>(plan.owned);
  if (plan.deletes > 1 && static_cast<double>(plan.deletes) > limit) {
    double share = plan.owned > 0
                       ? 100.0 * static_cast<double>(plan.deletes) / static_cast<double>(plan.owned)
                       : 100.0;
    return absl::FailedPreconditionError(absl::StrFormat(
        "held %d deletes: %.1f%% of the %d owned keys, above --max-delete-fraction %g; if "
        "ZooKeeper really lost these znodes, run once with --confirm-mass-delete",
        plan.deletes, share, plan.owned, max_fraction));
  }
  return absl::OkStatus();
}

}  // namespace kvsync::zk2etcd
