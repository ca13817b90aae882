#include "watchcheck/runner.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/backoff.h"
#include "common/status_macros.h"
#include "log/log.h"
#include "runtime/thread.h"
#include "watchcheck/history.h"
#include "watchcheck/watcher.h"

namespace kvsync::watchcheck {
namespace {

using Clock = std::chrono::steady_clock;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// The end of the range of keys starting with `prefix` (etcd's "prefix end").
std::string PrefixEnd(const std::string& prefix) {
  std::string end = prefix;
  while (!end.empty()) {
    unsigned char c = static_cast<unsigned char>(end.back());
    if (c < 0xff) {
      end.back() = static_cast<char>(c + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

struct Watcher {
  Watcher(int id, const History* h, const absl::flat_hash_map<std::string, int>* keys,
          int64_t start, bool prev_kv)
      : check(id, h, keys, start, prev_kv), index(id), prev_kv(prev_kv) {}
  WatcherCheck check;
  int index;
  bool prev_kv;
  int64_t watch_id = -1;
  int64_t responses = 0;
  bool created_once = false;
  bool dropped = false;                  // the server refused it for good (compacted)
  std::atomic<int64_t> max_received{0};  // read by the main thread while running
};

// The shared parts of one run.
struct Shared {
  const RunOptions* options = nullptr;
  etcd::Client::WatchOptions watch;  // key, range_end
  int64_t start_revision = 0;
  std::atomic<bool> stopping{false};
  std::atomic<int64_t> created{0};
  std::atomic<int64_t> forced_restarts{0};
  std::atomic<int64_t> stream_restarts{0};
  std::atomic<int64_t> server_cancels{0};
  std::atomic<int64_t> injected_drops{0};
};

// One watch client, one multiplexed stream at a time, its watchers' checks.
class Connection {
 public:
  Connection(int index, etcd::Client* client, Shared* shared)
      : index_(index), client_(client), shared_(shared) {}

  void Add(Watcher* w) { watchers_.push_back(w); }

  void Start() {
    thread_ = runtime::Thread("etcdwatch-conn", [this] { Loop(); });
  }

  // Main thread: ends the current stream; the loop sees `stopping` and returns.
  void Stop() {
    absl::MutexLock lock(&mu_);
    if (stream_) stream_->Cancel();
  }
  void Join() { thread_.Join(); }

 private:
  int64_t ResumeFrom(const Watcher& w) const {
    return std::max(shared_->start_revision, w.check.max_received() + 1);
  }

  absl::Status CreateWatch(etcd::MultiWatchStream* stream, Watcher* w, bool resume) {
    etcd::Client::WatchOptions o = shared_->watch;
    o.start_revision = ResumeFrom(*w);
    o.prev_kv = w->prev_kv;
    if (resume) w->check.OnResume(o.start_revision);
    ASSIGN_OR_RETURN(int64_t id, stream->Create(o));
    w->watch_id = id;
    w->check.ExpectCreated(id);
    by_id_[id] = w;
    return absl::OkStatus();
  }

  void Loop() {
    common::Backoff backoff(std::chrono::milliseconds(100), std::chrono::milliseconds(1000));
    bool first = true;
    while (!shared_->stopping.load()) {
      auto opened = client_->WatchMulti(false);
      if (!opened.ok()) {
        std::this_thread::sleep_for(backoff.Next());
        continue;
      }
      std::shared_ptr<etcd::MultiWatchStream> stream = std::move(*opened);
      {
        absl::MutexLock lock(&mu_);
        stream_ = stream;
      }
      if (shared_->stopping.load()) stream->Cancel();
      by_id_.clear();
      absl::Status s;
      for (Watcher* w : watchers_) {
        if (w->dropped) continue;
        s = CreateWatch(stream.get(), w, !first);
        if (!s.ok()) break;
      }
      first = false;
      while (s.ok()) {
        auto r = stream->Next();
        if (!r.ok()) {
          s = r.status();
          break;
        }
        backoff.Reset();
        Handle(stream.get(), *r, NowNs()).IgnoreError();
      }
      if (shared_->stopping.load()) break;
      shared_->stream_restarts.fetch_add(1);
      log::Warn("etcdwatch", "watch stream failed, re-watching",
                {{"connection", index_}, {"status", s}});
      std::this_thread::sleep_for(backoff.Next());
    }
  }

  absl::Status Handle(etcd::MultiWatchStream* stream, const etcd::WatchResponse& r,
                      int64_t recv_ns) {
    auto it = by_id_.find(r.watch_id);
    if (it == by_id_.end()) return absl::OkStatus();  // a watch we abandoned
    Watcher* w = it->second;
    if (r.created) {
      w->check.OnCreated(r);
      if (!w->created_once) {
        w->created_once = true;
        shared_->created.fetch_add(1);
      }
    }
    if (r.canceled) {
      by_id_.erase(it);
      shared_->server_cancels.fetch_add(1);
      if (r.compact_revision > 0) {
        // The revisions it still needed are gone: nothing more can be delivered.
        w->dropped = true;
        return absl::OkStatus();
      }
      return CreateWatch(stream, w, true);
    }
    if (r.events.empty()) return absl::OkStatus();
    if (shared_->options->inject_drop_every > 0 &&
        ++event_responses_ % shared_->options->inject_drop_every == 0) {
      shared_->injected_drops.fetch_add(1);
      return absl::OkStatus();
    }
    w->check.OnEvents(r, recv_ns);
    w->max_received.store(w->check.max_received(), std::memory_order_relaxed);
    int every = shared_->options->restart_every;
    if (every > 0 && w->index % every == 0 && ++w->responses % every == 0) {
      by_id_.erase(w->watch_id);
      shared_->forced_restarts.fetch_add(1);
      RETURN_IF_ERROR(stream->CancelWatch(w->watch_id));
      return CreateWatch(stream, w, true);
    }
    return absl::OkStatus();
  }

  const int index_;
  etcd::Client* const client_;
  Shared* const shared_;
  std::vector<Watcher*> watchers_;
  absl::flat_hash_map<int64_t, Watcher*> by_id_;
  int64_t event_responses_ = 0;
  absl::Mutex mu_;
  std::shared_ptr<etcd::MultiWatchStream> stream_ ABSL_GUARDED_BY(mu_);
  runtime::Thread thread_;
};

absl::Status Validate(const RunOptions& o, size_t connections) {
  if (o.watchers < 1) return absl::InvalidArgumentError("--num must be at least 1");
  if (o.span.count() < 1) return absl::InvalidArgumentError("--span must be at least 1 ms");
  if (o.duration < o.span) {
    return absl::InvalidArgumentError("--duration must be at least one --span");
  }
  if (o.key.empty() == o.prefix.empty()) {
    return absl::InvalidArgumentError("give exactly one of --key and --prefix");
  }
  if (o.keys < 1 || o.keys > 64) return absl::InvalidArgumentError("--keys must be 1..64");
  if (!o.key.empty() && o.keys != 1) {
    return absl::InvalidArgumentError("--keys needs --prefix (--key writes one key)");
  }
  if (connections < 1) return absl::InvalidArgumentError("--connections must be at least 1");
  if (o.restart_every < 0 || o.delete_every < 0 || o.inject_drop_every < 0 || o.prev_kv_every < 0) {
    return absl::InvalidArgumentError("counts must not be negative");
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Cleanup(etcd::Client* writer, const RunOptions& o) {
  auto h = o.key.empty() ? writer->Delete(o.prefix, PrefixEnd(o.prefix)) : writer->Delete(o.key);
  if (!h.ok()) return h.status();
  return h->revision;
}

}  // namespace

absl::StatusOr<Report> Run(etcd::Client* writer, const std::vector<etcd::Client*>& watch_clients,
                           const RunOptions& o, const common::StopToken* stop) {
  RETURN_IF_ERROR(Validate(o, watch_clients.size()));
  std::vector<std::string> keys;
  absl::flat_hash_map<std::string, int> key_index;
  if (!o.key.empty()) {
    keys.push_back(o.key);
  } else {
    for (int k = 0; k < o.keys; ++k) keys.push_back(absl::StrCat(o.prefix, "k", k));
  }
  for (size_t k = 0; k < keys.size(); ++k) key_index[keys[k]] = static_cast<int>(k);

  ASSIGN_OR_RETURN(int64_t clean_rev, Cleanup(writer, o));
  size_t ticks = static_cast<size_t>(o.duration / o.span);
  History history(ticks);
  Shared shared;
  shared.options = &o;
  shared.start_revision = clean_rev + 1;
  shared.watch.key = o.key.empty() ? o.prefix : o.key;
  shared.watch.range_end = o.key.empty() ? PrefixEnd(o.prefix) : "";
  shared.watch.progress_notify = false;

  std::vector<std::unique_ptr<Watcher>> watchers;
  std::vector<std::unique_ptr<Connection>> conns;
  for (size_t c = 0; c < watch_clients.size(); ++c) {
    conns.push_back(std::make_unique<Connection>(static_cast<int>(c), watch_clients[c], &shared));
  }
  for (int i = 0; i < o.watchers; ++i) {
    watchers.push_back(std::make_unique<Watcher>(i, &history, &key_index, shared.start_revision,
                                                 o.prev_kv_every > 0 && i % o.prev_kv_every == 0));
    conns[static_cast<size_t>(i) % conns.size()]->Add(watchers.back().get());
  }
  auto stop_all = [&] {
    shared.stopping.store(true);
    for (auto& c : conns) c->Stop();
    for (auto& c : conns) c->Join();
  };
  for (auto& c : conns) c->Start();

  // Every watch created before the first write, so that delivery latency is measured from a
  // steady state.
  Clock::time_point deadline = Clock::now() + o.create_timeout;
  while (shared.created.load() < o.watchers) {
    if (Clock::now() > deadline || stop->stopped()) {
      stop_all();
      if (stop->stopped()) return absl::CancelledError("stopped");
      return absl::DeadlineExceededError(absl::StrCat("only ", shared.created.load(), " of ",
                                                      o.watchers, " watches were created within ",
                                                      o.create_timeout.count(), " ms"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  log::Info("etcdwatch", "watchers created",
            {{"watchers", o.watchers},
             {"connections", static_cast<int>(conns.size())},
             {"start_revision", shared.start_revision}});

  WritePlan plan(static_cast<int>(keys.size()), o.delete_every);
  Clock::time_point t0 = Clock::now();
  absl::Status write_error;
  for (size_t tick = 0; tick < ticks && !stop->stopped(); ++tick) {
    std::this_thread::sleep_until(t0 + tick * o.span);
    std::vector<WriteOp> ops = plan.Ops(static_cast<int64_t>(tick));
    etcd::TxnRequest txn;
    for (const WriteOp& op : ops) {
      txn.success.push_back(op.is_delete ? etcd::Op::Delete(keys[op.key])
                                         : etcd::Op::Put(keys[op.key], absl::StrCat(op.value)));
    }
    auto resp = writer->Txn(txn);
    int64_t ack = NowNs();
    if (!resp.ok()) {
      write_error = resp.status();
      break;
    }
    plan.Commit(resp->header.revision, &ops);
    history.Append(WriteRecord{resp->header.revision, ack, std::move(ops)});
  }
  size_t written = history.size();
  int64_t final_rev = written == 0 ? 0 : history.at(written - 1).revision;

  // Settle: wait until every watcher has received the last write (or give up).
  if (write_error.ok() && !stop->stopped()) {
    deadline = Clock::now() + o.settle;
    while (Clock::now() < deadline && !stop->stopped()) {
      bool all = std::all_of(watchers.begin(), watchers.end(), [&](const auto& w) {
        return w->max_received.load(std::memory_order_relaxed) >= final_rev;
      });
      if (all) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  stop_all();
  if (o.cleanup) Cleanup(writer, o).IgnoreError();
  if (!write_error.ok()) return write_error;
  if (stop->stopped()) return absl::CancelledError("stopped");

  Report r;
  r.total_tasks = o.watchers;
  r.current_revision = final_rev;
  r.least_revision = final_rev;
  r.writes = static_cast<int64_t>(written);
  r.connections = static_cast<int64_t>(conns.size());
  r.forced_restarts = shared.forced_restarts.load();
  r.stream_restarts = shared.stream_restarts.load();
  r.server_cancels = shared.server_cancels.load();
  r.injected_drops = shared.injected_drops.load();
  r.span_ms = static_cast<double>(o.span.count());
  r.duration_s = static_cast<double>(o.duration.count()) / 1000.0;
  std::vector<int32_t> latencies;
  for (auto& w : watchers) {
    w->check.Drain(true);
    w->check.Finish();
    r.events += w->check.events();
    r.least_revision = std::min(r.least_revision, w->check.last_revision());
    if (w->check.last_revision() < final_rev) ++r.not_synced;
    if (w->check.failed()) ++r.failed_tasks;
    for (int p = 0; p < kNumProperties; ++p) r.violations[p] += w->check.violations()[p];
    for (const std::string& s : w->check.samples()) {
      if (r.samples.size() < 10) r.samples.push_back(s);
    }
    const auto& l = w->check.latencies_us();
    latencies.insert(latencies.end(), l.begin(), l.end());
  }
  SetLatencies(&latencies, &r);
  return r;
}

}  // namespace kvsync::watchcheck
