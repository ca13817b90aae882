#include "metrics/registry.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metrics/process_metrics.h"

namespace kvsync::metrics {
namespace {

using ::testing::HasSubstr;

constexpr char kPromtool[] = "/usr/bin/promtool";

// Runs `promtool check metrics` on `text`; returns its exit code and combined output.
std::pair<int, std::string> Promtool(const std::string& text) {
  std::string path = ::testing::TempDir() + "kvsync_metrics_XXXXXX";
  int fd = mkstemp(path.data());
  EXPECT_GE(fd, 0);
  EXPECT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  std::string command = std::string(kPromtool) + " check metrics < " + path + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  std::string output;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), pipe)) output.append(buf, n);
  int status = pclose(pipe);
  unlink(path.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

// The value of the first sample line that starts with `series` followed by a space.
double Sample(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.size() > series.size() && line.substr(0, series.size()) == series &&
        line[series.size()] == ' ') {
      double v = 0;
      if (absl::SimpleAtod(line.substr(series.size() + 1), &v)) return v;
    }
  }
  ADD_FAILURE() << "no sample " << series << " in:\n" << text;
  return std::nan("");
}

// Metrics sharing a name form one family with one HELP/TYPE block, sorted by label values.
TEST(Registry, SameNameWithDifferentLabelsIsOneFamily) {
  Registry r;
  r.AddCounter("kvsync_mirror_txns_total", "Txns written.", {{"cluster", "b"}})->Inc(2);
  r.AddCounter("kvsync_mirror_txns_total", "Txns written.", {{"cluster", "a"}})->Inc();
  r.AddGauge("kvsync_mirror_lag_seconds", "Replication lag.")->Set(0.25);
  EXPECT_EQ(r.Render(),
            "# HELP kvsync_mirror_lag_seconds Replication lag.\n"
            "# TYPE kvsync_mirror_lag_seconds gauge\n"
            "kvsync_mirror_lag_seconds 0.25\n"
            "# HELP kvsync_mirror_txns_total Txns written.\n"
            "# TYPE kvsync_mirror_txns_total counter\n"
            "kvsync_mirror_txns_total{cluster=\"a\"} 1\n"
            "kvsync_mirror_txns_total{cluster=\"b\"} 2\n");
}

// Label values escape backslash, quote and newline; help escapes backslash and newline only.
TEST(Registry, EscapesLabelValuesAndHelp) {
  Registry r;
  r.AddGauge("g", "a \\ b\nc \"q\"", {{"path", "C:\\x\n\"y\""}, {"z", ""}})->Set(1);
  EXPECT_EQ(r.Render(),
            "# HELP g a \\\\ b\\nc \"q\"\n"
            "# TYPE g gauge\n"
            "g{path=\"C:\\\\x\\n\\\"y\\\"\",z=\"\"} 1\n");
}

// Histogram buckets are cumulative, end in +Inf, and _count equals the +Inf bucket.
TEST(Registry, HistogramBucketsAreCumulative) {
  Registry r;
  Histogram* h =
      r.AddHistogram("kvsync_txn_seconds", "Txn latency.", {0.001, 0.01, 1}, {{"cluster", "dst"}});
  for (double v : {0.0005, 0.001, 0.002, 0.5, 3.0}) h->Observe(v);
  EXPECT_EQ(h->count(), 5u);
  EXPECT_EQ(h->bucket_counts(), (std::vector<uint64_t>{2, 3, 4, 5}));
  EXPECT_EQ(r.Render(),
            "# HELP kvsync_txn_seconds Txn latency.\n"
            "# TYPE kvsync_txn_seconds histogram\n"
            "kvsync_txn_seconds_bucket{cluster=\"dst\",le=\"0.001\"} 2\n"
            "kvsync_txn_seconds_bucket{cluster=\"dst\",le=\"0.01\"} 3\n"
            "kvsync_txn_seconds_bucket{cluster=\"dst\",le=\"1\"} 4\n"
            "kvsync_txn_seconds_bucket{cluster=\"dst\",le=\"+Inf\"} 5\n"
            "kvsync_txn_seconds_sum{cluster=\"dst\"} " +
                FormatValue(0.0005 + 0.001 + 0.002 + 0.5 + 3.0) +
                "\n"
                "kvsync_txn_seconds_count{cluster=\"dst\"} 5\n");
}

// A histogram without labels renders `le` as its only label; a trailing +Inf bound is accepted.
TEST(Registry, HistogramWithoutLabels) {
  Registry r;
  Histogram* h = r.AddHistogram("h_seconds", "H.", {0.5, std::numeric_limits<double>::infinity()});
  h->Observe(std::nan(""));
  EXPECT_EQ(r.Render(),
            "# HELP h_seconds H.\n"
            "# TYPE h_seconds histogram\n"
            "h_seconds_bucket{le=\"0.5\"} 0\n"
            "h_seconds_bucket{le=\"+Inf\"} 1\n"
            "h_seconds_sum NaN\n"
            "h_seconds_count 1\n");
}

// The output depends on names and label values only, not on registration order.
TEST(Registry, RenderIsDeterministic) {
  Registry a;
  a.AddGauge("b_gauge", "B.", {{"x", "2"}})->Set(2);
  a.AddGauge("b_gauge", "B.", {{"x", "1"}})->Set(1);
  a.AddCounter("a_total", "A.")->Inc(3);
  a.AddGaugeCallback("c", "C.", {}, [] { return 7.0; });
  Registry b;
  b.AddGaugeCallback("c", "C.", {}, [] { return 7.0; });
  b.AddCounter("a_total", "A.")->Inc(3);
  b.AddGauge("b_gauge", "B.", {{"x", "1"}})->Set(1);
  b.AddGauge("b_gauge", "B.", {{"x", "2"}})->Set(2);
  EXPECT_EQ(a.Render(), b.Render());
  EXPECT_EQ(a.Render(), a.Render());
  EXPECT_LT(a.Render().find("a_total"), a.Render().find("b_gauge"));
  EXPECT_LT(a.Render().find("b_gauge"), a.Render().find("# HELP c "));
}

// Callbacks are evaluated at every scrape.
TEST(Registry, CallbacksRunAtScrapeTime) {
  Registry r;
  double value = 1;
  r.AddCounterCallback("events_total", "Events.", {{"kind", "put"}}, [&value] { return value; });
  EXPECT_EQ(Sample(r.Render(), "events_total{kind=\"put\"}"), 1);
  value = 42;
  EXPECT_EQ(Sample(r.Render(), "events_total{kind=\"put\"}"), 42);
}

// A family callback's series come and go with its data, sorted by labels, and the family's
// HELP/TYPE stays when it has none.
TEST(Registry, FamilyCallbackSeriesComeAndGo) {
  Registry r;
  std::vector<Registry::Sample> samples = {{{{"service", "b"}}, 2}, {{{"service", "a\"q"}}, 1}};
  r.AddGaugeFamilyCallback("services", "Services.", [&samples] { return samples; });
  std::string text = r.Render();
  EXPECT_EQ(Sample(text, "services{service=\"b\"}"), 2);
  EXPECT_LT(text.find("services{service=\"a\\\"q\"}"), text.find("services{service=\"b\"}"));
  samples.clear();
  text = r.Render();
  EXPECT_NE(text.find("# TYPE services gauge"), std::string::npos);
  EXPECT_EQ(text.find("services{"), std::string::npos);
}

// Counter and gauge updates from many threads are not lost.
TEST(Registry, ConcurrentUpdatesAreNotLost) {
  Registry r;
  Counter* c = r.AddCounter("c_total", "C.");
  Gauge* g = r.AddGauge("g", "G.");
  Histogram* h = r.AddHistogram("h", "H.", LatencyBuckets());
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c->Inc();
        g->Add(0.5);
        h->Observe(0.001);
      }
    });
  }
  std::string during = r.Render();  // scraping concurrently is allowed
  for (auto& t : threads) t.join();
  EXPECT_EQ(c->value(), 40000);
  EXPECT_EQ(g->value(), 20000);
  EXPECT_EQ(h->count(), 40000u);
  EXPECT_THAT(during, HasSubstr("# TYPE h histogram"));
}

// Values print as Prometheus expects: integers exactly, fractions round-trip, special values.
TEST(FormatValue, IntegersFractionsAndSpecialValues) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(-3), "-3");
  EXPECT_EQ(FormatValue(123456789012), "123456789012");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(0.00025), "0.00025");
  EXPECT_EQ(FormatValue(2.5), "2.5");
  EXPECT_EQ(FormatValue(1e-7), "1e-07");
  EXPECT_EQ(FormatValue(1e300), "1e+300");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
  double third = 1.0 / 3;
  double parsed = 0;
  ASSERT_TRUE(absl::SimpleAtod(FormatValue(third), &parsed));
  EXPECT_EQ(parsed, third);
}

// The latency buckets start below a millisecond and are strictly increasing.
TEST(LatencyBuckets, SubMillisecondAndIncreasing) {
  std::vector<double> b = LatencyBuckets();
  ASSERT_EQ(b.size(), 16u);
  EXPECT_EQ(b.front(), 0.0001);
  EXPECT_EQ(b.back(), 10);
  for (size_t i = 1; i < b.size(); ++i) EXPECT_LT(b[i - 1], b[i]);
}

// Misuse is a programming error and crashes with a message naming the problem.
TEST(RegistryDeathTest, MisuseCrashesLoudly) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(Registry().AddCounter("requests", "R."), "must end in _total");
  EXPECT_DEATH(Registry().AddGauge("1abc", "R."), "invalid metric name");
  EXPECT_DEATH(Registry().AddGauge("a-b", "R."), "invalid metric name");
  EXPECT_DEATH(Registry().AddGauge("g", "G.", {{"__reserved", "x"}}), "invalid label name");
  EXPECT_DEATH(Registry().AddGauge("g", "G.", {{"a:b", "x"}}), "invalid label name");
  EXPECT_DEATH(Registry().AddGauge("g", "G.", {{"a", "x"}, {"a", "y"}}), "duplicate label");
  EXPECT_DEATH(Registry().AddHistogram("h", "H.", {1}, {{"le", "x"}}), "reserved");
  EXPECT_DEATH(Registry().AddHistogram("h", "H.", {2, 1}), "strictly increasing");
  EXPECT_DEATH(Registry().AddGauge("g", ""), "help text is empty");
  EXPECT_DEATH(Registry().AddCounter("c_total", "C.")->Inc(-1), "must be >= 0");
  EXPECT_DEATH(
      {
        Registry r;
        r.AddGauge("g", "G.", {{"a", "1"}});
        r.AddGauge("g", "G.", {{"a", "1"}});
      },
      "registered twice");
  EXPECT_DEATH(
      {
        Registry r;
        r.AddGauge("x_total", "X.");
        r.AddCounter("x_total", "X.");
      },
      "registered as gauge and as counter");
  EXPECT_DEATH(
      {
        Registry r;
        r.AddGauge("g", "G.");
        r.AddGauge("g", "Other.", {});
      },
      "two help texts");
  EXPECT_DEATH(
      {
        Registry r;
        r.AddGauge("g", "G.", {{"a", "1"}});
        r.AddGauge("g", "G.", {{"b", "1"}});
      },
      "label names");
  EXPECT_DEATH(
      {
        Registry r;
        r.AddHistogram("lat", "L.", {1});
        r.AddGauge("lat_count", "C.");
      },
      "collides with histogram");
  EXPECT_DEATH(
      {
        Registry r;
        r.AddGaugeFamilyCallback("f", "F.", [] { return std::vector<Registry::Sample>(); });
        r.AddGauge("f", "F.", {{"a", "1"}});
      },
      "family callback takes no other series");
}

// The process metrics exist under the Go/Python client names with plausible values.
TEST(ProcessMetrics, PresentAndPlausible) {
  Registry r;
  AddProcessMetrics(&r);
  std::string text = r.Render();
  EXPECT_THAT(text, HasSubstr("# TYPE process_cpu_seconds_total counter\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE process_resident_memory_bytes gauge\n"));
  EXPECT_GE(Sample(text, "process_cpu_seconds_total"), 0);
  EXPECT_GT(Sample(text, "process_resident_memory_bytes"), 1 << 20);
  EXPECT_GE(Sample(text, "process_virtual_memory_bytes"),
            Sample(text, "process_resident_memory_bytes"));
  double open = Sample(text, "process_open_fds");
  EXPECT_GE(open, 3);  // stdin, stdout, stderr
  EXPECT_GE(Sample(text, "process_max_fds"), open);
  double start = Sample(text, "process_start_time_seconds");
  double now = static_cast<double>(time(nullptr));
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 24 * 3600);  // this test process started less than a day ago

  // Opening a descriptor shows up at the next scrape.
  FILE* f = std::fopen("/proc/self/stat", "r");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(Sample(r.Render(), "process_open_fds"), open + 1);
  std::fclose(f);
}

// promtool is the reference parser and linter: a rich registry passes with no remarks at all.
TEST(Promtool, AcceptsRenderedExposition) {
  ASSERT_EQ(access(kPromtool, X_OK), 0)
      << kPromtool << " not found: run scripts/setup.sh (installs the prometheus package)";
  Registry r;
  AddProcessMetrics(&r);
  r.AddCounter("kvsync_mirror_puts_total", "Puts written to the destination.",
               {{"task", "a"}, {"cluster", "dst \"1\"\\\n"}})
      ->Inc(3);
  r.AddCounter("kvsync_mirror_puts_total", "Puts written to the destination.",
               {{"task", "b"}, {"cluster", "dst"}});
  r.AddGauge("kvsync_mirror_phase", "Engine phase: 0 starting, 1 full sync, 2 incremental.")
      ->Set(2);
  r.AddGauge("kvsync_mirror_lag_seconds", "Lag \\ with\nnewline in help.")->Set(0.125);
  r.AddGaugeCallback("kvsync_build_info", "Build information.", {{"version", "0.1.0"}},
                     [] { return 1.0; });
  r.AddGaugeCallback("kvsync_nan_ratio", "Not a number.", {}, [] { return std::nan(""); });
  Histogram* h = r.AddHistogram("kvsync_mirror_txn_duration_seconds", "Txn latency.",
                                LatencyBuckets(), {{"task", "a"}});
  for (double v : {0.00005, 0.0003, 0.02, 7.0, 30.0}) h->Observe(v);
  r.AddHistogram("kvsync_mirror_txn_duration_seconds", "Txn latency.", LatencyBuckets(),
                 {{"task", "b"}});

  auto [code, output] = Promtool(r.Render());
  EXPECT_EQ(code, 0) << output << "\n" << r.Render();
  EXPECT_EQ(output, "") << r.Render();
}

// The promtool harness itself notices a bad exposition (so a pass above means something).
TEST(Promtool, RejectsBrokenExposition) {
  ASSERT_EQ(access(kPromtool, X_OK), 0)
      << kPromtool << " not found: run scripts/setup.sh (installs the prometheus package)";
  auto [code, output] = Promtool("# TYPE requests counter\nrequests{a=\"1\"} 1\n");
  EXPECT_NE(code, 0);
  EXPECT_THAT(output, HasSubstr("_total"));
  auto [bad_code, bad_output] = Promtool("garbage{\n");
  EXPECT_NE(bad_code, 0);
}

}  // namespace
}  // namespace kvsync::metrics
