// The one way kvsync starts a thread: a named, joinable thread. The name (at most 15
// characters, as Linux allows) shows in `top -H`, gdb and sanitizer reports, so every thread of
// a running process says which component owns it. Each component's header names its threads.
//
// Thread-safety: a Thread object is owned by one thread (the one that started it); Join() and
// the destructor (which joins) must not be called from the thread itself.
#pragma once

#include <functional>
#include <string>
#include <thread>

namespace kvsync::runtime {

class Thread {
 public:
  Thread() = default;
  Thread(std::string name, std::function<void()> body);
  ~Thread() { Join(); }
  Thread(Thread&&) = default;
  Thread& operator=(Thread&& other) noexcept {
    Join();
    thread_ = std::move(other.thread_);
    return *this;
  }

  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  // Lets the thread run on unjoined: only for a thread that lives as long as the process
  // (the signal-waiting thread).
  void Detach() { thread_.detach(); }
  bool joinable() const { return thread_.joinable(); }
  std::thread::id id() const { return thread_.get_id(); }

 private:
  std::thread thread_;
};

}  // namespace kvsync::runtime
