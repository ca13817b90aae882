#include "common/check.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace kvsync::common {
namespace {

void DefaultHandler(std::string_view file, int line, std::string_view condition,
                    std::string_view message) {
  std::fprintf(stderr, "kvsync: invariant violated at %.*s:%d: %.*s%s%.*s\n",
               static_cast<int>(file.size()), file.data(), line, static_cast<int>(condition.size()),
               condition.data(), message.empty() ? "" : ": ", static_cast<int>(message.size()),
               message.data());
}

std::atomic<CheckFailureHandler> g_handler{nullptr};

}  // namespace

void SetCheckFailureHandler(CheckFailureHandler handler) { g_handler.store(handler); }

namespace internal {

CheckFailure::~CheckFailure() {
  const std::string message = stream_.str();
  CheckFailureHandler handler = g_handler.load();
  (handler != nullptr ? handler : DefaultHandler)(file_, line_, condition_, message);
  std::fflush(stderr);
  std::abort();
}

}  // namespace internal
}  // namespace kvsync::common
