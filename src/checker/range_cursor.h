// Sorted key-value streams for the full-sync merge-join.
//
// KvCursor: Current() is the next key-value (nullptr at the end); Advance() moves past it.
// RangeCursor reads [key, range_end) from etcd in pages of `page_size` at one revision
// (0 = current), fetching the next page in the background while the caller consumes the
// current one, so at most two pages are held. Transient errors are retried inside; a
// compacted revision surfaces as etcd::IsCompacted. Used by one thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <future>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/rate_limiter.h"
#include "common/stop_token.h"
#include "etcd/api.h"
#include "etcd/retry.h"

namespace kvsync::checker {

class KvCursor {
 public:
  virtual ~KvCursor() = default;
  virtual absl::StatusOr<const etcd::KeyValue*> Current() = 0;
  virtual void Advance() = 0;
};

class RangeCursor : public KvCursor {
 public:
  struct Options {
    std::string key;
    std::string range_end;
    int64_t revision = 0;
    int page_size = 10000;
    bool keys_only = false;
    bool serializable = false;
    // Optional (not owned): paces the keys read; shared by cursors of one cluster.
    common::RateLimiter* limiter = nullptr;
    // Optional (not owned): incremented by the keys of each page, for progress displays.
    std::atomic<int64_t>* keys_read = nullptr;
  };
  RangeCursor(etcd::KvApi* client, Options options, const common::StopToken* stop,
              etcd::RetryCounters* retries);
  ~RangeCursor() override;

  absl::StatusOr<const etcd::KeyValue*> Current() override;
  void Advance() override;
  // Starts reading the first page in the background now (else the first Current() reads it):
  // lets a caller overlap that round trip with other work.
  void Prefetch();

  // Revision of the first page read (the pinned revision when one was given).
  int64_t revision() const { return revision_; }
  int64_t bytes_read() const { return bytes_read_; }

 private:
  absl::StatusOr<etcd::RangeResponse> Fetch(std::string from);
  void StartPrefetch();

  etcd::KvApi* client_;
  Options options_;
  const common::StopToken* stop_;
  etcd::RetryCounters* retries_;
  std::vector<etcd::KeyValue> page_;
  size_t pos_ = 0;
  bool more_ = true;  // more pages after page_
  bool started_ = false;
  std::future<absl::StatusOr<etcd::RangeResponse>> next_;
  int64_t revision_ = 0;
  int64_t bytes_read_ = 0;
};

// A cursor over an in-memory sorted vector (tests and small inputs).
class VectorCursor : public KvCursor {
 public:
  explicit VectorCursor(std::vector<etcd::KeyValue> kvs) : kvs_(std::move(kvs)) {}
  absl::StatusOr<const etcd::KeyValue*> Current() override {
    return pos_ < kvs_.size() ? &kvs_[pos_] : nullptr;
  }
  void Advance() override { ++pos_; }

 private:
  std::vector<etcd::KeyValue> kvs_;
  size_t pos_ = 0;
};

}  // namespace kvsync::checker
