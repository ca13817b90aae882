// kvsync's error vocabulary beyond the canonical codes: what a status means to the code that
// receives it, recorded once by the code that creates it (a client edge converting a server's
// answer, or the component that refuses to go on), so that no caller ever matches messages.
// Callers use the predicates each edge exports (etcd::IsTransient, etcd::IsCompacted,
// election::IsFenced, zk::IsSessionExpired, ...), which read this. Pure functions, any thread.
//
// The kind travels as a status payload: it survives copies and RETURN_IF_ERROR, not a new
// status built from the message (build a new one with WithKind(…, KindOf(old)) if needed).
//
// Codes keep one meaning each across kvsync:
//   Unavailable, DeadlineExceeded  a server or link failed; retry (transient)
//   InvalidArgument                a flag, file or request is malformed (configuration)
//   PermissionDenied, Unauthenticated  credentials or permissions refused (an operator acts)
//   FailedPrecondition             a refusal to go on that an operator must resolve (a checkpoint
//                                  of another cluster, a deletion guard holding, a value the
//                                  destination can never accept, a watch the server cancelled)
//   Aborted                        a lost race that ends this attempt: fenced, session expired
//   Cancelled                      a stop was requested
//   Internal, Unknown, others      not understood: never retried forever
#pragma once

#include "absl/status/status.h"

namespace kvsync::common {

enum class ErrorKind {
  kNone,             // no kind: the canonical code says everything
  kTransient,        // the same request may succeed later unchanged (set where the code does
                     // not say so, e.g. etcd's ResourceExhausted "too many requests")
  kCompacted,        // etcd: the revision asked for was compacted (slow path)
  kRequestTooLarge,  // etcd: over the server's --max-request-bytes or --max-txn-ops
  kWatchCanceled,    // etcd: the server cancelled a watch for a reason other than compaction
  kNoLeader,         // etcd election: nobody leads (not an error for a reader)
  kFenced,           // a write's fence compare failed: this replica no longer leads
  kSessionExpired,   // ZooKeeper: the session is dead for good; open a new one and resync
  kOutOfOrder,       // a chained write (sink::CommitPipeline) reached the destination before
                     // the write it follows: nothing was written, send it again in order
  kLeaseExists,      // etcd: a lease with the requested ID already exists
  kLeaseNotFound,    // etcd: a put or revoke named a lease the cluster does not have
};

// `status` with `kind` attached (an OK status stays OK).
absl::Status WithKind(absl::Status status, ErrorKind kind);
ErrorKind KindOf(const absl::Status& status);
const char* ErrorKindName(ErrorKind kind);

// The retry rule every client edge shares: true for a status marked kTransient, and for an
// unmarked Unavailable or DeadlineExceeded. False for everything else, so an error nobody
// classified (Internal, Unknown, an unknown ZooKeeper code) is never retried forever.
bool IsTransient(const absl::Status& status);

}  // namespace kvsync::common
