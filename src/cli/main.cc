// kvsync: keeps service-registry data consistent across data centers.
// main() parses the command line and dispatches to one subcommand; see src/cli/README.md.
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "cli/check.h"
#include "cli/command.h"
#include "cli/dr.h"
#include "cli/etcd2etcd.h"
#include "cli/etcdwatch.h"
#include "cli/zk2etcd.h"
#include "etcd/grpc_log.h"

// What escapes main is std::bad_alloc or a library bug: std::terminate, a loud crash, is the
// policy for both (CLI11's parse errors are caught below).
int main(int argc, char** argv) {  // NOLINT(bugprone-exception-escape)
  kvsync::cli::BlockStopSignals();
  kvsync::etcd::InstallGrpcLogging();
  CLI::App app("kvsync " KVSYNC_VERSION
               ": keep service registries consistent across data centers\n"
               "(etcd -> etcd hot standby, ZooKeeper -> etcd live migration)",
               "kvsync");
  app.set_version_flag("--version", "kvsync " KVSYNC_VERSION);
  app.require_subcommand(1);
  std::map<std::string, std::function<int()>> commands;
  commands["etcd2etcd"] = kvsync::cli::AddEtcd2EtcdCommand(&app);
  commands["zk2etcd"] = kvsync::cli::AddZk2EtcdCommand(&app);
  commands["etcd2zk"] = kvsync::cli::AddEtcd2ZkCommand(&app);
  commands["migrate"] = kvsync::cli::AddMigrateCommand(&app);
  commands["check"] = kvsync::cli::AddCheckCommand(&app);
  commands["etcdwatch"] = kvsync::cli::AddEtcdwatchCommand(&app);
  commands["status"] = kvsync::cli::AddStatusCommand(&app);
  commands["promote"] = kvsync::cli::AddPromoteCommand(&app);
  commands["demote"] = kvsync::cli::AddDemoteCommand(&app);
  commands["failback"] = kvsync::cli::AddFailbackCommand(&app);
  kvsync::cli::AddExitCodesFooter(&app);
  app.footer(std::string("Run 'kvsync <command> --help' for a command's flags.\n\n") +
             kvsync::cli::kExitCodesHelp);

  try {
    // etcdwatch keeps the article tool's single-dash flags (-num 100).
    std::vector<std::string> args = kvsync::cli::RewriteSingleDashFlags(argc, argv);
    std::vector<char*> arg_ptrs;
    arg_ptrs.reserve(args.size());
    for (std::string& a : args) arg_ptrs.push_back(a.data());
    app.parse(static_cast<int>(arg_ptrs.size()), arg_ptrs.data());
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string sub = app.get_subcommands().empty() ? "" : app.get_subcommands()[0]->get_name();
    std::fprintf(stderr, "kvsync%s%s: error: %s (see --help)\n", sub.empty() ? "" : " ",
                 sub.c_str(), e.what());
    return kvsync::cli::Exit(kvsync::cli::ExitCode::kConfig);
  }
  for (CLI::App* sub : app.get_subcommands()) {
    auto it = commands.find(sub->get_name());
    if (it != commands.end()) return it->second();
  }
  return kvsync::cli::Exit(kvsync::cli::ExitCode::kConfig);
}
