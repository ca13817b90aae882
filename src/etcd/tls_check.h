// TLS checks behind etcd::Client's clear configuration errors: the TLS files are read safely
// and checked with OpenSSL at start (ValidateClientOptions), and when no endpoint answers,
// one TLS handshake is tried against an endpoint to name the cause (Client::Connect). gRPC
// only logs a failed handshake in its own lines and keeps reconnecting until the dial timeout.
//
// Internal to src/etcd; OpenSSL types never leave tls_check.cc. Pure functions (the probe does
// blocking socket I/O, bounded by its timeout); any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kvsync::etcd::tls {

// No certificate bundle or key file kvsync reads is larger than this.
inline constexpr int64_t kMaxFileBytes = 1 << 20;

// Reads a TLS file. `subject` names it in messages ("--src-cacert" or "source CA file").
// InvalidArgument when it cannot be opened, is not a regular file (a device or FIFO would be
// read forever), is larger than kMaxFileBytes or holds no PEM block.
absl::StatusOr<std::string> ReadFile(const std::string& path, const std::string& subject);

// InvalidArgument unless `pem` holds at least one certificate and every one parses.
absl::Status CheckCaBundle(const std::string& pem, const std::string& path,
                           const std::string& subject);

// InvalidArgument unless the first certificate of `pem` parses and is valid now (names the
// date when it expired or becomes valid).
absl::Status CheckCertificate(const std::string& pem, const std::string& path,
                              const std::string& subject);

// InvalidArgument unless `key_pem` holds an unencrypted private key that belongs to the first
// certificate of `cert_pem`.
absl::Status CheckKeyMatches(const std::string& key_pem, const std::string& key_path,
                             const std::string& key_subject, const std::string& cert_pem,
                             const std::string& cert_path, const std::string& cert_subject);

struct ProbeTarget {
  std::string host;  // name or IP address (IPv6 without brackets)
  std::string port;
  bool tls = false;         // what the client is configured to speak
  std::string ca_pem;       // empty: the system's trusted roots
  std::string cert_pem;     // client certificate, may be empty
  std::string key_pem;      // its key
  std::string ca_subject;   // what to check on a verification failure ("--src-cacert")
  std::string scheme_hint;  // names the endpoint flag in advice ("--src-endpoints")
  std::chrono::milliseconds timeout{3000};
};

// Connects to the target and tries a TLS handshake, configured as the client would be.
// Returns InvalidArgument naming "host:port", the cause and what to check when the handshake
// shows a configuration mistake: a certificate that fails verification, a TLS client facing a
// plaintext server. A plaintext client facing a TLS speaker is Unavailable with the advice:
// an intercepting proxy in front of an unreachable server looks the same. OK when it shows none
// (the handshake works as configured, or the target cannot be reached at all).
absl::Status ProbeHandshake(const ProbeTarget& target);

}  // namespace kvsync::etcd::tls
