// Tells which failures of a retry series are worth a log line: the first one, and every later
// one of a kind not seen yet in the series (a deadline turning into "permission denied" must
// be logged, a thousand identical deadlines must not). A kind is the status code plus the
// message with its digits removed (addresses, ports, milliseconds vary within one kind).
// Repeats are for metrics. One ErrorSeries per retry loop; not thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace kvsync::common {

class ErrorSeries {
 public:
  // True when `status` is the first failure of the series or of a new kind.
  bool IsNew(const absl::Status& status);
  // The series ended (a success): the next failure is new again.
  void Reset() { kinds_.clear(); }
  bool empty() const { return kinds_.empty(); }

 private:
  std::vector<std::string> kinds_;  // at most kMaxKinds, oldest dropped first
};

}  // namespace kvsync::common
