// ThreadSanitizer annotations for Debian's abseil synchronization library; linked only into
// executables of the TSan build (KVSYNC_SANITIZE=thread, see cmake/kvsync.cmake).
//
// Debian's libabsl_synchronization.so is compiled without -fsanitize=thread, so the
// __tsan_mutex_* calls abseil makes when it is itself built with TSan are missing: TSan never
// learns that absl::Mutex orders anything and reports every ABSL_GUARDED_BY member as a race.
// This file defines the public entry points of absl::Mutex and absl::CondVar in the executable,
// which the dynamic linker prefers over the shared library's (for calls from our code, gRPC and
// abseil itself), reports each lock, unlock and wait to TSan the way abseil's own annotations do,
// and calls the library's function, found with dlsym(RTLD_NEXT, <its mangled name>).
//
// Between __tsan_mutex_pre_* and __tsan_mutex_post_* TSan ignores the thread's memory accesses:
// that covers absl::Condition functions, which abseil may evaluate on another thread while it
// unlocks. BlockingCounter and Barrier need no entry here: the library implements them with the
// functions below, and its own calls to them go through the PLT. absl::Notification does too, but
// its fast path is a bare atomic flag: Notify and WaitForNotification* are annotated as a
// release and an acquire of that flag, which is also what the inline HasBeenNotified() loads.
// absl::Status counts references inline but drops them in the library, which deletes the shared
// representation on the last one; each drop is annotated as a release and an acquire of it, so
// the delete happens after every other thread's use.

#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/base/options.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

#if !defined(__SANITIZE_THREAD__) && !(defined(__has_feature) && __has_feature(thread_sanitizer))
#error "tsan_absl_annotations.cc belongs only in the ThreadSanitizer build"
#endif

static_assert(ABSL_OPTION_USE_INLINE_NAMESPACE == 1,
              "mangled names below assume abseil's inline namespace");

namespace {

#define KVSYNC_TSAN_STR2(x) #x
#define KVSYNC_TSAN_STR(x) KVSYNC_TSAN_STR2(x)

enum class Member { kNonConst, kConst };

// The library's definition of absl::<suffix>: "_ZN" ("_ZNK" for a const member function) "4absl"
// <inline namespace> <suffix>. Parameter types in the suffixes refer to the namespace through
// substitutions (NS0_), so they do not depend on its name.
void* Real(const char* suffix, Member member) {
  const std::string ns = KVSYNC_TSAN_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string name = std::string(member == Member::kConst ? "_ZNK" : "_ZN") + "4absl" +
                           std::to_string(ns.size()) + ns + suffix;
  void* fn = dlsym(RTLD_NEXT, name.c_str());
  if (fn == nullptr) {
    std::fprintf(stderr, "tsan_absl_annotations: %s not found in abseil: %s\n", name.c_str(),
                 dlerror());
    std::abort();
  }
  return fn;
}

template <typename Fn>
Fn Lookup(const char* suffix, Member member = Member::kNonConst) {
  return reinterpret_cast<Fn>(Real(suffix, member));
}

// Mutexes this thread holds in reader mode: waits and unlocks must tell TSan which mode they
// release. A thread holds few locks at once, so a vector is enough.
thread_local std::vector<const absl::Mutex*> reader_held;

unsigned Mode(const absl::Mutex* mu) {
  return std::find(reader_held.begin(), reader_held.end(), mu) != reader_held.end()
             ? __tsan_mutex_read_lock
             : 0;
}

void ForgetReader(const absl::Mutex* mu) {
  auto it = std::find(reader_held.begin(), reader_held.end(), mu);
  if (it != reader_held.end()) reader_held.erase(it);
}

// Abseil's entry points call each other (AwaitWithTimeout may end in AwaitWithDeadline,
// Notification locks its own Mutex): only the outermost call on a thread is annotated.
thread_local int depth = 0;

class Outermost {
 public:
  Outermost() : outermost_(depth++ == 0) {}
  ~Outermost() { --depth; }
  Outermost(const Outermost&) = delete;
  Outermost& operator=(const Outermost&) = delete;
  explicit operator bool() const { return outermost_; }

 private:
  bool outermost_;
};

// What a wrapped void function returns, so that one template serves both kinds.
struct Void {};

// A blocking lock (Lock, ReaderLock, *LockWhen*): `mu` is held on return whatever `call` returns.
template <typename Call>
auto Locking(absl::Mutex* mu, unsigned mode, Call call) {
  Outermost outer;
  if (!outer) return call();
  __tsan_mutex_pre_lock(mu, mode);
  auto result = call();
  __tsan_mutex_post_lock(mu, mode, 0);
  if (mode & __tsan_mutex_read_lock) reader_held.push_back(mu);
  return result;
}

// TryLock, ReaderTryLock: `call` returns whether `mu` is now held.
template <typename Call>
bool TryLocking(absl::Mutex* mu, unsigned mode, Call call) {
  Outermost outer;
  if (!outer) return call();
  __tsan_mutex_pre_lock(mu, mode | __tsan_mutex_try_lock);
  const bool locked = call();
  __tsan_mutex_post_lock(
      mu, mode | __tsan_mutex_try_lock | (locked ? 0 : __tsan_mutex_try_lock_failed), 0);
  if (locked && (mode & __tsan_mutex_read_lock)) reader_held.push_back(mu);
  return locked;
}

// Unlock, ReaderUnlock.
template <typename Call>
void Unlocking(absl::Mutex* mu, unsigned mode, Call call) {
  Outermost outer;
  if (!outer) return call();
  if (mode & __tsan_mutex_read_lock) ForgetReader(mu);
  __tsan_mutex_pre_unlock(mu, mode);
  call();
  __tsan_mutex_post_unlock(mu, mode);
}

// A wait that releases `mu` while it blocks (Await*, CondVar::Wait*) and holds it again on return.
template <typename Call>
auto ReleasedDuring(absl::Mutex* mu, Call call) {
  Outermost outer;
  if (!outer) return call();
  const unsigned mode = Mode(mu);
  __tsan_mutex_pre_unlock(mu, mode);
  auto result = call();
  __tsan_mutex_post_unlock(mu, mode);
  __tsan_mutex_pre_lock(mu, mode);
  __tsan_mutex_post_lock(mu, mode, 0);
  return result;
}

// absl::Notification is { Mutex mutex_; std::atomic<bool> notified_yet_; }; the flag is private.
static_assert(sizeof(absl::Notification) == 2 * sizeof(absl::Mutex),
              "absl::Notification's layout changed: update NotifiedFlag()");
void* NotifiedFlag(const absl::Notification* n) {
  return const_cast<char*>(reinterpret_cast<const char*>(n)) + sizeof(absl::Mutex);
}

// Notify: a release of the flag before the library sets it.
template <typename Call>
void Releasing(void* flag, Call call) {
  Outermost outer;
  if (outer) __tsan_release(flag);
  call();
}

// WaitForNotification*: an acquire of the flag once `call` saw it set.
template <typename Call>
bool Acquiring(void* flag, Call call) {
  Outermost outer;
  const bool notified = call();
  if (outer && notified) __tsan_acquire(flag);
  return notified;
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

Mutex::~Mutex() {
  static auto real = Lookup<void (*)(Mutex*)>("5MutexD1Ev");
  if (Outermost outer; outer) __tsan_mutex_destroy(this, __tsan_mutex_not_static);
  real(this);
}

void Mutex::Lock() {
  static auto real = Lookup<void (*)(Mutex*)>("5Mutex4LockEv");
  Locking(this, 0, [&] { return real(this), Void{}; });
}

void Mutex::ReaderLock() {
  static auto real = Lookup<void (*)(Mutex*)>("5Mutex10ReaderLockEv");
  Locking(this, __tsan_mutex_read_lock, [&] { return real(this), Void{}; });
}

bool Mutex::TryLock() {
  static auto real = Lookup<bool (*)(Mutex*)>("5Mutex7TryLockEv");
  return TryLocking(this, 0, [&] { return real(this); });
}

bool Mutex::ReaderTryLock() {
  static auto real = Lookup<bool (*)(Mutex*)>("5Mutex13ReaderTryLockEv");
  return TryLocking(this, __tsan_mutex_read_lock, [&] { return real(this); });
}

void Mutex::Unlock() {
  static auto real = Lookup<void (*)(Mutex*)>("5Mutex6UnlockEv");
  Unlocking(this, 0, [&] { return real(this); });
}

void Mutex::ReaderUnlock() {
  static auto real = Lookup<void (*)(Mutex*)>("5Mutex12ReaderUnlockEv");
  Unlocking(this, __tsan_mutex_read_lock, [&] { return real(this); });
}

void Mutex::LockWhen(const Condition& cond) {
  static auto real =
      Lookup<void (*)(Mutex*, const Condition&)>("5Mutex8LockWhenERKNS0_9ConditionE");
  Locking(this, 0, [&] { return real(this, cond), Void{}; });
}

void Mutex::ReaderLockWhen(const Condition& cond) {
  static auto real =
      Lookup<void (*)(Mutex*, const Condition&)>("5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  Locking(this, __tsan_mutex_read_lock, [&] { return real(this, cond), Void{}; });
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static auto real = Lookup<bool (*)(Mutex*, const Condition&, Duration)>(
      "5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return Locking(this, 0, [&] { return real(this, cond, timeout); });
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  static auto real = Lookup<bool (*)(Mutex*, const Condition&, Duration)>(
      "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return Locking(this, __tsan_mutex_read_lock, [&] { return real(this, cond, timeout); });
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  static auto real = Lookup<bool (*)(Mutex*, const Condition&, Time)>(
      "5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return Locking(this, 0, [&] { return real(this, cond, deadline); });
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  static auto real = Lookup<bool (*)(Mutex*, const Condition&, Time)>(
      "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return Locking(this, __tsan_mutex_read_lock, [&] { return real(this, cond, deadline); });
}

void Mutex::Await(const Condition& cond) {
  static auto real = Lookup<void (*)(Mutex*, const Condition&)>("5Mutex5AwaitERKNS0_9ConditionE");
  ReleasedDuring(this, [&] { return real(this, cond), Void{}; });
}

bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  static auto real = Lookup<bool (*)(Mutex*, const Condition&, Duration)>(
      "5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return ReleasedDuring(this, [&] { return real(this, cond, timeout); });
}

bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  static auto real = Lookup<bool (*)(Mutex*, const Condition&, Time)>(
      "5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return ReleasedDuring(this, [&] { return real(this, cond, deadline); });
}

void CondVar::Wait(Mutex* mu) {
  static auto real = Lookup<void (*)(CondVar*, Mutex*)>("7CondVar4WaitEPNS0_5MutexE");
  ReleasedDuring(mu, [&] { return real(this, mu), Void{}; });
}

bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  static auto real = Lookup<bool (*)(CondVar*, Mutex*, Duration)>(
      "7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  return ReleasedDuring(mu, [&] { return real(this, mu, timeout); });
}

bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  static auto real =
      Lookup<bool (*)(CondVar*, Mutex*, Time)>("7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  return ReleasedDuring(mu, [&] { return real(this, mu, deadline); });
}

void Notification::Notify() {
  static auto real = Lookup<void (*)(Notification*)>("12Notification6NotifyEv");
  Releasing(NotifiedFlag(this), [&] { real(this); });
}

void Notification::WaitForNotification() const {
  static auto real = Lookup<void (*)(const Notification*)>("12Notification19WaitForNotificationEv",
                                                           Member::kConst);
  Acquiring(NotifiedFlag(this), [&] { return real(this), true; });
}

bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  static auto real = Lookup<bool (*)(const Notification*, Duration)>(
      "12Notification30WaitForNotificationWithTimeoutENS0_8DurationE", Member::kConst);
  return Acquiring(NotifiedFlag(this), [&] { return real(this, timeout); });
}

bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  static auto real = Lookup<bool (*)(const Notification*, Time)>(
      "12Notification31WaitForNotificationWithDeadlineENS0_4TimeE", Member::kConst);
  return Acquiring(NotifiedFlag(this), [&] { return real(this, deadline); });
}

void Status::UnrefNonInlined(uintptr_t rep) {
  static auto real = Lookup<void (*)(uintptr_t)>("6Status15UnrefNonInlinedEm");
  if (Outermost outer; outer) {
    void* shared = reinterpret_cast<void*>(rep);
    __tsan_release(shared);
    __tsan_acquire(shared);
  }
  real(rep);
}

ABSL_NAMESPACE_END
}  // namespace absl
