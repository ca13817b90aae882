#include "etcd/grpc_log.h"

#include <grpc/support/log.h>

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "log/log.h"

namespace kvsync::etcd {
namespace {

void GrpcLog(gpr_log_func_args* args) {
  // gRPC logs only errors unless GRPC_VERBOSITY asks for more; its info and debug lines are
  // library chatter, kept at debug.
  log::Level level =
      args->severity == GPR_LOG_SEVERITY_ERROR ? log::Level::kError : log::Level::kDebug;
  if (!log::Enabled(level)) return;
  std::string source = absl::StrCat(args->file ? args->file : "?", ":", args->line);
  std::string message(absl::StripTrailingAsciiWhitespace(args->message ? args->message : ""));
  log::Write(level, "grpc", "library message", {{"message", message}, {"source", source}});
}

}  // namespace

void InstallGrpcLogging() { gpr_set_log_function(&GrpcLog); }

}  // namespace kvsync::etcd
