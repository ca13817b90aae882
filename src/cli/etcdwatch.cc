#include "cli/etcdwatch.h"

#include <unistd.h>

#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/command.h"
#include "config/config.h"
#include "etcd/client.h"
#include "log/log.h"
#include "watchcheck/runner.h"

namespace kvsync::cli {
namespace {

struct Flags {
  watchcheck::RunOptions run;
  config::EtcdConnection conn;
  std::string write_endpoints;
  int span_ms = 500;
  int duration_s = 10;
  int connections = 1;
  std::string output = "text";
  std::string log_level;
  std::string log_format;
};

// Flags the article's tool spelled with one dash (and their double-dash aliases).
const char* const kLongFlags[] = {"num",
                                  "span",
                                  "duration",
                                  "endpoint",
                                  "endpoints",
                                  "write-endpoints",
                                  "key",
                                  "prefix",
                                  "keys",
                                  "connections",
                                  "output",
                                  "restart-every",
                                  "delete-every",
                                  "prev-kv-every",
                                  "settle",
                                  "cacert",
                                  "cert",
                                  "tls-key",
                                  "user",
                                  "password",
                                  "dial-timeout",
                                  "command-timeout",
                                  "log-level",
                                  "log-format",
                                  "inject-drop-every"};

int Fail(const absl::Status& status) { return ReportAndExit("etcdwatch", status); }

int Run(Flags* f) {
  if (f->output != "text" && f->output != "json") {
    return Fail(
        absl::InvalidArgumentError("--output must be text or json, got \"" + f->output + "\""));
  }
  if (absl::Status s = log::Init(f->log_level, f->log_format); !s.ok()) return Fail(s);
  f->run.span = std::chrono::milliseconds(f->span_ms);
  f->run.duration = std::chrono::seconds(f->duration_s);
  if (f->run.key.empty() && f->run.prefix.empty()) {
    char host[256] = "host";
    gethostname(host, sizeof(host) - 1);
    f->run.prefix = absl::StrCat("/kvsync-etcdwatch/", host, "-", getpid(), "/");
  }
  if (f->run.keys == 0) f->run.keys = f->run.key.empty() ? 2 : 1;
  if (f->span_ms < 1) return Fail(absl::InvalidArgumentError("-span must be at least 1 (ms)"));
  if (f->duration_s < 1) {
    return Fail(absl::InvalidArgumentError("-duration must be at least 1 (s)"));
  }
  if (f->connections < 1 || f->connections > 64) {
    return Fail(absl::InvalidArgumentError("--connections must be 1..64"));
  }
  common::StopToken& stop = StartSignalThread();
  config::EtcdConnection write_conn = f->conn;
  if (!f->write_endpoints.empty()) write_conn.endpoints = f->write_endpoints;
  etcd::ClientOptions write_options = write_conn.ToClientOptions("writer");
  etcd::ClientOptions watch_options = f->conn.ToClientOptions("watch");
  const etcd::ClientOptions::FlagNames flags = {"--endpoints", "--cacert", "--cert", "--tls-key"};
  watch_options.flags = flags;
  write_options.flags = flags;
  if (!f->write_endpoints.empty()) write_options.flags.endpoints = "--write-endpoints";
  auto writer = etcd::Client::Create(write_options);
  if (!writer.ok()) return Fail(writer.status());
  std::vector<std::unique_ptr<etcd::Client>> watch_clients;
  std::vector<etcd::Client*> watch_ptrs;
  for (int c = 0; c < f->connections; ++c) {
    auto client = etcd::Client::Create(watch_options);
    if (!client.ok()) return Fail(client.status());
    watch_ptrs.push_back(client->get());
    watch_clients.push_back(std::move(*client));
  }
  auto write_header = (*writer)->Connect();
  if (!write_header.ok()) return Fail(write_header.status());
  auto watch_header = watch_ptrs[0]->Connect();
  if (!watch_header.ok()) return Fail(watch_header.status());
  // Writes on one cluster and watches on another would be reported as lost events: refuse.
  if (write_header->cluster_id != watch_header->cluster_id) {
    return Fail(absl::InvalidArgumentError(absl::StrFormat(
        "--write-endpoints %s (cluster %016x) and --endpoints %s (cluster %016x) are different "
        "etcd clusters; the writer and the watchers must use the same one",
        (*writer)->current_endpoint(), write_header->cluster_id, watch_ptrs[0]->current_endpoint(),
        watch_header->cluster_id)));
  }
  EndStartup();
  auto report = watchcheck::Run(writer->get(), watch_ptrs, f->run, &stop);
  if (!report.ok()) return Fail(report.status());
  std::string out = f->output == "json" ? watchcheck::RenderJson(*report) + "\n"
                                        : watchcheck::RenderText(*report);
  std::fputs(out.c_str(), stdout);
  return Exit(report->passed() ? ExitCode::kOk : ExitCode::kFindings);
}

}  // namespace

std::vector<std::string> RewriteSingleDashFlags(int argc, char** argv) {
  std::vector<std::string> out(argv, argv + argc);
  if (argc < 2 || out[1] != "etcdwatch") return out;
  for (size_t i = 2; i < out.size(); ++i) {
    const std::string& a = out[i];
    if (a.size() < 3 || a[0] != '-' || a[1] == '-') continue;
    std::string name =
        a.substr(1, a.find('=') == std::string::npos ? std::string::npos : a.find('=') - 1);
    for (const char* known : kLongFlags) {
      if (name == known) {
        out[i] = "-" + a;
        break;
      }
    }
  }
  return out;
}

std::function<int()> AddEtcdwatchCommand(CLI::App* app) {
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app->add_subcommand(
      "etcdwatch",
      "Watch-consistency test: a writer updates a test key every -span ms for -duration s while\n"
      "-num watchers follow it; every watcher checks ordered, unique, reliable (no gap), atomic,\n"
      "prev_kv, created flags, resumable (re-watch from last+1) and synced. Use it to qualify a\n"
      "grpc-proxy or a member before trusting its watches. Single-dash flags (-num 100) work.\n"
      "Exit 0 all properties hold, 1 a property failed, 2 bad flags or different clusters,\n"
      "3 the test could not run (unreachable, watches not created in time, a write failed).");
  f->conn.endpoints = "127.0.0.1:2379";
  cmd->add_option("--num", f->run.watchers, "number of watchers")->default_val(100)->group("Test");
  cmd->add_option("--span", f->span_ms, "update interval in milliseconds")
      ->default_val(500)
      ->group("Test");
  cmd->add_option("--duration", f->duration_s, "seconds of updates")
      ->default_val(10)
      ->group("Test");
  cmd->add_option("--key", f->run.key,
                  "the key to write and watch (nobody else may write it; deleted afterwards)")
      ->group("Test");
  cmd->add_option("--prefix", f->run.prefix,
                  "write --keys keys <prefix>k0.. in one txn per update and watch the prefix "
                  "(default: /kvsync-etcdwatch/<host>-<pid>/, deleted afterwards)")
      ->group("Test");
  cmd->add_option("--keys", f->run.keys,
                  "keys written per update with --prefix (default 2, so that atomic delivery "
                  "of one revision is checked)")
      ->default_val(0)
      ->group("Test");
  cmd->add_option("--connections", f->connections,
                  "spread the watchers over this many gRPC channels (one watch stream each)")
      ->default_val(1)
      ->group("Test");
  cmd->add_option("--restart-every", f->run.restart_every,
                  "every Nth watcher cancels its watch and re-watches from its last revision + 1 "
                  "after every N event responses (checks resumable; 0: never)")
      ->default_val(10)
      ->check(CLI::NonNegativeNumber)
      ->group("Test");
  cmd->add_option("--delete-every", f->run.delete_every,
                  "delete the first key every N updates, re-create it on the next (0: never)")
      ->default_val(10)
      ->check(CLI::NonNegativeNumber)
      ->group("Test");
  cmd->add_option("--prev-kv-every", f->run.prev_kv_every,
                  "every Nth watcher requests and checks prev_kv (1: all, 0: none); etcd reads "
                  "the previous value for each event of each such watcher, so use 10 or more "
                  "with 1,000 watchers")
      ->default_val(1)
      ->check(CLI::NonNegativeNumber)
      ->group("Test");
  AddDurationFlag(cmd, "--settle", &f->run.settle,
                  "after the last update, how long watchers may take to receive it", kSettleRange)
      ->group("Test");
  cmd->add_option("--output", f->output, "text or json")->default_val("text")->group("Test");
  cmd->add_option("--inject-drop-every", f->run.inject_drop_every,
                  "TEST HOOK: discard every Nth received event response (proves detection)")
      ->check(CLI::NonNegativeNumber)
      ->group("");

  const std::string g = "etcd";
  cmd->add_option("--endpoints,--endpoint", f->conn.endpoints,
                  "comma-separated endpoints the watchers use (a member or a grpc-proxy)")
      ->default_val("127.0.0.1:2379")
      ->group(g);
  cmd->add_option("--write-endpoints", f->write_endpoints,
                  "where the writer writes (default: --endpoints); must be the same cluster")
      ->group(g);
  cmd->add_option("--cacert", f->conn.cacert, "verify certificates with this CA bundle (TLS)")
      ->group(g);
  cmd->add_option("--cert", f->conn.cert, "client TLS certificate file")->group(g);
  cmd->add_option("--tls-key", f->conn.key, "client TLS key file")->group(g);
  cmd->add_option("--user", f->conn.user, "username, or username:password")->group(g);
  cmd->add_option("--password", f->conn.password, "password (or KVSYNC_PASSWORD)")
      ->envname("KVSYNC_PASSWORD")
      ->group(g);
  AddDurationFlag(cmd, "--dial-timeout", &f->conn.dial_timeout,
                  "give up on reaching etcd at start-up after this long", kDialTimeoutRange)
      ->group(g);
  AddDurationFlag(cmd, "--command-timeout", &f->conn.command_timeout, "deadline of each write",
                  kCommandTimeoutRange)
      ->group(g);
  AddLogFlags(cmd, &f->log_level, &f->log_format);
  return [f] { return Run(f.get()); };
}

}  // namespace kvsync::cli
