#include "common/errors.h"

#include "absl/strings/cord.h"

namespace kvsync::common {
namespace {

constexpr char kKindPayload[] = "type.kvsync/kvsync.ErrorKind";

constexpr ErrorKind kAllKinds[] = {
    ErrorKind::kNone,          ErrorKind::kTransient,
    ErrorKind::kCompacted,     ErrorKind::kRequestTooLarge,
    ErrorKind::kWatchCanceled, ErrorKind::kNoLeader,
    ErrorKind::kFenced,        ErrorKind::kSessionExpired,
    ErrorKind::kOutOfOrder,    ErrorKind::kLeaseExists,
    ErrorKind::kLeaseNotFound,
};

}  // namespace

const char* ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kNone:
      return "none";
    case ErrorKind::kTransient:
      return "transient";
    case ErrorKind::kCompacted:
      return "compacted";
    case ErrorKind::kRequestTooLarge:
      return "request_too_large";
    case ErrorKind::kWatchCanceled:
      return "watch_canceled";
    case ErrorKind::kNoLeader:
      return "no_leader";
    case ErrorKind::kFenced:
      return "fenced";
    case ErrorKind::kSessionExpired:
      return "session_expired";
    case ErrorKind::kOutOfOrder:
      return "out_of_order";
    case ErrorKind::kLeaseExists:
      return "lease_exists";
    case ErrorKind::kLeaseNotFound:
      return "lease_not_found";
  }
  return "none";
}

absl::Status WithKind(absl::Status status, ErrorKind kind) {
  if (status.ok()) return status;
  if (kind == ErrorKind::kNone) {
    status.ErasePayload(kKindPayload);
  } else {
    status.SetPayload(kKindPayload, absl::Cord(ErrorKindName(kind)));
  }
  return status;
}

ErrorKind KindOf(const absl::Status& status) {
  auto payload = status.GetPayload(kKindPayload);
  if (!payload) return ErrorKind::kNone;
  for (ErrorKind kind : kAllKinds) {
    if (*payload == absl::string_view(ErrorKindName(kind))) return kind;
  }
  return ErrorKind::kNone;
}

bool IsTransient(const absl::Status& status) {
  switch (KindOf(status)) {
    case ErrorKind::kTransient:
      return true;
    case ErrorKind::kNone:
      return status.code() == absl::StatusCode::kUnavailable ||
             status.code() == absl::StatusCode::kDeadlineExceeded;
    default:
      return false;
  }
}

}  // namespace kvsync::common
