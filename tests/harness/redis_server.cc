#include "tests/harness/redis_server.h"

#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "tests/harness/wait.h"

namespace kvsync::testing {
namespace {

using std::chrono::milliseconds;

constexpr char kRedisServer[] = "/usr/bin/redis-server";
constexpr char kRedisCli[] = "/usr/bin/redis-cli";
constexpr milliseconds kReadyDeadline(10000);
constexpr milliseconds kStopGrace(5000);
constexpr int kStartAttempts = 3;

// A throwaway CA and a server certificate valid for the loopback address.
constexpr char kOpensslConfig[] = R"([req]
distinguished_name = dn
[dn]
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
authorityKeyIdentifier = keyid
)";

absl::Status Run(std::vector<std::string> argv) {
  std::string what = absl::StrJoin(argv, " ");
  ASSIGN_OR_RETURN(CommandResult result, RunCommand(std::move(argv), milliseconds(30000)));
  if (result.exit_code != 0) {
    return absl::InternalError(
        absl::StrCat(what, " exited with code ", result.exit_code, ": ", result.err, result.out));
  }
  return absl::OkStatus();
}

}  // namespace

RedisServer::RedisServer(RedisServerOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(RedisServerOptions options) {
  for (int attempt = 1;; ++attempt) {
    std::unique_ptr<RedisServer> server(new RedisServer(options));
    absl::Status status = server->Init();
    if (status.ok()) return server;
    if (attempt == kStartAttempts || !server->LostPort()) return status;
  }
}

absl::Status RedisServer::Init() {
  temp_dir_ = MakeTempDir("redis");
  log_path_ = temp_dir_ + "/redis.log";
  port_ = FreePort();
  if (options_.tls) RETURN_IF_ERROR(MakeCertificates());
  RETURN_IF_ERROR(Launch());
  return WaitReady();
}

RedisServer::~RedisServer() {
  Stop();
  if (temp_dir_.empty()) return;
  if (std::getenv("KVSYNC_KEEP_TEMP") != nullptr) {
    std::fprintf(stderr, "kvsync harness: kept redis temp dir %s\n", temp_dir_.c_str());
    return;
  }
  std::error_code ignored;
  std::filesystem::remove_all(temp_dir_, ignored);
}

absl::Status RedisServer::MakeCertificates() {
  const std::string dir = temp_dir_ + "/";
  const std::string config = dir + "openssl.cnf";
  {
    std::ofstream out(config);
    out << kOpensslConfig;
    if (!out) return absl::InternalError("cannot write " + config);
  }
  ca_file_ = dir + "ca.crt";
  cert_file_ = dir + "server.crt";
  key_file_ = dir + "server.key";
  const std::vector<std::string> ec_key = {
      "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-config", config};
  std::vector<std::string> ca = {
      "openssl", "req",          "-x509",  "-new",  "-days",
      "30",      "-extensions",  "ca_ext", "-subj", "/CN=kvsync-test-redis-ca",
      "-keyout", dir + "ca.key", "-out",   ca_file_};
  ca.insert(ca.end(), ec_key.begin(), ec_key.end());
  RETURN_IF_ERROR(Run(ca));
  std::vector<std::string> csr = {"openssl", "req",     "-new", "-subj",           "/CN=localhost",
                                  "-keyout", key_file_, "-out", dir + "server.csr"};
  csr.insert(csr.end(), ec_key.begin(), ec_key.end());
  RETURN_IF_ERROR(Run(csr));
  return Run({"openssl", "x509", "-req", "-in", dir + "server.csr", "-CA", ca_file_, "-CAkey",
              dir + "ca.key", "-CAcreateserial", "-days", "30", "-extfile", config, "-extensions",
              "server_ext", "-out", cert_file_});
}

absl::Status RedisServer::Launch() {
  std::vector<std::string> argv = {kRedisServer, "--bind",      "127.0.0.1", "--dir",
                                   temp_dir_,    "--save",      "",          "--appendonly",
                                   "no",         "--daemonize", "no"};
  if (options_.tls) {
    argv.insert(argv.end(), {"--port", "0", "--tls-port", absl::StrCat(port_), "--tls-cert-file",
                             cert_file_, "--tls-key-file", key_file_, "--tls-ca-cert-file",
                             ca_file_, "--tls-auth-clients", "no"});
  } else {
    argv.insert(argv.end(), {"--port", absl::StrCat(port_)});
  }
  if (!options_.password.empty()) argv.insert(argv.end(), {"--requirepass", options_.password});
  argv.insert(argv.end(), options_.extra_flags.begin(), options_.extra_flags.end());
  ASSIGN_OR_RETURN(process_, Subprocess::Start(std::move(argv), log_path_));
  return absl::OkStatus();
}

absl::Status RedisServer::WaitReady() {
  std::vector<std::string> ping = {kRedisCli, "-h", "127.0.0.1", "-p", absl::StrCat(port_)};
  if (options_.tls) ping.insert(ping.end(), {"--tls", "--cacert", ca_file_});
  if (!options_.password.empty()) {
    ping.insert(ping.end(), {"-a", options_.password, "--no-auth-warning"});
  }
  ping.push_back("PING");
  bool ready = WaitFor(
      [&] {
        if (!process_->Running()) return true;
        auto result = RunCommand(ping, milliseconds(5000));
        return result.ok() && result->exit_code == 0 && absl::StrContains(result->out, "PONG");
      },
      kReadyDeadline, milliseconds(50));
  if (!process_->Running()) {
    return absl::UnavailableError(absl::StrCat("redis-server exited with code ",
                                               process_->Wait(milliseconds(0)).value_or(-1),
                                               " before answering PING\n", LogTail()));
  }
  if (!ready) {
    return absl::DeadlineExceededError(
        absl::StrCat("redis-server did not answer PING within the deadline\n", LogTail()));
  }
  return absl::OkStatus();
}

bool RedisServer::LostPort() const {
  return absl::StrContains(LogTail(), "Address already in use");
}

std::string RedisServer::addr() const { return absl::StrCat("127.0.0.1:", port_); }

redis::Options RedisServer::client_options() const {
  redis::Options o;
  o.addr = addr();
  o.password = options_.password;
  o.tls = options_.tls;
  o.ca_file = ca_file_;
  o.connect_timeout = milliseconds(2000);
  o.io_timeout = milliseconds(2000);
  return o;
}

void RedisServer::Stop() {
  if (process_ != nullptr) process_->Stop(kStopGrace);
}

void RedisServer::Kill() {
  if (process_ == nullptr) return;
  process_->Signal(SIGKILL);
  process_->Wait(milliseconds(10000));
}

absl::Status RedisServer::Restart() {
  Stop();
  RETURN_IF_ERROR(Launch());
  return WaitReady();
}

bool RedisServer::running() const { return process_ != nullptr && process_->Running(); }

std::string RedisServer::LogTail() const {
  if (process_ == nullptr) return "(not started)\n";
  return absl::StrCat("--- redis-server (", log_path_, ") ---\n", process_->LogTail(3000));
}

}  // namespace kvsync::testing
