#include "metrics/registry.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/check.h"

namespace kvsync::metrics {
namespace {

// Registration mistakes are bugs in kvsync, found on the first start-up: crash with the reason.
[[noreturn]] void Fatal(const std::string& message) {
  KVSYNC_CHECK(false) << "kvsync::metrics: " << message;
  std::abort();  // not reached: a failed check aborts
}

bool IsMetricName(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool IsLabelName(const std::string& name) {
  if (name.empty() || name.rfind("__", 0) == 0) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string EscapeHelp(const std::string& help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// `a="x",b="y"` without braces, so that histograms can append `le`.
std::string LabelText(const Labels& labels) {
  std::string out;
  for (const auto& [name, value] : labels) {
    if (!out.empty()) out.push_back(',');
    absl::StrAppend(&out, name, "=\"", EscapeLabelValue(value), "\"");
  }
  return out;
}

void AppendSample(std::string* out, const std::string& name, const std::string& label_text,
                  const std::string& value) {
  out->append(name);
  if (!label_text.empty()) absl::StrAppend(out, "{", label_text, "}");
  absl::StrAppend(out, " ", value, "\n");
}

const char* const kHistogramSuffixes[] = {"_bucket", "_sum", "_count"};

}  // namespace

struct Registry::Metric {
  Labels labels;
  std::string label_text;
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::unique_ptr<Histogram> histogram;
  std::function<double()> fn;
};

struct Registry::Family {
  Type type;
  std::string help;
  // Sorted by label values (every metric has the same label names in the same order).
  std::vector<std::unique_ptr<Metric>> metrics;
  // A family computed at scrape time (AddGaugeFamilyCallback): no `metrics` then.
  std::function<std::vector<Registry::Sample>()> collect;
};

void Counter::Inc(double v) {
  if (!(v >= 0)) Fatal(absl::StrCat("Counter::Inc(", FormatValue(v), "): must be >= 0"));
  value_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  size_t i = std::isnan(v)
                 ? bounds_.size()
                 : static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) -
                                       bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

uint64_t Histogram::count() const {
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) total += counts_[i].load(std::memory_order_relaxed);
  return total;
}

std::vector<uint64_t> Histogram::bucket_counts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    out[i] = total;
  }
  return out;
}

const char* Registry::TypeName(Type type) {
  switch (type) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Metric* Registry::Insert(Type type, std::string name, const std::string& help,
                                   Labels labels) {
  if (!IsMetricName(name)) Fatal(absl::StrCat("invalid metric name \"", name, "\""));
  if (help.empty()) Fatal(absl::StrCat(name, ": help text is empty"));
  if (type == Type::kCounter && !EndsWith(name, "_total")) {
    Fatal(absl::StrCat(name, ": counter names must end in _total"));
  }
  for (size_t i = 0; i < labels.size(); ++i) {
    const std::string& label = labels[i].first;
    if (!IsLabelName(label)) Fatal(absl::StrCat(name, ": invalid label name \"", label, "\""));
    if (type == Type::kHistogram && label == "le") {
      Fatal(absl::StrCat(name, ": label name \"le\" is reserved for histogram buckets"));
    }
    for (size_t j = 0; j < i; ++j) {
      if (labels[j].first == label) Fatal(absl::StrCat(name, ": duplicate label \"", label, "\""));
    }
  }

  auto it = families_.find(name);
  if (it == families_.end()) {
    // A histogram `x` exposes x_bucket, x_sum and x_count: no other family may use those names.
    for (const char* suffix : kHistogramSuffixes) {
      if (type == Type::kHistogram && families_.count(name + suffix) > 0) {
        Fatal(absl::StrCat(name, ": histogram collides with metric ", name, suffix));
      }
      if (EndsWith(name, suffix)) {
        auto stem = families_.find(name.substr(0, name.size() - std::strlen(suffix)));
        if (stem != families_.end() && stem->second->type == Type::kHistogram) {
          Fatal(absl::StrCat(name, ": collides with histogram ", stem->first));
        }
      }
    }
    auto family = std::make_unique<Family>();
    family->type = type;
    family->help = help;
    it = families_.emplace(name, std::move(family)).first;
  }
  Family& family = *it->second;
  if (family.collect) Fatal(absl::StrCat(name, ": a family callback takes no other series"));
  if (family.type != type) {
    Fatal(
        absl::StrCat(name, ": registered as ", TypeName(family.type), " and as ", TypeName(type)));
  }
  if (family.help != help) {
    Fatal(absl::StrCat(name, ": registered with two help texts: \"", family.help, "\" and \"", help,
                       "\""));
  }
  if (!family.metrics.empty()) {
    const Labels& first = family.metrics.front()->labels;
    bool same_names = first.size() == labels.size();
    for (size_t i = 0; same_names && i < labels.size(); ++i) {
      same_names = first[i].first == labels[i].first;
    }
    if (!same_names) {
      Fatal(absl::StrCat(name, ": label names {", LabelText(labels), "} differ from {",
                         LabelText(first), "}"));
    }
  }
  auto pos = std::lower_bound(
      family.metrics.begin(), family.metrics.end(), labels,
      [](const std::unique_ptr<Metric>& m, const Labels& l) { return m->labels < l; });
  if (pos != family.metrics.end() && (*pos)->labels == labels) {
    Fatal(absl::StrCat(name, "{", LabelText(labels), "} registered twice"));
  }
  auto metric = std::make_unique<Metric>();
  metric->label_text = LabelText(labels);
  metric->labels = std::move(labels);
  return family.metrics.insert(pos, std::move(metric))->get();
}

Counter* Registry::AddCounter(std::string name, const std::string& help, Labels labels) {
  absl::MutexLock lock(&mu_);
  Metric* m = Insert(Type::kCounter, std::move(name), help, std::move(labels));
  m->counter.reset(new Counter());
  return m->counter.get();
}

Gauge* Registry::AddGauge(std::string name, const std::string& help, Labels labels) {
  absl::MutexLock lock(&mu_);
  Metric* m = Insert(Type::kGauge, std::move(name), help, std::move(labels));
  m->gauge.reset(new Gauge());
  return m->gauge.get();
}

Histogram* Registry::AddHistogram(std::string name, const std::string& help,
                                  std::vector<double> buckets, Labels labels) {
  if (!buckets.empty() && buckets.back() == std::numeric_limits<double>::infinity()) {
    buckets.pop_back();
  }
  for (size_t i = 0; i < buckets.size(); ++i) {
    if (!std::isfinite(buckets[i]) || (i > 0 && !(buckets[i - 1] < buckets[i]))) {
      Fatal(absl::StrCat(name, ": histogram buckets must be finite and strictly increasing"));
    }
  }
  absl::MutexLock lock(&mu_);
  Metric* m = Insert(Type::kHistogram, std::move(name), help, std::move(labels));
  m->histogram.reset(new Histogram(std::move(buckets)));
  return m->histogram.get();
}

void Registry::AddGaugeCallback(std::string name, const std::string& help, Labels labels,
                                std::function<double()> fn) {
  if (!fn) Fatal(absl::StrCat(name, ": empty gauge callback"));
  absl::MutexLock lock(&mu_);
  Insert(Type::kGauge, std::move(name), help, std::move(labels))->fn = std::move(fn);
}

void Registry::AddCounterCallback(std::string name, const std::string& help, Labels labels,
                                  std::function<double()> fn) {
  if (!fn) Fatal(absl::StrCat(name, ": empty counter callback"));
  absl::MutexLock lock(&mu_);
  Insert(Type::kCounter, std::move(name), help, std::move(labels))->fn = std::move(fn);
}

void Registry::AddGaugeFamilyCallback(const std::string& name, const std::string& help,
                                      std::function<std::vector<Sample>()> fn) {
  if (!fn) Fatal(absl::StrCat(name, ": empty family callback"));
  absl::MutexLock lock(&mu_);
  // Validates the name and claims it; the placeholder series is dropped at once.
  Insert(Type::kGauge, name, help, {});
  Family& family = *families_.at(name);
  if (family.metrics.size() != 1) Fatal(absl::StrCat(name, ": registered twice"));
  family.metrics.clear();
  family.collect = std::move(fn);
}

std::string Registry::Render() const {
  absl::ReaderMutexLock lock(&mu_);
  std::string out;
  for (const auto& [name, family] : families_) {
    absl::StrAppend(&out, "# HELP ", name, " ", EscapeHelp(family->help), "\n", "# TYPE ", name,
                    " ", TypeName(family->type), "\n");
    if (family->collect) {
      std::vector<Sample> samples = family->collect();
      std::sort(samples.begin(), samples.end(),
                [](const Sample& a, const Sample& b) { return a.labels < b.labels; });
      for (const Sample& sample : samples) {
        AppendSample(&out, name, LabelText(sample.labels), FormatValue(sample.value));
      }
      continue;
    }
    for (const auto& m : family->metrics) {
      if (m->histogram) {
        const Histogram& h = *m->histogram;
        std::vector<uint64_t> cumulative = h.bucket_counts();
        std::string prefix = m->label_text.empty() ? "" : absl::StrCat(m->label_text, ",");
        for (size_t i = 0; i < h.bounds().size(); ++i) {
          AppendSample(&out, name + "_bucket",
                       absl::StrCat(prefix, "le=\"", FormatValue(h.bounds()[i]), "\""),
                       absl::StrCat(cumulative[i]));
        }
        AppendSample(&out, name + "_bucket", absl::StrCat(prefix, "le=\"+Inf\""),
                     absl::StrCat(cumulative.back()));
        AppendSample(&out, name + "_sum", m->label_text, FormatValue(h.sum()));
        AppendSample(&out, name + "_count", m->label_text, absl::StrCat(cumulative.back()));
        continue;
      }
      double value = m->fn ? m->fn() : m->counter ? m->counter->value() : m->gauge->value();
      AppendSample(&out, name, m->label_text, FormatValue(value));
    }
  }
  return out;
}

std::vector<double> LatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Integers below 2^53 are exact in a double: print them as integers, never as 1e+06.
  if (v == std::trunc(v) && std::fabs(v) < 9007199254740992.0) {
    return absl::StrCat(static_cast<int64_t>(v));
  }
  // Shortest representation that parses back to the same double, %g style.
  char buf[64];
  auto result = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::general);
  return std::string(buf, result.ptr);
}

}  // namespace kvsync::metrics
