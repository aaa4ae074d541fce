// Status helpers. Every module boundary returns absl::Status / absl::StatusOr<T>.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SHARDMQ_STATUS_CONCAT_INNER_(a, b) a##b
#define SHARDMQ_STATUS_CONCAT_(a, b) SHARDMQ_STATUS_CONCAT_INNER_(a, b)

// Returns from the current function if `expr` (an absl::Status) is not OK.
#define SHARDMQ_RETURN_IF_ERROR(expr)              \
  do {                                             \
    ::absl::Status shardmq_status_ = (expr);       \
    if (!shardmq_status_.ok()) return shardmq_status_; \
  } while (0)

// `lhs = value of expr` (an absl::StatusOr<T>), or returns its error.
#define SHARDMQ_ASSIGN_OR_RETURN(lhs, expr) \
  SHARDMQ_ASSIGN_OR_RETURN_IMPL_(SHARDMQ_STATUS_CONCAT_(shardmq_statusor_, __LINE__), lhs, expr)
#define SHARDMQ_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return tmp.status();                  \
  lhs = std::move(tmp).value()
