// Conversions from the C client's structs, shared by session.cc and walk.cc only (the C types
// never leave src/zk). Pure functions; any thread.
#pragma once

#include <zookeeper/zookeeper.h>

#include "zk/session.h"

namespace kvsync::zk {

// Copies the fields kvsync uses; a null `stat` gives a zero Stat.
Stat ConvertStat(const struct ::Stat* stat);

}  // namespace kvsync::zk
