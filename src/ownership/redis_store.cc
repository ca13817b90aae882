// The Redis backend: one set per task, written ahead of etcd, with an in-memory queue while
// Redis is down.
//
// Locking: conn_mu_ serialises use of the connection (one command at a time) and is taken
// before mu_, which guards the up/down state and the queue. Invariants: while up_, the queue is
// empty and client_ is set; every Redis write happens under conn_mu_, so writes reach Redis in
// the order callers made them. Going down happens under conn_mu_ too, so a caller that finds
// the store up after taking conn_mu_ knows no queued operation precedes its own.
#include <atomic>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/backoff.h"
#include "common/status_macros.h"
#include "log/log.h"
#include "ownership/store.h"
#include "runtime/thread.h"

namespace kvsync::ownership {
namespace {

using std::chrono::milliseconds;

constexpr size_t kKeysPerCommand = 1000;
constexpr milliseconds kPingInterval(1000);
constexpr milliseconds kBackoffInitial(100);
constexpr milliseconds kBackoffMax(5000);
constexpr char kComponent[] = "ownership";

class RedisStore : public Store {
 public:
  RedisStore(redis::Options options, std::string task, std::string set,
             std::unique_ptr<redis::Client> client, const absl::Status& connect_status)
      : options_(std::move(options)), task_(std::move(task)), set_(std::move(set)) {
    client_ = std::move(client);
    up_ = client_ != nullptr;
    available_ = up_;
    if (!up_) {
      errors_ = 1;
      log::Warn(kComponent, "redis unavailable at start, deletes of unrecorded keys wait",
                {{"addr", options_.addr}, {"task", task_}, {"error", connect_status}});
    }
    thread_ = runtime::Thread("redis-owners", [this] { Run(); });
  }

  ~RedisStore() override {
    {
      absl::MutexLock l(&mu_);
      stop_ = true;
      cv_.SignalAll();
    }
    thread_.Join();
  }

  std::string_view backend() const override { return "redis"; }
  bool available() const override { return available_.load(); }

  void AppendPut(const std::string& key, const std::string& value,
                 std::vector<etcd::Op>* ops) const override {
    ops->push_back(etcd::Op::Put(key, value));
  }
  void AppendDelete(const std::string& key, std::vector<etcd::Op>* ops) const override {
    ops->push_back(etcd::Op::Delete(key));
  }

  void RecordWrites(const std::vector<std::string>& keys) override { Apply(keys, true); }
  void ForgetDeletes(const std::vector<std::string>& keys) override { Apply(keys, false); }

  std::vector<Owner> Lookup(const std::vector<std::string>& keys) override {
    std::vector<Owner> out(keys.size(), Owner::kUnknown);
    if (keys.empty()) return out;
    {
      absl::MutexLock l(&mu_);
      if (!up_) {
        FillFromQueue(keys, &out);
        return out;
      }
    }
    absl::MutexLock c(&conn_mu_);
    {
      absl::MutexLock l(&mu_);
      if (!up_) {
        FillFromQueue(keys, &out);
        return out;
      }
    }
    absl::Status s = Members(keys, &out);
    if (!s.ok()) {
      MarkDown(s);
      absl::MutexLock l(&mu_);
      std::fill(out.begin(), out.end(), Owner::kUnknown);
      FillFromQueue(keys, &out);
    }
    return out;
  }

  int64_t pending() const override { return pending_count_.load(); }
  int64_t errors() const override { return errors_.load(); }

 private:
  void Apply(const std::vector<std::string>& keys, bool record) {
    if (keys.empty()) return;
    {
      absl::MutexLock l(&mu_);
      if (!up_) {
        Enqueue(keys, record);
        return;
      }
    }
    absl::MutexLock c(&conn_mu_);
    {
      absl::MutexLock l(&mu_);
      if (!up_) {
        Enqueue(keys, record);
        return;
      }
    }
    absl::Status s = Write(record ? keys : std::vector<std::string>{},
                           record ? std::vector<std::string>{} : keys);
    if (!s.ok()) {
      MarkDown(s);
      absl::MutexLock l(&mu_);
      Enqueue(keys, record);
    }
  }

  // SADD `add` and SREM `remove` (disjoint key sets), in chunks, as one pipeline.
  absl::Status Write(const std::vector<std::string>& add, const std::vector<std::string>& remove)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(conn_mu_) {
    std::vector<std::vector<std::string>> commands;
    for (const auto* keys : {&add, &remove}) {
      for (size_t i = 0; i < keys->size(); i += kKeysPerCommand) {
        std::vector<std::string> cmd = {keys == &add ? "SADD" : "SREM", set_};
        size_t end = std::min(keys->size(), i + kKeysPerCommand);
        cmd.insert(cmd.end(), keys->begin() + i, keys->begin() + end);
        commands.push_back(std::move(cmd));
      }
    }
    absl::StatusOr<std::vector<redis::Reply>> replies = client_->Pipeline(commands);
    if (!replies.ok()) return replies.status();
    for (size_t i = 0; i < replies->size(); ++i) {
      if ((*replies)[i].type == redis::Reply::Type::kError) {
        return redis::ReplyError(commands[i][0], (*replies)[i]);
      }
    }
    return absl::OkStatus();
  }

  // Set membership of `keys` into `out`: SMISMEMBER (Redis >= 6.2), else one SISMEMBER per key.
  absl::Status Members(const std::vector<std::string>& keys, std::vector<Owner>* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(conn_mu_) {
    std::vector<std::vector<std::string>> commands;
    for (size_t i = 0; i < keys.size(); i += (use_sismember_ ? 1 : kKeysPerCommand)) {
      if (use_sismember_) {
        commands.push_back({"SISMEMBER", set_, keys[i]});
        continue;
      }
      std::vector<std::string> cmd = {"SMISMEMBER", set_};
      size_t end = std::min(keys.size(), i + kKeysPerCommand);
      cmd.insert(cmd.end(), keys.begin() + i, keys.begin() + end);
      commands.push_back(std::move(cmd));
    }
    absl::StatusOr<std::vector<redis::Reply>> replies = client_->Pipeline(commands);
    if (!replies.ok()) return replies.status();
    size_t next = 0;
    for (redis::Reply& reply : *replies) {
      if (reply.type == redis::Reply::Type::kError) {
        absl::Status refused = redis::ReplyError("membership check", reply);
        if (!use_sismember_ && absl::IsUnimplemented(refused)) {
          use_sismember_ = true;
          return Members(keys, out);
        }
        return refused;
      }
      std::vector<redis::Reply> single;
      std::vector<redis::Reply>* values = &reply.elements;
      if (reply.type == redis::Reply::Type::kInteger) {
        single.push_back(std::move(reply));
        values = &single;
      }
      for (const redis::Reply& v : *values) {
        if (next >= out->size()) break;
        (*out)[next++] = v.integer == 1 ? Owner::kOwned : Owner::kNotOwned;
      }
    }
    if (next != out->size()) {
      return absl::FailedPreconditionError("redis membership check: short reply");
    }
    return absl::OkStatus();
  }

  void Enqueue(const std::vector<std::string>& keys, bool record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const std::string& key : keys) queue_[key] = record;
    pending_count_ = static_cast<int64_t>(queue_.size() + flushing_.size());
  }

  // While down: the latest queued operation decides; keys without one stay kUnknown.
  void FillFromQueue(const std::vector<std::string>& keys, std::vector<Owner>* out) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (size_t i = 0; i < keys.size(); ++i) {
      auto it = queue_.find(keys[i]);
      if (it == queue_.end()) {
        it = flushing_.find(keys[i]);
        if (it == flushing_.end()) continue;
      }
      (*out)[i] = it->second ? Owner::kOwned : Owner::kNotOwned;
    }
  }

  void MarkDown(const absl::Status& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(conn_mu_) {
    client_.reset();
    ++errors_;
    absl::MutexLock l(&mu_);
    if (!up_) return;
    up_ = false;
    available_ = false;
    log::Warn(kComponent, "redis unavailable, deletes of unrecorded keys wait",
              {{"addr", options_.addr}, {"task", task_}, {"error", why}});
    cv_.SignalAll();
  }

  // Waits up to `d`, returning early on stop or, when `until_down`, when the store goes down.
  // Returns false on stop.
  bool Sleep(milliseconds d, bool until_down) {
    absl::MutexLock l(&mu_);
    absl::Time deadline = absl::Now() + absl::FromChrono(d);
    while (!stop_ && !(until_down && !up_)) {
      if (cv_.WaitWithDeadline(&mu_, deadline)) break;
    }
    return !stop_;
  }

  void Run() {
    common::Backoff backoff(kBackoffInitial, kBackoffMax);
    bool up;
    {
      absl::MutexLock l(&mu_);
      up = up_;
    }
    for (;;) {
      if (up) {
        if (!Sleep(kPingInterval, /*until_down=*/true)) return;
        up = Ping();
        if (!up) backoff.Reset();
        continue;
      }
      if (!Sleep(backoff.Next(), /*until_down=*/false)) return;
      up = Reconnect();
      if (up) backoff.Reset();
    }
  }

  // Returns whether the store is up afterwards.
  bool Ping() {
    absl::MutexLock c(&conn_mu_);
    {
      absl::MutexLock l(&mu_);
      if (!up_) return false;
    }
    absl::StatusOr<redis::Reply> reply = client_->Command({"PING"});
    if (reply.ok()) return true;
    MarkDown(reply.status());
    return false;
  }

  // Connects, flushes the queue, and marks the store up. Returns whether it is up.
  bool Reconnect() {
    absl::StatusOr<std::unique_ptr<redis::Client>> client = redis::Client::Connect(options_);
    if (!client.ok()) {
      ++errors_;
      return false;
    }
    absl::MutexLock c(&conn_mu_);
    client_ = std::move(*client);
    size_t flushed = 0;
    for (;;) {
      std::vector<std::string> add, remove;
      {
        absl::MutexLock l(&mu_);
        if (queue_.empty()) {
          up_ = true;
          available_ = true;
          break;
        }
        flushing_.swap(queue_);
        for (const auto& [key, record] : flushing_) (record ? add : remove).push_back(key);
      }
      absl::Status s = Write(add, remove);
      absl::MutexLock l(&mu_);
      if (!s.ok()) {
        // Operations queued meanwhile are newer and win over the ones that failed.
        for (auto& [key, record] : flushing_) queue_.try_emplace(key, record);
        flushing_.clear();
        pending_count_ = static_cast<int64_t>(queue_.size());
        client_.reset();
        ++errors_;
        return false;
      }
      flushed += flushing_.size();
      flushing_.clear();
      pending_count_ = static_cast<int64_t>(queue_.size());
    }
    log::Info(
        kComponent, "redis available again",
        {{"addr", options_.addr}, {"task", task_}, {"flushed", static_cast<int64_t>(flushed)}});
    return true;
  }

  const redis::Options options_;
  const std::string task_;
  const std::string set_;

  absl::Mutex conn_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  std::unique_ptr<redis::Client> client_ ABSL_GUARDED_BY(conn_mu_);
  bool use_sismember_ ABSL_GUARDED_BY(conn_mu_) = false;

  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  bool up_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // Latest queued operation per key (true: record), and the batch being flushed.
  absl::flat_hash_map<std::string, bool> queue_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, bool> flushing_ ABSL_GUARDED_BY(mu_);

  std::atomic<bool> available_{false};
  std::atomic<int64_t> pending_count_{0};
  std::atomic<int64_t> errors_{0};
  runtime::Thread thread_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> NewRedisStore(redis::Options options, std::string task,
                                                     const std::string& ns) {
  RETURN_IF_ERROR(redis::ValidateOptions(options));
  if (task.empty()) return absl::InvalidArgumentError("ownership task name is empty");
  std::string set = absl::StrCat(ns, ":", task, ":owned");
  absl::StatusOr<std::unique_ptr<redis::Client>> client = redis::Client::Connect(options);
  if (!client.ok() && (client.status().code() == absl::StatusCode::kInvalidArgument ||
                       client.status().code() == absl::StatusCode::kPermissionDenied)) {
    return client.status();
  }
  std::unique_ptr<redis::Client> connected = client.ok() ? std::move(*client) : nullptr;
  return std::unique_ptr<Store>(new RedisStore(std::move(options), std::move(task), std::move(set),
                                               std::move(connected), client.status()));
}

}  // namespace kvsync::ownership
