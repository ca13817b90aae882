// A small Redis client (RESP2 over TCP, optional TLS through OpenSSL), used by the Redis
// ownership store. It speaks just enough of the protocol for plain request/reply commands:
// commands go out as arrays of bulk strings; replies come back as simple strings, errors,
// integers, bulk strings, arrays and nil. No pub/sub, no RESP3, no cluster redirects.
//
// One Client is one connection. It is NOT thread-safe: one caller at a time (callers serialise,
// e.g. with a mutex). Every read and write runs under a deadline (Options::io_timeout); after
// any IO or protocol error the connection is marked broken() and every later call fails with
// Unavailable at once; the owner then drops it and connects again. Closing happens in the
// destructor.
//
// Errors: InvalidArgument for bad options, Unavailable for network/TLS failures (the message
// names the address), PermissionDenied when AUTH (or SELECT without AUTH) is refused, and for
// error replies to Command() the classification of ReplyError. The password never appears in
// a message.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kvsync::redis {

struct Options {
  // host:port; IPv6 as [::1]:6379.
  std::string addr = "127.0.0.1:6379";
  // With `username` empty: AUTH <password>; otherwise AUTH <username> <password> (Redis 6 ACL).
  // Empty password: no AUTH. (A "user:password" string is not split: a legacy password may
  // contain ':'.)
  std::string username;
  std::string password;
  int db = 0;  // SELECT db when not 0
  bool tls = false;
  std::string ca_file;    // empty: the system's default trust store
  std::string cert_file;  // client certificate, together with key_file
  std::string key_file;
  bool insecure_skip_verify = false;  // no certificate or host name check
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::milliseconds io_timeout{3000};
};

// InvalidArgument with one clear sentence (bad address, negative db, unreadable TLS files, a
// certificate without a key or the reverse); OK otherwise. Does not touch the network.
absl::Status ValidateOptions(const Options& options);

struct Reply {
  enum class Type { kNil, kString, kStatus, kError, kInteger, kArray };
  Type type = Type::kNil;
  std::string str;  // kString (bulk), kStatus (simple string), kError (the server's message)
  int64_t integer = 0;
  std::vector<Reply> elements;  // kArray
};

class Client {
 public:
  // Resolves and connects (connect_timeout for TCP connect, TLS handshake and AUTH/SELECT),
  // then sends AUTH and SELECT as configured.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(Options options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends one command and reads its reply. An error reply becomes ReplyError's status carrying
  // the server's message (the connection stays usable); an IO error or a malformed reply
  // becomes Unavailable and marks the connection broken.
  absl::StatusOr<Reply> Command(const std::vector<std::string>& args);
  // Sends every command in one write, then reads one reply per command (same order). Error
  // replies are returned as Reply::Type::kError elements, not as a Status, so one failing
  // command does not hide the others' results. IO errors: Unavailable, connection broken.
  absl::StatusOr<std::vector<Reply>> Pipeline(
      const std::vector<std::vector<std::string>>& commands);

  bool broken() const { return broken_; }
  const Options& options() const { return options_; }

 private:
  class Conn;
  Client(Options options, std::unique_ptr<Conn> conn);
  absl::Status Send(const std::string& data);
  absl::StatusOr<Reply> ReadReply();
  absl::Status Broken(absl::Status status);

  Options options_;
  std::unique_ptr<Conn> conn_;
  bool broken_ = false;
  std::string rbuf_;  // bytes read but not yet parsed start at rpos_
  size_t rpos_ = 0;
};

// Appends the RESP2 encoding of `args` (an array of bulk strings) to `out`. Exposed for tests.
void EncodeCommand(const std::vector<std::string>& args, std::string* out);

// Parses one RESP2 reply from the front of `data`. Returns the number of bytes consumed and
// fills `reply`; 0 when `data` holds only part of a reply; InvalidArgument when it is malformed
// (unknown type byte, bad length, nesting deeper than 32). Exposed for tests.
// The one place Redis error replies are classified (by their error prefix):
//   transient (Unavailable, IsTransient): LOADING, BUSY, TRYAGAIN, MASTERDOWN, READONLY (a
//     replica during failover), CLUSTERDOWN, MISCONF (writes refused until a save succeeds);
//   refused (PermissionDenied): NOAUTH, WRONGPASS, NOPERM;
//   Unimplemented: "ERR unknown command" (an older server);
//   FailedPrecondition: every other error reply (WRONGTYPE...): the data or the server needs
//     an operator; never retried as transient.
// `reply` must be a kError reply; the message names `command` and carries the server's text.
absl::Status ReplyError(const std::string& command, const Reply& reply);
// Worth retrying after a reconnect or a pause: common::IsTransient's rule.
bool IsTransient(const absl::Status& status);

absl::StatusOr<size_t> ParseReply(std::string_view data, Reply* reply);

}  // namespace kvsync::redis
