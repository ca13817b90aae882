#include "etcd/convert.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/errors.h"

namespace kvsync::etcd {

absl::Status FromGrpc(const grpc::Status& status, const std::string& context) {
  if (status.ok()) return absl::OkStatus();
  const std::string& text = status.error_message();
  std::string message = absl::StrCat(context, ": ", text);
  using common::ErrorKind;
  switch (status.error_code()) {
    case grpc::StatusCode::OUT_OF_RANGE:
      if (absl::StrContains(text, "compacted")) return CompactedError(0, context);
      break;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      // gRPC's own message size limit ("Sent/Received message larger than max") can never pass;
      // etcd's "too many requests" and "database space exceeded" (NOSPACE) pass once the
      // server catches up or an operator disarms the alarm.
      if (absl::StrContains(text, "larger than max")) {
        return common::WithKind(absl::ResourceExhaustedError(message), ErrorKind::kRequestTooLarge);
      }
      return common::WithKind(absl::ResourceExhaustedError(message), ErrorKind::kTransient);
    case grpc::StatusCode::INVALID_ARGUMENT:
      if (absl::StrContains(text, "request is too large") ||
          absl::StrContains(text, "too many operations in txn request")) {
        return RequestTooLargeError(message);
      }
      break;
    case grpc::StatusCode::FAILED_PRECONDITION:
      if (absl::StrContains(text, "lease already exists")) return LeaseExistsError(message);
      break;
    case grpc::StatusCode::NOT_FOUND:
      if (absl::StrContains(text, "requested lease not found")) {
        return LeaseNotFoundError(message);
      }
      break;
    case grpc::StatusCode::CANCELLED:
      // A cancel of our own says "Cancelled"; etcd cancels the streams of a member that stops.
      if (absl::StartsWith(text, "etcdserver: ")) return absl::UnavailableError(message);
      break;
    case grpc::StatusCode::UNKNOWN:
      // v3election returns concurrency.ErrElectionNoLeader untranslated.
      if (absl::StrContains(text, "election: no leader")) {
        return common::WithKind(absl::NotFoundError(message), ErrorKind::kNoLeader);
      }
      break;
    default:
      break;
  }
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), message);
}

Header FromPb(const etcdserverpb::ResponseHeader& h) {
  return Header{h.cluster_id(), h.member_id(), h.revision(), h.raft_term()};
}

KeyValue FromPb(const mvccpb::KeyValue& kv) {
  return KeyValue{kv.key(),          kv.value(),   kv.create_revision(),
                  kv.mod_revision(), kv.version(), kv.lease()};
}

namespace {
KeyValue MoveFromPb(mvccpb::KeyValue* kv) {
  KeyValue out;
  out.key = std::move(*kv->mutable_key());
  out.value = std::move(*kv->mutable_value());
  out.create_revision = kv->create_revision();
  out.mod_revision = kv->mod_revision();
  out.version = kv->version();
  out.lease = kv->lease();
  return out;
}
}  // namespace

RangeResponse FromPb(etcdserverpb::RangeResponse&& resp) {
  RangeResponse out;
  out.header = FromPb(resp.header());
  out.more = resp.more();
  out.count = resp.count();
  out.kvs.reserve(resp.kvs_size());
  for (auto& kv : *resp.mutable_kvs()) out.kvs.push_back(MoveFromPb(&kv));
  return out;
}

WatchResponse FromPb(etcdserverpb::WatchResponse&& resp) {
  WatchResponse out;
  out.header = FromPb(resp.header());
  out.created = resp.created();
  out.canceled = resp.canceled();
  out.compact_revision = resp.compact_revision();
  out.cancel_reason = resp.cancel_reason();
  out.watch_id = resp.watch_id();
  out.fragment = resp.fragment();
  out.events.reserve(resp.events_size());
  for (auto& ev : *resp.mutable_events()) {
    Event e;
    e.type = ev.type() == mvccpb::Event::DELETE ? Event::Type::kDelete : Event::Type::kPut;
    e.kv = MoveFromPb(ev.mutable_kv());
    if (ev.has_prev_kv()) {
      e.has_prev_kv = true;
      e.prev_kv = MoveFromPb(ev.mutable_prev_kv());
    }
    out.events.push_back(std::move(e));
  }
  return out;
}

etcdserverpb::RangeRequest ToPb(const RangeRequest& r) {
  etcdserverpb::RangeRequest req;
  req.set_key(r.key);
  req.set_range_end(r.range_end);
  req.set_limit(r.limit);
  req.set_revision(r.revision);
  req.set_keys_only(r.keys_only);
  req.set_count_only(r.count_only);
  req.set_serializable(r.serializable);
  req.set_min_mod_revision(r.min_mod_revision);
  req.set_sort_order(etcdserverpb::RangeRequest::NONE);  // etcd returns keys in order anyway
  return req;
}

TxnResponse FromPb(const etcdserverpb::TxnResponse& resp) {
  TxnResponse out;
  out.header = FromPb(resp.header());
  out.succeeded = resp.succeeded();
  for (const auto& r : resp.responses()) {
    if (r.response_case() == etcdserverpb::ResponseOp::kResponseTxn) {
      out.nested_succeeded.push_back(r.response_txn().succeeded());
    }
  }
  return out;
}

namespace {
void FillTxn(const TxnRequest& t, etcdserverpb::TxnRequest* req);

void FillOp(const Op& op, etcdserverpb::RequestOp* out) {
  switch (op.type) {
    case Op::Type::kPut: {
      auto* put = out->mutable_request_put();
      put->set_key(op.key);
      put->set_value(op.value);
      put->set_lease(op.lease);
      break;
    }
    case Op::Type::kDelete: {
      auto* del = out->mutable_request_delete_range();
      del->set_key(op.key);
      del->set_range_end(op.range_end);
      break;
    }
    case Op::Type::kTxn:
      // A kTxn op without a request encodes as an empty txn (no compares, no ops).
      if (op.txn != nullptr) {
        FillTxn(*op.txn, out->mutable_request_txn());
      } else {
        out->mutable_request_txn();
      }
      break;
  }
}

void FillTxn(const TxnRequest& t, etcdserverpb::TxnRequest* req) {
  for (const Compare& c : t.compares) {
    auto* cmp = req->add_compare();
    cmp->set_key(c.key);
    switch (c.result) {
      case Compare::Result::kEqual:
        cmp->set_result(etcdserverpb::Compare::EQUAL);
        break;
      case Compare::Result::kGreater:
        cmp->set_result(etcdserverpb::Compare::GREATER);
        break;
      case Compare::Result::kLess:
        cmp->set_result(etcdserverpb::Compare::LESS);
        break;
      case Compare::Result::kNotEqual:
        cmp->set_result(etcdserverpb::Compare::NOT_EQUAL);
        break;
    }
    switch (c.target) {
      case Compare::Target::kVersion:
        cmp->set_target(etcdserverpb::Compare::VERSION);
        cmp->set_version(c.number);
        break;
      case Compare::Target::kCreateRevision:
        cmp->set_target(etcdserverpb::Compare::CREATE);
        cmp->set_create_revision(c.number);
        break;
      case Compare::Target::kModRevision:
        cmp->set_target(etcdserverpb::Compare::MOD);
        cmp->set_mod_revision(c.number);
        break;
      case Compare::Target::kValue:
        cmp->set_target(etcdserverpb::Compare::VALUE);
        cmp->set_value(c.value);
        break;
    }
  }
  for (const Op& op : t.success) FillOp(op, req->add_success());
  for (const Op& op : t.failure) FillOp(op, req->add_failure());
}
}  // namespace

etcdserverpb::TxnRequest ToPb(const TxnRequest& t) {
  etcdserverpb::TxnRequest req;
  FillTxn(t, &req);
  return req;
}

}  // namespace kvsync::etcd
