#include "checker/range_cursor.h"

#include "etcd/retry.h"

namespace kvsync::checker {

RangeCursor::RangeCursor(etcd::KvApi* client, Options options, const common::StopToken* stop,
                         etcd::RetryCounters* retries)
    : client_(client), options_(std::move(options)), stop_(stop), retries_(retries) {}

RangeCursor::~RangeCursor() {
  if (next_.valid()) next_.wait();
}

absl::StatusOr<etcd::RangeResponse> RangeCursor::Fetch(std::string from) {
  etcd::RangeRequest req;
  req.key = std::move(from);
  req.range_end = options_.range_end;
  req.limit = options_.page_size;
  req.revision = options_.revision;
  req.keys_only = options_.keys_only;
  req.serializable = options_.serializable;
  // Pace before asking for a page: a whole page counts against --read-rate.
  if (options_.limiter != nullptr && !options_.limiter->Acquire(options_.page_size, stop_)) {
    return absl::CancelledError("stop requested");
  }
  return etcd::RetryTransient(*stop_, "range " + client_->label(), retries_,
                              [&] { return client_->Range(req); });
}

void RangeCursor::StartPrefetch() {
  if (!more_ || page_.empty()) return;
  // Next page starts right after the last key of this one.
  std::string from = page_.back().key;
  from.push_back('\0');
  next_ = std::async(std::launch::async, [this, from = std::move(from)] { return Fetch(from); });
}

void RangeCursor::Prefetch() {
  if (started_) return;
  started_ = true;
  next_ = std::async(std::launch::async, [this] { return Fetch(options_.key); });
}

absl::StatusOr<const etcd::KeyValue*> RangeCursor::Current() {
  while (pos_ >= page_.size()) {
    if (stop_->stopped()) return absl::CancelledError("stop requested");
    absl::StatusOr<etcd::RangeResponse> resp;
    if (!started_) {
      started_ = true;
      resp = Fetch(options_.key);
    } else if (next_.valid()) {
      resp = next_.get();
    } else {
      return nullptr;
    }
    if (!resp.ok()) return resp.status();
    if (revision_ == 0) {
      revision_ = resp->header.revision;
      // Pin every later page to the first page's revision: one consistent snapshot.
      if (options_.revision == 0) options_.revision = revision_;
    }
    for (const auto& kv : resp->kvs) bytes_read_ += kv.key.size() + kv.value.size();
    if (options_.keys_read != nullptr) {
      options_.keys_read->fetch_add(static_cast<int64_t>(resp->kvs.size()),
                                    std::memory_order_relaxed);
    }
    page_ = std::move(resp->kvs);
    pos_ = 0;
    more_ = resp->more;
    StartPrefetch();
    if (page_.empty()) return nullptr;
  }
  return &page_[pos_];
}

void RangeCursor::Advance() { ++pos_; }

}  // namespace kvsync::checker
