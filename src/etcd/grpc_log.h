// Routes gRPC's own log lines (connection failures, resolver and TLS handshake errors) through
// kvsync's logger, component "grpc", so that --log-format json stays one JSON object per line.
// main() calls InstallGrpcLogging() once, before any channel exists; gRPC then calls the hook
// from any of its threads.
#pragma once

namespace kvsync::etcd {

void InstallGrpcLogging();

}  // namespace kvsync::etcd
