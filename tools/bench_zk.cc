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
//   zk-churn  paced changes to a loaded tree while watching etcd: the lag from each change's
//             ZooKeeper acknowledgement to its etcd watch event, then a comparison of the final
//             ZooKeeper tree with the final etcd keys (see RunZkChurn for the mix).
// Results are one JSON line on stdout, errors one line on stderr; exit 0 done, 1 failure, 2 bad
// flags. Threads: the main thread runs the command; the ZooKeeper session's loop thread runs
// the callbacks, which only count. zk-churn also runs worker threads (one synchronous
// ZooKeeper write each) and an etcd watch reader thread; they share one mutex-guarded ledger.
#include "tools/bench_zk.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/strings.h"
#include "etcd/client.h"
#include "etcd/types.h"
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

// A unique (per service, provider and timestamp), URL-encoded provider URL padded to about
// `bytes` characters.
std::string ProviderName(int service, int provider, int bytes, int64_t timestamp = 1600000000000) {
  std::string iface = ServiceName(service);
  std::string raw = absl::StrFormat(
      "dubbo://10.%d.%d.%d:%d/%s?anyhost=true&application=demo-provider-%d&deprecated=false&"
      "dubbo=2.0.2&dynamic=true&generic=false&interface=%s&methods=sayHello,sayGoodbye&pid=%d&"
      "release=2.7.8&side=provider&timestamp=%d",
      (provider >> 16) & 255, (provider >> 8) & 255, provider & 255, 20880 + service % 1000, iface,
      service, iface, 1000 + provider, timestamp);
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

struct ZkChurnFlags {
  std::string servers;
  std::string root = "/dubbo";
  std::string etcd_endpoints;
  std::string etcd_prefix;
  int rate = 200;
  int duration = 20;
  int settle = 10;
  int inflight = 32;
  int name_bytes = 1024;
  int value_bytes = 256;
  int min_age_ms = 1000;
  uint64_t seed = 1;
};

enum class ChangeKind { kCreateEphemeral, kCreatePersistent, kDelete, kSet };

bool IsCreate(ChangeKind kind) {
  return kind == ChangeKind::kCreateEphemeral || kind == ChangeKind::kCreatePersistent;
}

// One ZooKeeper write of the churn and what became of it.
struct Change {
  ChangeKind kind = ChangeKind::kSet;
  std::string path;
  std::string value;  // the data written (creates and sets)
  Clock::time_point due, start, ack, event;
  bool acked = false;
  bool failed = false;
  bool seen = false;        // its etcd event arrived
  bool superseded = false;  // a later change of the same key arrived first
};

// Shared by the pacer (main thread), the writer threads and the etcd watch reader. The pacer
// decides every change; writers execute them (one synchronous ZooKeeper call each) and record
// the acknowledgement; the reader matches etcd events to the changes of their key. Changes of
// one znode are never in flight together (sets skip busy nodes, deletes pick only nodes whose
// create was acknowledged), so a key's changes reach ZooKeeper in the order they were decided
// and each key's pending list is in that order too.
class ChurnLedger {
 public:
  ChurnLedger(std::string etcd_prefix, size_t queue_limit)
      : etcd_prefix_(std::move(etcd_prefix)), queue_limit_(queue_limit) {}

  // Pacer: records a decided change and queues it for the writers; blocks while the queue is
  // full (the writers cannot keep up; the lateness is reported).
  void Submit(Change change) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](ChurnLedger* l)
             ABSL_EXCLUSIVE_LOCKS_REQUIRED(l->mu_) { return l->queue_.size() < l->queue_limit_; },
        this));
    if (change.kind == ChangeKind::kSet) busy_.insert(change.path);
    int64_t index = static_cast<int64_t>(changes_.size());
    pending_[etcd_prefix_ + change.path].push_back(index);
    ++outstanding_;
    changes_.push_back(std::move(change));
    queue_.push_back(index);
  }

  // Writer: the next change to execute, or nullopt once Close() was called and the queue is
  // empty. Returns a copy of the change.
  std::optional<std::pair<int64_t, Change>> Next() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](ChurnLedger* l)
             ABSL_EXCLUSIVE_LOCKS_REQUIRED(l->mu_) { return !l->queue_.empty() || l->closed_; },
        this));
    if (queue_.empty()) return std::nullopt;
    int64_t index = queue_.front();
    queue_.pop_front();
    Change& c = changes_[index];
    c.start = Clock::now();
    return std::make_pair(index, c);
  }

  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }

  // Writer: the ZooKeeper result of change `index`.
  void Acked(int64_t index, const absl::Status& status, Clock::time_point ack) {
    absl::MutexLock lock(&mu_);
    Change& c = changes_[index];
    if (c.kind == ChangeKind::kSet) busy_.erase(c.path);
    if (!status.ok()) {
      c.failed = true;
      if (first_error_.ok()) first_error_ = status;
      Drop(index);
      return;
    }
    c.acked = true;
    c.ack = ack;
    if (IsCreate(c.kind)) deletable_.emplace_back(ack, c.path);
  }

  // Reader: matches one etcd event (received at `now`) with the oldest pending change of its
  // key that has this outcome; older pending changes of the key were overtaken (superseded).
  // Events of other keys (the engine's own repairs, earlier runs) are ignored.
  void OnEvent(const etcd::Event& e, Clock::time_point now) {
    absl::MutexLock lock(&mu_);
    auto it = pending_.find(e.kv.key);
    if (it == pending_.end()) {
      ++other_events_;
      return;
    }
    std::deque<int64_t>& list = it->second;
    for (size_t p = 0; p < list.size(); ++p) {
      Change& c = changes_[list[p]];
      bool match = e.type == etcd::Event::Type::kDelete
                       ? c.kind == ChangeKind::kDelete
                       : c.kind != ChangeKind::kDelete && e.kv.value == c.value;
      if (!match) continue;
      for (size_t q = 0; q < p; ++q) changes_[list[q]].superseded = true;
      c.seen = true;
      c.event = now;
      outstanding_ -= static_cast<int64_t>(p + 1);
      list.erase(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(p + 1));
      if (list.empty()) pending_.erase(it);
      return;
    }
    ++other_events_;
  }

  void FailWatch(absl::Status status) {
    absl::MutexLock lock(&mu_);
    if (watch_error_.ok()) watch_error_ = std::move(status);
  }

  // Pacer: a node this run created whose create was acknowledged at or before `cutoff` (the
  // oldest such), removed from the candidates; nullopt when there is none.
  std::optional<std::string> TakeDeletable(Clock::time_point cutoff) {
    absl::MutexLock lock(&mu_);
    if (deletable_.empty() || deletable_.front().first > cutoff) return std::nullopt;
    std::string path = std::move(deletable_.front().second);
    deletable_.pop_front();
    return path;
  }

  bool Busy(const std::string& path) {
    absl::MutexLock lock(&mu_);
    return busy_.count(path) > 0;
  }

  // Call after the writers are joined: waits until no change is waiting for its etcd event,
  // the watch failed, or `deadline` passed.
  void WaitSettled(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithDeadline(absl::Condition(
                              +[](ChurnLedger* l) ABSL_EXCLUSIVE_LOCKS_REQUIRED(l->mu_) {
                                return l->outstanding_ == 0 || !l->watch_error_.ok();
                              },
                              this),
                          deadline);
  }

  // Only after the writers and the reader were joined.
  const std::deque<Change>& changes() const ABSL_NO_THREAD_SAFETY_ANALYSIS { return changes_; }
  int64_t other_events() const ABSL_NO_THREAD_SAFETY_ANALYSIS { return other_events_; }
  absl::Status first_error() const ABSL_NO_THREAD_SAFETY_ANALYSIS { return first_error_; }
  absl::Status watch_error() const ABSL_NO_THREAD_SAFETY_ANALYSIS { return watch_error_; }

 private:
  void Drop(int64_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = pending_.find(etcd_prefix_ + changes_[index].path);
    if (it == pending_.end()) return;
    auto& list = it->second;
    auto pos = std::find(list.begin(), list.end(), index);
    if (pos == list.end()) return;
    list.erase(pos);
    --outstanding_;
    if (list.empty()) pending_.erase(it);
  }

  const std::string etcd_prefix_;
  const size_t queue_limit_;
  absl::Mutex mu_;
  // A deque: Submit appends while references handed out earlier stay valid.
  std::deque<Change> changes_ ABSL_GUARDED_BY(mu_);
  std::deque<int64_t> queue_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // etcd key -> indexes of its changes not yet seen, in submission order.
  std::unordered_map<std::string, std::deque<int64_t>> pending_ ABSL_GUARDED_BY(mu_);
  int64_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;
  std::unordered_set<std::string> busy_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<Clock::time_point, std::string>> deletable_ ABSL_GUARDED_BY(mu_);
  int64_t other_events_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status first_error_ ABSL_GUARDED_BY(mu_);
  absl::Status watch_error_ ABSL_GUARDED_BY(mu_);
};

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double PercentileOf(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t rank = static_cast<size_t>(std::ceil(p * values.size()));
  return values[std::clamp<size_t>(rank, 1, values.size()) - 1];
}

// A path for the JSON report: at most 160 bytes, no quotes or backslashes.
std::string ReportPath(std::string path) {
  if (path.size() > 160) path = path.substr(0, 157) + "...";
  for (char& c : path) {
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) c = '?';
  }
  return path;
}

absl::StatusOr<std::unique_ptr<etcd::Client>> OpenEtcd(const std::string& endpoints) {
  etcd::ClientOptions options;
  options.endpoints = etcd::SplitEndpoints(endpoints);
  options.name = "etcd";
  auto client = etcd::Client::Create(options);
  if (!client.ok()) return client.status();
  if (auto head = (*client)->Connect(); !head.ok()) return head.status();
  return client;
}

struct FinalDiff {
  int64_t zk_nodes = 0, etcd_keys = 0, missing = 0, stale = 0, extra = 0;
  std::string example_missing, example_stale, example_extra;
};

// Compares the ZooKeeper tree under `root` (walked with data) with the etcd keys
// `etcd_prefix + path` of that tree: missing (znode without key), stale (different value),
// extra (key without znode).
absl::StatusOr<FinalDiff> CompareFinal(zk::Session* session, etcd::Client* etcd,
                                       const std::string& root, const std::string& etcd_prefix) {
  FinalDiff diff;
  absl::Mutex mu;
  std::unordered_map<std::string, std::string> znodes;
  zk::WalkOptions options;
  options.roots = {root};
  auto walked = zk::Walk(session, options,
                         [&](const std::string& path, const std::string& data, const zk::Stat&) {
                           absl::MutexLock lock(&mu);
                           znodes.emplace(path, data);
                         });
  if (!walked.ok()) return walked.status();
  absl::MutexLock lock(&mu);
  diff.zk_nodes = static_cast<int64_t>(znodes.size());
  const std::string key_root = etcd_prefix + root;
  etcd::RangeRequest request;
  request.key = key_root;
  request.range_end = common::PrefixEnd(key_root);
  request.limit = 10000;
  while (true) {
    auto page = etcd->Range(request);
    if (!page.ok()) return page.status();
    if (request.revision == 0) request.revision = page->header.revision;
    for (const etcd::KeyValue& kv : page->kvs) {
      std::string path = kv.key.substr(etcd_prefix.size());
      if (!common::PathUnder(path, root)) continue;
      ++diff.etcd_keys;
      auto it = znodes.find(path);
      if (it == znodes.end()) {
        if (diff.extra++ == 0) diff.example_extra = path;
        continue;
      }
      if (it->second != kv.value && diff.stale++ == 0) diff.example_stale = path;
      znodes.erase(it);
    }
    if (!page->more || page->kvs.empty()) break;
    request.key = page->kvs.back().key;
    request.key.push_back('\0');
  }
  diff.missing = static_cast<int64_t>(znodes.size());
  if (!znodes.empty()) diff.example_missing = znodes.begin()->first;
  return diff;
}

// The churn mix, decided per change from a seeded generator:
//   40% create a provider znode under a random service's providers/ (1 KB URL name, empty
//       data as Dubbo writes them), alternately ephemeral and persistent;
//   30% delete the oldest znode this run created whose create was acknowledged at least
//       --min-age-ms earlier (a create when there is none yet);
//   30% set new data (--value-bytes, unique per change) on a persistent node of the loaded
//       tree: a service node or its configurators/ or routers/ node, one not being set already
//       (a create when the chosen nodes are busy).
// Changes are due at start + i/rate (steady clock); --inflight writer threads each run one
// synchronous ZooKeeper write at a time, so at most that many are in flight.
int RunZkChurn(const ZkChurnFlags& f) {
  const std::string cmd = "zk-churn";
  if (auto s = CheckRoot(f.root); !s.ok()) return FailZk(cmd, s);
  auto session = OpenZk(f.servers);
  if (!session.ok()) return FailZk(cmd, session.status());
  zk::Session* zs = session->get();
  auto etcd = OpenEtcd(f.etcd_endpoints);
  if (!etcd.ok()) return FailZk(cmd, etcd.status());

  auto services = zs->Children(f.root);
  if (!services.ok()) return FailZk(cmd, services.status());
  if (services->empty()) {
    return FailZk(cmd, absl::FailedPreconditionError("no services under --root; load a tree"));
  }
  std::sort(services->begin(), services->end());
  std::vector<std::string> set_targets;
  for (const std::string& service : *services) {
    std::string path = zk::JoinPath(f.root, service);
    set_targets.push_back(path);
    set_targets.push_back(zk::JoinPath(path, "configurators"));
    set_targets.push_back(zk::JoinPath(path, "routers"));
  }

  // Watch every key of the tree from the revision after the current one: no event of a change
  // made below can be missed, however late the stream is established.
  auto head = (*etcd)->Connect();
  if (!head.ok()) return FailZk(cmd, head.status());
  const std::string key_root = f.etcd_prefix + f.root;
  etcd::Client::WatchOptions watch_options;
  watch_options.key = key_root;
  watch_options.range_end = common::PrefixEnd(key_root);
  watch_options.start_revision = head->revision + 1;
  watch_options.progress_notify = false;
  auto watch = (*etcd)->Watch(watch_options);
  if (!watch.ok()) return FailZk(cmd, watch.status());

  const int64_t total = static_cast<int64_t>(f.rate) * f.duration;
  ChurnLedger ledger(f.etcd_prefix, static_cast<size_t>(std::max(4 * f.inflight, f.rate)));
  std::thread reader([&] {
    while (true) {
      auto response = (*watch)->Next();
      if (!response.ok()) {
        if (response.status().code() != absl::StatusCode::kCancelled) {
          ledger.FailWatch(response.status());
        }
        return;
      }
      Clock::time_point now = Clock::now();
      for (const etcd::Event& e : response->events) ledger.OnEvent(e, now);
    }
  });
  std::vector<std::thread> writers;
  writers.reserve(f.inflight);
  for (int w = 0; w < f.inflight; ++w) {
    writers.emplace_back([&] {
      while (auto next = ledger.Next()) {
        const Change& c = next->second;
        absl::Status status;
        switch (c.kind) {
          case ChangeKind::kCreateEphemeral:
          case ChangeKind::kCreatePersistent:
            status = zs->Create(c.path, c.value, c.kind == ChangeKind::kCreateEphemeral);
            break;
          case ChangeKind::kDelete:
            status = zs->Delete(c.path);
            break;
          case ChangeKind::kSet:
            status = zs->Set(c.path, c.value);
            break;
        }
        ledger.Acked(next->first, status, Clock::now());
      }
    });
  }

  std::mt19937_64 rng(f.seed);
  const int64_t nonce = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  const std::string value_pad(static_cast<size_t>(std::max(f.value_bytes, 0)), 'v');
  int64_t creates = 0;
  const auto start = Clock::now() + std::chrono::milliseconds(20);
  for (int64_t i = 0; i < total; ++i) {
    Change c;
    c.due = start + std::chrono::nanoseconds(i * 1'000'000'000LL / f.rate);
    std::this_thread::sleep_until(c.due);
    int roll = static_cast<int>(rng() % 10);
    if (roll >= 4 && roll < 7) {
      if (auto victim =
              ledger.TakeDeletable(Clock::now() - std::chrono::milliseconds(f.min_age_ms))) {
        c.kind = ChangeKind::kDelete;
        c.path = std::move(*victim);
      }
    } else if (roll >= 7) {
      for (int attempt = 0; attempt < 4 && c.path.empty(); ++attempt) {
        const std::string& target = set_targets[rng() % set_targets.size()];
        if (ledger.Busy(target)) continue;
        c.kind = ChangeKind::kSet;
        c.path = target;
        c.value = absl::StrFormat("configVersion=%d-%d;", nonce, i);
        c.value.append(value_pad, 0,
                       value_pad.size() > c.value.size() ? value_pad.size() - c.value.size() : 0);
      }
    }
    if (c.path.empty()) {
      int svc = static_cast<int>(rng() % services->size());
      c.kind = creates % 2 == 0 ? ChangeKind::kCreateEphemeral : ChangeKind::kCreatePersistent;
      c.path = zk::JoinPath(zk::JoinPath(zk::JoinPath(f.root, (*services)[svc]), "providers"),
                            ProviderName(svc, 100000 + static_cast<int>(i), f.name_bytes, nonce));
      ++creates;
    }
    ledger.Submit(std::move(c));
  }
  ledger.Close();
  for (auto& t : writers) t.join();
  const auto writes_done = Clock::now();
  ledger.WaitSettled(absl::Now() + absl::Seconds(f.settle));
  (*watch)->Cancel();
  reader.join();
  if (!ledger.watch_error().ok()) return FailZk(cmd, ledger.watch_error());

  // Lag = etcd event receipt - ZooKeeper acknowledgement (steady clock, one process), clamped
  // at 0: the engine's watch can see a change before this process's writer thread wakes up.
  std::vector<double> lag, zk_ms, per_kind[3];
  int64_t counts[3] = {0, 0, 0};
  int64_t failed = 0, seen = 0, superseded = 0, unmatched = 0, early = 0;
  double max_late = 0;
  Clock::time_point last_start = start;
  for (const Change& c : ledger.changes()) {
    int kind = IsCreate(c.kind) ? 0 : c.kind == ChangeKind::kDelete ? 1 : 2;
    ++counts[kind];
    max_late = std::max(max_late, Ms(c.start - c.due));
    last_start = std::max(last_start, c.start);
    if (c.failed) {
      ++failed;
      continue;
    }
    zk_ms.push_back(Ms(c.ack - c.start));
    if (c.seen) {
      ++seen;
      if (c.event < c.ack) ++early;
      double ms = std::max(0.0, Ms(c.event - c.ack));
      lag.push_back(ms);
      per_kind[kind].push_back(ms);
    } else if (c.superseded) {
      ++superseded;
    } else {
      ++unmatched;
    }
  }
  double send_seconds = std::chrono::duration<double>(last_start - start).count();
  double settle_seconds = std::chrono::duration<double>(Clock::now() - writes_done).count();

  auto diff = CompareFinal(zs, etcd->get(), f.root, f.etcd_prefix);
  if (!diff.ok()) return FailZk(cmd, diff.status());
  double max_lag = lag.empty() ? 0.0 : *std::max_element(lag.begin(), lag.end());
  Print(absl::StrFormat(
      R"({"command":"zk-churn","rate":%d,"duration":%d,"changes":%d,"creates":%d,"deletes":%d,)"
      R"("sets":%d,"failed":%d,"send_rate":%.0f,"max_send_late_ms":%.1f,"matched":%d,)"
      R"("superseded":%d,"unmatched":%d,"event_before_ack":%d,"other_events":%d,)"
      R"("p50_ms":%.1f,"p99_ms":%.1f,"max_ms":%.1f,"create_p99_ms":%.1f,"delete_p99_ms":%.1f,)"
      R"("set_p99_ms":%.1f,"zk_p50_ms":%.2f,"zk_p99_ms":%.2f,"settle_seconds":%.1f,)"
      R"("zk_nodes":%d,"etcd_keys":%d,"missing":%d,"stale":%d,"extra":%d,)"
      R"("example_missing":"%s","example_stale":"%s","example_extra":"%s"})",
      f.rate, f.duration, static_cast<int64_t>(ledger.changes().size()), counts[0], counts[1],
      counts[2], failed, send_seconds > 0 ? ledger.changes().size() / send_seconds : 0.0, max_late,
      seen, superseded, unmatched, early, ledger.other_events(), PercentileOf(lag, 0.50),
      PercentileOf(lag, 0.99), max_lag, PercentileOf(per_kind[0], 0.99),
      PercentileOf(per_kind[1], 0.99), PercentileOf(per_kind[2], 0.99), PercentileOf(zk_ms, 0.50),
      PercentileOf(zk_ms, 0.99), settle_seconds, diff->zk_nodes, diff->etcd_keys, diff->missing,
      diff->stale, diff->extra, ReportPath(diff->example_missing), ReportPath(diff->example_stale),
      ReportPath(diff->example_extra)));
  if (failed > 0) {
    std::fprintf(stderr, "kvsync-bench zk-churn: %d ZooKeeper writes failed; first: %s\n",
                 static_cast<int>(failed), std::string(ledger.first_error().message()).c_str());
  }
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

  static ZkChurnFlags churn;
  cmd = app.add_subcommand(
      "zk-churn",
      "paced ZooKeeper changes (create/delete/set) timed to their etcd watch events, then a "
      "final ZooKeeper vs etcd comparison");
  cmd->add_option("--zk-servers", churn.servers, "ZooKeeper servers host:port,...")->required();
  cmd->add_option("--root", churn.root, "root znode of the loaded tree")->default_val("/dubbo");
  cmd->add_option("--etcd-endpoints", churn.etcd_endpoints, "etcd endpoints the syncer writes")
      ->required();
  cmd->add_option("--etcd-prefix", churn.etcd_prefix,
                  "the syncer's --etcd-prefix (etcd key = prefix + znode path)");
  cmd->add_option("--rate", churn.rate, "changes per second")
      ->default_val(200)
      ->check(CLI::Range(1, 1000000));
  cmd->add_option("--duration", churn.duration, "seconds of changes")
      ->default_val(20)
      ->check(CLI::Range(1, 86400));
  cmd->add_option("--settle", churn.settle,
                  "seconds to wait after the last write for outstanding etcd events")
      ->default_val(10)
      ->check(CLI::Range(0, 3600));
  cmd->add_option("--inflight", churn.inflight, "writer threads (ZooKeeper writes in flight)")
      ->default_val(32)
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--name-bytes", churn.name_bytes, "created provider name length (padded)")
      ->default_val(1024)
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--value-bytes", churn.value_bytes, "data bytes of each set")
      ->default_val(256)
      ->check(CLI::Range(0, 1 << 20));
  cmd->add_option("--min-age-ms", churn.min_age_ms,
                  "a created node is deleted no sooner than this after its create was acknowledged")
      ->default_val(1000)
      ->check(CLI::Range(0, 3600000));
  cmd->add_option("--seed", churn.seed, "seed of the change mix")->default_val(1);
  commands["zk-churn"] = [] { return RunZkChurn(churn); };
}

}  // namespace kvsync::bench
