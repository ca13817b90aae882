#include "runtime/thread.h"

#include <pthread.h>

#include <utility>

namespace kvsync::runtime {

Thread::Thread(std::string name, std::function<void()> body) {
  thread_ = std::thread([name = std::move(name), body = std::move(body)] {
    // Linux allows 15 characters and a terminating NUL.
    pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
    body();
  });
}

}  // namespace kvsync::runtime
