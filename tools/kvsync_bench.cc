// kvsync-bench: benchmark drivers for `kvsync etcd2etcd`, used by bench/etcd2etcd.sh.
//
// Subcommands (run `kvsync-bench <command> --help`):
//   load         bulk-load N keys <prefix>%08d with 128-op txns, many in flight
//   ingest       the destination's raw ingest rate: txns generated in memory first, then timed
//   ideal-copy   the "ideal copier" ceiling: paged reads at one revision, pipelined txn writes
//   lag          paced puts into the source, watch on the destination, lag percentiles
//   workload     a small service-registry workload (register/update/deregister, some txns)
//   delay-proxy  TCP proxy adding a fixed delay per direction (a slow link without a
//                bandwidth cap)
//   count, wait  key count of a prefix; poll until a count or a key value is reached
//   read         read a whole prefix in pages at one revision, nothing else (a read ceiling)
//   compare      key-by-key comparison of a prefix in two clusters
//   seq-put      paced puts of new keys <prefix>%09d (each source revision a distinct key)
//   watch        every event of a prefix or key as a JSON line with its receive time
//   leader       the current leader (value) of an etcd election
//   zk-load, zk-walk, zk-count, zk-churn   ZooKeeper drivers (tools/bench_zk.cc)
//
// Results are one JSON line on stdout (watch: one line per event); errors one line on stderr. Exit
// codes: 0 done, 1 runtime failure (or `wait` timed out, `compare` found differences), 2 bad flags.
//
// Threads: main parses flags and runs one subcommand, which starts and joins its own worker
// threads. The etcd client is thread-safe and shared by the workers of a subcommand. The
// exception is delay-proxy, which runs until killed: each connection's four pipe threads are
// detached and share ownership of the connection.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "bench_proxy.h"
#include "common/backoff.h"
#include "common/status_macros.h"
#include "common/stop_token.h"
#include "common/strings.h"
#include "etcd/client.h"
#include "etcd/types.h"
#include "tools/bench_zk.h"

namespace kvsync::bench {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int64_t kMaxCount = 1'000'000'000;

// etcd's default --max-request-bytes is 1.5 MiB; stay well under it.
constexpr size_t kMaxTxnBytes = 1 << 20;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

int64_t WallNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double PerSecond(int64_t n, double seconds) { return seconds > 0 ? n / seconds : 0.0; }

// Prints `status` as one line and maps it to an exit code: bad input exits 2, the rest 1.
int Fail(const std::string& command, const absl::Status& status) {
  std::fprintf(stderr, "kvsync-bench %s: error: %s\n", command.c_str(),
               std::string(status.message()).c_str());
  return status.code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
}

void PrintJson(const std::string& line) {
  std::fprintf(stdout, "%s\n", line.c_str());
  std::fflush(stdout);
}

absl::StatusOr<std::unique_ptr<etcd::Client>> Open(const std::string& endpoints,
                                                   const std::string& name) {
  etcd::ClientOptions options;
  options.endpoints = etcd::SplitEndpoints(endpoints);
  options.name = name;
  ASSIGN_OR_RETURN(std::unique_ptr<etcd::Client> client, etcd::Client::Create(options));
  RETURN_IF_ERROR(client->Connect().status());
  return client;
}

absl::Status CheckPrefix(const std::string& prefix) {
  if (prefix.empty()) return absl::InvalidArgumentError("--prefix must not be empty");
  return absl::OkStatus();
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// `size` printable pseudo-random bytes, a pure function of `seed`.
std::string RandomValue(uint64_t seed, size_t size) {
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/";
  std::string value(size, ' ');
  uint64_t state = seed;
  for (size_t i = 0; i < size; i += 8) {
    state = SplitMix64(state);
    for (size_t j = 0; j < 8 && i + j < size; ++j) {
      value[i + j] = kAlphabet[(state >> (j * 6)) & 63];
    }
  }
  return value;
}

std::string LoadKey(const std::string& prefix, int64_t i) {
  return absl::StrFormat("%s%08d", prefix, i);
}

// Txns of puts are idempotent, so transient failures are retried with backoff.
absl::Status TxnWithRetry(etcd::Client* client, const etcd::TxnRequest& txn) {
  common::Backoff backoff(milliseconds(50), milliseconds(2000));
  for (int attempt = 0;; ++attempt) {
    auto result = client->Txn(txn);
    if (result.ok()) return absl::OkStatus();
    if (!etcd::IsTransient(result.status()) || attempt >= 10) return result.status();
    std::this_thread::sleep_for(backoff.Next());
  }
}

// Runs `inflight` threads, each committing the txn `next` hands out until `next` returns false
// or a txn fails for good. `next` must be thread-safe. Returns the first failure.
absl::Status RunTxnWorkers(etcd::Client* client, int inflight,
                           const std::function<bool(etcd::TxnRequest*)>& next) {
  absl::Mutex mu;
  absl::Status first_error;
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  threads.reserve(inflight);
  for (int i = 0; i < inflight; ++i) {
    threads.emplace_back([&] {
      etcd::TxnRequest txn;
      while (!failed.load() && next(&txn)) {
        absl::Status s = TxnWithRetry(client, txn);
        if (!s.ok()) {
          absl::MutexLock lock(&mu);
          if (first_error.ok()) first_error = s;
          failed = true;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  return first_error;
}

// A blocking FIFO of bounded length between one producer and many consumers.
template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity) : capacity_(capacity) {}

  // Blocks while full; false when the queue was cancelled (the item is dropped).
  bool Push(T item) {
    absl::MutexLock lock(&mu_);
    auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return cancelled_ || items_.size() < capacity_;
    };
    mu_.Await(absl::Condition(&room));
    if (cancelled_) return false;
    items_.push_back(std::move(item));
    return true;
  }

  // Blocks while empty; false once closed (or cancelled) and drained.
  bool Pop(T* item) {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return cancelled_ || closed_ || !items_.empty();
    };
    mu_.Await(absl::Condition(&ready));
    if (cancelled_ || items_.empty()) return false;
    *item = std::move(items_.front());
    items_.pop_front();
    return true;
  }

  // No more items will come; consumers drain what is queued.
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }

  // Stops producers and consumers at once.
  void Cancel() {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }

 private:
  const size_t capacity_;
  absl::Mutex mu_;
  std::deque<T> items_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

// Groups puts into txns of at most `max_ops` ops and kMaxTxnBytes bytes.
class TxnBuilder {
 public:
  explicit TxnBuilder(int max_ops) : max_ops_(max_ops) {}

  // Adds a put; returns true when the current txn is full and should be taken.
  bool Add(std::string key, std::string value) {
    bytes_ += key.size() + value.size() + 16;
    txn_.success.push_back(etcd::Op::Put(std::move(key), std::move(value)));
    return static_cast<int>(txn_.success.size()) >= max_ops_ || bytes_ >= kMaxTxnBytes;
  }
  bool empty() const { return txn_.success.empty(); }
  etcd::TxnRequest Take() {
    etcd::TxnRequest out = std::move(txn_);
    txn_ = etcd::TxnRequest();
    bytes_ = 0;
    return out;
  }

 private:
  const int max_ops_;
  etcd::TxnRequest txn_;
  size_t bytes_ = 0;
};

absl::StatusOr<etcd::RangeResponse> RangeWithRetry(etcd::Client* client,
                                                   const etcd::RangeRequest& request) {
  common::Backoff backoff(milliseconds(50), milliseconds(2000));
  for (int attempt = 0;; ++attempt) {
    auto result = client->Range(request);
    if (result.ok() || !etcd::IsTransient(result.status()) || attempt >= 10) return result;
    std::this_thread::sleep_for(backoff.Next());
  }
}

// Reads every key of `prefix` in pages at one revision (the first page's) and hands each page
// to `page_fn`. Page N+1 starts right after the last key of page N.
absl::Status ForEachPage(etcd::Client* client, const std::string& prefix, int64_t page_size,
                         const std::function<bool(etcd::RangeResponse*)>& page_fn,
                         int64_t* revision) {
  etcd::RangeRequest request;
  request.key = prefix;
  request.range_end = common::PrefixEnd(prefix);
  request.limit = page_size;
  request.revision = *revision;
  while (true) {
    ASSIGN_OR_RETURN(etcd::RangeResponse page, RangeWithRetry(client, request));
    if (request.revision == 0) request.revision = page.header.revision;
    *revision = request.revision;
    bool more = page.more && !page.kvs.empty();
    std::string next_key = page.kvs.empty() ? std::string() : page.kvs.back().key;
    if (!page_fn(&page)) return absl::OkStatus();
    if (!more) return absl::OkStatus();
    request.key = std::move(next_key);
    request.key.push_back('\0');
  }
}

struct LoadFlags {
  std::string endpoints;
  std::string prefix;
  int64_t keys = 0;
  int value_size = 256;
  int inflight = 16;
  int txn_ops = 128;
  int64_t seed = -1;
};

int RunLoad(const LoadFlags& f) {
  if (auto s = CheckPrefix(f.prefix); !s.ok()) return Fail("load", s);
  auto client = Open(f.endpoints, "destination");
  if (!client.ok()) return Fail("load", client.status());
  uint64_t seed = f.seed >= 0 ? static_cast<uint64_t>(f.seed) : static_cast<uint64_t>(WallNanos());
  int64_t batches = (f.keys + f.txn_ops - 1) / f.txn_ops;
  std::atomic<int64_t> next_batch{0};
  auto start = Clock::now();
  absl::Status s = RunTxnWorkers(client->get(), f.inflight, [&](etcd::TxnRequest* txn) {
    int64_t b = next_batch.fetch_add(1);
    if (b >= batches) return false;
    TxnBuilder builder(f.txn_ops);
    for (int64_t i = b * f.txn_ops; i < std::min(f.keys, (b + 1) * f.txn_ops); ++i) {
      builder.Add(LoadKey(f.prefix, i), RandomValue(seed ^ SplitMix64(i), f.value_size));
    }
    *txn = builder.Take();
    return true;
  });
  double seconds = SecondsSince(start);
  if (!s.ok()) return Fail("load", s);
  PrintJson(absl::StrFormat(
      R"({"command":"load","keys":%d,"value_size":%d,"seconds":%.3f,"keys_per_sec":%.0f})", f.keys,
      f.value_size, seconds, PerSecond(f.keys, seconds)));
  return kExitOk;
}

struct IngestFlags {
  std::string endpoints;
  std::string prefix;
  int64_t keys = 0;
  int value_size = 256;
  int inflight = 16;
  int txn_ops = 128;
};

int RunIngest(const IngestFlags& f) {
  if (auto s = CheckPrefix(f.prefix); !s.ok()) return Fail("ingest", s);
  auto client = Open(f.endpoints, "destination");
  if (!client.ok()) return Fail("ingest", client.status());
  std::vector<etcd::TxnRequest> txns;
  TxnBuilder builder(f.txn_ops);
  uint64_t seed = static_cast<uint64_t>(WallNanos());
  for (int64_t i = 0; i < f.keys; ++i) {
    if (builder.Add(LoadKey(f.prefix, i), RandomValue(seed ^ SplitMix64(i), f.value_size))) {
      txns.push_back(builder.Take());
    }
  }
  if (!builder.empty()) txns.push_back(builder.Take());
  std::atomic<size_t> next{0};
  auto start = Clock::now();
  absl::Status s = RunTxnWorkers(client->get(), f.inflight, [&](etcd::TxnRequest* txn) {
    size_t i = next.fetch_add(1);
    if (i >= txns.size()) return false;
    *txn = std::move(txns[i]);
    return true;
  });
  double seconds = SecondsSince(start);
  if (!s.ok()) return Fail("ingest", s);
  PrintJson(absl::StrFormat(
      R"({"command":"ingest","keys":%d,"value_size":%d,"inflight":%d,"seconds":%.3f,)"
      R"("keys_per_sec":%.0f})",
      f.keys, f.value_size, f.inflight, seconds, PerSecond(f.keys, seconds)));
  return kExitOk;
}

struct IdealCopyFlags {
  std::string src;
  std::string dst;
  std::string prefix;
  int64_t page_size = 10000;
  int inflight = 16;
  int txn_ops = 128;
};

int RunIdealCopy(const IdealCopyFlags& f) {
  if (auto s = CheckPrefix(f.prefix); !s.ok()) return Fail("ideal-copy", s);
  // The stopwatch includes connecting, as a copier's wall time (kvsync's in the benchmarks)
  // does: over a long link the handshakes are a few round trips of the total.
  auto start = Clock::now();
  auto src = Open(f.src, "source");
  if (!src.ok()) return Fail("ideal-copy", src.status());
  auto dst = Open(f.dst, "destination");
  if (!dst.ok()) return Fail("ideal-copy", dst.status());

  // Room for about one page of txns: the reader fetches page N+1 while page N is written.
  size_t capacity = std::max<size_t>(2 * static_cast<size_t>(f.inflight),
                                     static_cast<size_t>(f.page_size / f.txn_ops + 1));
  BoundedQueue<etcd::TxnRequest> queue(capacity);
  std::atomic<int64_t> keys{0};
  int64_t revision = 0;
  absl::Status read_status;
  std::thread reader([&] {
    TxnBuilder builder(f.txn_ops);
    read_status = ForEachPage(
        src->get(), f.prefix, f.page_size,
        [&](etcd::RangeResponse* page) {
          keys += static_cast<int64_t>(page->kvs.size());
          for (auto& kv : page->kvs) {
            if (builder.Add(std::move(kv.key), std::move(kv.value)) &&
                !queue.Push(builder.Take())) {
              return false;
            }
          }
          return builder.empty() || queue.Push(builder.Take());
        },
        &revision);
    queue.Close();
  });
  absl::Status write_status =
      RunTxnWorkers(dst->get(), f.inflight, [&](etcd::TxnRequest* txn) { return queue.Pop(txn); });
  queue.Cancel();
  reader.join();
  double seconds = SecondsSince(start);
  if (!read_status.ok()) return Fail("ideal-copy", read_status);
  if (!write_status.ok()) return Fail("ideal-copy", write_status);
  PrintJson(absl::StrFormat(
      R"({"command":"ideal-copy","keys":%d,"revision":%d,"page_size":%d,"inflight":%d,)"
      R"("seconds":%.3f,"keys_per_sec":%.0f})",
      keys.load(), revision, f.page_size, f.inflight, seconds, PerSecond(keys.load(), seconds)));
  return kExitOk;
}

struct LagFlags {
  std::string src;
  std::string dst;
  std::string prefix;
  int rate = 1000;
  int seconds = 20;
  int value_size = 256;
  int writers = 0;
  int drain_seconds = 30;
  int warmup_seconds = 60;
};

// What the destination watch saw, filled by the watch reader thread.
class LagRecorder {
 public:
  explicit LagRecorder(int64_t total) : lag_ns_(total, -1) {}

  void MarkReady() {
    absl::MutexLock lock(&mu_);
    ready_ = true;
  }
  bool WaitReady(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&ready_), timeout);
  }
  void Record(int64_t seq, int64_t lag_ns) {
    absl::MutexLock lock(&mu_);
    if (seq < 0 || seq >= static_cast<int64_t>(lag_ns_.size()) || lag_ns_[seq] >= 0) return;
    lag_ns_[seq] = std::max<int64_t>(lag_ns, 0);
    ++received_;
  }
  void Fail(absl::Status status) {
    absl::MutexLock lock(&mu_);
    if (error_.ok()) error_ = std::move(status);
  }
  // Waits until `count` events arrived, the watch failed, or the deadline passed.
  void WaitFor(int64_t count, absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return received_ >= count || !error_.ok();
    };
    mu_.AwaitWithDeadline(absl::Condition(&done), deadline);
  }
  std::vector<int64_t> lags() const {
    absl::MutexLock lock(&mu_);
    return lag_ns_;
  }
  int64_t received() const {
    absl::MutexLock lock(&mu_);
    return received_;
  }
  absl::Status error() const {
    absl::MutexLock lock(&mu_);
    return error_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<int64_t> lag_ns_ ABSL_GUARDED_BY(mu_);  // -1: not received
  int64_t received_ ABSL_GUARDED_BY(mu_) = 0;
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p * sorted.size()));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

int RunLag(const LagFlags& f) {
  if (auto s = CheckPrefix(f.prefix); !s.ok()) return Fail("lag", s);
  auto src = Open(f.src, "source");
  if (!src.ok()) return Fail("lag", src.status());
  auto dst = Open(f.dst, "destination");
  if (!dst.ok()) return Fail("lag", dst.status());
  auto dst_head = (*dst)->Connect();
  if (!dst_head.ok()) return Fail("lag", dst_head.status());

  const std::string key_prefix =
      absl::StrFormat("%slag-%x-", f.prefix, static_cast<uint64_t>(WallNanos()) & 0xffffffffffULL);
  const std::string ready_key = key_prefix + "ready";
  const int64_t total = static_cast<int64_t>(f.rate) * f.seconds;
  LagRecorder recorder(total);

  // Watch the destination before anything is written so that no event can be missed.
  etcd::Client::WatchOptions watch_options;
  watch_options.key = f.prefix;
  watch_options.range_end = common::PrefixEnd(f.prefix);
  watch_options.start_revision = dst_head->revision + 1;
  watch_options.progress_notify = false;
  auto watch = (*dst)->Watch(watch_options);
  if (!watch.ok()) return Fail("lag", watch.status());
  std::thread reader([&] {
    while (true) {
      auto response = (*watch)->Next();
      if (!response.ok()) {
        if (response.status().code() != absl::StatusCode::kCancelled) {
          recorder.Fail(response.status());
        }
        return;
      }
      int64_t now = WallNanos();
      for (const etcd::Event& e : response->events) {
        if (e.type != etcd::Event::Type::kPut || !common::HasPrefix(e.kv.key, key_prefix)) continue;
        if (e.kv.key == ready_key) {
          recorder.MarkReady();
          continue;
        }
        int64_t seq = 0;
        int64_t sent_ns = 0;
        absl::string_view value = e.kv.value;
        value = value.substr(0, value.find(' '));
        if (absl::SimpleAtoi(absl::string_view(e.kv.key).substr(key_prefix.size()), &seq) &&
            absl::SimpleAtoi(value, &sent_ns)) {
          recorder.Record(seq, now - sent_ns);
        }
      }
    }
  });
  auto finish_reader = [&] {
    (*watch)->Cancel();
    reader.join();
  };

  // Warm-up: one marker key proves the syncer under test is running and watching.
  bool ready = false;
  auto warmup_deadline = Clock::now() + std::chrono::seconds(f.warmup_seconds);
  while (!ready && Clock::now() < warmup_deadline) {
    auto put = (*src)->Put(ready_key, std::to_string(WallNanos()));
    if (!put.ok()) {
      finish_reader();
      return Fail("lag", put.status());
    }
    ready = recorder.WaitReady(absl::Seconds(5));
  }
  if (!ready) {
    finish_reader();
    return Fail("lag", absl::DeadlineExceededError(absl::StrFormat(
                           "the warm-up key did not reach the destination within %d s; is a "
                           "syncer running for this prefix?",
                           f.warmup_seconds)));
  }

  // Paced writers: put i is due at start + i/rate; a writer that falls behind sends at once.
  int writers = f.writers > 0 ? f.writers : std::clamp(f.rate / 50, 4, 128);
  std::vector<int64_t> sent_ns(total, -1);
  std::vector<int64_t> put_ns(total, -1);
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> sent{0};
  std::atomic<int64_t> failed{0};
  std::atomic<int64_t> max_late_ns{0};
  absl::Mutex error_mu;
  absl::Status first_put_error;
  const auto start = Clock::now() + milliseconds(20);
  const int64_t start_wall = WallNanos() + 20'000'000;
  std::vector<std::thread> threads;
  threads.reserve(writers);
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&] {
      while (true) {
        int64_t i = next.fetch_add(1);
        if (i >= total) return;
        auto due = start + std::chrono::nanoseconds(i * 1'000'000'000LL / f.rate);
        std::this_thread::sleep_until(due);
        int64_t late =
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - due).count();
        int64_t seen = max_late_ns.load();
        while (late > seen && !max_late_ns.compare_exchange_weak(seen, late)) {
        }
        int64_t ts = WallNanos();
        std::string value = absl::StrFormat("%d %d ", ts, i);
        if (static_cast<int>(value.size()) < f.value_size) value.resize(f.value_size, 'x');
        auto put = (*src)->Put(absl::StrFormat("%s%09d", key_prefix, i), value);
        if (put.ok()) {
          sent_ns[i] = ts;
          put_ns[i] = WallNanos() - ts;
          ++sent;
        } else {
          ++failed;
          absl::MutexLock lock(&error_mu);
          if (first_put_error.ok()) first_put_error = put.status();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const int64_t send_end_wall = WallNanos();
  double send_seconds = static_cast<double>(send_end_wall - start_wall) / 1e9;

  const absl::Time deadline =
      absl::FromUnixNanos(start_wall) + absl::Seconds(f.seconds + f.drain_seconds);
  recorder.WaitFor(sent.load(), deadline);
  const int64_t deadline_wall = std::max(WallNanos(), absl::ToUnixNanos(deadline));
  finish_reader();
  if (!recorder.error().ok()) return Fail("lag", recorder.error());
  if (sent.load() == 0) return Fail("lag", first_put_error);

  // Percentiles over every sent put; one that never arrived counts as "at least until the
  // deadline", so with missing events the figures are lower bounds.
  std::vector<int64_t> lags = recorder.lags();
  std::vector<double> all_ms;
  std::vector<double> put_ms;
  int64_t missing = 0;
  for (int64_t i = 0; i < total; ++i) {
    if (sent_ns[i] < 0) continue;
    put_ms.push_back(static_cast<double>(put_ns[i]) / 1e6);
    if (lags[i] >= 0) {
      all_ms.push_back(static_cast<double>(lags[i]) / 1e6);
    } else {
      ++missing;
      all_ms.push_back(static_cast<double>(deadline_wall - sent_ns[i]) / 1e6);
    }
  }
  std::sort(all_ms.begin(), all_ms.end());
  std::sort(put_ms.begin(), put_ms.end());
  // put_*_ms: the source put's own latency, a part of every lag figure.
  PrintJson(absl::StrFormat(
      R"({"command":"lag","rate":%d,"seconds":%d,"sent":%d,"received":%d,"missing":%d,)"
      R"("failed_puts":%d,"send_rate":%.0f,"max_send_late_ms":%.1f,"p50_ms":%.1f,)"
      R"("p99_ms":%.1f,"max_ms":%.1f,"lower_bound":%s,"put_p50_ms":%.1f,"put_p99_ms":%.1f})",
      f.rate, f.seconds, sent.load(), recorder.received(), missing, failed.load(),
      PerSecond(sent.load(), send_seconds), static_cast<double>(max_late_ns.load()) / 1e6,
      Percentile(all_ms, 0.50), Percentile(all_ms, 0.99), all_ms.empty() ? 0.0 : all_ms.back(),
      missing > 0 ? "true" : "false", Percentile(put_ms, 0.50), Percentile(put_ms, 0.99)));
  return kExitOk;
}

// Turns the first SIGINT/SIGTERM into stop->RequestStop(). Construct before starting any thread
// (it blocks both signals for the threads that follow); the destructor joins the waiter.
class SignalWaiter {
 public:
  explicit SignalWaiter(common::StopToken* stop) : stop_(stop) {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    thread_ = std::thread([this] {
      while (!stop_->stopped()) {
        timespec timeout{0, 200'000'000};
        if (sigtimedwait(&set_, nullptr, &timeout) > 0) stop_->RequestStop();
      }
    });
  }
  ~SignalWaiter() {
    stop_->RequestStop();
    thread_.join();
  }

 private:
  common::StopToken* stop_;
  sigset_t set_;
  std::thread thread_;
};

struct ProvidersFlags {
  std::string endpoints;
  std::string prefix;
  int64_t leases = 1000;
  int keys_per_lease = 5;
  int ttl = 30;
  int seconds = 0;
  int inflight = 16;
  int value_size = 128;
  std::string ready_file;
};

// Providers that register on leases and keep them alive, as service instances do: grants
// --leases leases of --ttl seconds (--inflight at once), puts --keys-per-lease keys on each
// (<prefix>p%08d/k%d, txns of 128 puts), writes --ready-file, then renews every lease every
// ttl/3 over one keep-alive stream until --seconds pass or SIGINT/SIGTERM.
int RunProviders(const ProvidersFlags& f) {
  if (auto s = CheckPrefix(f.prefix); !s.ok()) return Fail("providers", s);
  common::StopToken stop;
  SignalWaiter signals(&stop);
  auto client = Open(f.endpoints, "etcd");
  if (!client.ok()) return Fail("providers", client.status());
  etcd::Client* c = client->get();
  std::vector<int64_t> ids(static_cast<size_t>(f.leases));
  std::atomic<int64_t> next{0};
  absl::Mutex mu;
  absl::Status first_error;
  auto start = Clock::now();
  std::vector<std::thread> granters;
  granters.reserve(static_cast<size_t>(f.inflight));
  for (int t = 0; t < f.inflight; ++t) {
    granters.emplace_back([&] {
      for (int64_t i = next++; i < f.leases; i = next++) {
        absl::StatusOr<int64_t> id = c->LeaseGrant(std::chrono::seconds(f.ttl));
        for (int attempt = 0; !id.ok() && etcd::IsTransient(id.status()) && attempt < 50;
             ++attempt) {
          id = c->LeaseGrant(std::chrono::seconds(f.ttl));
        }
        if (!id.ok()) {
          absl::MutexLock lock(&mu);
          if (first_error.ok()) first_error = id.status();
          return;
        }
        ids[static_cast<size_t>(i)] = *id;
      }
    });
  }
  for (auto& t : granters) t.join();
  if (!first_error.ok()) return Fail("providers", first_error);
  const double grant_seconds = SecondsSince(start);
  const int64_t keys = f.leases * f.keys_per_lease;
  constexpr int64_t kTxnOps = 128;
  std::atomic<int64_t> next_batch{0};
  start = Clock::now();
  absl::Status s = RunTxnWorkers(c, f.inflight, [&](etcd::TxnRequest* txn) {
    int64_t b = next_batch.fetch_add(1);
    if (b * kTxnOps >= keys) return false;
    txn->success.clear();
    for (int64_t k = b * kTxnOps; k < std::min(keys, (b + 1) * kTxnOps); ++k) {
      int64_t lease = k / f.keys_per_lease;
      etcd::Op op =
          etcd::Op::Put(absl::StrFormat("%sp%08d/k%d", f.prefix, lease, k % f.keys_per_lease),
                        std::string(static_cast<size_t>(f.value_size), 'v'));
      op.lease = ids[static_cast<size_t>(lease)];
      txn->success.push_back(std::move(op));
    }
    return true;
  });
  if (!s.ok()) return Fail("providers", s);
  const double put_seconds = SecondsSince(start);
  if (!f.ready_file.empty()) {
    if (FILE* ready = std::fopen(f.ready_file.c_str(), "w")) std::fclose(ready);
  }
  const auto end =
      f.seconds > 0 ? Clock::now() + std::chrono::seconds(f.seconds) : Clock::time_point::max();
  int64_t rounds = 0;
  int64_t failures = 0;
  const auto every = std::chrono::milliseconds(f.ttl * 1000 / 3);
  while (!stop.stopped() && Clock::now() < end) {
    auto renewed = c->LeaseKeepAlive(ids);
    if (renewed.ok()) {
      ++rounds;
    } else {
      ++failures;
    }
    stop.WaitFor(
        std::min(every, std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now())));
  }
  PrintJson(absl::StrFormat(
      R"({"command":"providers","leases":%d,"keys":%d,"ttl":%d,"grant_seconds":%.3f,)"
      R"("put_seconds":%.3f,"keepalive_rounds":%d,"keepalive_failures":%d})",
      f.leases, keys, f.ttl, grant_seconds, put_seconds, rounds, failures));
  return kExitOk;
}

struct WorkloadFlags {
  std::string endpoints;
  std::string prefix;
  int services = 20;
  double rate = 20;
  int seconds = 0;
  int64_t seed = -1;
};

// A service registry as the workload left it; touched by the workload's thread only.
class Registry {
 public:
  struct Provider {
    std::string address;  // ip:port
    std::string zone;
    std::string version;
    std::string status;
    int weight = 100;
  };
  struct Service {
    std::string name;
    int major = 1;
    int minor = 0;
    int next_host = 1;
    std::vector<Provider> providers;
  };

  Registry(const std::string& prefix, int services, uint64_t seed) : prefix_(prefix), rng_(seed) {
    static const char* const kNames[] = {
        "orders",  "payments", "inventory", "users",   "catalog", "search",   "auth",
        "billing", "shipping", "notify",    "reviews", "cart",    "gateway",  "recommend",
        "pricing", "fraud",    "ledger",    "profile", "media",   "analytics"};
    for (int i = 0; i < services; ++i) {
      Service s;
      s.name = i < 20 ? kNames[i] : absl::StrFormat("service-%02d", i);
      // Addresses differ between runs, so a rerun adds providers instead of reusing keys.
      s.next_host = 1 + static_cast<int>(Uniform(60000));
      services_.push_back(std::move(s));
    }
  }

  size_t service_count() const { return services_.size(); }
  Service& service(size_t i) { return services_[i]; }
  Service& RandomService() { return services_[Uniform(services_.size())]; }
  size_t Uniform(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  double Chance() { return std::uniform_real_distribution<double>(0, 1)(rng_); }

  size_t provider_count() const {
    size_t n = 0;
    for (const auto& s : services_) n += s.providers.size();
    return n;
  }

  Provider NewProvider(Service* s, size_t service_index) {
    Provider p;
    int host = s->next_host++;
    p.address = absl::StrFormat("10.%d.%d.%d:%d", 20 + static_cast<int>(service_index) % 200,
                                host / 250, host % 250 + 1, 8080 + static_cast<int>(Uniform(4)));
    static const char* const kZones[] = {"dc1-a", "dc1-b", "dc1-c"};
    p.zone = kZones[Uniform(3)];
    p.version = Version(*s);
    p.status = "up";
    p.weight = 100;
    return p;
  }

  std::string Version(const Service& s) const {
    return absl::StrFormat("%d.%d.0", s.major, s.minor);
  }

  std::string ProviderKey(const Service& s, const Provider& p) const {
    return absl::StrCat(prefix_, s.name, "/providers/", p.address);
  }
  std::string ConfigKey(const Service& s) const { return absl::StrCat(prefix_, s.name, "/config"); }

  std::string ProviderValue(const Service& s, const Provider& p) const {
    return absl::StrFormat(
        R"({"service":"%s","address":"%s","zone":"%s","version":"%s","status":"%s",)"
        R"("weight":%d,"heartbeat":%d})",
        s.name, p.address, p.zone, p.version, p.status, p.weight, WallNanos() / 1'000'000'000);
  }
  std::string ConfigValue(const Service& s) const {
    return absl::StrFormat(R"({"service":"%s","version":"%s","lb":"weighted","timeout_ms":%d})",
                           s.name, Version(s), 500 + 100 * (s.minor % 5));
  }

 private:
  std::string prefix_;
  std::vector<Service> services_;
  std::mt19937_64 rng_;
};

int RunWorkload(const WorkloadFlags& f) {
  if (auto s = CheckPrefix(f.prefix); !s.ok()) return Fail("workload", s);
  common::StopToken stop;
  SignalWaiter signals(&stop);
  auto client = Open(f.endpoints, "etcd");
  if (!client.ok()) return Fail("workload", client.status());
  etcd::Client* c = client->get();
  uint64_t seed = f.seed >= 0 ? static_cast<uint64_t>(f.seed) : static_cast<uint64_t>(WallNanos());
  Registry registry(f.prefix, f.services, seed);

  int64_t registers = 0, updates = 0, deregisters = 0, txns = 0, errors = 0, ops = 0;
  bool failing = false;
  // One write; transient failures are counted and the first of a series is reported.
  auto apply = [&](const etcd::TxnRequest& txn) -> absl::Status {
    auto result = c->Txn(txn);
    if (result.ok()) {
      failing = false;
      return absl::OkStatus();
    }
    if (!etcd::IsTransient(result.status())) return result.status();
    ++errors;
    if (!failing) {
      std::fprintf(stderr, "kvsync-bench workload: write failed, will keep going: %s\n",
                   std::string(result.status().message()).c_str());
    }
    failing = true;
    return absl::OkStatus();
  };

  // Initial registration: a few providers and a config key per service, one txn each.
  for (size_t i = 0; i < registry.service_count() && !stop.stopped(); ++i) {
    Registry::Service& s = registry.service(i);
    etcd::TxnRequest txn;
    txn.success.push_back(etcd::Op::Put(registry.ConfigKey(s), registry.ConfigValue(s)));
    size_t n = 2 + registry.Uniform(3);
    for (size_t j = 0; j < n; ++j) {
      s.providers.push_back(registry.NewProvider(&s, i));
      const Registry::Provider& p = s.providers.back();
      txn.success.push_back(
          etcd::Op::Put(registry.ProviderKey(s, p), registry.ProviderValue(s, p)));
    }
    if (auto st = apply(txn); !st.ok()) return Fail("workload", st);
    registers += static_cast<int64_t>(n);
  }

  const auto start = Clock::now();
  const auto end =
      f.seconds > 0 ? start + std::chrono::seconds(f.seconds) : Clock::time_point::max();
  const auto interval = std::chrono::nanoseconds(static_cast<int64_t>(1e9 / f.rate));
  auto due = start;
  while (!stop.stopped() && Clock::now() < end) {
    size_t index = registry.Uniform(registry.service_count());
    Registry::Service& s = registry.service(index);
    etcd::TxnRequest txn;
    double r = registry.Chance();
    if (r < 0.55 && !s.providers.empty()) {
      // Heartbeat, weight or health change of one provider.
      Registry::Provider& p = s.providers[registry.Uniform(s.providers.size())];
      double what = registry.Chance();
      if (what < 0.15) p.status = p.status == "up" ? "draining" : "up";
      if (what > 0.85) p.weight = 50 + 10 * static_cast<int>(registry.Uniform(11));
      txn.success.push_back(
          etcd::Op::Put(registry.ProviderKey(s, p), registry.ProviderValue(s, p)));
      ++updates;
    } else if (r < 0.90 && (r < 0.725 || s.providers.size() <= 1) && s.providers.size() < 12) {
      s.providers.push_back(registry.NewProvider(&s, index));
      const Registry::Provider& p = s.providers.back();
      txn.success.push_back(
          etcd::Op::Put(registry.ProviderKey(s, p), registry.ProviderValue(s, p)));
      ++registers;
    } else if (r < 0.90 && s.providers.size() > 1) {
      size_t victim = registry.Uniform(s.providers.size());
      txn.success.push_back(etcd::Op::Delete(registry.ProviderKey(s, s.providers[victim])));
      s.providers.erase(s.providers.begin() + static_cast<ptrdiff_t>(victim));
      ++deregisters;
    } else {
      // A rolling deploy step, atomically: bump the service version, replace one provider
      // with a new one on the new version, and re-announce the others.
      ++s.minor;
      txn.success.push_back(etcd::Op::Put(registry.ConfigKey(s), registry.ConfigValue(s)));
      if (!s.providers.empty()) {
        size_t victim = registry.Uniform(s.providers.size());
        txn.success.push_back(etcd::Op::Delete(registry.ProviderKey(s, s.providers[victim])));
        s.providers.erase(s.providers.begin() + static_cast<ptrdiff_t>(victim));
        ++deregisters;
      }
      s.providers.push_back(registry.NewProvider(&s, index));
      ++registers;
      for (Registry::Provider& p : s.providers) {
        p.version = registry.Version(s);
        txn.success.push_back(
            etcd::Op::Put(registry.ProviderKey(s, p), registry.ProviderValue(s, p)));
      }
      ++txns;
    }
    if (auto st = apply(txn); !st.ok()) return Fail("workload", st);
    ++ops;
    due += interval;
    auto now = Clock::now();
    if (due > now) {
      stop.WaitFor(std::chrono::duration_cast<milliseconds>(due - now));
    } else if (now - due > std::chrono::seconds(1)) {
      due = now;  // After a stall, do not burst to catch up.
    }
  }
  double seconds = SecondsSince(start);
  PrintJson(absl::StrFormat(
      R"({"command":"workload","seconds":%.1f,"ops":%d,"ops_per_sec":%.1f,"registers":%d,)"
      R"("updates":%d,"deregisters":%d,"multi_key_txns":%d,"errors":%d,"providers":%d})",
      seconds, ops, PerSecond(ops, seconds), registers, updates, deregisters, txns, errors,
      static_cast<int64_t>(registry.provider_count())));
  return kExitOk;
}

// host:port (IPv4 or a resolvable name) to a socket address.
absl::StatusOr<sockaddr_storage> Resolve(const std::string& flag, const std::string& hostport,
                                         socklen_t* length) {
  auto colon = hostport.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(absl::string_view(hostport).substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " \"", hostport, "\" is not host:port"));
  }
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  std::string host = hostport.substr(0, colon);
  std::string service = std::to_string(port);
  int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &result);
  if (rc != 0 || result == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " host \"", host, "\" cannot be resolved: ", gai_strerror(rc)));
  }
  sockaddr_storage address{};
  std::memcpy(&address, result->ai_addr, result->ai_addrlen);
  *length = result->ai_addrlen;
  freeaddrinfo(result);
  return address;
}

bool SendAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// One direction of a proxied connection: the reader stamps each chunk with the time it
// arrived, the writer forwards it once `delay` has passed. Many chunks may be in flight, so
// the delay adds latency without capping throughput (kMaxQueued only guards memory).
class DelayPipe {
 public:
  DelayPipe(int from, int to, std::chrono::microseconds delay)
      : from_(from), to_(to), delay_(delay) {}

  void ReadLoop() {
    std::vector<char> buffer(256 << 10);
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return broken_ || queued_bytes_ < kMaxQueued;
        };
        mu_.Await(absl::Condition(&room));
        if (broken_) break;
      }
      ssize_t n = recv(from_, buffer.data(), buffer.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      Chunk chunk{Clock::now() + delay_, std::string(buffer.data(), static_cast<size_t>(n))};
      absl::MutexLock lock(&mu_);
      queued_bytes_ += chunk.data.size();
      chunks_.push_back(std::move(chunk));
    }
    absl::MutexLock lock(&mu_);
    eof_ = true;
  }

  void WriteLoop() {
    while (true) {
      Chunk chunk;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]()
                         ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return eof_ || !chunks_.empty(); };
        mu_.Await(absl::Condition(&ready));
        if (chunks_.empty()) break;
        chunk = std::move(chunks_.front());
        chunks_.pop_front();
        queued_bytes_ -= chunk.data.size();
      }
      std::this_thread::sleep_until(chunk.due);
      if (!SendAll(to_, chunk.data.data(), chunk.data.size())) {
        absl::MutexLock lock(&mu_);
        broken_ = true;
        chunks_.clear();
        queued_bytes_ = 0;
        shutdown(from_, SHUT_RDWR);
        shutdown(to_, SHUT_RDWR);
        return;
      }
    }
    shutdown(to_, SHUT_WR);
  }

 private:
  static constexpr size_t kMaxQueued = 256 << 20;
  struct Chunk {
    Clock::time_point due;
    std::string data;
  };
  const int from_;
  const int to_;
  const std::chrono::microseconds delay_;
  absl::Mutex mu_;
  std::deque<Chunk> chunks_ ABSL_GUARDED_BY(mu_);
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool eof_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
};

// A client connection and its upstream connection; the four pipe threads share ownership and
// the last one to finish closes both sockets.
struct ProxiedConnection {
  ProxiedConnection(int client, int upstream, std::chrono::microseconds delay)
      : client_fd(client),
        upstream_fd(upstream),
        to_upstream(client, upstream, delay),
        to_client(upstream, client, delay) {}
  ~ProxiedConnection() {
    close(client_fd);
    close(upstream_fd);
  }
  const int client_fd;
  const int upstream_fd;
  DelayPipe to_upstream;
  DelayPipe to_client;
};

struct DelayProxyFlags {
  std::string listen;
  std::string upstream;
  double delay_ms = 15;
};

int RunDelayProxy(const DelayProxyFlags& f) {
  signal(SIGPIPE, SIG_IGN);
  socklen_t listen_length = 0;
  socklen_t upstream_length = 0;
  auto listen_address = Resolve("--listen", f.listen, &listen_length);
  if (!listen_address.ok()) return Fail("delay-proxy", listen_address.status());
  auto upstream_address = Resolve("--upstream", f.upstream, &upstream_length);
  if (!upstream_address.ok()) return Fail("delay-proxy", upstream_address.status());
  if (f.delay_ms < 0) {
    return Fail("delay-proxy", absl::InvalidArgumentError("--delay-ms must be >= 0"));
  }
  const auto delay = std::chrono::microseconds(static_cast<int64_t>(f.delay_ms * 1000));

  int listener = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(listener, reinterpret_cast<sockaddr*>(&*listen_address), listen_length) != 0 ||
      listen(listener, 128) != 0) {
    return Fail("delay-proxy", absl::UnavailableError(absl::StrCat("cannot listen on ", f.listen,
                                                                   ": ", std::strerror(errno))));
  }
  sockaddr_in bound{};
  socklen_t bound_length = sizeof(bound);
  getsockname(listener, reinterpret_cast<sockaddr*>(&bound), &bound_length);
  PrintJson(absl::StrFormat(
      R"({"command":"delay-proxy","listen_port":%d,"upstream":"%s","delay_ms_each_way":%.1f})",
      ntohs(bound.sin_port), f.upstream, f.delay_ms));

  while (true) {
    int client = accept(listener, nullptr, nullptr);
    if (client < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return Fail("delay-proxy",
                  absl::UnavailableError(absl::StrCat("accept failed: ", std::strerror(errno))));
    }
    int upstream = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(upstream, reinterpret_cast<sockaddr*>(&*upstream_address), upstream_length) != 0) {
      close(upstream);
      close(client);
      continue;
    }
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto connection = std::make_shared<ProxiedConnection>(client, upstream, delay);
    std::thread([connection] { connection->to_upstream.ReadLoop(); }).detach();
    std::thread([connection] { connection->to_upstream.WriteLoop(); }).detach();
    std::thread([connection] { connection->to_client.ReadLoop(); }).detach();
    std::thread([connection] { connection->to_client.WriteLoop(); }).detach();
  }
}

struct CountFlags {
  std::string endpoints;
  std::string prefix;
};

absl::StatusOr<etcd::RangeResponse> CountKeys(etcd::Client* client, const std::string& prefix) {
  etcd::RangeRequest request;
  request.key = prefix;
  request.range_end = common::PrefixEnd(prefix);
  request.count_only = true;
  return client->Range(request);
}

int RunCount(const CountFlags& f) {
  if (auto s = CheckPrefix(f.prefix); !s.ok()) return Fail("count", s);
  auto client = Open(f.endpoints, "etcd");
  if (!client.ok()) return Fail("count", client.status());
  auto count = CountKeys(client->get(), f.prefix);
  if (!count.ok()) return Fail("count", count.status());
  PrintJson(absl::StrFormat(R"({"command":"count","count":%d,"revision":%d})", count->count,
                            count->header.revision));
  return kExitOk;
}

struct ReadFlags {
  std::string endpoints;
  std::string prefix;
  int64_t page_size = 10000;
  bool keys_only = false;
};

// Reads the whole prefix in pages at one pinned revision (the first page's) and only counts
// keys and key+value bytes: the read cost of a check or a full sync, without any comparison.
int RunRead(const ReadFlags& f) {
  if (auto s = CheckPrefix(f.prefix); !s.ok()) return Fail("read", s);
  auto client = Open(f.endpoints, "etcd");
  if (!client.ok()) return Fail("read", client.status());
  etcd::RangeRequest request;
  request.key = f.prefix;
  request.range_end = common::PrefixEnd(f.prefix);
  request.limit = f.page_size;
  request.keys_only = f.keys_only;
  int64_t keys = 0;
  int64_t bytes = 0;
  int64_t pages = 0;
  auto start = Clock::now();
  while (true) {
    auto page = RangeWithRetry(client->get(), request);
    if (!page.ok()) return Fail("read", page.status());
    ++pages;
    if (request.revision == 0) request.revision = page->header.revision;
    for (const auto& kv : page->kvs) {
      ++keys;
      bytes += static_cast<int64_t>(kv.key.size() + kv.value.size());
    }
    if (!page->more || page->kvs.empty()) break;
    request.key = page->kvs.back().key;
    request.key.push_back('\0');
  }
  double seconds = SecondsSince(start);
  PrintJson(absl::StrFormat(
      R"({"command":"read","keys":%d,"bytes":%d,"pages":%d,"revision":%d,"page_size":%d,)"
      R"("keys_only":%s,"seconds":%.3f,"keys_per_sec":%.0f})",
      keys, bytes, pages, request.revision, f.page_size, f.keys_only ? "true" : "false", seconds,
      PerSecond(keys, seconds)));
  return kExitOk;
}

struct WaitFlags {
  std::string endpoints;
  std::string prefix;
  int64_t count = -1;
  std::string key;
  std::string value;
  bool value_set = false;
  double timeout_seconds = 60;
  int interval_ms = 50;
};

int RunWait(const WaitFlags& f) {
  if (f.count < 0 && f.key.empty()) {
    return Fail("wait", absl::InvalidArgumentError("give --count (with --prefix) or --key"));
  }
  if (f.count >= 0) {
    if (auto s = CheckPrefix(f.prefix); !s.ok()) return Fail("wait", s);
  }
  auto client = Open(f.endpoints, "etcd");
  if (!client.ok()) return Fail("wait", client.status());
  auto start = Clock::now();
  auto deadline = start + std::chrono::microseconds(static_cast<int64_t>(f.timeout_seconds * 1e6));
  int64_t count = -1;
  bool reached = false;
  while (true) {
    bool key_ok = true;
    if (!f.key.empty()) {
      etcd::RangeRequest request;
      request.key = f.key;
      auto got = (*client)->Range(request);
      key_ok = got.ok() && !got->kvs.empty() && (!f.value_set || got->kvs[0].value == f.value);
    }
    bool count_ok = true;
    if (key_ok && f.count >= 0) {
      auto got = CountKeys(client->get(), f.prefix);
      if (got.ok()) count = got->count;
      count_ok = got.ok() && got->count >= f.count;
    }
    if (key_ok && count_ok) {
      reached = true;
      break;
    }
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(milliseconds(f.interval_ms));
  }
  if (!reached && f.count >= 0) {
    auto got = CountKeys(client->get(), f.prefix);
    if (got.ok()) count = got->count;
  }
  PrintJson(absl::StrFormat(R"({"command":"wait","reached":%s,"count":%d,"seconds":%.3f})",
                            reached ? "true" : "false", count, SecondsSince(start)));
  return reached ? kExitOk : kExitFailure;
}

struct CompareFlags {
  std::string src;
  std::string dst;
  std::string prefix;
  int64_t page_size = 10000;
  int64_t src_revision = 0;  // compare with the source as it was at this revision (0: now)
};

int RunCompare(const CompareFlags& f) {
  if (auto s = CheckPrefix(f.prefix); !s.ok()) return Fail("compare", s);
  auto src = Open(f.src, "source");
  if (!src.ok()) return Fail("compare", src.status());
  auto dst = Open(f.dst, "destination");
  if (!dst.ok()) return Fail("compare", dst.status());
  // Both sides fit in memory at benchmark sizes; keep key -> value hash only.
  auto digest = [&](etcd::Client* client, std::map<std::string, uint64_t>* out, int64_t at = 0) {
    int64_t revision = at;
    return ForEachPage(
        client, f.prefix, f.page_size,
        [&](etcd::RangeResponse* page) {
          for (auto& kv : page->kvs) (*out)[std::move(kv.key)] = std::hash<std::string>()(kv.value);
          return true;
        },
        &revision);
  };
  std::map<std::string, uint64_t> a, b;
  if (auto s = digest(src->get(), &a, f.src_revision); !s.ok()) return Fail("compare", s);
  if (auto s = digest(dst->get(), &b); !s.ok()) return Fail("compare", s);
  // With --src-revision: the source's keys changed after it (writes the destination cannot
  // have if it holds exactly the source at that revision).
  int64_t changed_after = 0;
  if (f.src_revision > 0) {
    int64_t now = 0;
    absl::Status counted = ForEachPage(
        src->get(), f.prefix, f.page_size,
        [&](etcd::RangeResponse* page) {
          for (const auto& kv : page->kvs) changed_after += kv.mod_revision > f.src_revision;
          return true;
        },
        &now);
    if (!counted.ok()) return Fail("compare", counted);
  }
  int64_t missing = 0, extra = 0, different = 0;
  for (const auto& [key, hash] : a) {
    auto it = b.find(key);
    if (it == b.end()) {
      ++missing;
    } else if (it->second != hash) {
      ++different;
    }
  }
  for (const auto& [key, hash] : b) extra += a.count(key) == 0 ? 1 : 0;
  bool equal = missing == 0 && extra == 0 && different == 0;
  PrintJson(
      absl::StrFormat(R"({"command":"compare","src_keys":%d,"dst_keys":%d,"missing":%d,"extra":%d,)"
                      R"("different":%d,"equal":%s,"src_revision":%d,"src_changed_after":%d})",
                      static_cast<int64_t>(a.size()), static_cast<int64_t>(b.size()), missing,
                      extra, different, equal ? "true" : "false", f.src_revision, changed_after));
  return equal ? kExitOk : kExitFailure;
}

// `s` as a JSON string literal (quotes, backslashes and control bytes escaped).
std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", static_cast<unsigned char>(c));
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

struct SeqPutFlags {
  std::string endpoints;
  std::string prefix;
  int rate = 200;
  int seconds = 0;
  int value_size = 64;
  int writers = 0;
};

// Paced puts of new keys <prefix>%09d (0, 1, 2, ...), so every source revision is a distinct
// key written once. A failed put is counted and its number skipped, never retried: a retry
// could write the key twice. Runs until SIGINT/SIGTERM or --seconds.
int RunSeqPut(const SeqPutFlags& f) {
  if (auto s = CheckPrefix(f.prefix); !s.ok()) return Fail("seq-put", s);
  common::StopToken stop;
  SignalWaiter signals(&stop);
  auto client = Open(f.endpoints, "source");
  if (!client.ok()) return Fail("seq-put", client.status());
  const int64_t total = f.seconds > 0 ? static_cast<int64_t>(f.rate) * f.seconds
                                      : std::numeric_limits<int64_t>::max();
  int writers = f.writers > 0 ? f.writers : std::clamp(f.rate / 50, 1, 64);
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> sent{0};
  std::atomic<int64_t> failed{0};
  std::atomic<int64_t> last_revision{0};
  std::atomic<int64_t> max_late_ns{0};
  std::atomic<bool> reported{false};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  threads.reserve(writers);
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&] {
      while (!stop.stopped()) {
        int64_t i = next.fetch_add(1);
        if (i >= total) return;
        auto due = start + std::chrono::nanoseconds(i * 1'000'000'000LL / f.rate);
        while (Clock::now() < due && !stop.stopped()) {
          std::this_thread::sleep_until(std::min(due, Clock::now() + milliseconds(100)));
        }
        if (stop.stopped()) return;
        int64_t late =
            std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - due).count();
        int64_t seen = max_late_ns.load();
        while (late > seen && !max_late_ns.compare_exchange_weak(seen, late)) {
        }
        std::string value = absl::StrFormat("%d %d ", i, WallNanos());
        if (static_cast<int>(value.size()) < f.value_size) value.resize(f.value_size, 'x');
        auto put = (*client)->Put(absl::StrFormat("%s%09d", f.prefix, i), value);
        if (put.ok()) {
          ++sent;
          int64_t rev = last_revision.load();
          while (put->revision > rev && !last_revision.compare_exchange_weak(rev, put->revision)) {
          }
        } else {
          ++failed;
          if (!reported.exchange(true)) {
            std::fprintf(stderr, "kvsync-bench seq-put: warning: put %d failed (skipped): %s\n",
                         static_cast<int>(i), std::string(put.status().message()).c_str());
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  double seconds = SecondsSince(start);
  PrintJson(absl::StrFormat(
      R"({"command":"seq-put","rate":%d,"sent":%d,"failed":%d,"attempted":%d,"seconds":%.3f,)"
      R"("send_rate":%.1f,"max_send_late_ms":%.1f,"last_revision":%d})",
      f.rate, sent.load(), failed.load(), sent.load() + failed.load(), seconds,
      PerSecond(sent.load(), seconds), static_cast<double>(max_late_ns.load()) / 1e6,
      last_revision.load()));
  return sent.load() > 0 || failed.load() == 0 ? kExitOk : kExitFailure;
}

struct WatchFlags {
  std::string endpoints;
  std::string prefix;
  std::string key;
  int64_t start_revision = 0;
};

// The integer after `"field":` or the string value of `"field":"..."` in a flat JSON object,
// e.g. a kvsync checkpoint ({"revision":12,...,"writer":"a"}); empty when absent.
std::string FlatJsonField(absl::string_view json, absl::string_view field) {
  std::string needle = absl::StrCat("\"", field, "\":");
  size_t at = json.find(needle);
  if (at == absl::string_view::npos) return "";
  absl::string_view rest = json.substr(at + needle.size());
  if (!rest.empty() && rest[0] == '"') {
    size_t end = rest.find('"', 1);
    return end == absl::string_view::npos ? "" : std::string(rest.substr(1, end - 1));
  }
  size_t end = rest.find_first_of(",}");
  return std::string(rest.substr(0, end));
}

// Watches a prefix or one key and prints one JSON line per event with its receive time
// (ts_ns, wall clock), resuming after transient stream failures from the next revision, until
// SIGINT/SIGTERM. A value that is a kvsync checkpoint adds its "revision" (as cp_revision) and
// "writer". The first line ("event":"created") says the watch is established.
int RunWatch(const WatchFlags& f) {
  if (f.prefix.empty() == f.key.empty()) {
    return Fail("watch", absl::InvalidArgumentError("give exactly one of --prefix and --key"));
  }
  common::StopToken stop;
  SignalWaiter signals(&stop);
  auto client = Open(f.endpoints, "etcd");
  if (!client.ok()) return Fail("watch", client.status());
  int64_t next_revision = f.start_revision;
  if (next_revision <= 0) {
    auto head = (*client)->Connect();
    if (!head.ok()) return Fail("watch", head.status());
    next_revision = head->revision + 1;
  }
  etcd::Client::WatchOptions options;
  options.key = f.prefix.empty() ? f.key : f.prefix;
  options.range_end = f.prefix.empty() ? "" : common::PrefixEnd(f.prefix);
  options.progress_notify = true;

  absl::Mutex mu;
  etcd::WatchStream* current = nullptr;  // guarded by mu; cancelled on stop
  std::thread canceller([&] {
    while (!stop.WaitFor(std::chrono::hours(24))) {
    }
    absl::MutexLock lock(&mu);
    if (current != nullptr) current->Cancel();
  });
  int64_t events = 0;
  int64_t reconnects = 0;
  bool announced = false;
  absl::Status error;
  common::Backoff backoff(milliseconds(50), milliseconds(2000));
  while (!stop.stopped()) {
    options.start_revision = next_revision;
    auto watch = (*client)->Watch(options);
    if (!watch.ok()) {
      if (!etcd::IsTransient(watch.status())) {
        error = watch.status();
        break;
      }
      ++reconnects;
      stop.WaitFor(backoff.Next());
      continue;
    }
    {
      absl::MutexLock lock(&mu);
      current = watch->get();
      if (stop.stopped()) current->Cancel();
    }
    absl::Status ended;
    while (true) {
      auto response = (*watch)->Next();
      if (!response.ok()) {
        ended = response.status();
        break;
      }
      int64_t now = WallNanos();
      if (response->created && !announced) {
        announced = true;
        PrintJson(absl::StrFormat(
            R"({"command":"watch","event":"created","start_revision":%d,"revision":%d,"ts_ns":%d})",
            next_revision, response->header.revision, now));
      }
      backoff.Reset();
      if (response->IsProgressNotify()) {
        next_revision = std::max(next_revision, response->header.revision + 1);
        continue;
      }
      std::string lines;
      for (const etcd::Event& e : response->events) {
        ++events;
        next_revision = std::max(next_revision, e.kv.mod_revision + 1);
        std::string extra;
        if (e.type == etcd::Event::Type::kPut && !e.kv.value.empty() && e.kv.value[0] == '{') {
          std::string writer = FlatJsonField(e.kv.value, "writer");
          std::string cp_revision = FlatJsonField(e.kv.value, "revision");
          int64_t n = 0;
          if (!cp_revision.empty() && absl::SimpleAtoi(cp_revision, &n)) {
            extra += absl::StrFormat(R"(,"cp_revision":%d)", n);
          }
          if (!writer.empty()) extra += absl::StrCat(R"(,"writer":)", JsonString(writer));
        }
        absl::StrAppend(
            &lines,
            absl::StrFormat(
                R"({"ts_ns":%d,"type":"%s","key":%s,"mod_revision":%d,"create_revision":%d,)"
                R"("version":%d%s})",
                now, e.type == etcd::Event::Type::kPut ? "put" : "delete", JsonString(e.kv.key),
                e.kv.mod_revision, e.kv.create_revision, e.kv.version, extra),
            "\n");
      }
      std::fputs(lines.c_str(), stdout);
      std::fflush(stdout);
    }
    {
      absl::MutexLock lock(&mu);
      current = nullptr;
    }
    if (stop.stopped() || absl::IsCancelled(ended)) break;
    if (etcd::IsCompacted(ended) || !etcd::IsTransient(ended)) {
      error = ended;
      break;
    }
    ++reconnects;
    stop.WaitFor(backoff.Next());
  }
  stop.RequestStop();
  canceller.join();
  PrintJson(absl::StrFormat(
      R"({"command":"watch","event":"stopped","events":%d,"reconnects":%d,"next_revision":%d})",
      events, reconnects, next_revision));
  if (!error.ok()) return Fail("watch", error);
  return kExitOk;
}

struct LeaderFlags {
  std::string endpoints;
  std::string name;
};

// The current leader of an election (v3election Leader): its value, key and create revision;
// "leader":"" when nobody leads.
int RunLeader(const LeaderFlags& f) {
  auto client = Open(f.endpoints, "etcd");
  if (!client.ok()) return Fail("leader", client.status());
  auto kv = (*client)->Leader(f.name);
  if (!kv.ok()) {
    if (kv.status().message().find("election: no leader") == absl::string_view::npos) {
      return Fail("leader", kv.status());
    }
    PrintJson(R"({"command":"leader","leader":"","key":"","create_revision":0})");
    return kExitOk;
  }
  PrintJson(absl::StrFormat(R"({"command":"leader","leader":%s,"key":%s,"create_revision":%d})",
                            JsonString(kv->value), JsonString(kv->key), kv->create_revision));
  return kExitOk;
}

// Parses flags and runs one subcommand; returns the exit code.
int Main(int argc, char** argv) {
  CLI::App app("kvsync-bench: benchmark drivers for kvsync etcd2etcd (see bench/etcd2etcd.sh)",
               "kvsync-bench");
  app.require_subcommand(1);
  std::map<std::string, std::function<int()>> commands;

  LoadFlags load;
  CLI::App* cmd = app.add_subcommand("load", "bulk-load N keys <prefix>%08d with multi-op txns");
  cmd->add_option("--endpoints", load.endpoints, "etcd endpoints (host:port,...)")->required();
  cmd->add_option("--prefix", load.prefix, "key prefix")->required();
  cmd->add_option("--keys", load.keys, "number of keys")
      ->required()
      ->check(CLI::Range(int64_t{1}, kMaxCount));
  cmd->add_option("--value-size", load.value_size, "bytes per value")
      ->default_val(256)
      ->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--inflight", load.inflight, "concurrent txns")
      ->default_val(16)
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--txn-ops", load.txn_ops, "puts per txn (<= etcd --max-txn-ops)")
      ->default_val(128)
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--seed", load.seed, "value seed (default: from the clock, new values each run)");
  commands["load"] = [&] { return RunLoad(load); };

  IngestFlags ingest;
  cmd = app.add_subcommand("ingest", "raw ingest rate: txns built in memory, only writes timed");
  cmd->add_option("--endpoints", ingest.endpoints, "etcd endpoints (host:port,...)")->required();
  cmd->add_option("--prefix", ingest.prefix, "key prefix")->required();
  cmd->add_option("--keys", ingest.keys, "number of keys")
      ->required()
      ->check(CLI::Range(int64_t{1}, kMaxCount));
  cmd->add_option("--value-size", ingest.value_size, "bytes per value")
      ->default_val(256)
      ->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--inflight", ingest.inflight, "concurrent txns")
      ->default_val(16)
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--txn-ops", ingest.txn_ops, "puts per txn")
      ->default_val(128)
      ->check(CLI::Range(1, 100000));
  commands["ingest"] = [&] { return RunIngest(ingest); };

  IdealCopyFlags ideal;
  cmd = app.add_subcommand("ideal-copy",
                           "ceiling: paged reads at one revision, pipelined put txns, no diff");
  cmd->add_option("--src", ideal.src, "source endpoints")->required();
  cmd->add_option("--dst", ideal.dst, "destination endpoints")->required();
  cmd->add_option("--prefix", ideal.prefix, "key prefix")->required();
  cmd->add_option("--page-size", ideal.page_size, "keys per range page")
      ->default_val(10000)
      ->check(CLI::Range(int64_t{1}, kMaxCount));
  cmd->add_option("--inflight", ideal.inflight, "concurrent txns")
      ->default_val(16)
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--txn-ops", ideal.txn_ops, "puts per txn")
      ->default_val(128)
      ->check(CLI::Range(1, 100000));
  commands["ideal-copy"] = [&] { return RunIdealCopy(ideal); };

  LagFlags lag;
  cmd = app.add_subcommand("lag",
                           "paced puts into the source, watch on the destination: replication lag");
  cmd->add_option("--src", lag.src, "source endpoints")->required();
  cmd->add_option("--dst", lag.dst, "destination endpoints")->required();
  cmd->add_option("--prefix", lag.prefix, "a prefix the syncer under test mirrors")->required();
  cmd->add_option("--rate", lag.rate, "puts per second")->required()->check(CLI::Range(1, 1000000));
  cmd->add_option("--seconds", lag.seconds, "how long to write")
      ->required()
      ->check(CLI::Range(1, 86400));
  cmd->add_option("--value-size", lag.value_size, "bytes per value")->default_val(256);
  cmd->add_option("--writers", lag.writers, "writer threads (0: rate/50, 4..128)")
      ->default_val(0)
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--drain-seconds", lag.drain_seconds, "extra wait for late events")
      ->default_val(30)
      ->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--warmup-seconds", lag.warmup_seconds, "wait for the syncer to deliver a marker")
      ->default_val(60)
      ->check(CLI::Range(int64_t{1}, kMaxCount));
  commands["lag"] = [&] { return RunLag(lag); };

  WorkloadFlags workload;
  cmd = app.add_subcommand(
      "workload", "sample service-registry workload (<prefix><service>/providers/<ip:port>)");
  cmd->add_option("--endpoints", workload.endpoints, "etcd endpoints")->required();
  cmd->add_option("--prefix", workload.prefix, "key prefix")->required();
  cmd->add_option("--services", workload.services, "number of services")
      ->default_val(20)
      ->check(CLI::Range(1, 10000));
  cmd->add_option("--rate", workload.rate, "operations per second")
      ->default_val(20)
      ->check(CLI::Range(0.01, 100000.0));
  cmd->add_option("--seconds", workload.seconds, "run time (0: until SIGINT/SIGTERM)")
      ->default_val(0)
      ->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--seed", workload.seed, "random seed (default: from the clock)");
  commands["workload"] = [&] { return RunWorkload(workload); };

  ProvidersFlags providers;
  cmd = app.add_subcommand("providers",
                           "grant leases, put keys on them and keep them alive (registrations)");
  cmd->add_option("--endpoints", providers.endpoints, "etcd endpoints")->required();
  cmd->add_option("--prefix", providers.prefix, "key prefix")->required();
  cmd->add_option("--leases", providers.leases, "number of leases")
      ->default_val(1000)
      ->check(CLI::Range(int64_t{1}, kMaxCount));
  cmd->add_option("--keys-per-lease", providers.keys_per_lease, "keys on each lease")
      ->default_val(5)
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--ttl", providers.ttl, "lease TTL in seconds")
      ->default_val(30)
      ->check(CLI::Range(3, 3600));
  cmd->add_option("--seconds", providers.seconds, "keep-alive time (0: until SIGINT/SIGTERM)")
      ->default_val(0)
      ->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--inflight", providers.inflight, "concurrent grants and txns")
      ->default_val(16)
      ->check(CLI::Range(1, 256));
  cmd->add_option("--value-size", providers.value_size, "bytes per value")
      ->default_val(128)
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--ready-file", providers.ready_file, "created once every key is written");
  commands["providers"] = [&] { return RunProviders(providers); };

  DelayProxyFlags proxy;
  cmd = app.add_subcommand("delay-proxy",
                           "TCP proxy adding --delay-ms in each direction, without a rate cap");
  cmd->add_option("--listen", proxy.listen, "host:port to listen on (port 0: any)")->required();
  cmd->add_option("--upstream", proxy.upstream, "host:port to forward to")->required();
  cmd->add_option("--delay-ms", proxy.delay_ms, "delay per direction")->default_val(15);
  commands["delay-proxy"] = [&] { return RunDelayProxy(proxy); };

  CountFlags count;
  cmd = app.add_subcommand("count", "number of keys under a prefix (count-only range)");
  cmd->add_option("--endpoints", count.endpoints, "etcd endpoints")->required();
  cmd->add_option("--prefix", count.prefix, "key prefix")->required();
  commands["count"] = [&] { return RunCount(count); };

  ReadFlags read;
  cmd = app.add_subcommand("read", "read a prefix in pages at one revision; keys, bytes, seconds");
  cmd->add_option("--endpoints", read.endpoints, "etcd endpoints")->required();
  cmd->add_option("--prefix", read.prefix, "key prefix")->required();
  cmd->add_option("--page-size", read.page_size, "keys per range page")
      ->default_val(10000)
      ->check(CLI::Range(int64_t{1}, kMaxCount));
  cmd->add_flag("--keys-only", read.keys_only, "keys only (no values)");
  commands["read"] = [&] { return RunRead(read); };

  WaitFlags wait;
  cmd = app.add_subcommand("wait", "poll until a prefix holds --count keys and/or --key exists");
  cmd->add_option("--endpoints", wait.endpoints, "etcd endpoints")->required();
  cmd->add_option("--prefix", wait.prefix, "key prefix for --count");
  cmd->add_option("--count", wait.count, "wait for at least this many keys")
      ->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--key", wait.key, "wait for this key");
  cmd->add_option_function<std::string>(
      "--value",
      [&wait](const std::string& v) {
        wait.value = v;
        wait.value_set = true;
      },
      "... holding this value");
  cmd->add_option("--timeout", wait.timeout_seconds, "seconds before giving up (exit 1)")
      ->default_val(60)
      ->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--interval-ms", wait.interval_ms, "poll interval")
      ->default_val(50)
      ->check(CLI::Range(1, 60000));
  commands["wait"] = [&] { return RunWait(wait); };

  CompareFlags compare;
  cmd = app.add_subcommand("compare", "compare a prefix key by key in two clusters");
  cmd->add_option("--src", compare.src, "source endpoints")->required();
  cmd->add_option("--dst", compare.dst, "destination endpoints")->required();
  cmd->add_option("--prefix", compare.prefix, "key prefix")->required();
  cmd->add_option("--page-size", compare.page_size, "keys per range page")
      ->default_val(10000)
      ->check(CLI::Range(int64_t{1}, kMaxCount));
  cmd->add_option("--src-revision", compare.src_revision,
                  "compare with the source as it was at this revision, and count the source keys "
                  "changed after it (an RPO check: the destination must equal the source at the "
                  "revision a promotion reported)")
      ->check(CLI::Range(int64_t{0}, std::numeric_limits<int64_t>::max()));
  commands["compare"] = [&] { return RunCompare(compare); };

  SeqPutFlags seq_put;
  cmd = app.add_subcommand("seq-put",
                           "paced puts of new keys <prefix>%09d until SIGINT/SIGTERM or --seconds");
  cmd->add_option("--endpoints", seq_put.endpoints, "etcd endpoints")->required();
  cmd->add_option("--prefix", seq_put.prefix, "key prefix")->required();
  cmd->add_option("--rate", seq_put.rate, "puts per second")
      ->default_val(200)
      ->check(CLI::Range(1, 1000000));
  cmd->add_option("--seconds", seq_put.seconds, "run time (0: until SIGINT/SIGTERM)")
      ->default_val(0)
      ->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--value-size", seq_put.value_size, "bytes per value")
      ->default_val(64)
      ->check(CLI::Range(0, 1 << 30));
  cmd->add_option("--writers", seq_put.writers, "writer threads (0: rate/50, 1..64)")
      ->default_val(0)
      ->check(CLI::Range(0, 1024));
  commands["seq-put"] = [&] { return RunSeqPut(seq_put); };

  WatchFlags watch;
  cmd = app.add_subcommand("watch",
                           "print every event of a prefix or key as a JSON line with receive time");
  cmd->add_option("--endpoints", watch.endpoints, "etcd endpoints")->required();
  cmd->add_option("--prefix", watch.prefix, "watch this prefix");
  cmd->add_option("--key", watch.key, "watch this key");
  cmd->add_option("--start-revision", watch.start_revision, "first revision (0: from now)")
      ->default_val(0)
      ->check(CLI::Range(int64_t{0}, std::numeric_limits<int64_t>::max()));
  commands["watch"] = [&] { return RunWatch(watch); };

  LeaderFlags leader;
  cmd = app.add_subcommand("leader", "current leader of an etcd election (its value)");
  cmd->add_option("--endpoints", leader.endpoints, "etcd endpoints")->required();
  cmd->add_option("--name", leader.name, "election name, e.g. /kvsync/meta/<task>/election")
      ->required();
  commands["leader"] = [&] { return RunLeader(leader); };

  AddZkCommands(app, commands);
  AddKvLatencyCommand(&app, &commands);

  if (argc > 1 && argv[1][0] != '-' && commands.count(argv[1]) == 0) {
    std::fprintf(stderr, "kvsync-bench: error: unknown command \"%s\" (see --help)\n", argv[1]);
    return kExitUsage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string sub = app.get_subcommands().empty() ? "" : app.get_subcommands()[0]->get_name();
    std::fprintf(stderr, "kvsync-bench%s%s: error: %s (see --help)\n", sub.empty() ? "" : " ",
                 sub.c_str(), e.what());
    return kExitUsage;
  }
  return commands[app.get_subcommands()[0]->get_name()]();
}

}  // namespace
}  // namespace kvsync::bench

int main(int argc, char** argv) {
  // Library exceptions (CLI11 wiring, std::bad_alloc) end the run with one line, not a trace.
  try {
    return kvsync::bench::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kvsync-bench: error: %s\n", e.what());
    return 1;
  }
}
