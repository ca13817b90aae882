// Shared plumbing of the subcommands: signal handling (SIGINT/SIGTERM request a stop; a second
// signal exits at once; SIGHUP is logged and ignored), exit codes, and flag helpers. Called
// from main's thread only.
#pragma once

#include <chrono>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/stop_token.h"
#include "config/config.h"

namespace kvsync::cli {

// The exit codes of every subcommand: one table, shown by every --help (kExitCodesHelp) and
// the README. Commands return Exit(...) of one of these, or ExitCodeFor(a final status).
enum class ExitCode : int {
  kOk = 0,        // success: stopped on request, --once done, consistent, every property held
  kFindings = 1,  // the report needs attention: check found differences or was inconclusive
                  // (ownership unknown, unreadable znodes); etcdwatch saw a property fail
  kConfig = 2,    // usage or configuration, or a refusal an operator must resolve (bad flag or
                  // file, refused credentials or permission, a checkpoint of another cluster,
                  // deletes held, a value the destination can never accept); not restarted
  kRuntime = 3,   // runtime failure: a cluster unreachable at start-up, a check or test that
                  // could not complete, an error nobody classified; restarting may help
};
// A second SIGINT/SIGTERM exits at once with this (128 + SIGINT, as shells do).
inline constexpr int kExitSecondSignal = 130;

inline int Exit(ExitCode code) { return static_cast<int>(code); }

// The exit code of a final status: OK → kOk; InvalidArgument, FailedPrecondition,
// PermissionDenied, Unauthenticated → kConfig (common/errors.h gives each code one meaning);
// everything else → kRuntime. Never kFindings: that is a report's verdict, not a status.
ExitCode ExitCodeFor(const absl::Status& status);

// The table, as shown at the end of every command's --help.
extern const char kExitCodesHelp[];
// Sets kExitCodesHelp as the footer of `app` and of every subcommand below it.
void AddExitCodesFooter(CLI::App* app);

// Blocks SIGINT/SIGTERM/SIGHUP (and ignores SIGPIPE) in the calling thread. main() calls it
// first, before any library starts a thread, so that every thread inherits the mask and the
// signals reach only the thread of StartSignalThread ("signals", detached: it lives as long as
// the process).
void BlockStopSignals();
// Starts the signal thread; commands call it as soon as their flags are valid, before
// connecting. Until EndStartup(), a SIGINT/SIGTERM logs a line and exits 0 at once (start-up
// connects block for up to a dial timeout and nothing has been written yet). After it, the
// first one becomes stop->RequestStop() and a second exits at once with kExitSecondSignal. SIGHUP
// is logged at warn and ignored: kvsync does not reload its configuration.
// Returns the process's stop token: it lives as long as the process (never destroyed), because
// the detached signal thread may still be inside RequestStop() while main() returns.
common::StopToken& StartSignalThread();
// Ends start-up: called once the clients are connected, just before the engine runs.
void EndStartup();

// The exit code of a finished engine run: 0 when a stop was requested and the run ended
// Cancelled or still unable to reach a server (start-up retries end that way), otherwise as
// ReportAndExit (logging errors).
int ExitAfterRun(const std::string& command, const absl::Status& result,
                 const common::StopToken& stop);

// Prints one line on stderr for an error ("kvsync <command>: error: …") and returns
// ExitCodeFor(status).
int ReportAndExit(const std::string& command, const absl::Status& status);

// Registers etcdctl-style connection flags for one side ("src" / "dst"): --src-endpoints,
// --src-cacert, --src-cert, --src-key, --src-user, --src-password, plus timeouts.
void AddConnectionFlags(CLI::App* app, const std::string& side, const std::string& what,
                        config::EtcdConnection* conn);

// The values a duration flag accepts: min..max, and exactly 0 as well when `zero_is_off`.
// Every duration flag has one, so that a value that can never work ("inf", "0" for a
// timeout, a lease of a year) is refused at start-up instead of failing every request.
struct DurationRange {
  absl::Duration min;
  absl::Duration max;
  bool zero_is_off = false;
};
inline constexpr DurationRange kDialTimeoutRange{absl::Milliseconds(100), absl::Minutes(5)};
inline constexpr DurationRange kCommandTimeoutRange{absl::Milliseconds(100), absl::Minutes(10)};
inline constexpr DurationRange kLeaseTtlRange{absl::Seconds(1), absl::Minutes(5)};
inline constexpr DurationRange kZkSessionTimeoutRange{absl::Seconds(2), absl::Minutes(10)};
inline constexpr DurationRange kProgressIntervalRange{absl::Milliseconds(100), absl::Minutes(10)};
inline constexpr DurationRange kStatusIntervalRange{absl::Seconds(1), absl::Hours(24), true};
inline constexpr DurationRange kCheckIntervalRange{absl::Seconds(1), absl::Hours(168), true};
inline constexpr DurationRange kFullsyncIntervalRange{absl::Seconds(1), absl::Hours(168), true};
inline constexpr DurationRange kReadyMaxLagRange{absl::Seconds(1), absl::Hours(24)};
inline constexpr DurationRange kCoalesceRange{absl::ZeroDuration(), absl::Seconds(10)};
inline constexpr DurationRange kConfirmTimeoutRange{absl::Milliseconds(100), absl::Hours(1)};
inline constexpr DurationRange kLeaseMinTtlRange{absl::ZeroDuration(), absl::Hours(1)};
inline constexpr DurationRange kLeaseHoldRange{absl::Seconds(1), absl::Hours(24 * 365), true};
inline constexpr DurationRange kEphemeralLeaseTtlRange{absl::Seconds(2), absl::Hours(1), true};
inline constexpr DurationRange kSettleRange{absl::ZeroDuration(), absl::Minutes(10)};

// Registers a duration flag ("500ms", "5s", "1m") that parses straight into `target`; a bad
// or out-of-range value is a flag error (exit 2) naming the flag and the range, which the help
// text shows too. `target` keeps its value when the flag is absent.
CLI::Option* AddDurationFlag(CLI::App* app, const std::string& name,
                             std::chrono::milliseconds* target, const std::string& help,
                             DurationRange range);

// Registers what a task covers: --prefix, --dst-prefix, --exclude-prefix, --name,
// --meta-prefix (shared by etcd2etcd and check).
void AddScopeFlags(CLI::App* app, config::MirrorConfig* config);

// Parses "500ms", "5s", "1m" into milliseconds; InvalidArgument naming `flag` and `range`
// for anything else, "inf" and values outside the range included.
absl::Status ParseDuration(const std::string& flag, const std::string& text, DurationRange range,
                           std::chrono::milliseconds* out);

// "a duration between 100ms and 5m", or "0 (off) or a duration between 1s and 24h".
std::string DescribeRange(DurationRange range);

// Registers on `check`, hidden and ignored, every option of the task command `task` that
// `check` does not have (flag or option alike), so that a check accepts its task's whole config
// file and command line. Deriving the set from the task's own flags keeps the two in step.
void AcceptTaskFlags(CLI::App* check, CLI::App* task);

// Registers --log-level and --log-format.
void AddLogFlags(CLI::App* app, std::string* level, std::string* format);

}  // namespace kvsync::cli
