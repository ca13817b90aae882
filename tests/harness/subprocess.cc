#include "tests/harness/subprocess.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "tests/harness/wait.h"

extern char** environ;

namespace kvsync::testing {

struct SubprocessAccess {
  static std::unique_ptr<Subprocess> Make(int pid, std::string log_path) {
    return std::unique_ptr<Subprocess>(new Subprocess(pid, std::move(log_path)));
  }
};

namespace {

absl::StatusOr<std::string> ResolveProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  for (absl::string_view dir :
       absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return absl::NotFoundError(absl::StrCat("program \"", name, "\" not found in PATH"));
}

int OpenLog(const std::string& path) {
  return open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

// Forks and execs. Everything the child needs is prepared before fork(): after it only
// async-signal-safe calls are allowed, since the test process has gRPC threads. exec failures
// travel back through a close-on-exec pipe so that the caller gets a real error.
absl::StatusOr<int> Spawn(const std::vector<std::string>& argv, const std::string& out_path,
                          const std::string& err_path,
                          const std::map<std::string, std::string>& extra_env, bool header) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  ASSIGN_OR_RETURN(std::string program, ResolveProgram(argv[0]));

  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    absl::string_view kv = *e;
    std::string key(kv.substr(0, kv.find('=')));
    if (extra_env.count(key) == 0) env.emplace_back(kv);
  }
  for (const auto& [key, value] : extra_env) env.push_back(absl::StrCat(key, "=", value));
  std::vector<char*> argv_c;
  for (const auto& a : argv) argv_c.push_back(const_cast<char*>(a.c_str()));
  argv_c.push_back(nullptr);
  std::vector<char*> env_c;
  for (const auto& e : env) env_c.push_back(const_cast<char*>(e.c_str()));
  env_c.push_back(nullptr);

  int out_fd = OpenLog(out_path);
  int err_fd = err_path == out_path ? out_fd : OpenLog(err_path);
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int pipe_fds[2] = {-1, -1};
  auto close_all = [&] {
    for (int fd : {out_fd, err_fd == out_fd ? -1 : err_fd, null_fd, pipe_fds[0], pipe_fds[1]}) {
      if (fd >= 0) close(fd);
    }
  };
  if (out_fd < 0 || err_fd < 0 || null_fd < 0 || pipe2(pipe_fds, O_CLOEXEC) != 0) {
    int e = errno;
    close_all();
    return absl::InternalError(absl::StrCat("cannot prepare output for ", argv[0], " (", out_path,
                                            "): ", std::strerror(e)));
  }
  if (header) {
    std::string line = absl::StrCat("=== kvsync harness: exec ", absl::StrJoin(argv, " "), "\n");
    if (write(out_fd, line.data(), line.size()) < 0) {
      // The header is only a convenience for readers of the log.
    }
  }

  sigset_t empty_set;
  sigemptyset(&empty_set);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the parent died before prctl took effect
    sigprocmask(SIG_SETMASK, &empty_set, nullptr);
    sigaction(SIGPIPE, &default_action, nullptr);
    dup2(null_fd, 0);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    // Stray descriptors without O_CLOEXEC must not leak into servers; older kernels lack this
    // flag, in which case we rely on descriptors being close-on-exec already.
    syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
    execve(program.c_str(), argv_c.data(), env_c.data());
    int e = errno;
    ssize_t ignored = write(pipe_fds[1], &e, sizeof(e));
    (void)ignored;
    _exit(127);
  }
  if (pid < 0) {
    int e = errno;
    close_all();
    return absl::InternalError(absl::StrCat("fork for ", argv[0], ": ", std::strerror(e)));
  }
  setpgid(pid, pid);  // also from the parent, so signalling the group never races the child
  close(pipe_fds[1]);
  pipe_fds[1] = -1;
  int exec_errno = 0;
  ssize_t n;
  do {
    n = read(pipe_fds[0], &exec_errno, sizeof(exec_errno));
  } while (n < 0 && errno == EINTR);
  close_all();
  if (n == sizeof(exec_errno)) {
    int status;
    waitpid(pid, &status, 0);
    return absl::InternalError(
        absl::StrCat("cannot execute ", program, ": ", std::strerror(exec_errno)));
  }
  return pid;
}

constexpr size_t kWholeFile = static_cast<size_t>(1) << 40;

std::string ReadTail(const std::string& path, size_t bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  std::streamoff start = size > static_cast<std::streamoff>(bytes) ? size - bytes : 0;
  in.seekg(start);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(
    std::vector<std::string> argv, std::string log_path,
    std::map<std::string, std::string> extra_env) {
  ASSIGN_OR_RETURN(int pid, Spawn(argv, log_path, log_path, extra_env, /*header=*/true));
  return SubprocessAccess::Make(pid, std::move(log_path));
}

Subprocess::~Subprocess() { Stop(); }

bool Subprocess::ReapLocked() const {
  if (exited_) return true;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exited_ = true;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  } else if (r < 0 && errno == ECHILD) {
    exited_ = true;  // reaped elsewhere; the code is unknown
  }
  return exited_;
}

void Subprocess::Signal(int sig) {
  absl::MutexLock lock(&mu_);
  if (!ReapLocked()) kill(pid_, sig);
}

bool Subprocess::WaitStopped(std::chrono::milliseconds timeout) {
  const std::string tasks = absl::StrCat("/proc/", pid_, "/task");
  return WaitFor(
      [&] {
        std::error_code ec;
        int threads = 0;
        for (const auto& entry : std::filesystem::directory_iterator(tasks, ec)) {
          std::ifstream in(entry.path() / "stat");
          std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
          // "<tid> (<comm>) <state> ...": the state follows the last ')'.
          size_t paren = stat.rfind(')');
          if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
          char state = stat[paren + 2];
          if (state != 'T' && state != 't') return false;
          ++threads;
        }
        return !ec && threads > 0;
      },
      timeout, std::chrono::milliseconds(5));
}

bool Subprocess::Running() {
  absl::MutexLock lock(&mu_);
  return !ReapLocked();
}

std::optional<int> Subprocess::Wait(std::chrono::milliseconds timeout) {
  auto reaped = [this] {
    absl::MutexLock lock(&mu_);
    return ReapLocked();
  };
  if (!WaitFor(reaped, timeout, std::chrono::milliseconds(5))) return std::nullopt;
  absl::MutexLock lock(&mu_);
  return exit_code_;
}

std::optional<int> Subprocess::Stop(std::chrono::milliseconds grace) {
  {
    absl::MutexLock lock(&mu_);
    if (ReapLocked()) return exit_code_;
    kill(-pid_, SIGTERM);
    kill(-pid_, SIGCONT);
  }
  if (auto code = Wait(grace)) return code;
  {
    absl::MutexLock lock(&mu_);
    if (!ReapLocked()) kill(-pid_, SIGKILL);
  }
  return Wait(std::chrono::seconds(30));
}

std::string Subprocess::LogTail(size_t bytes) const {
  std::string tail = ReadTail(log_path_, bytes);
  absl::MutexLock lock(&mu_);
  if (ReapLocked()) {
    absl::StrAppend(&tail, "=== the process has exited: code ", exit_code_,
                    exit_code_ < 0 ? " (unknown)" : "", "\n");
  }
  return tail;
}

absl::StatusOr<CommandResult> RunCommand(std::vector<std::string> argv,
                                         std::chrono::milliseconds timeout,
                                         std::map<std::string, std::string> extra_env) {
  const char* tmp = std::getenv("TMPDIR");
  std::string base = absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/kvsync-cmd-");
  std::string paths[2];
  for (std::string& path : paths) {
    std::string pattern = base + "XXXXXX";
    int fd = mkstemp(pattern.data());
    if (fd < 0) {
      return absl::InternalError(absl::StrCat("mkstemp(", pattern, "): ", std::strerror(errno)));
    }
    close(fd);
    path = pattern;
  }
  auto cleanup = [&] {
    unlink(paths[0].c_str());
    unlink(paths[1].c_str());
  };
  auto pid = Spawn(argv, paths[0], paths[1], extra_env, /*header=*/false);
  if (!pid.ok()) {
    cleanup();
    return pid.status();
  }
  auto process = SubprocessAccess::Make(*pid, paths[0]);
  std::optional<int> code = process->Wait(timeout);
  bool timed_out = !code.has_value();
  if (timed_out) code = process->Stop(std::chrono::milliseconds(0));
  CommandResult result;
  result.exit_code = code.value_or(-1);
  result.out = ReadTail(paths[0], kWholeFile);
  result.err = ReadTail(paths[1], kWholeFile);
  cleanup();
  if (timed_out) {
    return absl::DeadlineExceededError(
        absl::StrCat(absl::StrJoin(argv, " "), " did not finish within ", timeout.count(),
                     " ms; stdout: ", result.out, " stderr: ", result.err));
  }
  return result;
}

}  // namespace kvsync::testing
