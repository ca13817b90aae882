#include "etcd/types.h"

#include <string>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kvsync::etcd {
namespace {
constexpr char kCompactedPayload[] = "kvsync.etcd/compacted";
constexpr char kWatchCanceledPayload[] = "kvsync.etcd/watch-canceled";
}  // namespace

absl::Status CompactedError(int64_t compact_revision, const std::string& context) {
  absl::Status status = absl::OutOfRangeError(absl::StrCat(
      context, ": required revision has been compacted (compact revision ", compact_revision, ")"));
  status.SetPayload(kCompactedPayload, absl::Cord(absl::StrCat(compact_revision)));
  return status;
}

bool IsCompacted(const absl::Status& status) {
  return status.GetPayload(kCompactedPayload).has_value();
}

int64_t CompactRevision(const absl::Status& status) {
  auto payload = status.GetPayload(kCompactedPayload);
  int64_t rev = 0;
  if (payload && absl::SimpleAtoi(std::string(*payload), &rev)) return rev;
  return 0;
}

bool IsRequestTooLarge(const absl::Status& status) {
  return absl::StrContains(status.message(), "request is too large") ||
         absl::StrContains(status.message(), "too many operations in txn request") ||
         absl::StrContains(status.message(), "larger than max");
}

absl::Status WatchCanceledError(const std::string& reason, const std::string& context) {
  std::string message = absl::StrCat(context, " canceled by the server: ", reason);
  if (absl::StrContains(reason, "permission denied")) {
    return absl::PermissionDeniedError(message);
  }
  if (absl::StrContains(reason, "auth") || absl::StrContains(reason, "token")) {
    return absl::UnauthenticatedError(message);
  }
  absl::Status status = absl::FailedPreconditionError(message);
  status.SetPayload(kWatchCanceledPayload, absl::Cord(reason));
  return status;
}

const char* RefusalReason(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kPermissionDenied) return "permission_denied";
  if (status.code() == absl::StatusCode::kUnauthenticated) return "auth";
  if (status.GetPayload(kWatchCanceledPayload).has_value()) return "watch_canceled";
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

bool IsTransient(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kCancelled:
      return true;
    default:
      return false;
  }
}

}  // namespace kvsync::etcd
