#include "metrics/process_metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"

namespace kvsync::metrics {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The fields of /proc/self/stat after "pid (comm)", so that fields()[0] is field 3 (state) of
// proc(5). The command name may contain spaces and parentheses: split after the last ')'.
std::vector<std::string> StatFields() {
  std::ifstream in("/proc/self/stat");
  std::string line;
  if (!std::getline(in, line)) return {};
  size_t close = line.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(line.substr(close + 1));
  std::vector<std::string> fields;
  for (std::string f; rest >> f;) fields.push_back(f);
  return fields;
}

// Field `n` (1-based, as numbered in proc(5)) of /proc/self/stat, or NaN.
double StatField(const std::vector<std::string>& fields, size_t n) {
  double v = 0;
  if (n < 3 || n - 3 >= fields.size() || !absl::SimpleAtod(fields[n - 3], &v)) return kNaN;
  return v;
}

double ClockTicks() { return static_cast<double>(sysconf(_SC_CLK_TCK)); }

double CpuSeconds() {
  std::vector<std::string> f = StatFields();
  return (StatField(f, 14) + StatField(f, 15)) / ClockTicks();  // utime + stime
}

double ResidentBytes() {
  return StatField(StatFields(), 24) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

double VirtualBytes() { return StatField(StatFields(), 23); }

double OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return kNaN;
  double count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // the descriptor of `dir` itself
}

// The soft "Max open files" limit from /proc/self/limits; +Inf when unlimited.
double MaxFds() {
  std::ifstream in("/proc/self/limits");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Max open files", 0) != 0) continue;
    std::istringstream fields(line.substr(sizeof("Max open files") - 1));
    std::string soft;
    fields >> soft;
    if (soft == "unlimited") return std::numeric_limits<double>::infinity();
    double v = 0;
    return absl::SimpleAtod(soft, &v) ? v : kNaN;
  }
  return kNaN;
}

// Boot time (btime in /proc/stat) plus the process start time in clock ticks since boot.
double StartTimeSeconds() {
  std::ifstream in("/proc/stat");
  double btime = kNaN;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("btime ", 0) == 0) {
      if (!absl::SimpleAtod(line.substr(6), &btime)) btime = kNaN;
      break;
    }
  }
  return btime + StatField(StatFields(), 22) / ClockTicks();
}

}  // namespace

void AddProcessMetrics(Registry* registry) {
  registry->AddCounterCallback("process_cpu_seconds_total",
                               "Total user and system CPU time spent in seconds.", {}, CpuSeconds);
  registry->AddGaugeCallback("process_resident_memory_bytes", "Resident memory size in bytes.", {},
                             ResidentBytes);
  registry->AddGaugeCallback("process_virtual_memory_bytes", "Virtual memory size in bytes.", {},
                             VirtualBytes);
  registry->AddGaugeCallback("process_open_fds", "Number of open file descriptors.", {}, OpenFds);
  registry->AddGaugeCallback("process_max_fds", "Maximum number of open file descriptors.", {},
                             MaxFds);
  // The start time never changes: read it once.
  double start = StartTimeSeconds();
  registry->AddGaugeCallback("process_start_time_seconds",
                             "Start time of the process since unix epoch in seconds.", {},
                             [start] { return start; });
}

}  // namespace kvsync::metrics
