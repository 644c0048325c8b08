// Early-return helpers for absl::Status / absl::StatusOr, used across every module boundary.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define MONOLOGUE_STATUS_CONCAT_INNER(a, b) a##b
#define MONOLOGUE_STATUS_CONCAT(a, b) MONOLOGUE_STATUS_CONCAT_INNER(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define RETURN_IF_ERROR(expr)                                \
  do {                                                       \
    if (absl::Status _status = (expr); !_status.ok()) {      \
      return _status;                                        \
    }                                                        \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, MakeX());` binds the value or returns the error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  MONOLOGUE_ASSIGN_OR_RETURN_IMPL(MONOLOGUE_STATUS_CONCAT(_statusor_, __LINE__), lhs, expr)
#define MONOLOGUE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                    \
  if (!tmp.ok()) return std::move(tmp).status();        \
  lhs = std::move(tmp).value()
