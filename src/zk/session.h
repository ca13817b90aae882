// A ZooKeeper session over the official single-threaded C client (libzookeeper_st), used by the
// zk2etcd engine (through the zk::Reader seam of zk/api.h, which it implements), the zk walk
// and the benchmark tools.
//
// One Session is one zhandle_t: one ZooKeeper session and one event-loop thread ("zk-loop")
// owned by the Session. The loop polls the client's socket and an eventfd (zookeeper_interest →
// poll → zookeeper_process) and is the only thread that ever touches the handle: the st client is
// not thread-safe. The client reconnects by itself after connection loss (to any server of
// `servers`) and re-arms its watches; the session survives as long as it reconnects within the
// negotiated session timeout. Once the server reports the session expired (kExpired) or
// authentication failed (kAuthFailed) the handle is dead for good: every call fails with
// Aborted (IsSessionExpired) and the owner must open a new Session and resync everything.
//
// Threading and ordering: every method may be called from any thread. A request made on the
// loop thread (from a callback) goes straight to the client, which sends it at once; a request
// made on another thread is queued and issued by the loop, in the order that thread made it.
// All callbacks — `on_event` and the completions — run on the loop thread, in the order the
// server produced them. ZooKeeper sends a watch notification before the response of any later
// read, so a watch event is delivered before any read result that reflects the change that
// triggered it. Callbacks must be quick (copy and enqueue) and must not call the synchronous
// helpers (those return FailedPrecondition on the loop thread rather than deadlock). `on_event`
// may run before Open() returns (it sees the first kConnected event) and until the destructor
// returns.
//
// Ownership: the caller owns the Session; destroying it stops the loop and closes the session
// (zookeeper_close, on the loop thread): the server deletes its ephemeral nodes at once, and
// requests still queued or in flight complete with Unavailable before the destructor returns.
// Never destroy a Session from one of its callbacks.
//
// Tests force expiry by putting a testing::FaultProxy between client and server, blackholing it
// until the server has expired the session, then letting the client reconnect (see
// tests/integration/zk_session_test.cc).
//
// Errors: ZooKeeper return codes are converted once, by FromZooError, and never leave src/zk.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "log/log.h"
#include "runtime/thread.h"
#include "zk/api.h"
#include "zk/types.h"

// The C client's handle type (zookeeper.h), opaque outside session.cc and walk.cc; the name is
// the C library's.
typedef struct _zhandle zhandle_t;  // NOLINT(bugprone-reserved-identifier)

namespace kvsync::zk {

struct SessionOptions {
  std::string servers;  // "host:port,host:port[/chroot]"
  std::chrono::milliseconds session_timeout{10000};
  std::chrono::milliseconds connect_timeout{10000};  // Open() waits this long for kConnected
  std::string digest_auth;  // "user:password" → zoo_add_auth("digest", ...); empty: none
};

struct CreateOptions {
  bool ephemeral = false;
  // ACL: creator-only (ZOO_CREATOR_ALL_ACL: only the session's authenticated identities may
  // touch the node; needs digest_auth) instead of open to everyone (ZOO_OPEN_ACL_UNSAFE).
  bool creator_only_acl = false;
};

class Session final : public Reader {
 public:
  // Opens a session and waits up to connect_timeout for it to connect (and for digest auth to be
  // accepted). Errors: InvalidArgument (bad servers string / auth format), Unavailable (no server
  // answered in time: message names the servers), PermissionDenied (auth failed).
  // `on_event` receives every watch and session event.
  static absl::StatusOr<std::unique_ptr<Session>> Open(SessionOptions options, EventFn on_event);

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() override;

  // Asynchronous reads. `watch` sets a ZooKeeper watch: a data watch for GetData, a child watch
  // for GetChildren, an exists watch for Exists (also on a missing node, where it fires
  // kCreated). Watches fire once and are reported through `on_event`. Completions run on the
  // loop thread (see the ordering guarantee above). A call that cannot be submitted (bad path,
  // session expired or closed) invokes `done` with the error: made on the loop thread,
  // synchronously before returning; made on another thread, on the loop thread like any
  // completion (or on the calling thread once the Session is being destroyed). Errors: NotFound
  // (node absent), Unavailable (connection lost while the read was in flight; the session may still
  // recover), Aborted (session expired), PermissionDenied (ACL).
  void GetData(const std::string& path, bool watch, DataFn done) override;
  void GetChildren(const std::string& path, bool watch, ChildrenFn done) override;
  void Exists(const std::string& path, bool watch, ExistsFn done);
  // Asynchronous create (used for bulk loads); `done` as for the reads. AlreadyExists when the
  // node exists, NotFound when the parent is missing.
  void CreateAsync(const std::string& path, const std::string& data, CreateOptions options,
                   DoneFn done);

  // Synchronous helpers for tools and tests. They block the caller; never call them from a
  // callback (FailedPrecondition on the loop thread).
  absl::Status Create(const std::string& path, const std::string& data, bool ephemeral = false);
  absl::Status Create(const std::string& path, const std::string& data,
                      const CreateOptions& options);
  // mkdir -p: creates missing parents (persistent, empty) and then `path` with `data`. OK when
  // `path` already exists (its data is left unchanged).
  absl::Status CreateAll(const std::string& path, const std::string& data);
  absl::Status Set(const std::string& path, const std::string& data);
  absl::Status Delete(const std::string& path);  // one node; NotFound when absent
  // Recursive (pipelined, deepest first; "/zookeeper" is never touched); OK when absent.
  absl::Status DeleteAll(const std::string& path);
  absl::StatusOr<std::string> Get(const std::string& path, Stat* stat = nullptr) override;
  absl::StatusOr<std::vector<std::string>> Children(const std::string& path);

  // The last state reported by the client (updated on the loop thread before on_event sees the
  // session event).
  SessionState state() const override { return state_.load(); }
  // The server-assigned session id (0 before the first connection).
  int64_t session_id() const override;
  // The session timeout the server granted (0 before the first connection).
  std::chrono::milliseconds negotiated_timeout() const;
  const SessionOptions& options() const { return options_; }

  // Reader: zk::Walk (walk.h) on this session.
  absl::StatusOr<WalkResult> Walk(const WalkOptions& options, const VisitFn& visit,
                                  const common::StopToken* stop) override;

 private:
  friend class Walker;  // walk.cc drives the C client directly, without per-read std::functions

  // A request to run on the loop thread: called with the handle, or with nullptr once the
  // session is closing (the call must then report ZCLOSING to its callback).
  using Call = std::function<void(zhandle_t*)>;

  Session(SessionOptions options, EventFn on_event);
  static void OnWatch(zhandle_t* zh, int type, int state, const char* path, void* ctx);
  absl::Status CheckNotLoopThread(std::string_view what) const;
  bool OnLoopThread() const {
    return loop_thread_.load(std::memory_order_relaxed) == std::this_thread::get_id();
  }
  // Runs `call` on the loop thread: at once when already there, else queued (the eventfd is
  // written only when the queue was empty). After the loop has stopped, runs it at once on the
  // calling thread with nullptr.
  void Submit(Call call);
  void Loop();
  void Wake();
  // The handle for a request made on the loop thread; nullptr once closing.
  zhandle_t* LoopHandle() const { return closing_ ? nullptr : zh_; }

  const SessionOptions options_;
  const EventFn on_event_;
  zhandle_t* zh_ = nullptr;  // touched only on the loop thread once it runs
  int wake_fd_ = -1;         // eventfd: the loop's wake-up for queued calls and stop
  runtime::Thread loop_;
  std::atomic<std::thread::id> loop_thread_{};
  bool closing_ = false;  // loop thread only: zookeeper_close has begun
  absl::Mutex queue_mu_;
  std::vector<Call> queue_ ABSL_GUARDED_BY(queue_mu_);
  bool stopped_ ABSL_GUARDED_BY(queue_mu_) = false;  // the loop takes no more calls
  // Written on the loop thread under mu_ (so that Open's wait for kConnected wakes up).
  absl::Mutex mu_;
  std::atomic<SessionState> state_{SessionState::kConnecting};
  // Copied from the handle on the loop thread at each session event (readable anywhere).
  std::atomic<int64_t> session_id_{0};
  std::atomic<int> negotiated_timeout_ms_{0};
};

// Opens real Sessions with `options` (Session::Open): the factory the zk2etcd binary uses.
std::unique_ptr<SessionFactory> NewSessionFactory(SessionOptions options);

// The one place ZooKeeper return codes are classified (they never leave src/zk):
//   ZOK → OK; ZNONODE → NotFound; ZNODEEXISTS → AlreadyExists;
//   transient (Unavailable, IsTransient): ZCONNECTIONLOSS, ZOPERATIONTIMEOUT, ZCLOSING,
//     ZSESSIONMOVED, ZNOTREADONLY, ZTHROTTLEDOP: the client reconnects by itself;
//   session expired (Aborted, IsSessionExpired, never transient): ZSESSIONEXPIRED,
//     ZINVALIDSTATE: the handle is dead; open a new Session and resync;
//   refused (PermissionDenied): ZNOAUTH (a node's ACL), ZAUTHFAILED,
//     ZSESSIONCLOSEDREQUIRESASLAUTH (credentials);
//   InvalidArgument: ZBADARGUMENTS, ZINVALIDACL;
//   every other code (ZSYSTEMERROR, ZMARSHALLINGERROR, an unknown code...) → Internal: not
//     transient, so it is never retried forever.
// Messages include the path and zerror().
absl::Status FromZooError(int rc, const std::string& path);

// Path helpers (paths are absolute, no trailing slash except "/" itself).
// JoinPath("/a", "b") == "/a/b", JoinPath("/", "b") == "/b".
std::string JoinPath(std::string_view parent, std::string_view child);
// ParentPath("/a/b") == "/a", ParentPath("/a") == "/", ParentPath("/") == "/".
std::string ParentPath(std::string_view path);
// Path-aware prefix test: "/dubbo" and "/dubbo/x" are under "/dubbo", "/dubbo2" is not; every
// path is under "/".
bool IsUnder(std::string_view path, std::string_view prefix);
// Checks the servers string ("host:port,...[/chroot]"); InvalidArgument naming the problem.
absl::Status ValidateServers(const std::string& servers);

// One line of the C client's own log ("<time>:<pid>:ZOO_ERROR@<function>@<line>: <text>"),
// split into kvsync's level and the text; an unrecognised line is kept whole at error level.
// Session routes these lines through log::Write (component "zookeeper"); exposed for tests.
struct ClientLogLine {
  log::Level level;
  std::string message;
};
ClientLogLine ParseClientLogLine(std::string_view line);

}  // namespace kvsync::zk
