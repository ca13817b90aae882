#include <chrono>

#include "common/backoff.h"
#include "common/strings.h"
#include "gtest/gtest.h"

namespace kvsync::common {
namespace {

// PrefixEnd increments the last byte that can be incremented, as etcdctl --prefix does.
TEST(PrefixEnd, IncrementsLastByteAndDropsTrailingFF) {
  EXPECT_EQ(PrefixEnd("/a/"), "/a0");
  EXPECT_EQ(PrefixEnd(std::string("a\xff", 2)), "b");
  EXPECT_EQ(PrefixEnd(""), std::string(1, '\0'));
  EXPECT_EQ(PrefixEnd(std::string("\xff\xff", 2)), std::string(1, '\0'));
}

// Backoff grows, stays within [d/2, d] and never exceeds the cap.
TEST(Backoff, GrowsAndIsCapped) {
  Backoff b(std::chrono::milliseconds(100), std::chrono::milliseconds(1000));
  auto first = b.Next();
  EXPECT_GE(first.count(), 50);
  EXPECT_LE(first.count(), 100);
  for (int i = 0; i < 40; ++i) {
    auto d = b.Next();
    EXPECT_LE(d.count(), 1000);
  }
  auto late = b.Next();
  EXPECT_GE(late.count(), 500);
  b.Reset();
  EXPECT_LE(b.Next().count(), 100);
}

// Non-printable bytes are escaped so that a log line stays one line.
TEST(PrintableKey, EscapesControlBytes) {
  EXPECT_EQ(PrintableKey(std::string("a\nb", 3)), "a\\x0ab");
}

}  // namespace
}  // namespace kvsync::common
