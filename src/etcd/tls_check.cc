#include "etcd/tls_check.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace kvsync::etcd::tls {
namespace {

struct Free {
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
  void operator()(SSL* p) const { SSL_free(p); }
};
template <typename T>
using Ptr = std::unique_ptr<T, Free>;

Ptr<BIO> MemBio(const std::string& data) {
  return Ptr<BIO>(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

// The reason of the first OpenSSL error, the innermost cause ("unknown error" when there is
// none); clears the queue.
std::string OpensslReason() {
  unsigned long e = ERR_peek_error();
  const char* reason = e != 0 ? ERR_reason_error_string(e) : nullptr;
  ERR_clear_error();
  return reason != nullptr ? reason : "unknown error";
}

// True when the last OpenSSL error only says that no further PEM block was found.
bool NoMorePem() {
  unsigned long e = ERR_peek_last_error();
  return e == 0 || (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE);
}

std::string Date(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return "an unreadable date";
  char buf[32];
  strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

absl::Status Invalid(const std::string& subject, const std::string& path,
                     const std::string& cause) {
  return absl::InvalidArgumentError(absl::StrCat(subject, " \"", path, "\" ", cause));
}

int NoPassword(char*, int, int, void*) { return -1; }

Ptr<X509> FirstCertificate(const std::string& pem) {
  auto bio = MemBio(pem);
  return Ptr<X509>(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

// A connected TCP socket with send and receive timeouts, or -1.
int Dial(const ProbeTarget& t) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  if (getaddrinfo(t.host.c_str(), t.port.c_str(), &hints, &list) != 0) return -1;
  timeval tv{};
  tv.tv_sec = t.timeout.count() / 1000;
  tv.tv_usec = (t.timeout.count() % 1000) * 1000;
  int fd = -1;
  for (addrinfo* a = list; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));  // also bounds connect()
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(list);
  return fd;
}

// Records whether the server sent a ServerHello: the one sign that it speaks TLS.
void OnMessage(int write_p, int, int content_type, const void* buf, size_t len, SSL*, void* arg) {
  if (write_p == 0 && content_type == SSL3_RT_HANDSHAKE && len > 0 &&
      static_cast<const unsigned char*>(buf)[0] == SSL3_MT_SERVER_HELLO) {
    *static_cast<bool*>(arg) = true;
  }
}

// True when the target answers an HTTP/2 connection preface in plaintext with a SETTINGS
// frame: a plaintext gRPC server, which is what a TLS client facing it needs to be told.
bool SpeaksPlaintextHttp2(const ProbeTarget& t) {
  int fd = Dial(t);
  if (fd < 0) return false;
  static const char kPreface[] =
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
      "\x00\x00\x00\x04\x00\x00\x00\x00\x00";  // an empty SETTINGS frame
  bool answered = false;
  if (send(fd, kPreface, sizeof(kPreface) - 1, MSG_NOSIGNAL) ==
      static_cast<ssize_t>(sizeof(kPreface) - 1)) {
    unsigned char frame[9];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof(frame) && (n = recv(fd, frame + got, sizeof(frame) - got, 0)) > 0) {
      got += static_cast<size_t>(n);
    }
    answered = got == sizeof(frame) && frame[3] == 0x04;  // frame type SETTINGS
  }
  close(fd);
  return answered;
}

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path, const std::string& subject) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; regular files ignore it.
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return Invalid(subject, path, absl::StrCat("cannot be read: ", strerror(errno)));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return Invalid(subject, path, "is not a regular file");
  }
  std::string data;
  char buf[65536];
  ssize_t n = 0;
  while (static_cast<int64_t>(data.size()) <= kMaxFileBytes &&
         (n = read(fd, buf, sizeof(buf))) > 0) {
    data.append(buf, static_cast<size_t>(n));
  }
  int read_errno = errno;
  close(fd);
  if (static_cast<int64_t>(data.size()) > kMaxFileBytes) {
    return Invalid(subject, path,
                   absl::StrCat("is larger than ", kMaxFileBytes,
                                " bytes: not a certificate bundle or key file"));
  }
  if (n < 0) return Invalid(subject, path, absl::StrCat("cannot be read: ", strerror(read_errno)));
  if (!absl::StrContains(data, "-----BEGIN")) return Invalid(subject, path, "is not a PEM file");
  return data;
}

absl::Status CheckCaBundle(const std::string& pem, const std::string& path,
                           const std::string& subject) {
  ERR_clear_error();
  auto bio = MemBio(pem);
  int count = 0;
  while (Ptr<X509> cert{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) ++count;
  bool clean_end = NoMorePem();
  std::string reason = OpensslReason();
  if (count == 0) {
    return Invalid(subject, path,
                   absl::StrCat("holds no certificate that can be parsed (",
                                clean_end ? "no BEGIN CERTIFICATE block" : reason, ")"));
  }
  if (!clean_end) {
    return Invalid(subject, path,
                   absl::StrCat("holds a certificate that cannot be parsed after ", count,
                                " good one(s) (", reason, ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckCertificate(const std::string& pem, const std::string& path,
                              const std::string& subject) {
  ERR_clear_error();
  Ptr<X509> cert = FirstCertificate(pem);
  if (cert == nullptr) {
    return Invalid(subject, path,
                   absl::StrCat("holds no certificate that can be parsed (",
                                NoMorePem() ? "no BEGIN CERTIFICATE block" : OpensslReason(), ")"));
  }
  if (X509_cmp_current_time(X509_get0_notBefore(cert.get())) > 0) {
    return Invalid(subject, path,
                   "is not valid before " + Date(X509_get0_notBefore(cert.get())) +
                       " (check the clock or the certificate)");
  }
  if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) < 0) {
    return Invalid(subject, path, "expired on " + Date(X509_get0_notAfter(cert.get())));
  }
  return absl::OkStatus();
}

absl::Status CheckKeyMatches(const std::string& key_pem, const std::string& key_path,
                             const std::string& key_subject, const std::string& cert_pem,
                             const std::string& cert_path, const std::string& cert_subject) {
  ERR_clear_error();
  auto bio = MemBio(key_pem);
  Ptr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassword, nullptr));
  if (key == nullptr) {
    return Invalid(key_subject, key_path,
                   absl::StrCat("holds no private key that can be parsed (", OpensslReason(),
                                "; encrypted keys are not supported)"));
  }
  Ptr<X509> cert = FirstCertificate(cert_pem);
  if (cert != nullptr && X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return Invalid(
        key_subject, key_path,
        absl::StrCat("does not match the certificate in ", cert_subject, " \"", cert_path, "\""));
  }
  return absl::OkStatus();
}

absl::Status ProbeHandshake(const ProbeTarget& t) {
  const std::string addr = absl::StrContains(t.host, ':') ? absl::StrCat("[", t.host, "]:", t.port)
                                                          : absl::StrCat(t.host, ":", t.port);
  int fd = Dial(t);
  if (fd < 0) return absl::OkStatus();  // unreachable: not a TLS question
  ERR_clear_error();
  Ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_client_method()));
  if (ctx == nullptr) {
    close(fd);
    return absl::OkStatus();
  }
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  if (t.tls) {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    if (t.ca_pem.empty()) {
      SSL_CTX_set_default_verify_paths(ctx.get());
    } else {
      auto bio = MemBio(t.ca_pem);
      while (Ptr<X509> ca{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) {
        X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), ca.get());
      }
    }
    if (!t.cert_pem.empty()) {
      Ptr<X509> cert = FirstCertificate(t.cert_pem);
      auto bio = MemBio(t.key_pem);
      Ptr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassword, nullptr));
      if (cert != nullptr) SSL_CTX_use_certificate(ctx.get(), cert.get());
      if (key != nullptr) SSL_CTX_use_PrivateKey(ctx.get(), key.get());
    }
  } else {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  }
  ERR_clear_error();
  Ptr<SSL> ssl(SSL_new(ctx.get()));
  if (ssl == nullptr) {
    close(fd);
    return absl::OkStatus();
  }
  SSL_set_fd(ssl.get(), fd);
  in6_addr ip{};
  bool is_ip =
      inet_pton(AF_INET, t.host.c_str(), &ip) == 1 || inet_pton(AF_INET6, t.host.c_str(), &ip) == 1;
  if (is_ip) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), t.host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl.get(), t.host.c_str());
    SSL_set1_host(ssl.get(), t.host.c_str());
  }
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_set_alpn_protos(ssl.get(), kAlpn, sizeof(kAlpn));
  bool server_hello = false;
  SSL_set_msg_callback(ssl.get(), OnMessage);
  SSL_set_msg_callback_arg(ssl.get(), &server_hello);
  int rc = SSL_connect(ssl.get());
  int ssl_error = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl.get(), rc);
  int saved_errno = errno;
  long verify = SSL_get_verify_result(ssl.get());
  std::string reason = OpensslReason();
  ssl.reset();
  close(fd);

  if (!t.tls) {
    if (!server_hello) return absl::OkStatus();
    std::string cause =
        absl::StrCat(addr, " speaks TLS but the client is configured for plaintext: write https://",
                     addr, " in ", t.scheme_hint, " and give ", t.ca_subject);
    // Named, but not proof of a configuration mistake: a TLS-intercepting proxy in front of an
    // unreachable server answers the same way (even agreeing on HTTP/2), so this stays a
    // reachability failure (exit 1) that a supervisor retries.
    return absl::UnavailableError(cause);
  }
  if (rc == 1) return absl::OkStatus();
  const std::string failed = absl::StrCat("TLS handshake with ", addr, " failed: ");
  if (verify != X509_V_OK) {
    std::string cause =
        absl::StrCat("certificate verify failed (", X509_verify_cert_error_string(verify), ")");
    if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
      return absl::InvalidArgumentError(
          absl::StrCat(failed, cause, "; the server certificate does not name ", t.host,
                       ": use a host name or address it lists in ", t.scheme_hint));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        failed, cause, "; check ", t.ca_subject,
        t.ca_pem.empty() ? " (none given, so the system's trusted roots were used)" : ""));
  }
  if (ssl_error == SSL_ERROR_SYSCALL &&
      (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK || saved_errno == ETIMEDOUT)) {
    return absl::OkStatus();  // no answer in time: unreachable, not a TLS question
  }
  if (!server_hello) {
    // No TLS answer. Only a plaintext HTTP/2 answer proves a configuration mistake; a proxy
    // whose backend is down closes the connection the same way and is merely unreachable.
    if (!SpeaksPlaintextHttp2(t)) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(failed, "the server does not speak TLS (",
                                                   reason,
                                                   "; it answers plaintext "
                                                   "HTTP/2): use http:// in ",
                                                   t.scheme_hint, " and drop the TLS flags"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(failed, reason, "; check ", t.ca_subject, " and the client certificate"));
}

}  // namespace kvsync::etcd::tls
