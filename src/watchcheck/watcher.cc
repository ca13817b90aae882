#include "watchcheck/watcher.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace kvsync::watchcheck {
namespace {

constexpr size_t kMaxSamples = 3;

uint64_t FullMask(size_t ops) { return ops >= 64 ? ~uint64_t{0} : (uint64_t{1} << ops) - 1; }

int64_t ParseValue(const std::string& text) {
  int64_t v = 0;
  return absl::SimpleAtoi(text, &v) ? v : -1;
}

}  // namespace

const char* PropertyName(Property p) {
  switch (p) {
    case Property::kOrdered:
      return "ordered";
    case Property::kUnique:
      return "unique";
    case Property::kReliable:
      return "reliable";
    case Property::kAtomic:
      return "atomic";
    case Property::kPrevKv:
      return "prev_kv";
    case Property::kCreated:
      return "created";
    case Property::kResumable:
      return "resumable";
    case Property::kSynced:
      return "synced";
  }
  return "?";
}

WatcherCheck::WatcherCheck(int id, const History* history,
                           const absl::flat_hash_map<std::string, int>* keys,
                           int64_t start_revision, bool prev_kv)
    : id_(id),
      history_(history),
      keys_(keys),
      prev_kv_(prev_kv),
      max_received_(start_revision - 1),
      seen_(history->capacity()) {}

bool WatcherCheck::failed() const {
  return std::any_of(violations_.begin(), violations_.end(), [](int64_t n) { return n > 0; });
}

void WatcherCheck::Violate(Property p, const std::string& detail) {
  ++violations_[static_cast<int>(p)];
  if (samples_.size() < kMaxSamples) {
    samples_.push_back(absl::StrCat("watcher ", id_, ": ", PropertyName(p), ": ", detail));
  }
}

void WatcherCheck::ExpectCreated(int64_t watch_id) {
  awaiting_created_ = true;
  expected_watch_id_ = watch_id;
}

void WatcherCheck::OnCreated(const etcd::WatchResponse& r) {
  if (!awaiting_created_) {
    Violate(Property::kCreated,
            absl::StrCat("a second \"created\" response for watch id ", r.watch_id));
    return;
  }
  awaiting_created_ = false;
  if (r.watch_id != expected_watch_id_) {
    Violate(Property::kCreated, absl::StrCat("\"created\" carries watch id ", r.watch_id,
                                             ", expected ", expected_watch_id_));
  }
}

void WatcherCheck::OnResume(int64_t start_revision) {
  Seen marker;
  marker.resume_marker = true;
  marker.resume_start = start_revision;
  pending_.push_back(marker);
}

void WatcherCheck::OnEvents(const etcd::WatchResponse& r, int64_t recv_ns) {
  ++responses_;
  if (awaiting_created_) {
    awaiting_created_ = false;
    Violate(Property::kCreated, "events arrived before the watch's \"created\" response");
  }
  for (const etcd::Event& e : r.events) {
    Seen s;
    s.revision = e.kv.mod_revision;
    auto it = keys_->find(e.kv.key);
    s.key = it == keys_->end() ? -1 : it->second;
    s.is_delete = e.type == etcd::Event::Type::kDelete;
    s.value = s.is_delete ? -1 : ParseValue(e.kv.value);
    s.version = e.kv.version;
    s.create_revision = e.kv.create_revision;
    s.has_prev = e.has_prev_kv;
    if (e.has_prev_kv) {
      s.prev_value = ParseValue(e.prev_kv.value);
      s.prev_mod_revision = e.prev_kv.mod_revision;
    }
    s.recv_ns = recv_ns;
    s.response = responses_;
    max_received_ = std::max(max_received_, s.revision);
    ++events_;
    pending_.push_back(s);
  }
  Drain(false);
}

void WatcherCheck::Drain(bool at_end) {
  size_t known = history_->size();
  int64_t last_known = known == 0 ? 0 : history_->at(known - 1).revision;
  while (!pending_.empty()) {
    const Seen& s = pending_.front();
    if (s.resume_marker) {
      after_resume_ = true;
      resume_start_ = s.resume_start;
    } else {
      if (s.revision > last_known && !at_end) return;
      Check(s, known);
    }
    pending_.pop_front();
  }
}

void WatcherCheck::CloseRevision() {
  if (cur_idx_ < 0) return;
  const WriteRecord& rec = history_->at(static_cast<size_t>(cur_idx_));
  uint64_t full = FullMask(rec.ops.size());
  if ((cur_mask_ & full) != full) {
    Violate(Property::kReliable,
            absl::StrCat("revision ", rec.revision, " delivered ", __builtin_popcountll(cur_mask_),
                         " of its ", rec.ops.size(), " events"));
  }
}

void WatcherCheck::Check(const Seen& s, size_t known) {
  int64_t idx = history_->Find(s.revision, known);
  if (idx < 0) {
    Violate(Property::kReliable,
            absl::StrCat("event at revision ", s.revision, " that the writer never wrote"));
    return;
  }
  const WriteRecord& rec = history_->at(static_cast<size_t>(idx));
  int op_index = -1;
  for (size_t i = 0; i < rec.ops.size(); ++i) {
    if (rec.ops[i].key == s.key) op_index = static_cast<int>(i);
  }
  if (op_index < 0) {
    Violate(Property::kReliable,
            absl::StrCat("event for a key not written at revision ", s.revision));
    return;
  }
  uint64_t bit = op_index < 64 ? uint64_t{1} << op_index : 0;
  bool resumed = after_resume_;
  after_resume_ = false;

  if (s.revision > cur_rev_) {
    CloseRevision();
    if (resumed && s.revision < resume_start_) {
      Violate(Property::kResumable, absl::StrCat("re-watch from ", resume_start_,
                                                 " delivered earlier revision ", s.revision));
    }
    if (idx > next_idx_) {
      const WriteRecord& first = history_->at(static_cast<size_t>(next_idx_));
      Violate(
          resumed ? Property::kResumable : Property::kReliable,
          absl::StrCat(idx - next_idx_, " written revision(s) ", first.revision, "..",
                       history_->at(static_cast<size_t>(idx - 1)).revision, " never delivered",
                       resumed ? " after a re-watch" : "", " (next delivered: ", s.revision, ")"));
    }
    cur_rev_ = s.revision;
    cur_idx_ = idx;
    cur_mask_ = bit;
    cur_response_ = s.response;
    next_idx_ = std::max(next_idx_, idx + 1);
    seen_[static_cast<size_t>(idx)] = true;
    latencies_us_.push_back(
        static_cast<int32_t>(std::clamp<int64_t>((s.recv_ns - rec.ack_ns) / 1000, 0, INT32_MAX)));
  } else if (s.revision == cur_rev_) {
    if (cur_mask_ & bit) {
      Violate(resumed ? Property::kResumable : Property::kUnique,
              absl::StrCat("revision ", s.revision, " delivered twice",
                           resumed ? " after a re-watch" : ""));
      return;
    }
    if (s.response != cur_response_) {
      Violate(Property::kAtomic,
              absl::StrCat("events of revision ", s.revision, " split over two responses"));
    }
    cur_mask_ |= bit;
  } else {
    if (seen_[static_cast<size_t>(idx)]) {
      Violate(resumed ? Property::kResumable : Property::kUnique,
              absl::StrCat("revision ", s.revision, " delivered again after ", cur_rev_,
                           resumed ? " (re-watch repeated it)" : ""));
    } else {
      Violate(resumed ? Property::kResumable : Property::kOrdered,
              absl::StrCat("revision ", s.revision, " arrived after ", cur_rev_));
    }
    return;
  }

  const WriteOp& op = rec.ops[static_cast<size_t>(op_index)];
  if (op.is_delete != s.is_delete) {
    Violate(Property::kReliable, absl::StrCat("revision ", s.revision, " delivered as a ",
                                              s.is_delete ? "delete" : "put", ", written as a ",
                                              op.is_delete ? "delete" : "put"));
    return;
  }
  if (!op.is_delete) {
    if (s.value != op.value) {
      Violate(Property::kReliable,
              absl::StrCat("revision ", s.revision, " delivered a value other than written"));
    }
    if (s.version != op.version || s.create_revision != op.create_revision) {
      Violate(
          Property::kCreated,
          absl::StrCat("revision ", s.revision, " has version ", s.version, " create_revision ",
                       s.create_revision, ", expected ", op.version, " and ", op.create_revision));
    }
  }
  if (prev_kv_) {
    if (op.prev_exists && (!s.has_prev || s.prev_value != op.prev_value ||
                           s.prev_mod_revision != op.prev_mod_revision)) {
      Violate(Property::kPrevKv,
              absl::StrCat("revision ", s.revision,
                           s.has_prev ? " carries a wrong prev_kv" : " lacks prev_kv",
                           " (expected the value of revision ", op.prev_mod_revision, ")"));
    } else if (!op.prev_exists && s.has_prev) {
      Violate(Property::kPrevKv,
              absl::StrCat("revision ", s.revision, " created the key but carries a prev_kv"));
    }
  }
}

void WatcherCheck::Finish() {
  CloseRevision();
  cur_mask_ = FullMask(64);  // reported once
  size_t known = history_->size();
  if (static_cast<size_t>(next_idx_) < known) {
    Violate(Property::kSynced,
            absl::StrCat("last seen revision ", cur_rev_, ", last written ",
                         history_->at(known - 1).revision, " (",
                         static_cast<int64_t>(known) - next_idx_, " write(s) not delivered)"));
  }
}

}  // namespace kvsync::watchcheck
