// A minimal blocking HTTP/1.1 GET for tests (admin endpoints on loopback). Any thread.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace kvsync::testing {

struct HttpResult {
  int status = 0;
  std::string body;
};

// GET http://<address><path> with a 5 s timeout; Unavailable when the connection fails.
absl::StatusOr<HttpResult> HttpGet(const std::string& address, const std::string& path);

// The value of the first sample `sample` (a metric name, optionally with its labels) in a
// Prometheus text page; -1 when absent.
double MetricSample(const std::string& page, const std::string& sample);

}  // namespace kvsync::testing
