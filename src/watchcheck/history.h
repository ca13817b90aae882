// What the etcdwatch writer committed, revision by revision, and what a correct watch event
// for each write must show.
//
// WritePlan decides the writes of each tick (pure; the writer thread owns it). History is the
// append-only record the watchers check against: one writer thread appends, any thread reads
// the published prefix without locks (the storage never reallocates: capacity is fixed when it
// is built).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace kvsync::watchcheck {

// One key's write inside a revision and the event fields it implies.
struct WriteOp {
  int key = 0;  // index into the run's key list
  bool is_delete = false;
  int64_t value = 0;            // puts: the tick, written as decimal text
  int64_t version = 0;          // puts: the key's version after the write (1 = created)
  int64_t create_revision = 0;  // puts: equals the revision when the write created the key
  bool prev_exists = false;     // the key existed before, so prev_kv must be delivered
  int64_t prev_value = 0;
  int64_t prev_mod_revision = 0;
};

struct WriteRecord {
  int64_t revision = 0;
  int64_t ack_ns = 0;        // steady clock when the writer received the commit
  std::vector<WriteOp> ops;  // one per key written, ordered by key
};

// The writes of each tick: every key is put with the tick as value, except that key 0 is
// deleted on every `delete_every`-th tick (0: never), so that the next tick creates it again
// and both delete events and create flags are exercised.
class WritePlan {
 public:
  WritePlan(int keys, int delete_every);
  // The operations of `tick` (key, is_delete, value); call Commit with the same tick next.
  std::vector<WriteOp> Ops(int64_t tick) const;
  // Records that `ops` committed at `revision`, filling the expected event fields.
  void Commit(int64_t revision, std::vector<WriteOp>* ops);

 private:
  struct KeyState {
    bool exists = false;
    int64_t value = 0;
    int64_t version = 0;
    int64_t create_revision = 0;
    int64_t mod_revision = 0;
  };
  int delete_every_;
  std::vector<KeyState> keys_;
};

class History {
 public:
  explicit History(size_t capacity);
  History(const History&) = delete;
  History& operator=(const History&) = delete;

  // Writer thread only. Revisions must increase. Returns false when the history is full.
  bool Append(WriteRecord record);
  // Number of published records (readers see at least this many, fully written).
  size_t size() const { return size_.load(std::memory_order_acquire); }
  size_t capacity() const { return records_.size(); }
  // i < size().
  const WriteRecord& at(size_t i) const { return records_[i]; }
  // Index of `revision` among the first `n` records, or -1 when none has it.
  int64_t Find(int64_t revision, size_t n) const;

 private:
  std::vector<WriteRecord> records_;
  std::atomic<size_t> size_{0};
};

}  // namespace kvsync::watchcheck
