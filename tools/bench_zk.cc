// ZooKeeper benchmark drivers for kvsync-bench:
//   zk-load   builds a Dubbo-like registry /<root>/<service>/{providers,consumers,configurators,
//             routers} with M providers per service whose names are URL-encoded provider URLs
//             padded to --name-bytes; async creates on one session, --concurrency in flight
//             (ZooKeeper applies one session's requests in order, so a parent submitted before
//             its children is created first). Existing nodes count as "existing", so a re-run
//             tops a tree up. With --ephemeral the providers are ephemeral: the command prints
//             its result, then a line "ready", and holds the session until SIGINT/SIGTERM.
//   zk-walk   times zk::Walk over the root without watches: the ZooKeeper read ceiling.
//   zk-count  the number of nodes under (and including) the root (a children-only walk).
// Results are one JSON line on stdout, errors one line on stderr; exit 0 done, 1 failure, 2 bad
// flags. Threads: the main thread runs the command; the C client's IO and completion threads
// run the callbacks, which only count.
#include "tools/bench_zk.h"

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "zk/session.h"
#include "zk/walk.h"

namespace kvsync::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

int FailZk(const std::string& command, const absl::Status& status) {
  std::fprintf(stderr, "kvsync-bench %s: error: %s\n", command.c_str(),
               std::string(status.message()).c_str());
  return status.code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
}

void Print(const std::string& line) {
  std::fprintf(stdout, "%s\n", line.c_str());
  std::fflush(stdout);
}

double Since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

absl::Status CheckRoot(const std::string& root) {
  if (root.empty() || root[0] != '/' || (root.size() > 1 && root.back() == '/')) {
    return absl::InvalidArgumentError("--root must be an absolute path without a trailing '/'");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<zk::Session>> OpenZk(const std::string& servers) {
  zk::SessionOptions options;
  options.servers = servers;
  options.session_timeout = std::chrono::seconds(30);
  return zk::Session::Open(options, nullptr);
}

// Dubbo's registry encodes provider URLs with URLEncoder: the characters below become %XX.
std::string UrlEncode(const std::string& raw) {
  std::string out;
  out.reserve(raw.size() * 3 / 2);
  for (char c : raw) {
    switch (c) {
      case ':':
      case '/':
      case '?':
      case '=':
      case '&':
      case ',':
        absl::StrAppend(&out, absl::StrFormat("%%%02X", static_cast<unsigned char>(c)));
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string ServiceName(int service) { return absl::StrCat("com.example.Service", service); }

// A unique, URL-encoded provider URL padded to about `bytes` characters.
std::string ProviderName(int service, int provider, int bytes) {
  std::string iface = ServiceName(service);
  std::string raw = absl::StrFormat(
      "dubbo://10.%d.%d.%d:%d/%s?anyhost=true&application=demo-provider-%d&deprecated=false&"
      "dubbo=2.0.2&dynamic=true&generic=false&interface=%s&methods=sayHello,sayGoodbye&pid=%d&"
      "release=2.7.8&side=provider&timestamp=1600000000000",
      (provider >> 16) & 255, (provider >> 8) & 255, provider & 255, 20880 + service % 1000, iface,
      service, iface, 1000 + provider);
  std::string name = UrlEncode(raw);
  const std::string pad = UrlEncode("&padding=");
  if (static_cast<int>(name.size() + pad.size()) < bytes) {
    name += pad;
    name.append(bytes - name.size(), 'x');
  }
  return name;
}

// Bounded asynchronous creates on one session.
class Loader {
 public:
  Loader(zk::Session* session, int concurrency) : session_(session), concurrency_(concurrency) {}

  void Create(const std::string& path, bool ephemeral) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Loader* l)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(l->mu_) { return l->inflight_ < l->concurrency_; },
          this));
      ++inflight_;
    }
    zk::CreateOptions options;
    options.ephemeral = ephemeral;
    session_->CreateAsync(path, "", options, [this](const absl::Status& status) {
      absl::MutexLock lock(&mu_);
      --inflight_;
      if (status.ok()) {
        ++created_;
      } else if (absl::IsAlreadyExists(status)) {
        ++existing_;
      } else if (error_.ok()) {
        error_ = status;
      }
    });
  }

  // Waits for every create; the first error, if any.
  absl::Status Finish() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](Loader* l) ABSL_EXCLUSIVE_LOCKS_REQUIRED(l->mu_) { return l->inflight_ == 0; }, this));
    return error_;
  }
  bool failed() {
    absl::MutexLock lock(&mu_);
    return !error_.ok();
  }
  int64_t created() {
    absl::MutexLock lock(&mu_);
    return created_;
  }
  int64_t existing() {
    absl::MutexLock lock(&mu_);
    return existing_;
  }

 private:
  zk::Session* const session_;
  const int concurrency_;
  absl::Mutex mu_;
  int inflight_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t created_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t existing_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

struct ZkLoadFlags {
  std::string servers;
  std::string root = "/dubbo";
  int services = 100;
  int providers = 10;
  int name_bytes = 1024;
  bool ephemeral = false;
  int concurrency = 64;
};

int RunZkLoad(const ZkLoadFlags& f) {
  if (auto s = CheckRoot(f.root); !s.ok()) return FailZk("zk-load", s);
  // Block SIGINT/SIGTERM before the C client starts its threads, so that only sigwait sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  if (f.ephemeral) pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  auto session = OpenZk(f.servers);
  if (!session.ok()) return FailZk("zk-load", session.status());
  zk::Session* s = session->get();
  auto start = Clock::now();
  if (auto st = s->CreateAll(f.root, ""); !st.ok()) return FailZk("zk-load", st);
  Loader loader(s, f.concurrency);
  for (int svc = 0; svc < f.services && !loader.failed(); ++svc) {
    std::string service = zk::JoinPath(f.root, ServiceName(svc));
    loader.Create(service, false);
    for (const char* category : {"providers", "consumers", "configurators", "routers"}) {
      loader.Create(zk::JoinPath(service, category), false);
    }
    std::string providers = zk::JoinPath(service, "providers");
    for (int p = 0; p < f.providers; ++p) {
      loader.Create(zk::JoinPath(providers, ProviderName(svc, p, f.name_bytes)), f.ephemeral);
    }
  }
  absl::Status status = loader.Finish();
  double seconds = Since(start);
  if (!status.ok()) return FailZk("zk-load", status);
  int64_t total = loader.created() + loader.existing();
  Print(absl::StrFormat(
      R"({"command":"zk-load","root":"%s","services":%d,"providers":%d,"nodes":%d,)"
      R"("created":%d,"existing":%d,"ephemeral":%s,"seconds":%.3f,"nodes_per_second":%.0f})",
      f.root, f.services, f.providers, total, loader.created(), loader.existing(),
      f.ephemeral ? "true" : "false", seconds, seconds > 0 ? total / seconds : 0.0));
  if (!f.ephemeral) return kExitOk;
  Print("ready");
  int sig = 0;
  sigwait(&signals, &sig);
  return kExitOk;  // closing the session deletes the ephemeral providers
}

struct ZkWalkFlags {
  std::string servers;
  std::string root = "/dubbo";
  int concurrency = 64;
  bool presence = false;
};

int RunZkWalk(const ZkWalkFlags& f) {
  if (auto s = CheckRoot(f.root); !s.ok()) return FailZk("zk-walk", s);
  auto session = OpenZk(f.servers);
  if (!session.ok()) return FailZk("zk-walk", session.status());
  zk::WalkOptions options;
  options.roots = {f.root};
  options.concurrency = f.concurrency;
  options.read_data = !f.presence;
  auto start = Clock::now();
  auto result = zk::Walk(session->get(), options,
                         [](const std::string&, const std::string&, const zk::Stat&) {});
  double seconds = Since(start);
  if (!result.ok()) return FailZk("zk-walk", result.status());
  Print(absl::StrFormat(
      R"({"command":"zk-walk","root":"%s","concurrency":%d,"presence":%s,"nodes":%d,"reads":%d,)"
      R"("bytes":%d,"seconds":%.3f,"nodes_per_second":%.0f})",
      f.root, f.concurrency, f.presence ? "true" : "false", result->nodes, result->reads,
      result->bytes, seconds, seconds > 0 ? result->nodes / seconds : 0.0));
  return kExitOk;
}

struct ZkCountFlags {
  std::string servers;
  std::string root = "/dubbo";
};

int RunZkCount(const ZkCountFlags& f) {
  if (auto s = CheckRoot(f.root); !s.ok()) return FailZk("zk-count", s);
  auto session = OpenZk(f.servers);
  if (!session.ok()) return FailZk("zk-count", session.status());
  zk::WalkOptions options;
  options.roots = {f.root};
  options.read_data = false;
  auto result = zk::Walk(session->get(), options,
                         [](const std::string&, const std::string&, const zk::Stat&) {});
  if (!result.ok()) return FailZk("zk-count", result.status());
  Print(absl::StrFormat(R"({"command":"zk-count","root":"%s","count":%d})", f.root, result->nodes));
  return kExitOk;
}

}  // namespace

void AddZkCommands(CLI::App& app, std::map<std::string, std::function<int()>>& commands) {
  static ZkLoadFlags load;
  CLI::App* cmd = app.add_subcommand(
      "zk-load", "build a Dubbo-like ZooKeeper tree <root>/<service>/{providers,...}/<url>");
  cmd->add_option("--zk-servers", load.servers, "ZooKeeper servers host:port,...")->required();
  cmd->add_option("--root", load.root, "root znode")->default_val("/dubbo");
  cmd->add_option("--services", load.services, "number of services")
      ->default_val(100)
      ->check(CLI::Range(1, 10000000));
  cmd->add_option("--providers", load.providers, "provider znodes per service")
      ->default_val(10)
      ->check(CLI::Range(0, 10000000));
  cmd->add_option("--name-bytes", load.name_bytes, "provider name length (padded)")
      ->default_val(1024)
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_flag("--ephemeral", load.ephemeral,
                "ephemeral providers; prints \"ready\" and holds the session until SIGINT/SIGTERM");
  cmd->add_option("--concurrency", load.concurrency, "creates in flight")
      ->default_val(64)
      ->check(CLI::Range(1, 100000));
  commands["zk-load"] = [] { return RunZkLoad(load); };

  static ZkWalkFlags walk;
  cmd = app.add_subcommand("zk-walk", "time a parallel walk of a ZooKeeper subtree (read ceiling)");
  cmd->add_option("--zk-servers", walk.servers, "ZooKeeper servers host:port,...")->required();
  cmd->add_option("--root", walk.root, "root znode")->default_val("/dubbo");
  cmd->add_option("--concurrency", walk.concurrency, "reads in flight")
      ->default_val(64)
      ->check(CLI::Range(1, 100000));
  cmd->add_flag("--presence", walk.presence, "children only (no data reads)");
  commands["zk-walk"] = [] { return RunZkWalk(walk); };

  static ZkCountFlags count;
  cmd = app.add_subcommand("zk-count", "number of znodes under (and including) a root");
  cmd->add_option("--zk-servers", count.servers, "ZooKeeper servers host:port,...")->required();
  cmd->add_option("--root", count.root, "root znode")->default_val("/dubbo");
  commands["zk-count"] = [] { return RunZkCount(count); };
}

}  // namespace kvsync::bench
