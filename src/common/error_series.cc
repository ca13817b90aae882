#include "common/error_series.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/str_cat.h"

namespace kvsync::common {
namespace {
constexpr size_t kMaxKinds = 16;
constexpr size_t kKindChars = 120;
}  // namespace

bool ErrorSeries::IsNew(const absl::Status& status) {
  std::string kind = absl::StrCat(static_cast<int>(status.code()), ":");
  for (char c : status.message()) {
    if (kind.size() >= kKindChars) break;
    if (!std::isdigit(static_cast<unsigned char>(c))) kind.push_back(c);
  }
  if (std::find(kinds_.begin(), kinds_.end(), kind) != kinds_.end()) return false;
  if (kinds_.size() == kMaxKinds) kinds_.erase(kinds_.begin());
  kinds_.push_back(std::move(kind));
  return true;
}

}  // namespace kvsync::common
