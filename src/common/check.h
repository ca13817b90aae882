// Invariant checks that crash loudly. KVSYNC_CHECK(condition) << "what it means"; evaluates
// `condition` once and, when it is false, reports the file, line, condition text and the
// streamed message through the installed failure handler, then aborts. Always on (not tied to
// NDEBUG): a broken invariant must stop the process, not let it continue wrongly. Use it for
// states kvsync's own code can never produce (a leader term without a fence, an impossible
// enum value); never for input from servers, files or flags (those are statuses).
//
// The handler is process-wide. The default writes one line to stderr; src/log installs one
// that writes an error line through the project logger first (component "check", event
// "invariant violated"). Any thread may fail a check.
#pragma once

#include <sstream>
#include <string_view>

namespace kvsync::common {

using CheckFailureHandler = void (*)(std::string_view file, int line, std::string_view condition,
                                     std::string_view message);
// Replaces the handler (nullptr restores the default). Thread-safe; the handler must not fail
// a check itself.
void SetCheckFailureHandler(CheckFailureHandler handler);

namespace internal {

// Collects the message of a failed check; its destructor reports it and aborts.
class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition)
      : file_(file), line_(line), condition_(condition) {}
  CheckFailure(const CheckFailure&) = delete;
  CheckFailure& operator=(const CheckFailure&) = delete;
  [[noreturn]] ~CheckFailure();
  std::ostream& stream() { return stream_; }

 private:
  const char* file_;
  int line_;
  const char* condition_;
  std::ostringstream stream_;
};

// Gives `cond ? (void)0 : Voidify() & stream << ...` the type void on both branches.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace internal
}  // namespace kvsync::common

// Not parenthesised on purpose: `<< "why"` must attach to the failure's stream.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define KVSYNC_CHECK(condition)                       \
  (__builtin_expect(static_cast<bool>(condition), 1)) \
      ? (void)0                                       \
      : ::kvsync::common::internal::Voidify() &       \
            ::kvsync::common::internal::CheckFailure(__FILE__, __LINE__, #condition).stream()
// NOLINTEND(bugprone-macro-parentheses)
