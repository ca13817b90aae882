// Status propagation macros used across kvsync. Any thread may use them; they hold no state.
// RETURN_IF_ERROR(expr) returns the non-OK absl::Status of `expr` from the enclosing function.
// ASSIGN_OR_RETURN(lhs, expr) unwraps an absl::StatusOr<T> into `lhs` or returns its status.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define KVSYNC_CONCAT_INNER(a, b) a##b
#define KVSYNC_CONCAT(a, b) KVSYNC_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                        \
  do {                                               \
    ::absl::Status kvsync_status_ = (expr);          \
    if (!kvsync_status_.ok()) return kvsync_status_; \
  } while (0)

// bugprone-macro-parentheses cannot apply: `tmp` is a declared name and `lhs` may be a
// declaration (`auto x`), neither of which may be parenthesised.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define KVSYNC_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(*tmp)
// NOLINTEND(bugprone-macro-parentheses)

#define ASSIGN_OR_RETURN(lhs, expr) \
  KVSYNC_ASSIGN_OR_RETURN_IMPL(KVSYNC_CONCAT(kvsync_statusor_, __LINE__), lhs, expr)
