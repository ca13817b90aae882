#include "etcd/types.h"

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

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
