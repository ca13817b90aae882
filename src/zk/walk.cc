#include "zk/walk.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "zk/zoo_convert.h"

namespace kvsync::zk {

// The state of one walk. Completions hold a shared_ptr to it while they run, so the last one may
// still be unwinding after Walk() has seen the walk finish and returned.
class Walker : public std::enable_shared_from_this<Walker> {
 public:
  Walker(Session* session, const WalkOptions& options, const VisitFn& visit)
      : session_(session), options_(options), visit_(visit) {}

  absl::StatusOr<WalkResult> Run(std::vector<std::string> roots, const common::StopToken* stop);

 private:
  // One node in flight: its path and the walk it belongs to (set while a C call owns it).
  struct Req {
    std::string path;
    std::shared_ptr<Walker> walker;
    bool root = false;
  };

  static void OnData(int rc, const char* value, int value_len, const struct ::Stat* stat,
                     const void* data);
  static void OnChildren(int rc, const struct String_vector* strings, const struct ::Stat* stat,
                         const void* data);
  static void OnExists(int rc, const struct ::Stat* stat, const void* data);

  // Submits reads while there is room and work. Submission failures end the walk.
  void Pump() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts the first read of `req` (GetData, or GetChildren for a presence walk).
  void SubmitFirst(Req* req) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SubmitChildren(Req* req) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SubmitExists(Req* req) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `req` is done: back to the pool, one fewer in flight.
  void Release(Req* req) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Fail(int rc, const std::string& path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends `req` after a failed read: skips an unreadable node (skip_unreadable) or fails the walk.
  void FailOrSkip(int rc, Req* req) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Excluded(const std::string& path) const;
  bool Finished() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return inflight_ == 0 && (stack_.empty() || !error_.ok() || cancelled_);
  }

  // Issues one read on the loop thread; ZCLOSING once the session is closing.
  template <typename Issue>
  int Request(Issue issue) {
    zhandle_t* zh = session_->LoopHandle();
    if (zh == nullptr) return ZCLOSING;
    absl::MutexLock lock(&RequestMutex());
    return issue(zh);
  }

  Session* const session_;
  const WalkOptions& options_;
  const VisitFn& visit_;

  absl::Mutex mu_;
  std::vector<std::pair<std::string, bool>> stack_ ABSL_GUARDED_BY(mu_);  // (path, is root)
  std::vector<std::unique_ptr<Req>> pool_ ABSL_GUARDED_BY(mu_);
  std::vector<Req*> free_ ABSL_GUARDED_BY(mu_);
  int inflight_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  WalkResult result_ ABSL_GUARDED_BY(mu_);
  // Loop thread only: the data of the node being visited (capacity reused).
  std::string data_;
};

bool Walker::Excluded(const std::string& path) const {
  for (const std::string& exclude : options_.excludes) {
    if (IsUnder(path, exclude)) return true;
  }
  return false;
}

void Walker::Fail(int rc, const std::string& path) {
  if (error_.ok()) error_ = FromZooError(rc, path);
}

void Walker::FailOrSkip(int rc, Req* req) {
  if (rc == ZNOAUTH && options_.skip_unreadable) {
    if (result_.unreadable.size() < WalkResult::kMaxUnreadable) {
      result_.unreadable.push_back(req->path);
    }
    ++result_.unreadable_count;
  } else {
    Fail(rc, req->path);
  }
  Release(req);
}

void Walker::Release(Req* req) {
  req->walker.reset();
  free_.push_back(req);
  --inflight_;
}

void Walker::Pump() {
  // Refill in bursts once half the window has drained: a burst of requests reaches the server
  // together and is answered together, in fewer wake-ups on both ends.
  if (inflight_ > options_.concurrency / 2) return;
  while (inflight_ < options_.concurrency && !stack_.empty() && error_.ok() && !cancelled_) {
    Req* req;
    if (free_.empty()) {
      pool_.push_back(std::make_unique<Req>());
      req = pool_.back().get();
    } else {
      req = free_.back();
      free_.pop_back();
    }
    req->path.swap(stack_.back().first);
    req->root = stack_.back().second;
    stack_.pop_back();
    req->walker = shared_from_this();
    ++inflight_;
    SubmitFirst(req);
  }
}

void Walker::SubmitFirst(Req* req) {
  int rc = Request([&](zhandle_t* zh) {
    return options_.read_data
               ? zoo_aget(zh, req->path.c_str(), options_.watch, &Walker::OnData, req)
               : zoo_aget_children2(zh, req->path.c_str(), options_.watch, &Walker::OnChildren,
                                    req);
  });
  if (rc != ZOK) {
    Fail(rc, req->path);
    Release(req);
  }
}

void Walker::SubmitChildren(Req* req) {
  int rc = Request([&](zhandle_t* zh) {
    return zoo_aget_children2(zh, req->path.c_str(), options_.watch, &Walker::OnChildren, req);
  });
  if (rc != ZOK) {
    Fail(rc, req->path);
    Release(req);
  }
}

void Walker::SubmitExists(Req* req) {
  int rc = Request(
      [&](zhandle_t* zh) { return zoo_aexists(zh, req->path.c_str(), 1, &Walker::OnExists, req); });
  if (rc != ZOK) {
    Fail(rc, req->path);
    Release(req);
  }
}

void Walker::OnData(int rc, const char* value, int value_len, const struct ::Stat* stat,
                    const void* data) {
  Req* req = static_cast<Req*>(const_cast<void*>(data));
  std::shared_ptr<Walker> self = req->walker;  // keeps the walk alive until we return
  Stat converted;
  bool visited = false;
  if (rc == ZOK) {
    converted = ConvertStat(stat);
    bool live;
    {
      absl::MutexLock lock(&self->mu_);
      live = self->error_.ok() && !self->cancelled_;
    }
    if (live) {
      if (value != nullptr && value_len > 0) {
        self->data_.assign(value, value_len);
      } else {
        self->data_.clear();
      }
      self->visit_(req->path, self->data_, converted);
      visited = true;
    }
  }
  absl::MutexLock lock(&self->mu_);
  ++self->result_.reads;
  if (rc == ZOK) {
    if (visited) {
      ++self->result_.nodes;
      self->result_.bytes += std::max(value_len, 0);
    }
    if (converted.ephemeral_owner == 0 && self->error_.ok() && !self->cancelled_) {
      self->SubmitChildren(req);
    } else {
      self->Release(req);
    }
  } else if (rc == ZNONODE) {
    if (req->root && self->options_.watch && self->error_.ok() && !self->cancelled_) {
      self->SubmitExists(req);
    } else {
      if (req->root) self->result_.missing_roots.push_back(req->path);
      self->Release(req);
    }
  } else {
    self->FailOrSkip(rc, req);
  }
  self->Pump();
}

void Walker::OnChildren(int rc, const struct String_vector* strings, const struct ::Stat* stat,
                        const void* data) {
  Req* req = static_cast<Req*>(const_cast<void*>(data));
  std::shared_ptr<Walker> self = req->walker;
  const WalkOptions& options = self->options_;
  bool live;
  {
    absl::MutexLock lock(&self->mu_);
    live = self->error_.ok() && !self->cancelled_;
  }
  if (rc == ZOK && live && !options.read_data) {
    self->data_.clear();
    self->visit_(req->path, self->data_, ConvertStat(stat));
  }
  absl::MutexLock lock(&self->mu_);
  ++self->result_.reads;
  if (rc == ZOK) {
    if (!options.read_data && live) ++self->result_.nodes;
    if (strings != nullptr && live) {
      for (int32_t i = 0; i < strings->count; ++i) {
        std::string_view name = strings->data[i];
        self->result_.bytes += static_cast<int64_t>(name.size());
        std::string child = JoinPath(req->path, name);
        if (!options.excludes.empty() && self->Excluded(child)) continue;
        self->stack_.emplace_back(std::move(child), false);
      }
    }
    self->Release(req);
  } else if (rc == ZNONODE) {
    if (req->root && options.watch && !options.read_data && self->error_.ok() &&
        !self->cancelled_) {
      self->SubmitExists(req);
    } else {
      // A root found by its GetData and gone before its listing is as missing as one never seen.
      if (req->root) self->result_.missing_roots.push_back(req->path);
      self->Release(req);
    }
  } else {
    self->FailOrSkip(rc, req);
  }
  self->Pump();
}

void Walker::OnExists(int rc, const struct ::Stat* /*stat*/, const void* data) {
  Req* req = static_cast<Req*>(const_cast<void*>(data));
  std::shared_ptr<Walker> self = req->walker;
  absl::MutexLock lock(&self->mu_);
  ++self->result_.reads;
  if (rc == ZOK) {
    // The root appeared after our read found it missing: walk it after all.
    self->stack_.emplace_back(req->path, true);
  } else if (rc == ZNONODE) {
    self->result_.missing_roots.push_back(req->path);
  } else {
    self->Fail(rc, req->path);
  }
  self->Release(req);
  self->Pump();
}

absl::StatusOr<WalkResult> Walker::Run(std::vector<std::string> roots,
                                       const common::StopToken* stop) {
  if (absl::Status s = session_->CheckNotLoopThread("Walk"); !s.ok()) return s;
  if (stop != nullptr && stop->stopped()) return absl::CancelledError("zookeeper walk cancelled");
  {
    absl::MutexLock lock(&mu_);
    // Reversed so that the first root is walked first (LIFO).
    for (auto it = roots.rbegin(); it != roots.rend(); ++it) stack_.emplace_back(*it, true);
  }
  // The first burst is issued on the loop thread like every refill (from completions).
  session_->Submit([self = shared_from_this()](zhandle_t* zh) {
    absl::MutexLock lock(&self->mu_);
    if (zh == nullptr) {
      self->Fail(ZCLOSING, "(walk)");
    } else {
      self->Pump();
    }
  });
  // A stop cancels the walk: no new reads, in-flight ones drain.
  std::optional<common::StopCallback> on_stop;
  if (stop != nullptr) {
    on_stop.emplace(*stop, [this] {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
    });
  }
  absl::MutexLock lock(&mu_);
  auto finished = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return Finished(); };
  mu_.Await(absl::Condition(&finished));
  if (!error_.ok()) return error_;
  if (cancelled_ || (stop != nullptr && stop->stopped() && !stack_.empty())) {
    return absl::CancelledError("zookeeper walk cancelled");
  }
  return result_;
}

absl::StatusOr<std::vector<std::string>> WalkRoots(const WalkOptions& options) {
  if (options.concurrency < 1) {
    return absl::InvalidArgumentError("zookeeper walk concurrency must be at least 1");
  }
  std::vector<std::string> roots;
  for (std::string root : options.roots) {
    if (root.empty() || root[0] != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("zookeeper walk root \"", root, "\" is not an absolute path"));
    }
    while (root.size() > 1 && root.back() == '/') root.pop_back();
    roots.push_back(std::move(root));
  }
  std::vector<std::string> kept;
  for (size_t i = 0; i < roots.size(); ++i) {
    bool drop = false;
    for (const std::string& exclude : options.excludes) drop = drop || IsUnder(roots[i], exclude);
    for (size_t j = 0; j < roots.size() && !drop; ++j) {
      if (i == j) continue;
      // Under another root, or a duplicate of an earlier one.
      if (roots[i] == roots[j] ? j < i : IsUnder(roots[i], roots[j])) drop = true;
    }
    if (!drop) kept.push_back(roots[i]);
  }
  return kept;
}

absl::StatusOr<WalkResult> Walk(Session* session, const WalkOptions& options, const VisitFn& visit,
                                const common::StopToken* stop) {
  absl::StatusOr<std::vector<std::string>> roots = WalkRoots(options);
  if (!roots.ok()) return roots.status();
  auto walker = std::make_shared<Walker>(session, options, visit);
  return walker->Run(*std::move(roots), stop);
}

absl::StatusOr<WalkResult> Session::Walk(const WalkOptions& options, const VisitFn& visit,
                                         const common::StopToken* stop) {
  return zk::Walk(this, options, visit, stop);
}

}  // namespace kvsync::zk
