// Conversions between etcd protobuf messages / gRPC statuses and the plain types of types.h.
// Internal to src/etcd/: nothing outside this folder includes it. Pure functions.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "etcd/etcdserver/etcdserverpb/rpc.pb.h"
#include "etcd/types.h"
#include "grpcpp/support/status.h"

namespace kvsync::etcd {

// Maps a gRPC status to absl, prefixing `context`, and classifies it once (the rules are in
// types.h, above IsTransient): the only place in kvsync that reads etcd's error messages.
// Codes are kept except a server's "etcdserver: watch canceled" (Cancelled → Unavailable: a
// member stopping) and "election: no leader" (Unknown → NotFound, kind kNoLeader).
absl::Status FromGrpc(const grpc::Status& status, const std::string& context);

Header FromPb(const etcdserverpb::ResponseHeader& h);
KeyValue FromPb(const mvccpb::KeyValue& kv);
RangeResponse FromPb(etcdserverpb::RangeResponse&& resp);
WatchResponse FromPb(etcdserverpb::WatchResponse&& resp);
TxnResponse FromPb(const etcdserverpb::TxnResponse& resp);

etcdserverpb::RangeRequest ToPb(const RangeRequest& r);
etcdserverpb::TxnRequest ToPb(const TxnRequest& t);

}  // namespace kvsync::etcd
