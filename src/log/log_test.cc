#include "log/log.h"

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kvsync::log {
namespace {

// A JSON line parses back with every field typed as given, and quotes in values are escaped.
TEST(Log, JsonLineRoundTrips) {
  std::string line = Render(Format::kJson, Level::kWarn, "mirror", "split oversized revision",
                            {{"rev", int64_t{42}}, {"key", "a\"b"}, {"ok", true}});
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["level"], "warn");
  EXPECT_EQ(j["component"], "mirror");
  EXPECT_EQ(j["msg"], "split oversized revision");
  EXPECT_EQ(j["rev"], 42);
  EXPECT_EQ(j["key"], "a\"b");
  EXPECT_EQ(j["ok"], true);
}

// Text lines are single-line key=value pairs.
TEST(Log, TextLineHasKeyValues) {
  std::string line = Render(Format::kText, Level::kInfo, "mirror", "caught up", {{"rev", 7}});
  EXPECT_NE(line.find("caught up rev=7"), std::string::npos);
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

// Unknown levels and formats are configuration errors.
TEST(Log, InitRejectsUnknownLevelAndFormat) {
  EXPECT_FALSE(Init("loud", "json").ok());
  EXPECT_FALSE(Init("info", "xml").ok());
  EXPECT_TRUE(Init("info", "text").ok());
}

}  // namespace
}  // namespace kvsync::log
