// A small Prometheus metrics registry and its text exposition (format 0.0.4). One Registry is
// created by main() (or a test) and outlives everything that holds its metrics. Metrics are
// registered at start-up and updated from any thread: Counter, Gauge and Histogram updates are
// lock-free atomics. Registration and Render() are thread-safe (a mutex guards the family map);
// Render() calls the value callbacks on the scraping thread, possibly from two scrapes at once,
// so callbacks must be thread-safe and must not call back into the Registry.
// The Registry owns every metric it returns; pointers stay valid for the Registry's lifetime.
// Misuse (invalid names, a counter not ending in `_total`, a name registered with two types or
// two helps, the same name and labels twice) is a programming error and aborts with a message.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace kvsync::metrics {

// Label name/value pairs of one metric. Order is kept in the exposition; every metric of a family
// must use the same label names in the same order. Values should be bounded (no keys, no ids).
using Labels = std::vector<std::pair<std::string, std::string>>;

// A monotonically increasing value. Any thread.
class Counter {
 public:
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Adds `v`, which must be >= 0 (aborts otherwise: a counter never goes down).
  void Inc(double v = 1);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  friend class Registry;
  Counter() = default;
  std::atomic<double> value_{0};
};

// A value that goes up and down. Any thread.
class Gauge {
 public:
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  friend class Registry;
  Gauge() = default;
  std::atomic<double> value_{0};
};

// Counts observations into fixed buckets (upper bounds, `le`). Any thread; Observe is lock-free.
// A scrape may see `_sum` lag `_count` by the observations in flight; `_count` always equals the
// `+Inf` bucket.
class Histogram {
 public:
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // NaN is counted in the +Inf bucket only (and makes the sum NaN).
  void Observe(double v);

  // Snapshots, mainly for tests. bucket_counts() is cumulative, one entry per bound plus +Inf.
  uint64_t count() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  std::vector<uint64_t> bucket_counts() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  friend class Registry;
  explicit Histogram(std::vector<double> bounds);

  std::vector<double> bounds_;  // finite, strictly increasing
  // Non-cumulative counts; bounds_.size() + 1 slots, the last one is +Inf.
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Each Add* registers one metric (one name + label values). Registering a name again with other
  // label values adds to the same family (one # HELP / # TYPE block); help and type must match.
  // Counter names must end in `_total`.
  Counter* AddCounter(std::string name, const std::string& help, Labels labels = {});
  Gauge* AddGauge(std::string name, const std::string& help, Labels labels = {});
  // `buckets` are upper bounds, strictly increasing; a trailing +Inf is optional (always added).
  // Label name `le` is reserved.
  Histogram* AddHistogram(std::string name, const std::string& help, std::vector<double> buckets,
                          Labels labels = {});
  // Metrics whose value is computed at scrape time by `fn` (see the threading note above).
  void AddGaugeCallback(std::string name, const std::string& help, Labels labels,
                        std::function<double()> fn);
  void AddCounterCallback(std::string name, const std::string& help, Labels labels,
                          std::function<double()> fn);
  // A gauge family whose series are computed at scrape time: `fn` returns every series (label
  // sets with the same names, each once). For series that come and go with the data, such as
  // the top-N services of a parity check; `fn` must keep their number bounded. The family
  // takes no other registration.
  struct Sample {
    Labels labels;
    double value = 0;
  };
  void AddGaugeFamilyCallback(const std::string& name, const std::string& help,
                              std::function<std::vector<Sample>()> fn);

  // The full text exposition (format 0.0.4): families sorted by name, metrics of a family sorted
  // by label values, one trailing newline. Deterministic for the same values.
  std::string Render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Metric;
  struct Family;

  static const char* TypeName(Type type);

  // Validates and inserts; aborts on misuse. Returns the new metric, owned by the family.
  Metric* Insert(Type type, std::string name, const std::string& help, Labels labels)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Family>> families_ ABSL_GUARDED_BY(mu_);
};

// Prometheus-style latency buckets in seconds, from 100 µs to 10 s.
std::vector<double> LatencyBuckets();

// Formats a sample value the way the exposition expects: exact integers without exponent or
// decimals ("42"), other values in the shortest form that round-trips ("0.25", "1e-07"),
// "+Inf", "-Inf", "NaN". Exposed for tests and for other text formats.
std::string FormatValue(double v);

// Content-Type of Render()'s output, for an HTTP handler.
inline constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// One task's series, registered on a Registry: every series carries task="<task>" (and any
// extra labels), counters read an atomic and gauges a callback at scrape time. The engines'
// observability code registers through it. Same threading as the Registry.
class TaskFamilies {
 public:
  TaskFamilies(Registry* registry, const std::string& task)
      : registry_(registry), labels_{{"task", task}} {}

  const Labels& labels() const { return labels_; }
  // The task label plus name="value".
  Labels With(const char* name, const char* value) const {
    Labels l = labels_;
    l.emplace_back(name, value);
    return l;
  }
  // `value` must outlive the registry's scrapes.
  void Counter(const char* name, const char* help, const std::atomic<int64_t>& value,
               Labels labels) {
    registry_->AddCounterCallback(name, help, std::move(labels),
                                  [&value] { return static_cast<double>(value.load()); });
  }
  void Gauge(const char* name, const char* help, Labels labels, std::function<double()> fn) {
    registry_->AddGaugeCallback(name, help, std::move(labels), std::move(fn));
  }
  void Gauge(const char* name, const char* help, std::function<double()> fn) {
    Gauge(name, help, labels_, std::move(fn));
  }

 private:
  Registry* registry_;
  const Labels labels_;
};

}  // namespace kvsync::metrics
