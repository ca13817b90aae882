// Helpers around the C client shared by session.cc and walk.cc only (the C types never leave
// src/zk): struct conversions (pure functions, any thread) and the request lock.
#pragma once

#include <zookeeper/zookeeper.h>

#include "absl/synchronization/mutex.h"
#include "zk/session.h"

namespace kvsync::zk {

// Copies the fields kvsync uses; a null `stat` gives a zero Stat.
Stat ConvertStat(const struct ::Stat* stat);

// Held around every zoo_a* request call. The st client numbers requests with a plain
// process-wide static counter (get_xid), and each Session calls it from its own loop thread.
// Innermost lock: never held while a callback runs (zoo_a* calls only queue the request and
// attempt a non-blocking send; completions run inside zookeeper_interest/_process/_close).
// zookeeper_close is not covered (it runs callbacks); its one unlocked xid can at worst repeat
// another session's number, which neither client nor server checks across connections.
absl::Mutex& RequestMutex();

}  // namespace kvsync::zk
