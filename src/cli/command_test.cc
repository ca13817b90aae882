#include "cli/command.h"

#include <string>
#include <vector>

#include "cli/check.h"
#include "cli/etcd2etcd.h"
#include "cli/etcdwatch.h"
#include "cli/zk2etcd.h"
#include "common/errors.h"
#include "gtest/gtest.h"

namespace kvsync::cli {
namespace {

using std::chrono::milliseconds;

// Values that can never work are refused with the flag and its range named: infinity, overflow,
// zero or negative timeouts, a lease of a day.
TEST(DurationFlag, RefusesValuesOutsideTheRange) {
  struct Case {
    std::string text;
    DurationRange range;
  };
  std::vector<Case> bad = {
      {"inf", kCommandTimeoutRange},   {"-inf", kCommandTimeoutRange},
      {"0", kDialTimeoutRange},        {"-1s", kDialTimeoutRange},
      {"99ms", kDialTimeoutRange},     {"5m1s", kDialTimeoutRange},
      {"11m", kCommandTimeoutRange},   {"24h", kLeaseTtlRange},
      {"999ms", kLeaseTtlRange},       {"99999999999999999h", kCommandTimeoutRange},
      {"500us", kStatusIntervalRange}, {"inf", kCheckIntervalRange},
      {"soon", kLeaseTtlRange},        {"", kDialTimeoutRange},
      {"11s", kCoalesceRange},         {"1s", kZkSessionTimeoutRange},
  };
  for (const Case& c : bad) {
    milliseconds out{42};
    absl::Status s = ParseDuration("--flag", c.text, c.range, &out);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_EQ(s.message(), "--flag must be " + DescribeRange(c.range) +
                               " (like 500ms, 5s or 1m), got \"" + c.text + "\"");
    EXPECT_EQ(out, milliseconds(42)) << c.text;
  }
  EXPECT_EQ(DescribeRange(kDialTimeoutRange), "a duration between 100ms and 5m");
  EXPECT_EQ(DescribeRange(kStatusIntervalRange), "0 (off) or a duration between 1s and 24h");
}

// In-range values, the bounds themselves and 0 where it means off are accepted.
TEST(DurationFlag, AcceptsValuesInTheRange) {
  milliseconds out{0};
  ASSERT_TRUE(ParseDuration("--f", "100ms", kDialTimeoutRange, &out).ok());
  EXPECT_EQ(out, milliseconds(100));
  ASSERT_TRUE(ParseDuration("--f", "5m", kDialTimeoutRange, &out).ok());
  EXPECT_EQ(out, milliseconds(300000));
  ASSERT_TRUE(ParseDuration("--f", "0", kStatusIntervalRange, &out).ok());
  EXPECT_EQ(out, milliseconds(0));
  ASSERT_TRUE(ParseDuration("--f", "0s", kCheckIntervalRange, &out).ok());
  ASSERT_TRUE(ParseDuration("--f", "0", kCoalesceRange, &out).ok());
  ASSERT_TRUE(ParseDuration("--f", "1m30s", kLeaseTtlRange, &out).ok());
  EXPECT_EQ(out, milliseconds(90000));
}

// The flag refuses a bad value at parse time (exit 2) and its help shows the range.
TEST(DurationFlag, FlagShowsRangeAndRefusesOutOfRange) {
  CLI::App app;
  milliseconds timeout{5000};
  CLI::Option* opt = AddDurationFlag(&app, "--dial-timeout", &timeout, "give up after this long",
                                     kDialTimeoutRange);
  EXPECT_NE(opt->get_description().find("(a duration between 100ms and 5m)"), std::string::npos);
  const char* bad[] = {"x", "--dial-timeout", "inf"};
  EXPECT_THROW(app.parse(3, bad), CLI::ValidationError);
  CLI::App ok_app;
  AddDurationFlag(&ok_app, "--dial-timeout", &timeout, "h", kDialTimeoutRange);
  const char* good[] = {"x", "--dial-timeout", "2s"};
  ok_app.parse(3, good);
  EXPECT_EQ(timeout, milliseconds(2000));
}

// One table maps every final status to an exit code: configuration and refusals 2, everything
// else that went wrong 3 (an unreachable cluster, an error nobody classified), OK 0.
TEST(ExitCodes, FinalStatusMapsToOneTable) {
  EXPECT_EQ(ExitCodeFor(absl::OkStatus()), ExitCode::kOk);
  for (const absl::Status& s :
       {absl::InvalidArgumentError("bad flag"), absl::FailedPreconditionError("checkpoint"),
        absl::PermissionDeniedError("denied"), absl::UnauthenticatedError("auth")}) {
    EXPECT_EQ(ExitCodeFor(s), ExitCode::kConfig) << s;
  }
  for (const absl::Status& s :
       {absl::UnavailableError("cannot reach source etcd"), absl::DeadlineExceededError("slow"),
        absl::InternalError("zookeeper: unknown"), absl::UnknownError("x"), absl::AbortedError("x"),
        absl::OutOfRangeError("compacted three times"), absl::ResourceExhaustedError("x"),
        absl::CancelledError("not a stop")}) {
    EXPECT_EQ(ExitCodeFor(s), ExitCode::kRuntime) << s;
  }
  EXPECT_EQ(Exit(ExitCode::kOk), 0);
  EXPECT_EQ(Exit(ExitCode::kFindings), 1);
  EXPECT_EQ(Exit(ExitCode::kConfig), 2);
  EXPECT_EQ(Exit(ExitCode::kRuntime), 3);
}

// A stop request turns a run that ended Cancelled or still unreachable into a clean exit 0; a
// refusal stays a refusal.
TEST(ExitCodes, StopRequestedRunExitsZero) {
  common::StopToken stop;
  EXPECT_EQ(ExitAfterRun("t", absl::UnavailableError("x"), stop), 3);
  stop.RequestStop();
  EXPECT_EQ(ExitAfterRun("t", absl::CancelledError("x"), stop), 0);
  EXPECT_EQ(ExitAfterRun("t", absl::UnavailableError("x"), stop), 0);
  EXPECT_EQ(ExitAfterRun("t", absl::FailedPreconditionError("x"), stop), 2);
}

// Every command's --help ends with the same exit-code table.
TEST(ExitCodes, EveryCommandsHelpShowsTheTable) {
  CLI::App app;
  AddEtcd2EtcdCommand(&app);
  AddZk2EtcdCommand(&app);
  AddCheckCommand(&app);
  AddEtcdwatchCommand(&app);
  AddExitCodesFooter(&app);
  std::vector<CLI::App*> commands = {app.get_subcommand("etcd2etcd"),
                                     app.get_subcommand("zk2etcd"),
                                     app.get_subcommand("etcdwatch"),
                                     app.get_subcommand("check"),
                                     app.get_subcommand("check")->get_subcommand("etcd2etcd"),
                                     app.get_subcommand("check")->get_subcommand("zk2etcd")};
  for (CLI::App* cmd : commands) {
    std::string help = cmd->help();
    EXPECT_NE(help.find(kExitCodesHelp), std::string::npos) << cmd->get_name() << "\n" << help;
    for (const char* line :
         {"  0  success", "  1  findings", "  2  usage or configuration", "  3  runtime failure"}) {
      EXPECT_NE(help.find(line), std::string::npos) << cmd->get_name() << ": " << line;
    }
  }
}

}  // namespace
}  // namespace kvsync::cli
