// Small helpers shared by real-server tests: waiting for a condition with a deadline, free
// loopback ports and per-test temporary directories.
//
// Tests never sleep to synchronise; they call WaitFor with the condition they need. All
// functions are thread-safe. FreePort and MakeTempDir treat failure as a broken test
// environment and abort with a message.
#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace kvsync::testing {

// Evaluates `cond` every `poll` until it returns true or `deadline` has passed; returns the
// last result (so a condition that turns true exactly at the deadline still counts).
bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds deadline,
             std::chrono::milliseconds poll = std::chrono::milliseconds(20));

// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released). Never
// returns the same port twice within one process. Another process may still take it before
// the caller binds it; EtcdCluster retries its start when that happens.
int FreePort();

// Creates a fresh directory $TMPDIR/kvsync-<tag>-XXXXXX (or under /tmp) and returns its path.
std::string MakeTempDir(const std::string& tag);

}  // namespace kvsync::testing
