#include "zk/fake_zk.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"
#include "runtime/thread.h"
#include "zk/session.h"
#include "zk/walk.h"

namespace kvsync::zk {
namespace {

bool ValidPath(const std::string& path) {
  if (path.empty() || path[0] != '/') return false;
  if (path.size() > 1 && path.back() == '/') return false;
  return path.find("//") == std::string::npos;
}

std::string BaseName(const std::string& path) { return path.substr(path.rfind('/') + 1); }

}  // namespace

// One session: its state, watches and loop. Every member but the constants is guarded by the
// FakeZk's mutex (the analysis cannot name it through zk_, hence the plain comments).
class FakeZk::Session final : public Reader {
 public:
  // One queued callback; `cancel` (optional) completes it with Unavailable when the session
  // closes first.
  struct Delivery {
    std::function<void()> run;
    std::function<void()> cancel;
  };

  Session(FakeZk* zk, int64_t id, EventFn on_event)
      : zk_(zk), id_(id), on_event_(std::move(on_event)) {}
  ~Session() override { zk_->Close(this); }

  void Start() {
    loop_ = runtime::Thread("fake-zk-loop", [this] { Loop(); });
  }

  void GetData(const std::string& path, bool watch, DataFn done) override {
    auto fn = std::make_shared<DataFn>(std::move(done));
    absl::MutexLock lock(&zk_->mu_);
    absl::Status st = zk_->ReadCheckLocked(this, Op::kGetData, path);
    std::string data;
    Stat stat;
    if (st.ok()) {
      auto it = zk_->nodes_.find(path);
      if (it == zk_->nodes_.end()) {
        st = absl::NotFoundError(absl::StrCat("zookeeper: no node (", path, ")"));
      } else {
        data = it->second.data;
        stat = it->second.stat;
        if (watch) data_watches_.insert(path);
      }
    }
    zk_->ReplyLocked(path, Reply{this,
                                 [fn, st, data = std::move(data), stat]() mutable {
                                   (*fn)(st, std::move(data), stat);
                                 },
                                 [fn, path] { (*fn)(Closing(path), std::string(), Stat{}); }});
  }

  void GetChildren(const std::string& path, bool watch, ChildrenFn done) override {
    auto fn = std::make_shared<ChildrenFn>(std::move(done));
    absl::MutexLock lock(&zk_->mu_);
    absl::Status st = zk_->ReadCheckLocked(this, Op::kGetChildren, path);
    std::vector<std::string> children;
    Stat stat;
    if (st.ok()) {
      auto it = zk_->nodes_.find(path);
      if (it == zk_->nodes_.end()) {
        st = absl::NotFoundError(absl::StrCat("zookeeper: no node (", path, ")"));
      } else {
        children.assign(it->second.children.begin(), it->second.children.end());
        stat = it->second.stat;
        if (watch) child_watches_.insert(path);
      }
    }
    zk_->ReplyLocked(path, Reply{this,
                                 [fn, st, children = std::move(children), stat]() mutable {
                                   (*fn)(st, std::move(children), stat);
                                 },
                                 [fn, path] { (*fn)(Closing(path), {}, Stat{}); }});
  }

  absl::StatusOr<std::string> Get(const std::string& path, Stat* stat) override {
    if (OnLoopThread()) {
      return absl::FailedPreconditionError("FakeZk session: Get called on the loop thread");
    }
    absl::MutexLock lock(&zk_->mu_);
    if (absl::Status st = zk_->ReadCheckLocked(this, Op::kGetData, path); !st.ok()) return st;
    auto it = zk_->nodes_.find(path);
    if (it == zk_->nodes_.end()) {
      return absl::NotFoundError(absl::StrCat("zookeeper: no node (", path, ")"));
    }
    if (stat != nullptr) *stat = it->second.stat;
    return it->second.data;
  }

  absl::StatusOr<WalkResult> Walk(const WalkOptions& options, const VisitFn& visit,
                                  const common::StopToken* stop) override {
    return zk_->Walk(this, options, visit, stop);
  }

  SessionState state() const override { return state_.load(); }
  int64_t session_id() const override { return id_; }

  bool OnLoopThread() const { return loop_.id() == std::this_thread::get_id(); }

  void PushLocked(Delivery delivery) {
    queue_.push_back(std::move(delivery));
    ++queued_;
  }
  void EventLocked(const WatchEvent& event) {
    PushLocked({[this, event] { on_event_(event); }, nullptr});
  }

  static absl::Status Closing(const std::string& path) {
    return absl::UnavailableError(absl::StrCat("zookeeper: session closing (", path, ")"));
  }

  FakeZk* const zk_;
  const int64_t id_;
  const EventFn on_event_;
  std::atomic<SessionState> state_{SessionState::kConnected};
  std::deque<Delivery> queue_;
  std::vector<WatchEvent> buffered_;  // fired while disconnected, delivered on reconnect
  absl::flat_hash_set<std::string> data_watches_, child_watches_, exists_watches_;
  uint64_t queued_ = 0, delivered_ = 0;
  bool closing_ = false;
  runtime::Thread loop_;

 private:
  void Loop() {
    while (true) {
      Delivery next;
      {
        absl::MutexLock lock(&zk_->mu_);
        auto ready = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
          return closing_ || (!queue_.empty() && !zk_->paused_);
        };
        zk_->mu_.Await(absl::Condition(&ready));
        if (closing_) return;
        next = std::move(queue_.front());
        queue_.pop_front();
      }
      next.run();
      absl::MutexLock lock(&zk_->mu_);
      ++delivered_;
    }
  }
};

FakeZk::FakeZk() {
  Node root;
  nodes_.emplace("/", std::move(root));
}

FakeZk::~FakeZk() {
  absl::MutexLock lock(&mu_);
  if (!sessions_.empty()) {
    std::fprintf(stderr, "FakeZk destroyed with %zu sessions open\n", sessions_.size());
    std::abort();
  }
}

absl::StatusOr<std::unique_ptr<Reader>> FakeZk::Open(EventFn on_event) {
  std::unique_ptr<Session> session;
  {
    absl::MutexLock lock(&mu_);
    if (!open_faults_.empty()) {
      absl::Status st = std::move(open_faults_.front());
      open_faults_.pop_front();
      return st;
    }
    if (disconnected_) return absl::UnavailableError("no zookeeper server answered (FakeZk)");
    session = std::make_unique<Session>(this, next_session_id_++, std::move(on_event));
    ++sessions_opened_;
    sessions_.insert(session.get());
    session->EventLocked({WatchEvent::Type::kSession, "", SessionState::kConnected});
  }
  session->Start();
  return std::unique_ptr<Reader>(std::move(session));
}

void FakeZk::Close(Session* s) {
  std::vector<std::function<void()>> cancels;
  {
    absl::MutexLock lock(&mu_);
    sessions_.erase(s);
    s->closing_ = true;
    s->state_.store(SessionState::kClosed);
    DeleteEphemeralsLocked(s->id_);
    for (auto& d : s->queue_) {
      if (d.cancel) cancels.push_back(std::move(d.cancel));
    }
    s->queue_.clear();
    for (auto it = held_.begin(); it != held_.end();) {
      if (it->session == s) {
        cancels.push_back(std::move(it->cancel));
        it = held_.erase(it);
      } else {
        ++it;
      }
    }
  }
  s->loop_.Join();
  for (auto& cancel : cancels) cancel();
}

absl::Status FakeZk::ReadCheckLocked(Session* s, Op op, const std::string& path) {
  if (s->closing_) return Session::Closing(path);
  if (s->state_.load() == SessionState::kExpired) {
    return common::WithKind(
        absl::AbortedError(absl::StrCat("zookeeper: session expired (", path, ")")),
        common::ErrorKind::kSessionExpired);
  }
  if (s->state_.load() != SessionState::kConnected) {
    return absl::UnavailableError(absl::StrCat("zookeeper: connection loss (", path, ")"));
  }
  if (!ValidPath(path)) {
    return absl::InvalidArgumentError(absl::StrCat("zookeeper: bad arguments (", path, ")"));
  }
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if ((it->op == Op::kAny || it->op == op) && (it->path.empty() || it->path == path)) {
      absl::Status st = std::move(it->status);
      faults_.erase(it);
      return st;
    }
  }
  if (denied_.contains(path)) {
    return absl::PermissionDeniedError(absl::StrCat("zookeeper: not authenticated (", path, ")"));
  }
  return absl::OkStatus();
}

void FakeZk::ReplyLocked(const std::string& path, Reply reply) {
  auto hold = holding_.find(path);
  if (hold != holding_.end()) {
    if (--hold->second == 0) holding_.erase(hold);
    held_.push_back(std::move(reply));
    return;
  }
  reply.session->PushLocked({std::move(reply.deliver), std::move(reply.cancel)});
}

void FakeZk::FireLocked(const std::string& path, WatchEvent::Type type, bool data, bool child,
                        bool exists) {
  for (Session* s : sessions_) {
    bool hit = false;
    if (data && s->data_watches_.erase(path) > 0) hit = true;
    if (child && s->child_watches_.erase(path) > 0) hit = true;
    if (exists && s->exists_watches_.erase(path) > 0) hit = true;
    if (!hit) continue;
    WatchEvent event{type, path, SessionState::kConnected};
    if (s->state_.load() == SessionState::kConnecting) {
      s->buffered_.push_back(std::move(event));
    } else {
      s->EventLocked(event);
    }
  }
}

absl::Status FakeZk::CreateLocked(const std::string& path, const std::string& data, int64_t owner) {
  if (!ValidPath(path) || path == "/") {
    return absl::InvalidArgumentError(absl::StrCat("zookeeper: bad arguments (", path, ")"));
  }
  if (nodes_.contains(path)) {
    return absl::AlreadyExistsError(absl::StrCat("zookeeper: node exists (", path, ")"));
  }
  std::string parent = ParentPath(path);
  auto p = nodes_.find(parent);
  if (p == nodes_.end()) {
    return absl::NotFoundError(absl::StrCat("zookeeper: no node (", parent, ")"));
  }
  if (p->second.stat.ephemeral_owner != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("zookeeper: no children for ephemerals (", path, ")"));
  }
  ++zxid_;
  Node node;
  node.data = data;
  node.stat.czxid = node.stat.mzxid = node.stat.pzxid = zxid_;
  node.stat.ephemeral_owner = owner;
  node.stat.data_length = static_cast<int32_t>(data.size());
  nodes_.emplace(path, std::move(node));
  Node& pn = nodes_.find(parent)->second;
  pn.children.insert(BaseName(path));
  pn.stat.cversion++;
  pn.stat.pzxid = zxid_;
  pn.stat.num_children = static_cast<int32_t>(pn.children.size());
  FireLocked(path, WatchEvent::Type::kCreated, false, false, true);
  FireLocked(parent, WatchEvent::Type::kChildrenChanged, false, true, false);
  return absl::OkStatus();
}

absl::Status FakeZk::DeleteLocked(const std::string& path) {
  if (!ValidPath(path) || path == "/") {
    return absl::InvalidArgumentError(absl::StrCat("zookeeper: bad arguments (", path, ")"));
  }
  auto it = nodes_.find(path);
  if (it == nodes_.end()) {
    return absl::NotFoundError(absl::StrCat("zookeeper: no node (", path, ")"));
  }
  if (!it->second.children.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("zookeeper: not empty (", path, ")"));
  }
  ++zxid_;
  nodes_.erase(it);
  std::string parent = ParentPath(path);
  Node& pn = nodes_.find(parent)->second;
  pn.children.erase(BaseName(path));
  pn.stat.cversion++;
  pn.stat.pzxid = zxid_;
  pn.stat.num_children = static_cast<int32_t>(pn.children.size());
  // As ZooKeeper's DataTree: the node's own watches first, then its parent's child watches.
  FireLocked(path, WatchEvent::Type::kDeleted, true, true, false);
  FireLocked(parent, WatchEvent::Type::kChildrenChanged, false, true, false);
  return absl::OkStatus();
}

void FakeZk::DeleteEphemeralsLocked(int64_t owner) {
  std::vector<std::string> owned;
  for (const auto& [path, node] : nodes_) {
    if (node.stat.ephemeral_owner == owner) owned.push_back(path);
  }
  for (const std::string& path : owned) DeleteLocked(path).IgnoreError();
}

absl::Status FakeZk::Create(const std::string& path, const std::string& data,
                            int64_t ephemeral_owner) {
  absl::MutexLock lock(&mu_);
  return CreateLocked(path, data, ephemeral_owner);
}

absl::Status FakeZk::CreateAll(const std::string& path, const std::string& data) {
  if (!ValidPath(path)) {
    return absl::InvalidArgumentError(absl::StrCat("zookeeper: bad arguments (", path, ")"));
  }
  absl::MutexLock lock(&mu_);
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    std::string parent = path.substr(0, slash);
    if (!nodes_.contains(parent)) {
      if (absl::Status st = CreateLocked(parent, "", 0); !st.ok()) return st;
    }
  }
  if (path == "/" || nodes_.contains(path)) return absl::OkStatus();
  return CreateLocked(path, data, 0);
}

absl::Status FakeZk::Set(const std::string& path, const std::string& data) {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(path);
  if (it == nodes_.end()) {
    return absl::NotFoundError(absl::StrCat("zookeeper: no node (", path, ")"));
  }
  ++zxid_;
  it->second.data = data;
  it->second.stat.mzxid = zxid_;
  it->second.stat.version++;
  it->second.stat.data_length = static_cast<int32_t>(data.size());
  FireLocked(path, WatchEvent::Type::kDataChanged, true, false, false);
  return absl::OkStatus();
}

absl::Status FakeZk::Delete(const std::string& path) {
  absl::MutexLock lock(&mu_);
  return DeleteLocked(path);
}

absl::Status FakeZk::DeleteAll(const std::string& path) {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> subtree;
  for (const auto& [p, node] : nodes_) {
    if (p != "/" && IsUnder(p, path)) subtree.push_back(p);
  }
  auto depth = [](const std::string& p) { return std::count(p.begin(), p.end(), '/'); };
  std::stable_sort(subtree.begin(), subtree.end(),
                   [&](const std::string& a, const std::string& b) { return depth(a) > depth(b); });
  for (const std::string& p : subtree) {
    if (absl::Status st = DeleteLocked(p); !st.ok()) return st;
  }
  return absl::OkStatus();
}

void FakeZk::DeleteEphemerals(int64_t owner) {
  absl::MutexLock lock(&mu_);
  DeleteEphemeralsLocked(owner);
}

std::optional<std::string> FakeZk::Data(const std::string& path, Stat* stat) const {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(path);
  if (it == nodes_.end()) return std::nullopt;
  if (stat != nullptr) *stat = it->second.stat;
  return it->second.data;
}

std::map<std::string, std::string> FakeZk::Tree(const std::string& path) const {
  absl::MutexLock lock(&mu_);
  std::map<std::string, std::string> out;
  for (const auto& [p, node] : nodes_) {
    if (IsUnder(p, path)) out.emplace(p, node.data);
  }
  return out;
}

int64_t FakeZk::zxid() const {
  absl::MutexLock lock(&mu_);
  return zxid_;
}

void FakeZk::Disconnect() {
  absl::MutexLock lock(&mu_);
  disconnected_ = true;
  for (Session* s : sessions_) {
    if (s->state_.load() != SessionState::kConnected) continue;
    s->state_.store(SessionState::kConnecting);
    s->EventLocked({WatchEvent::Type::kSession, "", SessionState::kConnecting});
  }
}

void FakeZk::Reconnect() {
  absl::MutexLock lock(&mu_);
  disconnected_ = false;
  for (Session* s : sessions_) {
    if (s->state_.load() != SessionState::kConnecting) continue;
    s->state_.store(SessionState::kConnected);
    s->EventLocked({WatchEvent::Type::kSession, "", SessionState::kConnected});
    for (const WatchEvent& event : s->buffered_) s->EventLocked(event);
    s->buffered_.clear();
  }
}

void FakeZk::Expire() {
  absl::MutexLock lock(&mu_);
  std::vector<int64_t> ended;
  for (Session* s : sessions_) {
    SessionState state = s->state_.load();
    if (state != SessionState::kConnected && state != SessionState::kConnecting) continue;
    s->state_.store(SessionState::kExpired);
    s->data_watches_.clear();
    s->child_watches_.clear();
    s->exists_watches_.clear();
    s->buffered_.clear();
    s->EventLocked({WatchEvent::Type::kSession, "", SessionState::kExpired});
    ended.push_back(s->id_);
  }
  for (int64_t id : ended) DeleteEphemeralsLocked(id);
}

void FakeZk::FailNextOpen(absl::Status status) {
  absl::MutexLock lock(&mu_);
  open_faults_.push_back(std::move(status));
}

int FakeZk::sessions_opened() const {
  absl::MutexLock lock(&mu_);
  return sessions_opened_;
}

int FakeZk::watchers(const std::string& path) const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const Session* s : sessions_) {
    if (s->data_watches_.contains(path) || s->child_watches_.contains(path) ||
        s->exists_watches_.contains(path)) {
      ++n;
    }
  }
  return n;
}

void FakeZk::FailNext(Op op, const std::string& path, absl::Status status) {
  absl::MutexLock lock(&mu_);
  faults_.push_back(Fault{op, path, std::move(status)});
}

void FakeZk::Deny(const std::string& path, bool denied) {
  absl::MutexLock lock(&mu_);
  if (denied) {
    denied_.insert(path);
  } else {
    denied_.erase(path);
  }
}

void FakeZk::HoldNextReply(const std::string& path) {
  absl::MutexLock lock(&mu_);
  ++holding_[path];
}

int FakeZk::ReleaseReplies() {
  absl::MutexLock lock(&mu_);
  holding_.clear();
  int n = static_cast<int>(held_.size());
  for (Reply& reply : held_) {
    reply.session->PushLocked({std::move(reply.deliver), std::move(reply.cancel)});
  }
  held_.clear();
  return n;
}

int FakeZk::held_replies() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(held_.size());
}

void FakeZk::DropWatches(const std::string& path) {
  absl::MutexLock lock(&mu_);
  for (Session* s : sessions_) {
    s->data_watches_.erase(path);
    s->child_watches_.erase(path);
    s->exists_watches_.erase(path);
  }
}

void FakeZk::PauseDelivery(bool paused) {
  absl::MutexLock lock(&mu_);
  paused_ = paused;
}

void FakeZk::SetWalkHook(std::function<void(int)> hook) {
  absl::MutexLock lock(&mu_);
  walk_hook_ = std::move(hook);
}

int FakeZk::walks() const {
  absl::MutexLock lock(&mu_);
  return walks_;
}

bool FakeZk::WaitDelivered(absl::Duration timeout) const {
  auto delivered = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    for (const Session* s : sessions_) {
      if (s->delivered_ != s->queued_) return false;
    }
    return true;
  };
  bool ok = mu_.LockWhenWithTimeout(absl::Condition(&delivered), timeout);
  mu_.Unlock();
  return ok;
}

absl::StatusOr<WalkResult> FakeZk::Walk(Session* s, const WalkOptions& options,
                                        const VisitFn& visit, const common::StopToken* stop) {
  if (s->OnLoopThread()) {
    return absl::FailedPreconditionError("FakeZk session: Walk called on the loop thread");
  }
  absl::StatusOr<std::vector<std::string>> roots = WalkRoots(options);
  if (!roots.ok()) return roots.status();
  std::function<void(int)> hook;
  int n;
  {
    absl::MutexLock lock(&mu_);
    n = ++walks_;
    hook = walk_hook_;
  }
  if (hook) hook(n);
  if (stop != nullptr && stop->stopped()) return absl::CancelledError("zookeeper walk cancelled");

  WalkResult result;
  absl::Status error;
  bool cancelled = false;
  std::vector<std::pair<std::string, bool>> stack;  // (path, is root), LIFO as the real walk
  for (auto it = roots->rbegin(); it != roots->rend(); ++it) stack.emplace_back(*it, true);
  auto excluded = [&options](const std::string& path) {
    for (const std::string& exclude : options.excludes) {
      if (IsUnder(path, exclude)) return true;
    }
    return false;
  };
  // A failed read skips an unreadable node (skip_unreadable) or ends the walk.
  auto failed = [&](const absl::Status& st, const std::string& path) {
    if (absl::IsPermissionDenied(st) && options.skip_unreadable) {
      if (result.unreadable.size() < WalkResult::kMaxUnreadable) {
        result.unreadable.push_back(path);
      }
      ++result.unreadable_count;
    } else {
      error = st;
    }
  };

  absl::MutexLock lock(&mu_);
  while (!stack.empty() && error.ok()) {
    if (stop != nullptr && stop->stopped()) {
      cancelled = true;
      break;
    }
    // Plain variables, not a structured binding: the lambdas below capture `path`.
    std::string path = std::move(stack.back().first);
    bool root = stack.back().second;
    stack.pop_back();
    ++result.reads;
    absl::Status st = ReadCheckLocked(s, options.read_data ? Op::kGetData : Op::kGetChildren, path);
    if (!st.ok()) {
      failed(st, path);
      continue;
    }
    auto it = nodes_.find(path);
    if (it == nodes_.end()) {
      // Gone since it was listed: skipped. A missing root gets an exists watch.
      if (root) {
        if (options.watch) {
          ++result.reads;
          s->exists_watches_.insert(path);
        }
        result.missing_roots.push_back(path);
      }
      continue;
    }
    const Node& node = it->second;
    ++result.nodes;
    if (options.read_data) {
      if (options.watch) s->data_watches_.insert(path);
      result.bytes += static_cast<int64_t>(node.data.size());
      s->PushLocked(
          {[&visit, path, data = node.data, stat = node.stat] { visit(path, data, stat); },
           nullptr});
      if (node.stat.ephemeral_owner != 0) continue;
      ++result.reads;
      st = ReadCheckLocked(s, Op::kGetChildren, path);
      if (!st.ok()) {
        failed(st, path);
        continue;
      }
    } else {
      s->PushLocked(
          {[&visit, path, stat = node.stat] { visit(path, std::string(), stat); }, nullptr});
    }
    if (options.watch) s->child_watches_.insert(path);
    for (const std::string& name : node.children) {
      result.bytes += static_cast<int64_t>(name.size());
      std::string child = JoinPath(path, name);
      if (!excluded(child)) stack.emplace_back(std::move(child), false);
    }
    // Let changes and deliveries in between two nodes, as between a real walk's reads.
    mu_.Unlock();
    mu_.Lock();
  }
  // Returns once every visit has run (or the session closed under the walk).
  const uint64_t last = s->queued_;
  auto visited = [s, last]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return s->closing_ || s->delivered_ >= last;
  };
  mu_.Await(absl::Condition(&visited));
  if (s->closing_) return Session::Closing("(walk)");
  if (!error.ok()) return error;
  if (cancelled) return absl::CancelledError("zookeeper walk cancelled");
  return result;
}

}  // namespace kvsync::zk
