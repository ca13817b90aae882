#include "zk/session.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "common/errors.h"
#include "common/status_macros.h"
#include "log/log.h"
#include "runtime/thread.h"
#include "zk/walk.h"
#include "zk/zoo_convert.h"

namespace kvsync::zk {

ClientLogLine ParseClientLogLine(std::string_view line) {
  // "<time>:<pid>:ZOO_ERROR@<function>@<line>: <message>" (zookeeper's log_message).
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) {
    line.remove_suffix(1);
  }
  ClientLogLine out{log::Level::kError, std::string(line)};
  size_t at = line.find(":ZOO_");
  if (at == std::string_view::npos) return out;
  std::string_view rest = line.substr(at + 5);
  auto starts = [rest](std::string_view word) { return rest.substr(0, word.size()) == word; };
  if (starts("WARN@")) {
    out.level = log::Level::kWarn;
  } else if (starts("INFO@")) {
    out.level = log::Level::kInfo;
  } else if (starts("DEBUG@")) {
    out.level = log::Level::kDebug;
  }
  size_t text = rest.find(": ");
  if (text != std::string_view::npos) out.message = std::string(rest.substr(text + 2));
  return out;
}

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The C client logs at ERROR level only: real trouble (connection refused, session expired),
// never per-request chatter. While a server is down it still logs every reconnect attempt
// (several a second), so ClientLog passes at most one line per second and counts the rest.
// Its lines go through kvsync's logger (component "zookeeper"), so that --log-format json
// stays one object per line. Process-wide, any thread (each session's loop thread calls it).
void ClientLog(const char* message) {
  static std::atomic<int64_t> next_ns{0};
  static std::atomic<int64_t> suppressed{0};
  int64_t now = Clock::now().time_since_epoch().count();
  int64_t next = next_ns.load(std::memory_order_relaxed);
  if (now < next || !next_ns.compare_exchange_strong(next, now + 1'000'000'000)) {
    suppressed.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  int64_t dropped = suppressed.exchange(0, std::memory_order_relaxed);
  ClientLogLine line = ParseClientLogLine(message);
  log::Write(line.level, "zookeeper", "client library message",
             {{"message", line.message}, {"suppressed_since_last", dropped}});
}

void InitClientLogging() {
  static std::once_flag once;
  std::call_once(once, [] { zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR); });
}

SessionState FromZooState(int state) {
  if (state == ZOO_CONNECTED_STATE || state == ZOO_READONLY_STATE) {
    return SessionState::kConnected;
  }
  if (state == ZOO_EXPIRED_SESSION_STATE) return SessionState::kExpired;
  if (state == ZOO_AUTH_FAILED_STATE) return SessionState::kAuthFailed;
  return SessionState::kConnecting;  // connecting, associating, not yet connected
}

WatchEvent::Type FromZooEventType(int type) {
  if (type == ZOO_CREATED_EVENT) return WatchEvent::Type::kCreated;
  if (type == ZOO_DELETED_EVENT) return WatchEvent::Type::kDeleted;
  if (type == ZOO_CHANGED_EVENT) return WatchEvent::Type::kDataChanged;
  if (type == ZOO_CHILD_EVENT) return WatchEvent::Type::kChildrenChanged;
  if (type == ZOO_NOTWATCHING_EVENT) return WatchEvent::Type::kNotWatching;
  return WatchEvent::Type::kSession;
}

// A heap context per asynchronous call: the completion takes ownership and deletes it.
template <typename Fn>
struct CallCtx {
  std::string path;
  Fn done;
};

template <typename Fn>
std::unique_ptr<CallCtx<Fn>> TakeCtx(const void* data) {
  return std::unique_ptr<CallCtx<Fn>>(static_cast<CallCtx<Fn>*>(const_cast<void*>(data)));
}

void DataCompletion(int rc, const char* value, int value_len, const struct ::Stat* stat,
                    const void* data) {
  auto ctx = TakeCtx<DataFn>(data);
  if (rc != ZOK) {
    ctx->done(FromZooError(rc, ctx->path), std::string(), Stat{});
    return;
  }
  std::string out;
  if (value != nullptr && value_len > 0) out.assign(value, value_len);
  ctx->done(absl::OkStatus(), std::move(out), ConvertStat(stat));
}

void ChildrenCompletion(int rc, const struct String_vector* strings, const struct ::Stat* stat,
                        const void* data) {
  auto ctx = TakeCtx<ChildrenFn>(data);
  if (rc != ZOK) {
    ctx->done(FromZooError(rc, ctx->path), {}, Stat{});
    return;
  }
  std::vector<std::string> children;
  if (strings != nullptr) {
    children.reserve(strings->count);
    for (int32_t i = 0; i < strings->count; ++i) children.emplace_back(strings->data[i]);
  }
  ctx->done(absl::OkStatus(), std::move(children), ConvertStat(stat));
}

void ExistsCompletion(int rc, const struct ::Stat* stat, const void* data) {
  auto ctx = TakeCtx<ExistsFn>(data);
  if (rc != ZOK) {
    ctx->done(FromZooError(rc, ctx->path), Stat{});
    return;
  }
  ctx->done(absl::OkStatus(), ConvertStat(stat));
}

void StringCompletion(int rc, const char* /*value*/, const void* data) {
  auto ctx = TakeCtx<DoneFn>(data);
  ctx->done(FromZooError(rc, ctx->path));
}

void StatCompletion(int rc, const struct ::Stat* /*stat*/, const void* data) {
  auto ctx = TakeCtx<DoneFn>(data);
  ctx->done(FromZooError(rc, ctx->path));
}

void VoidCompletion(int rc, const void* data) {
  auto ctx = TakeCtx<DoneFn>(data);
  ctx->done(FromZooError(rc, ctx->path));
}

std::function<void(zhandle_t*)> DeleteCall(CallCtx<DoneFn>* ctx) {
  return [ctx](zhandle_t* zh) {
    int rc = ZCLOSING;
    if (zh != nullptr) {
      absl::MutexLock lock(&RequestMutex());
      rc = zoo_adelete(zh, ctx->path.c_str(), -1, &VoidCompletion, ctx);
    }
    if (rc != ZOK) VoidCompletion(rc, ctx);
  };
}

// Result slot of one synchronous helper call.
struct SyncResult {
  absl::Notification done;
  absl::Status status;
  std::string data;
  std::vector<std::string> children;
  Stat stat;
};

}  // namespace

absl::Mutex& RequestMutex() {
  static absl::Mutex* mu = new absl::Mutex;
  return *mu;
}

Stat ConvertStat(const struct ::Stat* s) {
  Stat out;
  if (s == nullptr) return out;
  out.czxid = s->czxid;
  out.mzxid = s->mzxid;
  out.pzxid = s->pzxid;
  out.ephemeral_owner = s->ephemeralOwner;
  out.version = s->version;
  out.cversion = s->cversion;
  out.num_children = s->numChildren;
  out.data_length = s->dataLength;
  return out;
}

const char* SessionStateName(SessionState state) {
  switch (state) {
    case SessionState::kConnecting:
      return "connecting";
    case SessionState::kConnected:
      return "connected";
    case SessionState::kExpired:
      return "expired";
    case SessionState::kAuthFailed:
      return "auth_failed";
    case SessionState::kClosed:
      return "closed";
  }
  return "unknown";
}

absl::Status FromZooError(int rc, const std::string& path) {
  if (rc == ZOK) return absl::OkStatus();
  std::string message = absl::StrCat("zookeeper: ", zerror(rc), " (", rc, ") at ", path);
  switch (rc) {
    case ZNONODE:
      return absl::NotFoundError(message);
    case ZNODEEXISTS:
      return absl::AlreadyExistsError(message);
    case ZCONNECTIONLOSS:
    case ZOPERATIONTIMEOUT:
    case ZCLOSING:
    case ZSESSIONMOVED:
    case ZNOTREADONLY:
    case ZTHROTTLEDOP:
      return absl::UnavailableError(message);
    case ZSESSIONEXPIRED:
    case ZINVALIDSTATE:
      return common::WithKind(absl::AbortedError(message), common::ErrorKind::kSessionExpired);
    case ZNOAUTH:
    case ZAUTHFAILED:
    case ZSESSIONCLOSEDREQUIRESASLAUTH:
      return absl::PermissionDeniedError(message);
    case ZBADARGUMENTS:
    case ZINVALIDACL:
      return absl::InvalidArgumentError(message);
    default:
      return absl::InternalError(message);
  }
}

bool IsSessionExpired(const absl::Status& status) {
  return common::KindOf(status) == common::ErrorKind::kSessionExpired;
}

bool IsTransient(const absl::Status& status) { return common::IsTransient(status); }

std::string JoinPath(std::string_view parent, std::string_view child) {
  if (parent == "/") parent = "";
  std::string out;
  out.reserve(parent.size() + 1 + child.size());
  out.append(parent);
  out.push_back('/');
  out.append(child);
  return out;
}

std::string ParentPath(std::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos || slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

bool IsUnder(std::string_view path, std::string_view prefix) {
  if (prefix.empty() || prefix == "/") return true;
  if (prefix.back() == '/') prefix.remove_suffix(1);
  if (path.size() < prefix.size() || path.compare(0, prefix.size(), prefix) != 0) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

absl::Status ValidateServers(const std::string& servers) {
  absl::string_view hosts = servers;
  size_t slash = hosts.find('/');
  if (slash != absl::string_view::npos) {
    absl::string_view chroot = hosts.substr(slash);
    hosts = hosts.substr(0, slash);
    if (chroot.size() > 1 && chroot.back() == '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("zookeeper servers \"", servers, "\": chroot must not end with '/'"));
    }
  }
  if (hosts.empty()) {
    return absl::InvalidArgumentError("zookeeper servers: empty (want host:port[,host:port])");
  }
  for (absl::string_view host : absl::StrSplit(hosts, ',')) {
    size_t colon = host.rfind(':');
    int port = 0;
    if (colon == absl::string_view::npos || colon == 0 ||
        !absl::SimpleAtoi(host.substr(colon + 1), &port) || port <= 0 || port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("zookeeper servers \"", servers, "\": \"", host, "\" is not host:port"));
    }
  }
  return absl::OkStatus();
}

Session::Session(SessionOptions options, EventFn on_event)
    : options_(std::move(options)), on_event_(std::move(on_event)) {}

absl::StatusOr<std::unique_ptr<Session>> Session::Open(SessionOptions options, EventFn on_event) {
  RETURN_IF_ERROR(ValidateServers(options.servers));
  if (!options.digest_auth.empty()) {
    size_t colon = options.digest_auth.find(':');
    if (colon == std::string::npos || colon == 0) {
      return absl::InvalidArgumentError("zookeeper digest auth must be \"user:password\"");
    }
  }
  if (options.session_timeout.count() <= 0 || options.connect_timeout.count() <= 0) {
    return absl::InvalidArgumentError("zookeeper session and connect timeouts must be > 0");
  }
  InitClientLogging();
  std::unique_ptr<Session> session(new Session(std::move(options), std::move(on_event)));
  const SessionOptions& opts = session->options_;
  auto deadline = Clock::now() + opts.connect_timeout;
  session->wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (session->wake_fd_ < 0) {
    return absl::InternalError(absl::StrCat("eventfd failed: ", std::strerror(errno)));
  }
  // The st client only allocates the handle here; the loop thread (started below, which orders
  // this write before its first use) makes the connection.
  errno = 0;
  session->zh_ = zookeeper_init2(opts.servers.c_str(), &Session::OnWatch,
                                 static_cast<int>(opts.session_timeout.count()), nullptr,
                                 session.get(), 0, &ClientLog);
  if (session->zh_ == nullptr) {
    int err = errno;
    if (err == EINVAL || err == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("zookeeper servers \"", opts.servers, "\" rejected by the client"));
    }
    return absl::InternalError(absl::StrCat("zookeeper_init failed: ", std::strerror(err)));
  }
  session->loop_ = runtime::Thread("zk-loop", [s = session.get()] { s->Loop(); });
  // OnWatch publishes state changes under this mutex so that the wait below wakes up.
  {
    absl::MutexLock lock(&session->mu_);
    auto left = deadline - Clock::now();
    session->mu_.AwaitWithTimeout(
        absl::Condition(
            +[](Session* s) { return s->state_.load() != SessionState::kConnecting; },
            session.get()),
        absl::FromChrono(left));
  }
  switch (session->state()) {
    case SessionState::kConnected:
      break;
    case SessionState::kConnecting:
      return absl::UnavailableError(absl::StrCat("no zookeeper server of \"", opts.servers,
                                                 "\" answered within ",
                                                 opts.connect_timeout.count(), " ms"));
    case SessionState::kAuthFailed:
      return absl::PermissionDeniedError(
          absl::StrCat("zookeeper authentication failed at ", opts.servers));
    default:
      return absl::UnavailableError(absl::StrCat("zookeeper session to ", opts.servers, " is ",
                                                 SessionStateName(session->state())));
  }
  if (!opts.digest_auth.empty()) {
    // The client remembers the credentials and sends them again after every reconnect.
    auto result = std::make_shared<SyncResult>();
    auto* ctx = new CallCtx<DoneFn>{"(digest auth)", [result](const absl::Status& status) {
                                      result->status = status;
                                      result->done.Notify();
                                    }};
    session->Submit([ctx, auth = opts.digest_auth](zhandle_t* zh) {
      int rc = zh == nullptr ? ZCLOSING
                             : zoo_add_auth(zh, "digest", auth.data(),
                                            static_cast<int>(auth.size()), &VoidCompletion, ctx);
      if (rc != ZOK) VoidCompletion(rc, ctx);
    });
    if (!result->done.WaitForNotificationWithTimeout(absl::FromChrono(
            std::max<Clock::duration>(deadline - Clock::now(), milliseconds(1))))) {
      return absl::UnavailableError(absl::StrCat("zookeeper at ", opts.servers,
                                                 " did not answer the digest auth within ",
                                                 opts.connect_timeout.count(), " ms"));
    }
    if (!result->status.ok()) {
      if (result->status.code() == absl::StatusCode::kPermissionDenied) {
        return absl::PermissionDeniedError(
            absl::StrCat("zookeeper digest authentication failed at ", opts.servers));
      }
      return result->status;
    }
  }
  return session;
}

Session::~Session() {
  if (loop_.joinable()) {
    {
      absl::MutexLock lock(&queue_mu_);
      stopped_ = true;
    }
    Wake();
    loop_.Join();
  } else if (zh_ != nullptr) {
    zookeeper_close(zh_);  // the loop never ran: this thread is the only user
  }
  if (wake_fd_ >= 0) close(wake_fd_);
  state_.store(SessionState::kClosed);
}

void Session::Wake() {
  uint64_t one = 1;
  // Fails only with EAGAIN when the counter is saturated, and then the loop is awake anyway.
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
}

void Session::Submit(Call call) {
  if (OnLoopThread()) {
    call(LoopHandle());
    return;
  }
  bool wake;
  {
    absl::MutexLock lock(&queue_mu_);
    if (!stopped_) {
      wake = queue_.empty();
      queue_.push_back(std::move(call));
      if (wake) Wake();
      return;
    }
  }
  call(nullptr);
}

void Session::Loop() {
  loop_thread_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  std::vector<Call> batch;
  bool stop = false;
  while (!stop) {
    {
      absl::MutexLock lock(&queue_mu_);
      batch.swap(queue_);
      stop = stopped_;
    }
    // Each call sends its request at once (the st client makes a non-blocking send attempt);
    // whatever the socket did not take is flushed below when poll reports it writable.
    for (Call& call : batch) call(zh_);
    batch.clear();
    if (stop) break;
    int fd = -1;
    int interest = 0;
    struct timeval tv = {1, 0};
    int rc = zookeeper_interest(zh_, &fd, &interest, &tv);
    struct pollfd fds[2];
    fds[0] = {wake_fd_, POLLIN, 0};
    nfds_t nfds = 1;
    int timeout_ms = -1;  // dead handle (expired, auth failed): only wake-ups matter
    if (rc != ZINVALIDSTATE) {
      timeout_ms = static_cast<int>(tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000);
      if (fd != -1) {
        short events = 0;
        if (interest & ZOOKEEPER_READ) events |= POLLIN;
        if (interest & ZOOKEEPER_WRITE) events |= POLLOUT;
        fds[1] = {fd, events, 0};
        nfds = 2;
      }
    }
    int n = poll(fds, nfds, timeout_ms);
    if (n < 0) continue;  // EINTR
    if (fds[0].revents & POLLIN) {
      uint64_t count;
      [[maybe_unused]] ssize_t r = read(wake_fd_, &count, sizeof(count));
    }
    if (rc == ZINVALIDSTATE) continue;
    int events = 0;
    if (nfds == 2) {
      if (fds[1].revents & (POLLIN | POLLERR | POLLHUP)) events |= ZOOKEEPER_READ;
      if (fds[1].revents & (POLLOUT | POLLERR | POLLHUP)) events |= ZOOKEEPER_WRITE;
    }
    // Also on a timeout (events 0): the client then sends pings and notices a dead server.
    // Completions and watch events run inside, on this thread, in server order.
    zookeeper_process(zh_, events);
  }
  // Close on this thread: completions of queued and in-flight requests run here with ZCLOSING.
  // Not under RequestMutex: zookeeper_close runs callbacks and may block up to 3 s flushing.
  closing_ = true;
  zookeeper_close(zh_);
  zh_ = nullptr;
}

void Session::OnWatch(zhandle_t* zh, int type, int state, const char* path, void* ctx) {
  auto* self = static_cast<Session*>(ctx);
  WatchEvent event;
  event.type = FromZooEventType(type);
  if (event.type == WatchEvent::Type::kSession) {
    const clientid_t* id = zoo_client_id(zh);
    self->session_id_.store(id == nullptr ? 0 : id->client_id);
    self->negotiated_timeout_ms_.store(zoo_recv_timeout(zh));
    absl::MutexLock lock(&self->mu_);
    self->state_.store(FromZooState(state));
  } else if (path != nullptr) {
    event.path = path;
  }
  event.state = self->state_.load();
  if (self->on_event_) self->on_event_(event);
}

absl::Status Session::CheckNotLoopThread(std::string_view what) const {
  if (OnLoopThread()) {
    return absl::FailedPreconditionError(
        absl::StrCat("zk::Session::", std::string(what), " called on the loop thread"));
  }
  return absl::OkStatus();
}

int64_t Session::session_id() const { return session_id_.load(); }

std::chrono::milliseconds Session::negotiated_timeout() const {
  return milliseconds(negotiated_timeout_ms_.load());
}

void Session::GetData(const std::string& path, bool watch, DataFn done) {
  auto* ctx = new CallCtx<DataFn>{path, std::move(done)};
  Submit([ctx, watch](zhandle_t* zh) {
    int rc = ZCLOSING;
    if (zh != nullptr) {
      absl::MutexLock lock(&RequestMutex());
      rc = zoo_aget(zh, ctx->path.c_str(), watch ? 1 : 0, &DataCompletion, ctx);
    }
    if (rc != ZOK) DataCompletion(rc, nullptr, 0, nullptr, ctx);
  });
}

void Session::GetChildren(const std::string& path, bool watch, ChildrenFn done) {
  auto* ctx = new CallCtx<ChildrenFn>{path, std::move(done)};
  Submit([ctx, watch](zhandle_t* zh) {
    int rc = ZCLOSING;
    if (zh != nullptr) {
      absl::MutexLock lock(&RequestMutex());
      rc = zoo_aget_children2(zh, ctx->path.c_str(), watch ? 1 : 0, &ChildrenCompletion, ctx);
    }
    if (rc != ZOK) ChildrenCompletion(rc, nullptr, nullptr, ctx);
  });
}

void Session::Exists(const std::string& path, bool watch, ExistsFn done) {
  auto* ctx = new CallCtx<ExistsFn>{path, std::move(done)};
  Submit([ctx, watch](zhandle_t* zh) {
    int rc = ZCLOSING;
    if (zh != nullptr) {
      absl::MutexLock lock(&RequestMutex());
      rc = zoo_aexists(zh, ctx->path.c_str(), watch ? 1 : 0, &ExistsCompletion, ctx);
    }
    if (rc != ZOK) ExistsCompletion(rc, nullptr, ctx);
  });
}

void Session::CreateAsync(const std::string& path, const std::string& data, CreateOptions options,
                          DoneFn done) {
  auto* ctx = new CallCtx<DoneFn>{path, std::move(done)};
  Submit([ctx, data, options](zhandle_t* zh) {
    int rc = ZCLOSING;
    if (zh != nullptr) {
      absl::MutexLock lock(&RequestMutex());
      rc = zoo_acreate(zh, ctx->path.c_str(), data.data(), static_cast<int>(data.size()),
                       options.creator_only_acl ? &ZOO_CREATOR_ALL_ACL : &ZOO_OPEN_ACL_UNSAFE,
                       options.ephemeral ? ZOO_EPHEMERAL : ZOO_PERSISTENT, &StringCompletion, ctx);
    }
    if (rc != ZOK) StringCompletion(rc, nullptr, ctx);
  });
}

absl::Status Session::Create(const std::string& path, const std::string& data, bool ephemeral) {
  CreateOptions options;
  options.ephemeral = ephemeral;
  return Create(path, data, options);
}

absl::Status Session::Create(const std::string& path, const std::string& data,
                             const CreateOptions& options) {
  RETURN_IF_ERROR(CheckNotLoopThread("Create"));
  SyncResult result;
  CreateAsync(path, data, options, [&result](const absl::Status& status) {
    result.status = status;
    result.done.Notify();
  });
  result.done.WaitForNotification();
  return result.status;
}

absl::Status Session::CreateAll(const std::string& path, const std::string& data) {
  RETURN_IF_ERROR(CheckNotLoopThread("CreateAll"));
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("zookeeper path \"", path, "\" is not absolute"));
  }
  if (path == "/") return absl::OkStatus();
  // Most calls find the parents present: try the node itself first.
  absl::Status status = Create(path, data);
  if (status.ok() || absl::IsAlreadyExists(status)) return absl::OkStatus();
  if (!absl::IsNotFound(status)) return status;
  RETURN_IF_ERROR(CreateAll(ParentPath(path), ""));
  status = Create(path, data);
  if (absl::IsAlreadyExists(status)) return absl::OkStatus();
  return status;
}

absl::Status Session::Set(const std::string& path, const std::string& data) {
  RETURN_IF_ERROR(CheckNotLoopThread("Set"));
  SyncResult result;
  auto* ctx = new CallCtx<DoneFn>{path, [&result](const absl::Status& status) {
                                    result.status = status;
                                    result.done.Notify();
                                  }};
  Submit([ctx, &data](zhandle_t* zh) {
    int rc = ZCLOSING;
    if (zh != nullptr) {
      absl::MutexLock lock(&RequestMutex());
      rc = zoo_aset(zh, ctx->path.c_str(), data.data(), static_cast<int>(data.size()), -1,
                    &StatCompletion, ctx);
    }
    if (rc != ZOK) StatCompletion(rc, nullptr, ctx);
  });
  result.done.WaitForNotification();
  return result.status;
}

absl::Status Session::Delete(const std::string& path) {
  RETURN_IF_ERROR(CheckNotLoopThread("Delete"));
  SyncResult result;
  auto* ctx = new CallCtx<DoneFn>{path, [&result](const absl::Status& status) {
                                    result.status = status;
                                    result.done.Notify();
                                  }};
  Submit(DeleteCall(ctx));
  result.done.WaitForNotification();
  return result.status;
}

absl::Status Session::DeleteAll(const std::string& path) {
  RETURN_IF_ERROR(CheckNotLoopThread("DeleteAll"));
  // A presence walk lists the subtree; the deletes are then pipelined deepest first. ZooKeeper
  // applies one session's requests in order, so every child is gone before its parent's delete
  // is applied. A child created meanwhile fails the parent's delete (not empty): list again.
  absl::Status status;
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::vector<std::string> nodes;
    absl::Mutex nodes_mu;
    WalkOptions walk;
    walk.roots = {path};
    walk.excludes = {"/zookeeper"};  // the server's own subtree cannot be deleted
    walk.read_data = false;
    RETURN_IF_ERROR(
        zk::Walk(this, walk, [&](const std::string& node, const std::string&, const Stat&) {
          absl::MutexLock lock(&nodes_mu);
          nodes.push_back(node);
        }).status());
    auto depth = [](const std::string& p) { return std::count(p.begin(), p.end(), '/'); };
    std::stable_sort(nodes.begin(), nodes.end(), [&](const std::string& a, const std::string& b) {
      return depth(a) > depth(b);
    });
    constexpr int kMaxInflight = 256;
    absl::Mutex mu;
    int inflight = 0;
    status = absl::OkStatus();
    for (const std::string& node : nodes) {
      if (node == "/") continue;
      {
        absl::MutexLock lock(&mu);
        mu.Await(absl::Condition(
            +[](int* n) { return *n < kMaxInflight; }, &inflight));
        ++inflight;
      }
      auto* ctx = new CallCtx<DoneFn>{node, [&](const absl::Status& st) {
                                        absl::MutexLock lock(&mu);
                                        --inflight;
                                        if (!st.ok() && !absl::IsNotFound(st) && status.ok()) {
                                          status = st;
                                        }
                                      }};
      Submit(DeleteCall(ctx));
    }
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](int* n) { return *n == 0; }, &inflight));
    if (status.ok() || IsSessionExpired(status) || absl::IsUnavailable(status)) break;
  }
  return status;
}

absl::StatusOr<std::string> Session::Get(const std::string& path, Stat* stat) {
  RETURN_IF_ERROR(CheckNotLoopThread("Get"));
  SyncResult result;
  GetData(path, false, [&result](const absl::Status& status, std::string data, const Stat& s) {
    result.status = status;
    result.data = std::move(data);
    result.stat = s;
    result.done.Notify();
  });
  result.done.WaitForNotification();
  RETURN_IF_ERROR(result.status);
  if (stat != nullptr) *stat = result.stat;
  return std::move(result.data);
}

absl::StatusOr<std::vector<std::string>> Session::Children(const std::string& path) {
  RETURN_IF_ERROR(CheckNotLoopThread("Children"));
  SyncResult result;
  GetChildren(
      path, false,
      [&result](const absl::Status& status, std::vector<std::string> children, const Stat&) {
        result.status = status;
        result.children = std::move(children);
        result.done.Notify();
      });
  result.done.WaitForNotification();
  RETURN_IF_ERROR(result.status);
  return std::move(result.children);
}

namespace {

class SessionOpener final : public SessionFactory {
 public:
  explicit SessionOpener(SessionOptions options) : options_(std::move(options)) {}
  absl::StatusOr<std::unique_ptr<Reader>> Open(EventFn on_event) override {
    ASSIGN_OR_RETURN(std::unique_ptr<Session> session,
                     Session::Open(options_, std::move(on_event)));
    return std::unique_ptr<Reader>(std::move(session));
  }

 private:
  const SessionOptions options_;
};

}  // namespace

std::unique_ptr<SessionFactory> NewSessionFactory(SessionOptions options) {
  return std::make_unique<SessionOpener>(std::move(options));
}

}  // namespace kvsync::zk
