#include "tests/harness/etcd_cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "tests/harness/wait.h"

namespace kvsync::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr char kEtcd[] = "/usr/bin/etcd";
constexpr char kEtcdctl[] = "/usr/bin/etcdctl";
constexpr milliseconds kReadyDeadline(20000);
constexpr milliseconds kStopGrace(5000);
constexpr int kStartAttempts = 3;

// Extensions for a throwaway CA, a server certificate (also usable as a client, which etcd's
// gRPC gateway needs when it dials its own TLS port) and a client certificate.
constexpr char kOpensslConfig[] = R"([req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
authorityKeyIdentifier = keyid
[client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
)";

// A cheap pre-check before the (slower) etcdctl health probe.
bool PortAccepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

// Runs a command that must succeed; `secret` (a password) is masked in the error message.
absl::Status RunOk(std::vector<std::string> argv, milliseconds timeout,
                   std::map<std::string, std::string> env = {}, std::string* out = nullptr,
                   const std::string& secret = "") {
  std::string what = absl::StrJoin(argv, " ");
  if (!secret.empty()) what = absl::StrReplaceAll(what, {{secret, "***"}});
  ASSIGN_OR_RETURN(CommandResult result, RunCommand(std::move(argv), timeout, std::move(env)));
  if (result.exit_code != 0) {
    return absl::InternalError(
        absl::StrCat(what, " exited with code ", result.exit_code, ": ", result.err, result.out));
  }
  if (out != nullptr) *out = std::move(result.out);
  return absl::OkStatus();
}

}  // namespace

EtcdCluster::EtcdCluster(EtcdClusterOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<EtcdCluster>> EtcdCluster::Start(EtcdClusterOptions options) {
  if (options.members < 1) return absl::InvalidArgumentError("an etcd cluster needs a member");
  for (int attempt = 1;; ++attempt) {
    std::unique_ptr<EtcdCluster> cluster(new EtcdCluster(options));
    absl::Status status = cluster->Init();
    if (status.ok()) return cluster;
    if (attempt == kStartAttempts || !cluster->LostPort()) return status;
  }
}

absl::Status EtcdCluster::Init() {
  static std::atomic<int> counter{0};
  temp_dir_ = MakeTempDir(options_.name);
  token_ = absl::StrCat("kvsync-", options_.name, "-", getpid(), "-", counter++, "-",
                        Clock::now().time_since_epoch().count());
  if (options_.tls) RETURN_IF_ERROR(MakeCertificates());
  members_.resize(options_.members);
  for (int i = 0; i < size(); ++i) {
    Member& m = members_[i];
    m.name = absl::StrCat(options_.name, "-", i);
    m.client_port = FreePort();
    m.peer_port = FreePort();
    m.data_dir = absl::StrCat(temp_dir_, "/", m.name, ".data");
    m.log_path = absl::StrCat(temp_dir_, "/", m.name, ".log");
  }
  // Members start together: none becomes ready before a quorum has started.
  for (int i = 0; i < size(); ++i) RETURN_IF_ERROR(StartMember(i, /*existing=*/false));
  auto deadline = Clock::now() + kReadyDeadline;
  for (int i = 0; i < size(); ++i) RETURN_IF_ERROR(WaitReady(i, deadline));
  if (!options_.auth_root_password.empty()) {
    RETURN_IF_ERROR(Etcdctl({"user", "add", "root:" + options_.auth_root_password}));
    RETURN_IF_ERROR(Etcdctl({"role", "add", "root"}));
    RETURN_IF_ERROR(Etcdctl({"user", "grant-role", "root", "root"}));
    RETURN_IF_ERROR(Etcdctl({"auth", "enable"}));
    auth_enabled_ = true;
  }
  return absl::OkStatus();
}

EtcdCluster::~EtcdCluster() {
  // Members get SIGTERM one at a time while the others still hold a quorum: a stopping leader
  // then hands leadership to a live follower at once. The members left once no quorum would
  // remain get SIGKILL: they cannot commit anything, and a leader among them would wait out
  // (5 s + 2 election timeouts) a leadership transfer to a member that has just stopped.
  int running = 0;
  for (Member& m : members_) running += m.process != nullptr && m.process->Running();
  for (Member& m : members_) {
    if (m.process == nullptr || !m.process->Running()) continue;
    if (size() > 1 && running - 1 <= size() / 2) break;
    m.process->Stop(kStopGrace);
    --running;
  }
  for (Member& m : members_) {
    if (m.process != nullptr) m.process->Signal(SIGKILL);
  }
  for (Member& m : members_) {
    if (m.process != nullptr) m.process->Wait(kStopGrace);
  }
  if (temp_dir_.empty()) return;
  if (std::getenv("KVSYNC_KEEP_TEMP") != nullptr) {
    std::fprintf(stderr, "kvsync harness: kept etcd temp dir %s\n", temp_dir_.c_str());
    return;
  }
  std::error_code ignored;
  std::filesystem::remove_all(temp_dir_, ignored);
}

absl::Status EtcdCluster::MakeCertificates() {
  std::string config = temp_dir_ + "/openssl.cnf";
  {
    std::ofstream out(config);
    out << kOpensslConfig;
    if (!out) return absl::InternalError("cannot write " + config);
  }
  const std::string dir = temp_dir_ + "/";
  ca_file_ = dir + "ca.crt";
  server_cert_file_ = dir + "server.crt";
  server_key_file_ = dir + "server.key";
  client_cert_file_ = dir + "client.crt";
  client_key_file_ = dir + "client.key";
  const std::vector<std::string> new_key = {
      "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-config", config};
  const milliseconds timeout(30000);
  std::vector<std::string> ca = absl::StrSplit(
      "openssl req -x509 -new -days 30 -extensions ca -subj /CN=kvsync-test-ca", ' ');
  ca.insert(ca.end(), {"-keyout", dir + "ca.key", "-out", ca_file_});
  ca.insert(ca.end(), new_key.begin(), new_key.end());
  RETURN_IF_ERROR(RunOk(ca, timeout));
  struct Leaf {
    std::string name, cn, cert, key;
  };
  for (const Leaf& leaf :
       {Leaf{"server", "localhost", server_cert_file_, server_key_file_},
        Leaf{"client", "kvsync-test-client", client_cert_file_, client_key_file_}}) {
    std::string csr = dir + leaf.name + ".csr";
    std::vector<std::string> req = {"openssl", "req",    "-new", "-subj", "/CN=" + leaf.cn,
                                    "-keyout", leaf.key, "-out", csr};
    req.insert(req.end(), new_key.begin(), new_key.end());
    RETURN_IF_ERROR(RunOk(req, timeout));
    RETURN_IF_ERROR(RunOk({"openssl", "x509", "-req", "-in", csr, "-CA", ca_file_, "-CAkey",
                           dir + "ca.key", "-CAcreateserial", "-days", "30", "-extfile", config,
                           "-extensions", leaf.name, "-out", leaf.cert},
                          timeout));
  }
  return absl::OkStatus();
}

std::string EtcdCluster::endpoint(int member) const {
  return absl::StrCat(options_.tls ? "https://" : "", "127.0.0.1:", members_[member].client_port);
}

std::vector<std::string> EtcdCluster::endpoints() const {
  std::vector<std::string> out;
  for (int i = 0; i < size(); ++i) out.push_back(endpoint(i));
  return out;
}

std::string EtcdCluster::endpoints_csv() const { return absl::StrJoin(endpoints(), ","); }

absl::Status EtcdCluster::StartMember(int member, bool existing) {
  Member& m = members_[member];
  std::string scheme = options_.tls ? "https://" : "http://";
  std::string client_url = absl::StrCat(scheme, "127.0.0.1:", m.client_port);
  std::string peer_url = absl::StrCat("http://127.0.0.1:", m.peer_port);
  std::vector<std::string> initial;
  for (const Member& other : members_) {
    initial.push_back(absl::StrCat(other.name, "=http://127.0.0.1:", other.peer_port));
  }
  std::vector<std::string> argv = {
      kEtcd,
      "--name=" + m.name,
      "--data-dir=" + m.data_dir,
      "--listen-client-urls=" + client_url,
      "--advertise-client-urls=" + client_url,
      "--listen-peer-urls=" + peer_url,
      "--initial-advertise-peer-urls=" + peer_url,
      "--initial-cluster=" + absl::StrJoin(initial, ","),
      "--initial-cluster-token=" + token_,
      std::string("--initial-cluster-state=") + (existing ? "existing" : "new"),
      "--logger=zap",
      "--log-outputs=stderr",
      "--quota-backend-bytes=4294967296",
      "--snapshot-count=100000",
      "--heartbeat-interval=100",
      "--election-timeout=1000",
  };
  if (options_.tls) {
    argv.insert(argv.end(), {"--cert-file", server_cert_file_, "--key-file", server_key_file_,
                             "--trusted-ca-file", ca_file_, "--client-cert-auth"});
  }
  argv.insert(argv.end(), options_.extra_flags.begin(), options_.extra_flags.end());
  ASSIGN_OR_RETURN(m.process, Subprocess::Start(std::move(argv), m.log_path));
  m.paused = false;
  return absl::OkStatus();
}

std::vector<std::string> EtcdCluster::EtcdctlArgs(const std::vector<std::string>& endpoints,
                                                  const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {kEtcdctl, "--endpoints=" + absl::StrJoin(endpoints, ",")};
  if (options_.tls) {
    argv.push_back("--cacert=" + ca_file_);
    argv.push_back("--cert=" + client_cert_file_);
    argv.push_back("--key=" + client_key_file_);
  }
  if (auth_enabled_) argv.push_back("--user=root:" + options_.auth_root_password);
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

bool EtcdCluster::Healthy(int member) {
  auto result =
      RunCommand(EtcdctlArgs({endpoint(member)},
                             {"--dial-timeout=2s", "--command-timeout=2s", "endpoint", "health"}),
                 milliseconds(10000), {{"ETCDCTL_API", "3"}});
  return result.ok() && result->exit_code == 0;
}

absl::Status EtcdCluster::WaitReady(int member, Clock::time_point deadline) {
  Member& m = members_[member];
  auto remaining = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  bool done = WaitFor(
      [&] {
        if (!m.process->Running()) return true;
        return PortAccepts(m.client_port) && Healthy(member);
      },
      std::max(remaining, milliseconds(0)), milliseconds(50));
  if (!m.process->Running()) {
    return absl::UnavailableError(absl::StrCat("etcd member ", m.name, " exited with code ",
                                               m.process->Wait(milliseconds(0)).value_or(-1),
                                               " before becoming healthy\n", LogTails()));
  }
  if (!done) {
    return absl::DeadlineExceededError(
        absl::StrCat("etcd member ", m.name, " not healthy within the deadline\n", LogTails()));
  }
  return absl::OkStatus();
}

bool EtcdCluster::LostPort() const {
  for (const Member& m : members_) {
    if (m.process != nullptr &&
        absl::StrContains(m.process->LogTail(20000), "address already in use")) {
      return true;
    }
  }
  return false;
}

void EtcdCluster::Kill(int member) {
  Member& m = members_[member];
  if (m.process == nullptr) return;
  m.process->Signal(SIGKILL);
  m.process->Wait(milliseconds(10000));
  m.paused = false;
}

void EtcdCluster::Pause(int member) {
  Member& m = members_[member];
  if (m.process == nullptr) return;
  m.process->Signal(SIGSTOP);
  m.process->WaitStopped(milliseconds(5000));
  m.paused = true;
}

void EtcdCluster::Resume(int member) {
  Member& m = members_[member];
  if (m.process == nullptr) return;
  m.process->Signal(SIGCONT);
  m.paused = false;
}

absl::Status EtcdCluster::Restart(int member) {
  Member& m = members_[member];
  if (m.process != nullptr) m.process->Stop(kStopGrace);
  RETURN_IF_ERROR(StartMember(member, /*existing=*/true));
  return WaitReady(member, Clock::now() + kReadyDeadline);
}

absl::Status EtcdCluster::Rebuild() {
  for (Member& m : members_) {
    if (m.process != nullptr) m.process->Signal(SIGKILL);
  }
  for (Member& m : members_) {
    if (m.process != nullptr) m.process->Wait(kStopGrace);
    m.process.reset();
    std::error_code ignored;
    std::filesystem::remove_all(m.data_dir, ignored);
  }
  auth_enabled_ = false;
  for (int i = 0; i < size(); ++i) RETURN_IF_ERROR(StartMember(i, /*existing=*/false));
  auto deadline = Clock::now() + kReadyDeadline;
  for (int i = 0; i < size(); ++i) RETURN_IF_ERROR(WaitReady(i, deadline));
  return absl::OkStatus();
}

absl::StatusOr<int> EtcdCluster::LeaderIndex() {
  std::vector<std::string> live;
  for (int i = 0; i < size(); ++i) {
    if (members_[i].process != nullptr && !members_[i].paused && members_[i].process->Running()) {
      live.push_back(endpoint(i));
    }
  }
  if (live.empty()) return absl::UnavailableError("no etcd member is running");
  // A down member only adds a warning on stderr and a non-zero exit; stdout still lists the
  // members that answered.
  ASSIGN_OR_RETURN(CommandResult result,
                   RunCommand(EtcdctlArgs(live, {"--dial-timeout=1s", "--command-timeout=1s",
                                                 "endpoint", "status", "-w", "json"}),
                              milliseconds(15000), {{"ETCDCTL_API", "3"}}));
  nlohmann::json statuses = nlohmann::json::parse(result.out, nullptr, /*allow_exceptions=*/false);
  if (!statuses.is_array()) {
    return absl::UnavailableError(
        absl::StrCat("etcdctl endpoint status gave no status list: ", result.err));
  }
  int leader = -1;
  uint64_t leader_term = 0;
  try {
    for (const auto& entry : statuses) {
      if (!entry.is_object()) continue;
      const auto status = entry.value("Status", nlohmann::json::object());
      uint64_t member_id =
          status.value("header", nlohmann::json::object()).value("member_id", uint64_t{0});
      uint64_t claimed = status.value("leader", uint64_t{0});
      uint64_t term = status.value("raftTerm", uint64_t{0});
      if (member_id == 0 || member_id != claimed) continue;
      std::string ep = entry.value("Endpoint", "");
      for (int i = 0; i < size(); ++i) {
        if (endpoint(i) == ep && (leader < 0 || term > leader_term)) {
          leader = i;
          leader_term = term;
        }
      }
    }
  } catch (const nlohmann::json::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("unexpected etcdctl endpoint status output: ", e.what()));
  }
  if (leader < 0) {
    return absl::UnavailableError(absl::StrCat("no etcd member claims leadership; ", result.err));
  }
  return leader;
}

absl::Status EtcdCluster::Etcdctl(std::vector<std::string> args, std::string* out) {
  return RunOk(EtcdctlArgs(endpoints(), args), milliseconds(60000), {{"ETCDCTL_API", "3"}}, out,
               options_.auth_root_password);
}

std::string EtcdCluster::LogTails() const {
  std::string out;
  for (const Member& m : members_) {
    absl::StrAppend(&out, "--- ", m.name, " (", m.log_path, ") ---\n",
                    m.process != nullptr ? m.process->LogTail(3000) : "(not started)\n", "\n");
  }
  return out;
}

}  // namespace kvsync::testing
