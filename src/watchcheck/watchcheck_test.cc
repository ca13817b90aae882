// Unit tests of the etcdwatch checks: WritePlan's expected fields, and WatcherCheck fed with
// hand-built responses, one test per property that must be caught.
#include <memory>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "watchcheck/history.h"
#include "watchcheck/report.h"
#include "watchcheck/watcher.h"

namespace kvsync::watchcheck {
namespace {

constexpr int64_t kFirstRevision = 10;

// A writer history of `ticks` writes of `keys` keys (key 0 deleted every 4th tick) at
// revisions 10, 11, ... and the responses a correct watch delivers for it.
class Fixture {
 public:
  Fixture(int keys, int ticks, int delete_every = 4) : history_(ticks) {
    for (int k = 0; k < keys; ++k) names_[absl::StrCat("/t/k", k)] = k;
    WritePlan plan(keys, delete_every);
    for (int t = 0; t < ticks; ++t) {
      std::vector<WriteOp> ops = plan.Ops(t);
      plan.Commit(kFirstRevision + t, &ops);
      records_.push_back(WriteRecord{kFirstRevision + t, 1000 * t, ops});
    }
  }
  // Publishes the first n writes to the History.
  void Publish(size_t n) {
    while (history_.size() < n) history_.Append(records_[history_.size()]);
  }
  std::unique_ptr<WatcherCheck> NewCheck(bool prev_kv = true) {
    auto c = std::make_unique<WatcherCheck>(7, &history_, &names_, kFirstRevision, prev_kv);
    c->ExpectCreated(0);
    etcd::WatchResponse created;
    created.created = true;
    c->OnCreated(created);
    return c;
  }
  // The correct response for tick t.
  etcd::WatchResponse Response(int t) const {
    etcd::WatchResponse r;
    const WriteRecord& rec = records_[static_cast<size_t>(t)];
    for (const WriteOp& op : rec.ops) {
      etcd::Event e;
      e.type = op.is_delete ? etcd::Event::Type::kDelete : etcd::Event::Type::kPut;
      e.kv.key = absl::StrCat("/t/k", op.key);
      e.kv.mod_revision = rec.revision;
      if (!op.is_delete) {
        e.kv.value = absl::StrCat(op.value);
        e.kv.version = op.version;
        e.kv.create_revision = op.create_revision;
      }
      if (op.prev_exists) {
        e.has_prev_kv = true;
        e.prev_kv.value = absl::StrCat(op.prev_value);
        e.prev_kv.mod_revision = op.prev_mod_revision;
      }
      r.events.push_back(e);
    }
    return r;
  }
  size_t ticks() const { return records_.size(); }

 private:
  History history_;
  absl::flat_hash_map<std::string, int> names_;
  std::vector<WriteRecord> records_;
};

int64_t Count(const WatcherCheck& c, Property p) { return c.violations()[static_cast<int>(p)]; }

int64_t Total(const WatcherCheck& c) {
  int64_t n = 0;
  for (int64_t v : c.violations()) n += v;
  return n;
}

// Feeds ticks [from, to) as correct responses.
void Feed(const Fixture& f, WatcherCheck* c, int from, int to) {
  for (int t = from; t < to; ++t) c->OnEvents(f.Response(t), 1000 * t + 500);
}

// The plan deletes key 0 on every 4th tick and re-creates it next; prev fields follow.
TEST(WritePlanTest, DeletesAndRecreatesKeyZero) {
  WritePlan plan(2, 4);
  std::vector<std::vector<WriteOp>> all;
  for (int t = 0; t < 6; ++t) {
    auto ops = plan.Ops(t);
    plan.Commit(100 + t, &ops);
    all.push_back(ops);
  }
  EXPECT_FALSE(all[0][0].prev_exists);
  EXPECT_EQ(all[0][0].version, 1);
  EXPECT_EQ(all[0][0].create_revision, 100);
  EXPECT_EQ(all[2][1].version, 3);
  EXPECT_TRUE(all[3][0].is_delete);
  EXPECT_EQ(all[3][0].prev_mod_revision, 102);
  EXPECT_FALSE(all[3][1].is_delete);
  EXPECT_FALSE(all[4][0].prev_exists);  // re-created
  EXPECT_EQ(all[4][0].create_revision, 104);
  EXPECT_EQ(all[5][0].prev_value, 4);
}

// A complete, in-order delivery has no violations and is synced, with one latency per write.
TEST(WatcherCheckTest, CorrectDeliveryPasses) {
  Fixture f(2, 20);
  f.Publish(20);
  auto c = f.NewCheck();
  Feed(f, c.get(), 0, 20);
  c->Drain(true);
  c->Finish();
  EXPECT_EQ(Total(*c), 0) << (c->samples().empty() ? "" : c->samples()[0]);
  EXPECT_EQ(c->last_revision(), kFirstRevision + 19);
  EXPECT_EQ(c->latencies_us().size(), 20u);
}

// Events that arrive before the writer recorded their revision are checked once it has.
TEST(WatcherCheckTest, EventsAheadOfTheWriterRecordWait) {
  Fixture f(1, 10);
  f.Publish(3);
  auto c = f.NewCheck();
  Feed(f, c.get(), 0, 10);
  EXPECT_EQ(c->last_revision(), kFirstRevision + 2);
  f.Publish(10);
  c->Drain(false);
  c->Finish();
  EXPECT_EQ(Total(*c), 0);
  EXPECT_EQ(c->last_revision(), kFirstRevision + 9);
}

// A response lost in the middle is a "reliable" violation naming the missing revisions.
TEST(WatcherCheckTest, DroppedResponseIsReliable) {
  Fixture f(1, 10);
  f.Publish(10);
  auto c = f.NewCheck();
  Feed(f, c.get(), 0, 4);
  Feed(f, c.get(), 5, 10);
  c->Finish();
  EXPECT_EQ(Count(*c, Property::kReliable), 1);
  EXPECT_EQ(Total(*c), 1);
  ASSERT_FALSE(c->samples().empty());
  EXPECT_NE(c->samples()[0].find("reliable: 1 written revision(s) 14..14"), std::string::npos)
      << c->samples()[0];
}

// The same revision twice is "unique"; an older unseen revision after a newer is "ordered".
TEST(WatcherCheckTest, DuplicateIsUniqueAndReorderIsOrdered) {
  Fixture f(1, 10, 0);
  f.Publish(10);
  auto dup = f.NewCheck();
  Feed(f, dup.get(), 0, 5);
  Feed(f, dup.get(), 3, 4);
  Feed(f, dup.get(), 5, 10);
  dup->Finish();
  EXPECT_EQ(Count(*dup, Property::kUnique), 1);
  EXPECT_EQ(Total(*dup), 1);

  auto swap = f.NewCheck();
  Feed(f, swap.get(), 0, 3);
  Feed(f, swap.get(), 4, 5);
  Feed(f, swap.get(), 3, 4);
  Feed(f, swap.get(), 5, 10);
  swap->Finish();
  EXPECT_EQ(Count(*swap, Property::kOrdered), 1);
  // Revision 13 was first skipped: that shows as a gap when 14 arrived.
  EXPECT_EQ(Count(*swap, Property::kReliable), 1);
  EXPECT_EQ(Count(*swap, Property::kUnique), 0);
}

// A revision's events split over two responses is "atomic"; half of them lost is "reliable".
TEST(WatcherCheckTest, SplitRevisionIsAtomic) {
  Fixture f(2, 6, 0);
  f.Publish(6);
  auto c = f.NewCheck();
  Feed(f, c.get(), 0, 2);
  etcd::WatchResponse whole = f.Response(2);
  etcd::WatchResponse first = whole, second = whole;
  first.events.pop_back();
  second.events.erase(second.events.begin());
  c->OnEvents(first, 0);
  c->OnEvents(second, 0);
  Feed(f, c.get(), 3, 6);
  c->Finish();
  EXPECT_EQ(Count(*c, Property::kAtomic), 1);
  EXPECT_EQ(Total(*c), 1);

  auto half = f.NewCheck();
  Feed(f, half.get(), 0, 2);
  half->OnEvents(first, 0);
  Feed(f, half.get(), 3, 6);
  half->Finish();
  EXPECT_EQ(Count(*half, Property::kReliable), 1);
  EXPECT_EQ(Count(*half, Property::kAtomic), 0);
}

// A wrong or missing prev_kv, or one on a created key, is "prev_kv"; without the prev_kv
// option nothing is expected.
TEST(WatcherCheckTest, WrongPrevKvIsReported) {
  Fixture f(1, 8, 4);  // tick 3 deletes, tick 4 re-creates
  f.Publish(8);
  auto c = f.NewCheck();
  Feed(f, c.get(), 0, 1);
  etcd::WatchResponse r1 = f.Response(1);
  r1.events[0].prev_kv.value = "999";
  c->OnEvents(r1, 0);
  etcd::WatchResponse r2 = f.Response(2);
  r2.events[0].has_prev_kv = false;
  c->OnEvents(r2, 0);
  Feed(f, c.get(), 3, 4);
  etcd::WatchResponse r4 = f.Response(4);
  r4.events[0].has_prev_kv = true;
  c->OnEvents(r4, 0);
  Feed(f, c.get(), 5, 8);
  c->Finish();
  EXPECT_EQ(Count(*c, Property::kPrevKv), 3);
  EXPECT_EQ(Total(*c), 3);

  auto no_prev = f.NewCheck(false);
  for (int t = 0; t < 8; ++t) {
    etcd::WatchResponse r = f.Response(t);
    r.events[0].has_prev_kv = false;
    no_prev->OnEvents(r, 0);
  }
  no_prev->Finish();
  EXPECT_EQ(Total(*no_prev), 0);
}

// A wrong version/create_revision, events before "created", or a created with another id is
// "created".
TEST(WatcherCheckTest, CreateFlagsAreChecked) {
  Fixture f(1, 6, 4);
  f.Publish(6);
  auto c = f.NewCheck();
  etcd::WatchResponse r0 = f.Response(0);
  r0.events[0].kv.version = 2;
  c->OnEvents(r0, 0);
  Feed(f, c.get(), 1, 6);
  c->Finish();
  EXPECT_EQ(Count(*c, Property::kCreated), 1);

  EXPECT_EQ(Total(*c), 1);

  auto early = f.NewCheck();
  early->ExpectCreated(1);
  Feed(f, early.get(), 0, 6);  // events of watch 1 before its "created"
  etcd::WatchResponse other;
  other.created = true;
  other.watch_id = 5;
  early->ExpectCreated(1);
  early->OnCreated(other);  // "created" with another id
  early->Finish();
  EXPECT_EQ(Count(*early, Property::kCreated), 2);
  EXPECT_EQ(Total(*early), 2);
}

// After a re-watch the first event must continue at the resume point: a gap or a repeat there
// is "resumable", not "reliable" or "unique".
TEST(WatcherCheckTest, ResumeGapAndRepeatAreResumable) {
  Fixture f(1, 10, 0);
  f.Publish(10);
  auto gap = f.NewCheck();
  Feed(f, gap.get(), 0, 4);
  gap->OnResume(kFirstRevision + 4);
  Feed(f, gap.get(), 6, 10);
  gap->Finish();
  EXPECT_EQ(Count(*gap, Property::kResumable), 1);
  EXPECT_EQ(Total(*gap), 1);

  auto repeat = f.NewCheck();
  Feed(f, repeat.get(), 0, 4);
  repeat->OnResume(kFirstRevision + 4);
  Feed(f, repeat.get(), 3, 10);
  repeat->Finish();
  EXPECT_EQ(Count(*repeat, Property::kResumable), 1);
  EXPECT_EQ(Total(*repeat), 1);

  auto clean = f.NewCheck();
  Feed(f, clean.get(), 0, 4);
  clean->OnResume(kFirstRevision + 4);
  Feed(f, clean.get(), 4, 10);
  clean->Finish();
  EXPECT_EQ(Total(*clean), 0);
}

// A watcher that stops early is "synced" (not "reliable": nothing after the gap arrived).
TEST(WatcherCheckTest, WatcherBehindAtTheEndIsNotSynced) {
  Fixture f(1, 10);
  f.Publish(10);
  auto c = f.NewCheck();
  Feed(f, c.get(), 0, 7);
  c->Drain(true);
  c->Finish();
  EXPECT_EQ(Count(*c, Property::kSynced), 1);
  EXPECT_EQ(Total(*c), 1);
  EXPECT_EQ(c->last_revision(), kFirstRevision + 6);
}

// An event at a revision the writer never wrote is "reliable".
TEST(WatcherCheckTest, UnwrittenRevisionIsReliable) {
  Fixture f(1, 4);
  f.Publish(4);
  auto c = f.NewCheck();
  Feed(f, c.get(), 0, 4);
  etcd::WatchResponse r = f.Response(3);
  r.events[0].kv.mod_revision = 500;
  c->OnEvents(r, 0);
  c->Drain(true);
  c->Finish();
  EXPECT_EQ(Count(*c, Property::kReliable), 1);
}

// The report names each violated property in text and JSON and fails.
TEST(ReportTest, NamesViolatedProperties) {
  Report r;
  r.total_tasks = 3;
  r.failed_tasks = 1;
  r.violations[static_cast<int>(Property::kReliable)] = 2;
  r.samples.push_back("watcher 1: reliable: x");
  std::vector<int32_t> lat = {1000, 2000, 3000};
  SetLatencies(&lat, &r);
  EXPECT_FALSE(r.passed());
  std::string text = RenderText(r);
  EXPECT_NE(text.find("etcdwatch: FAILED"), std::string::npos) << text;
  EXPECT_NE(text.find("reliable   2  VIOLATED"), std::string::npos) << text;
  std::string json = RenderJson(r);
  EXPECT_NE(json.find("\"violated\":[\"reliable\"]"), std::string::npos) << json;
  EXPECT_DOUBLE_EQ(r.latency_max_ms, 3.0);
  EXPECT_DOUBLE_EQ(r.latency_p50_ms, 2.0);
}

}  // namespace
}  // namespace kvsync::watchcheck
