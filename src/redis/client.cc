#include "redis/client.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/errors.h"
#include "common/status_macros.h"

namespace kvsync::redis {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kMaxDepth = 32;
constexpr int64_t kMaxBulkBytes = int64_t{512} << 20;  // Redis's own proto-max-bulk-len
constexpr int64_t kMaxArrayElements = int64_t{1} << 24;
constexpr size_t kMaxLineBytes = 64 << 10;

struct HostPort {
  std::string host;
  std::string port;
};

absl::StatusOr<HostPort> SplitAddr(const std::string& addr) {
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("redis address \"", addr, "\" is not host:port (IPv6 as [addr]:port)"));
  };
  HostPort out;
  if (!addr.empty() && addr[0] == '[') {
    size_t close = addr.find(']');
    if (close == std::string::npos || close + 1 >= addr.size() || addr[close + 1] != ':') {
      return bad();
    }
    out.host = addr.substr(1, close - 1);
    out.port = addr.substr(close + 2);
  } else {
    size_t colon = addr.rfind(':');
    if (colon == std::string::npos) return bad();
    out.host = addr.substr(0, colon);
    out.port = addr.substr(colon + 1);
    if (out.host.find(':') != std::string::npos) return bad();
  }
  int port = 0;
  if (out.host.empty() || !absl::SimpleAtoi(out.port, &port) || port < 1 || port > 65535) {
    return bad();
  }
  return out;
}

absl::Status CheckReadable(const std::string& what, const std::string& path) {
  if (path.empty() || access(path.c_str(), R_OK) == 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("redis ", what, " \"", path, "\" cannot be read: ", std::strerror(errno)));
}

bool IsIpLiteral(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// Drains OpenSSL's thread-local error queue into one line.
std::string OpensslErrors() {
  std::string out;
  char buf[256];
  while (unsigned long e = ERR_get_error()) {
    ERR_error_string_n(e, buf, sizeof(buf));
    absl::StrAppend(&out, out.empty() ? "" : "; ", buf);
  }
  return out.empty() ? "unknown TLS error" : out;
}

// A socket BIO that writes with MSG_NOSIGNAL: OpenSSL's own socket BIO uses write(), which
// raises SIGPIPE when the server has gone, and a library must not depend on the process
// ignoring that signal. The BIO's data pointer points at the connection's file descriptor.
int BioFd(BIO* bio) { return *static_cast<const int*>(BIO_get_data(bio)); }

int BioWrite(BIO* bio, const char* data, int len) {
  BIO_clear_retry_flags(bio);
  ssize_t n = send(BioFd(bio), data, static_cast<size_t>(len), MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    BIO_set_retry_write(bio);
  }
  return static_cast<int>(n);
}

int BioRead(BIO* bio, char* data, int len) {
  BIO_clear_retry_flags(bio);
  ssize_t n = recv(BioFd(bio), data, static_cast<size_t>(len), 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    BIO_set_retry_read(bio);
  }
  return static_cast<int>(n);
}

long BioCtrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

int BioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

BIO_METHOD* SocketBioMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "kvsync redis socket");
    BIO_meth_set_write(m, BioWrite);
    BIO_meth_set_read(m, BioRead);
    BIO_meth_set_ctrl(m, BioCtrl);
    BIO_meth_set_create(m, BioCreate);
    return m;
  }();
  return method;
}

absl::StatusOr<int64_t> ParseInt(absl::string_view line) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(line, &v)) {
    return absl::InvalidArgumentError(absl::StrCat("bad integer \"", line, "\" in reply"));
  }
  return v;
}

absl::StatusOr<size_t> Parse(absl::string_view data, Reply* reply, int depth) {
  if (depth > kMaxDepth) return absl::InvalidArgumentError("reply nested too deeply");
  size_t eol = data.find("\r\n");
  if (eol == absl::string_view::npos) {
    if (data.size() > kMaxLineBytes) return absl::InvalidArgumentError("reply line too long");
    return 0;
  }
  if (eol == 0) return absl::InvalidArgumentError("empty reply line");
  const char type = data[0];
  absl::string_view line = data.substr(1, eol - 1);
  size_t used = eol + 2;
  switch (type) {
    case '+':
      reply->type = Reply::Type::kStatus;
      reply->str = std::string(line);
      return used;
    case '-':
      reply->type = Reply::Type::kError;
      reply->str = std::string(line);
      return used;
    case ':': {
      ASSIGN_OR_RETURN(reply->integer, ParseInt(line));
      reply->type = Reply::Type::kInteger;
      return used;
    }
    case '$': {
      ASSIGN_OR_RETURN(int64_t len, ParseInt(line));
      if (len == -1) {
        reply->type = Reply::Type::kNil;
        return used;
      }
      if (len < 0 || len > kMaxBulkBytes) {
        return absl::InvalidArgumentError(absl::StrCat("bad bulk length ", len));
      }
      size_t n = static_cast<size_t>(len);
      if (data.size() < used + n + 2) return 0;
      if (data.substr(used + n, 2) != "\r\n") {
        return absl::InvalidArgumentError("bulk string not terminated by CRLF");
      }
      reply->type = Reply::Type::kString;
      reply->str = std::string(data.substr(used, n));
      return used + n + 2;
    }
    case '*': {
      ASSIGN_OR_RETURN(int64_t count, ParseInt(line));
      if (count == -1) {
        reply->type = Reply::Type::kNil;
        return used;
      }
      if (count < 0 || count > kMaxArrayElements) {
        return absl::InvalidArgumentError(absl::StrCat("bad array length ", count));
      }
      reply->type = Reply::Type::kArray;
      reply->elements.clear();
      reply->elements.reserve(static_cast<size_t>(std::min<int64_t>(count, 1024)));
      for (int64_t i = 0; i < count; ++i) {
        Reply element;
        ASSIGN_OR_RETURN(size_t n, Parse(data.substr(used), &element, depth + 1));
        if (n == 0) return 0;
        used += n;
        reply->elements.push_back(std::move(element));
      }
      return used;
    }
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected reply type byte 0x",
                       absl::Hex(static_cast<unsigned char>(type), absl::kZeroPad2)));
  }
}

}  // namespace

// The socket (and TLS session) of one connection. Non-blocking underneath: every wait is a
// poll() bounded by the caller's deadline, for plain TCP and TLS alike.
class Client::Conn {
 public:
  explicit Conn(std::string addr) : addr_(std::move(addr)) {}
  ~Conn() {
    if (ssl_ != nullptr) SSL_free(ssl_);  // also frees the BIO
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
    if (fd_ >= 0) close(fd_);
  }

  absl::Status Dial(const HostPort& hp, Clock::time_point deadline);
  absl::Status Handshake(const HostPort& hp, const Options& options, Clock::time_point deadline);
  absl::Status Write(absl::string_view data, Clock::time_point deadline);
  // Appends at least one byte to `buffer`.
  absl::Status Fill(std::string* buffer, Clock::time_point deadline);

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::UnavailableError(absl::StrCat("redis at ", addr_, ": ", what));
  }
  absl::Status Wait(short events, Clock::time_point deadline, absl::string_view doing);
  // For an SSL_* result <= 0: waits when OpenSSL asks to, else returns the error.
  absl::Status SslRetry(int result, Clock::time_point deadline, absl::string_view doing);

  const std::string addr_;
  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
};

absl::Status Client::Conn::Wait(short events, Clock::time_point deadline, absl::string_view doing) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return Error(absl::StrCat("timed out ", doing));
    pollfd p{fd_, events, 0};
    int r = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), INT_MAX)));
    if (r > 0) return absl::OkStatus();  // errors and hang-ups surface in the next call
    if (r < 0 && errno != EINTR) return Error(absl::StrCat("poll: ", std::strerror(errno)));
  }
}

absl::Status Client::Conn::Dial(const HostPort& hp, Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  int rc = getaddrinfo(hp.host.c_str(), hp.port.c_str(), &hints, &list);
  if (rc != 0) return Error(absl::StrCat("cannot resolve host: ", gai_strerror(rc)));
  std::string last_error = "no address";
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    int err = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      err = errno;
      if (err == EINPROGRESS) {
        fd_ = fd;
        absl::Status waited = Wait(POLLOUT, deadline, "connecting");
        fd_ = -1;
        if (!waited.ok()) {
          close(fd);
          freeaddrinfo(list);
          return waited;
        }
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      }
    }
    if (err == 0) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      fd_ = fd;
      freeaddrinfo(list);
      return absl::OkStatus();
    }
    last_error = std::strerror(err);
    close(fd);
  }
  freeaddrinfo(list);
  return Error(absl::StrCat("cannot connect: ", last_error));
}

absl::Status Client::Conn::SslRetry(int result, Clock::time_point deadline,
                                    absl::string_view doing) {
  int err = SSL_get_error(ssl_, result);
  switch (err) {
    case SSL_ERROR_WANT_READ:
      return Wait(POLLIN, deadline, doing);
    case SSL_ERROR_WANT_WRITE:
      return Wait(POLLOUT, deadline, doing);
    case SSL_ERROR_ZERO_RETURN:
      return Error("connection closed by the server");
    case SSL_ERROR_SYSCALL: {
      int saved = errno;
      ERR_clear_error();
      return Error(result == 0 || saved == 0 ? std::string("connection closed by the server")
                                             : absl::StrCat(doing, ": ", std::strerror(saved)));
    }
    default:
      return Error(absl::StrCat(doing, ": ", OpensslErrors()));
  }
}

absl::Status Client::Conn::Handshake(const HostPort& hp, const Options& options,
                                     Clock::time_point deadline) {
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (ctx_ == nullptr) {
    return absl::InternalError("cannot create a TLS context: " + OpensslErrors());
  }
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  if (options.insecure_skip_verify) {
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
  } else {
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    int ok = options.ca_file.empty()
                 ? SSL_CTX_set_default_verify_paths(ctx_)
                 : SSL_CTX_load_verify_locations(ctx_, options.ca_file.c_str(), nullptr);
    if (ok != 1) {
      return absl::InvalidArgumentError(absl::StrCat("redis CA file \"", options.ca_file,
                                                     "\" cannot be loaded: ", OpensslErrors()));
    }
  }
  if (!options.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx_, options.cert_file.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx_, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx_) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("redis client certificate \"", options.cert_file, "\" or key \"",
                       options.key_file, "\" cannot be used: ", OpensslErrors()));
    }
  }
  ssl_ = SSL_new(ctx_);
  BIO* bio = ssl_ != nullptr ? BIO_new(SocketBioMethod()) : nullptr;
  if (bio == nullptr) return absl::InternalError("cannot create a TLS session: " + OpensslErrors());
  BIO_set_data(bio, &fd_);
  SSL_set_bio(ssl_, bio, bio);
  const bool ip = IsIpLiteral(hp.host);
  if (!ip) SSL_set_tlsext_host_name(ssl_, hp.host.c_str());
  if (!options.insecure_skip_verify) {
    int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), hp.host.c_str())
                : SSL_set1_host(ssl_, hp.host.c_str());
    if (ok != 1) return Error("cannot set the expected server name: " + OpensslErrors());
  }
  for (;;) {
    ERR_clear_error();
    int r = SSL_connect(ssl_);
    if (r == 1) return absl::OkStatus();
    long verify = SSL_get_verify_result(ssl_);
    if (verify != X509_V_OK) {
      ERR_clear_error();
      return Error(absl::StrCat("TLS handshake failed: server certificate not trusted (",
                                X509_verify_cert_error_string(verify), ")"));
    }
    absl::Status s = SslRetry(r, deadline, "during the TLS handshake");
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat(s.message(), " (TLS handshake failed)"));
    }
  }
}

absl::Status Client::Conn::Write(absl::string_view data, Clock::time_point deadline) {
  while (!data.empty()) {
    if (ssl_ != nullptr) {
      // Partial writes are off: a retried SSL_write gets the same buffer and length.
      ERR_clear_error();
      int len = static_cast<int>(std::min<size_t>(data.size(), INT_MAX));
      int r = SSL_write(ssl_, data.data(), len);
      if (r > 0) {
        data.remove_prefix(static_cast<size_t>(r));
      } else {
        RETURN_IF_ERROR(SslRetry(r, deadline, "writing"));
      }
      continue;
    }
    ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      RETURN_IF_ERROR(Wait(POLLOUT, deadline, "writing"));
    } else if (errno != EINTR) {
      return Error(absl::StrCat("write: ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

absl::Status Client::Conn::Fill(std::string* buffer, Clock::time_point deadline) {
  char chunk[16384];
  for (;;) {
    if (ssl_ != nullptr) {
      ERR_clear_error();
      int r = SSL_read(ssl_, chunk, sizeof(chunk));
      if (r > 0) {
        buffer->append(chunk, static_cast<size_t>(r));
        return absl::OkStatus();
      }
      RETURN_IF_ERROR(SslRetry(r, deadline, "reading"));
      continue;
    }
    ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
    if (n > 0) {
      buffer->append(chunk, static_cast<size_t>(n));
      return absl::OkStatus();
    }
    if (n == 0) return Error("connection closed by the server");
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      RETURN_IF_ERROR(Wait(POLLIN, deadline, "reading"));
    } else if (errno != EINTR) {
      return Error(absl::StrCat("read: ", std::strerror(errno)));
    }
  }
}

absl::Status ValidateOptions(const Options& options) {
  RETURN_IF_ERROR(SplitAddr(options.addr).status());
  if (options.db < 0) {
    return absl::InvalidArgumentError(absl::StrCat("redis db ", options.db, " is negative"));
  }
  if (options.cert_file.empty() != options.key_file.empty()) {
    return absl::InvalidArgumentError("redis client certificate and key must be given together");
  }
  if (!options.tls && (!options.ca_file.empty() || !options.cert_file.empty())) {
    return absl::InvalidArgumentError("redis TLS files are given but TLS is not enabled");
  }
  RETURN_IF_ERROR(CheckReadable("CA file", options.ca_file));
  RETURN_IF_ERROR(CheckReadable("certificate file", options.cert_file));
  RETURN_IF_ERROR(CheckReadable("key file", options.key_file));
  if (options.connect_timeout.count() <= 0 || options.io_timeout.count() <= 0) {
    return absl::InvalidArgumentError("redis timeouts must be positive");
  }
  return absl::OkStatus();
}

absl::Status ReplyError(const std::string& command, const Reply& reply) {
  std::string message = absl::StrCat("redis ", command, ": ", reply.str);
  const std::string prefix = reply.str.substr(0, reply.str.find(' '));
  for (const char* transient :
       {"LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN", "READONLY", "CLUSTERDOWN", "MISCONF"}) {
    if (prefix == transient) return absl::UnavailableError(message);
  }
  for (const char* refused : {"NOAUTH", "WRONGPASS", "NOPERM"}) {
    if (prefix == refused) return absl::PermissionDeniedError(message);
  }
  if (absl::StartsWith(reply.str, "ERR unknown command")) return absl::UnimplementedError(message);
  return absl::FailedPreconditionError(message);
}

bool IsTransient(const absl::Status& status) { return common::IsTransient(status); }

void EncodeCommand(const std::vector<std::string>& args, std::string* out) {
  absl::StrAppend(out, "*", args.size(), "\r\n");
  for (const std::string& arg : args) absl::StrAppend(out, "$", arg.size(), "\r\n", arg, "\r\n");
}

absl::StatusOr<size_t> ParseReply(std::string_view data, Reply* reply) {
  return Parse(absl::string_view(data.data(), data.size()), reply, 0);
}

Client::Client(Options options, std::unique_ptr<Conn> conn)
    : options_(std::move(options)), conn_(std::move(conn)) {}

Client::~Client() = default;

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(Options options) {
  RETURN_IF_ERROR(ValidateOptions(options));
  ASSIGN_OR_RETURN(HostPort hp, SplitAddr(options.addr));
  auto deadline = Clock::now() + options.connect_timeout;
  auto conn = std::make_unique<Conn>(options.addr);
  RETURN_IF_ERROR(conn->Dial(hp, deadline));
  if (options.tls) RETURN_IF_ERROR(conn->Handshake(hp, options, deadline));
  std::unique_ptr<Client> client(new Client(std::move(options), std::move(conn)));
  const Options& o = client->options_;
  auto refused = [&](absl::string_view what, const Reply& reply) {
    std::string message = absl::StrCat("redis at ", o.addr, " refused ", what, ": ", reply.str);
    bool auth = reply.str.rfind("NOAUTH", 0) == 0 || reply.str.rfind("WRONGPASS", 0) == 0 ||
                reply.str.rfind("NOPERM", 0) == 0 || what == "AUTH";
    return auth ? absl::PermissionDeniedError(message) : absl::InvalidArgumentError(message);
  };
  // AUTH, SELECT (or a PING when neither is needed, so that a server requiring a password
  // is reported now rather than on the first command) go out as one pipeline.
  std::vector<std::vector<std::string>> hello;
  std::vector<std::string> what;
  if (!o.password.empty()) {
    hello.push_back(o.username.empty() ? std::vector<std::string>{"AUTH", o.password}
                                       : std::vector<std::string>{"AUTH", o.username, o.password});
    what.push_back("AUTH");
  }
  if (o.db != 0) {
    hello.push_back({"SELECT", absl::StrCat(o.db)});
    what.push_back(absl::StrCat("SELECT ", o.db));
  }
  if (hello.empty()) {
    hello.push_back({"PING"});
    what.push_back("PING");
  }
  ASSIGN_OR_RETURN(std::vector<Reply> replies, client->Pipeline(hello));
  for (size_t i = 0; i < replies.size(); ++i) {
    if (replies[i].type == Reply::Type::kError) return refused(what[i], replies[i]);
  }
  return client;
}

absl::Status Client::Broken(absl::Status status) {
  broken_ = true;
  return status;
}

absl::Status Client::Send(const std::string& data) {
  if (broken_) {
    return absl::UnavailableError(
        absl::StrCat("redis at ", options_.addr, ": connection is broken"));
  }
  absl::Status s = conn_->Write(data, Clock::now() + options_.io_timeout);
  return s.ok() ? s : Broken(std::move(s));
}

absl::StatusOr<Reply> Client::ReadReply() {
  const auto deadline = Clock::now() + options_.io_timeout;
  for (;;) {
    Reply reply;
    absl::StatusOr<size_t> used = Parse(absl::string_view(rbuf_).substr(rpos_), &reply, 0);
    if (!used.ok()) {
      return Broken(absl::UnavailableError(absl::StrCat(
          "redis at ", options_.addr, " sent a malformed reply: ", used.status().message())));
    }
    if (*used > 0) {
      rpos_ += *used;
      if (rpos_ == rbuf_.size()) {
        rbuf_.clear();
        rpos_ = 0;
      }
      return reply;
    }
    if (rpos_ > 0) {
      rbuf_.erase(0, rpos_);
      rpos_ = 0;
    }
    absl::Status s = conn_->Fill(&rbuf_, deadline);
    if (!s.ok()) return Broken(std::move(s));
  }
}

absl::StatusOr<Reply> Client::Command(const std::vector<std::string>& args) {
  std::string out;
  EncodeCommand(args, &out);
  RETURN_IF_ERROR(Send(out));
  ASSIGN_OR_RETURN(Reply reply, ReadReply());
  if (reply.type == Reply::Type::kError) {
    return ReplyError(args.empty() ? std::string() : args[0], reply);
  }
  return reply;
}

absl::StatusOr<std::vector<Reply>> Client::Pipeline(
    const std::vector<std::vector<std::string>>& commands) {
  std::string out;
  for (const auto& args : commands) EncodeCommand(args, &out);
  RETURN_IF_ERROR(Send(out));
  std::vector<Reply> replies;
  replies.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    ASSIGN_OR_RETURN(Reply reply, ReadReply());
    replies.push_back(std::move(reply));
  }
  return replies;
}

}  // namespace kvsync::redis
