#include "etcd/types.h"

#include "etcd/client.h"
#include "gtest/gtest.h"

namespace kvsync::etcd {
namespace {

// A compacted error is recognisable and carries its compact revision.
TEST(Types, CompactedErrorIsRecognisable) {
  absl::Status s = CompactedError(42, "source watch");
  EXPECT_TRUE(IsCompacted(s));
  EXPECT_EQ(CompactRevision(s), 42);
  EXPECT_FALSE(IsCompacted(absl::OutOfRangeError("future revision")));
}

// Endpoint lists are split on commas with blanks dropped.
TEST(Types, SplitEndpointsTrims) {
  auto eps = SplitEndpoints(" 127.0.0.1:1, https://h:2 ,,");
  ASSERT_EQ(eps.size(), 2u);
  EXPECT_EQ(eps[0], "127.0.0.1:1");
  EXPECT_EQ(eps[1], "https://h:2");
}

// Options validation gives one clear message per mistake.
TEST(Types, ValidateClientOptionsRejectsMistakes) {
  ClientOptions o;
  o.name = "source";
  EXPECT_EQ(ValidateClientOptions(o).message(), "source endpoints are empty");
  o.endpoints = {"localhost"};
  EXPECT_FALSE(ValidateClientOptions(o).ok());
  o.endpoints = {"localhost:2379"};
  EXPECT_TRUE(ValidateClientOptions(o).ok());
  o.cert_file = "/nonexistent.pem";
  EXPECT_EQ(ValidateClientOptions(o).message(),
            "source client certificate and key must be given together");
  o.key_file = "/nonexistent.key";
  EXPECT_EQ(ValidateClientOptions(o).message(),
            "source certificate file \"/nonexistent.pem\" cannot be read");
}

}  // namespace
}  // namespace kvsync::etcd
