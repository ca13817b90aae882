#include "etcd/types.h"

#include <string>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/errors.h"

namespace kvsync::etcd {
namespace {
constexpr char kCompactRevisionPayload[] = "type.kvsync/kvsync.etcd.CompactRevision";
}  // namespace

absl::Status CompactedError(int64_t compact_revision, const std::string& context) {
  absl::Status status = common::WithKind(
      absl::OutOfRangeError(absl::StrCat(context,
                                         ": required revision has been compacted (compact "
                                         "revision ",
                                         compact_revision, ")")),
      common::ErrorKind::kCompacted);
  status.SetPayload(kCompactRevisionPayload, absl::Cord(absl::StrCat(compact_revision)));
  return status;
}

bool IsCompacted(const absl::Status& status) {
  return common::KindOf(status) == common::ErrorKind::kCompacted;
}

int64_t CompactRevision(const absl::Status& status) {
  auto payload = status.GetPayload(kCompactRevisionPayload);
  int64_t rev = 0;
  if (payload && absl::SimpleAtoi(std::string(*payload), &rev)) return rev;
  return 0;
}

absl::Status RequestTooLargeError(const std::string& message) {
  return common::WithKind(absl::InvalidArgumentError(message), common::ErrorKind::kRequestTooLarge);
}

bool IsRequestTooLarge(const absl::Status& status) {
  return common::KindOf(status) == common::ErrorKind::kRequestTooLarge;
}

absl::Status LeaseExistsError(const std::string& message) {
  return common::WithKind(absl::FailedPreconditionError(message), common::ErrorKind::kLeaseExists);
}

bool IsLeaseExists(const absl::Status& status) {
  return common::KindOf(status) == common::ErrorKind::kLeaseExists;
}

absl::Status LeaseNotFoundError(const std::string& message) {
  return common::WithKind(absl::NotFoundError(message), common::ErrorKind::kLeaseNotFound);
}

bool IsLeaseNotFound(const absl::Status& status) {
  return common::KindOf(status) == common::ErrorKind::kLeaseNotFound;
}

bool IsNoLeader(const absl::Status& status) {
  return common::KindOf(status) == common::ErrorKind::kNoLeader;
}

absl::Status WatchCanceledError(const std::string& reason, const std::string& context) {
  // The server's reason is free text (etcd 3.4 sends the error's message): read once, here.
  std::string message = absl::StrCat(context, " canceled by the server: ", reason);
  if (absl::StrContains(reason, "permission denied")) {
    return absl::PermissionDeniedError(message);
  }
  if (absl::StrContains(reason, "auth") || absl::StrContains(reason, "token")) {
    return absl::UnauthenticatedError(message);
  }
  return common::WithKind(absl::FailedPreconditionError(message),
                          common::ErrorKind::kWatchCanceled);
}

const char* RefusalReason(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kPermissionDenied) return "permission_denied";
  if (status.code() == absl::StatusCode::kUnauthenticated) return "auth";
  if (common::KindOf(status) == common::ErrorKind::kWatchCanceled) return "watch_canceled";
  return "";
}

bool IsRefused(const absl::Status& status) { return RefusalReason(status)[0] != '\0'; }

bool RequestedProgressIsOrdered(const std::string& version) {
  std::vector<std::string> parts = absl::StrSplit(version, absl::MaxSplits('.', 2));
  int major = 0;
  int minor = 0;
  int patch = 0;
  if (parts.size() < 3 || !absl::SimpleAtoi(parts[0], &major) ||
      !absl::SimpleAtoi(parts[1], &minor)) {
    return false;
  }
  // "3.5.8-rc.0" and the like: the leading digits of the patch level.
  std::string digits;
  for (char c : parts[2]) {
    if (c < '0' || c > '9') break;
    digits.push_back(c);
  }
  if (!absl::SimpleAtoi(digits, &patch)) return false;
  if (major != 3) return major > 3;
  if (minor == 4) return patch >= 25;
  if (minor == 5) return patch >= 8;
  return minor > 5;
}

bool IsTransient(const absl::Status& status) { return common::IsTransient(status); }

}  // namespace kvsync::etcd
