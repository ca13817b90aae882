// A child process started by a test: etcd members, etcdctl, openssl, the kvsync binary.
//
// The child runs in its own process group with stdin on /dev/null and stdout and stderr
// appended to one log file, and it receives SIGKILL when the thread that started it dies
// (PR_SET_PDEATHSIG), so a crashed test leaves no servers behind. Because that signal follows
// the starting *thread*, start long-lived children from the test's main thread, not from a
// helper thread that may exit first. A Subprocess owns its child: the destructor stops it
// (SIGTERM, then SIGKILL). All methods are thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace kvsync::testing {

class Subprocess {
 public:
  // Starts argv[0] (searched in PATH when it has no '/') with the current environment plus
  // `extra_env` (which overrides). Output goes to `log_path` (created or appended to; a
  // header line naming the command is written first). Errors: InvalidArgument for an empty
  // argv, NotFound for an unknown program, Internal when the log cannot be opened or exec
  // fails.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(
      std::vector<std::string> argv, std::string log_path,
      std::map<std::string, std::string> extra_env = {});

  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  // Stops the child with the default grace period.
  ~Subprocess();

  int pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

  // Sends `sig` to the child (not its group); a no-op once it has been reaped.
  void Signal(int sig);
  // After Signal(SIGSTOP): waits up to `timeout` until every thread of the child is stopped
  // (kill() only queues the signal; on a busy machine a thread can still answer a request
  // for a while). False when it did not stop in time or has exited.
  bool WaitStopped(std::chrono::milliseconds timeout);
  // True until the child has exited (reaps it when it has).
  bool Running();
  // Waits up to `timeout` for the child to exit. Returns its exit code, 128+signal when a
  // signal killed it, or nullopt when it is still running.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  // SIGTERM (and SIGCONT, so a paused child can act on it) to the child's process group,
  // SIGKILL after `grace`, then reaps. Returns the exit code as Wait does.
  std::optional<int> Stop(std::chrono::milliseconds grace = std::chrono::seconds(5));
  // The last `bytes` bytes of the log file, followed by a line with the exit code once the
  // child has exited (a test that waits on a dead kvsync then says so: a sanitizer report
  // goes to its own file and ends the process with code 66).
  std::string LogTail(size_t bytes = 4000) const;

 private:
  friend struct SubprocessAccess;
  Subprocess(int pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}
  // Reaping only caches the child's state, so const methods may do it.
  bool ReapLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int pid_;
  const std::string log_path_;
  mutable absl::Mutex mu_;
  mutable bool exited_ ABSL_GUARDED_BY(mu_) = false;
  mutable int exit_code_ ABSL_GUARDED_BY(mu_) = -1;
};

// Result of a short command run to completion.
struct CommandResult {
  int exit_code = -1;  // 128+signal when a signal ended it
  std::string out;     // stdout
  std::string err;     // stderr
};

// Runs a short command (etcdctl, openssl) to completion with stdout and stderr captured
// separately. Errors: those of Subprocess::Start, DeadlineExceeded (with the output so far)
// when it ran longer than `timeout` and was killed. A non-zero exit is not an error here;
// callers inspect exit_code.
absl::StatusOr<CommandResult> RunCommand(std::vector<std::string> argv,
                                         std::chrono::milliseconds timeout,
                                         std::map<std::string, std::string> extra_env = {});

}  // namespace kvsync::testing
