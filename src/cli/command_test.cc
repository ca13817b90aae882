#include "cli/command.h"

#include <string>
#include <vector>

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

}  // namespace
}  // namespace kvsync::cli
