// Turns libtorch (and other C++) exceptions into absl statuses at module boundaries, with context.
#pragma once

#include <exception>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <c10/util/Exception.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace monologue {
namespace internal {
template <typename R>
struct GuardedResult {
  using type = absl::StatusOr<R>;
};
template <>
struct GuardedResult<void> {
  using type = absl::Status;
};
template <>
struct GuardedResult<absl::Status> {
  using type = absl::Status;
};
template <typename T>
struct GuardedResult<absl::StatusOr<T>> {
  using type = absl::StatusOr<T>;
};
}  // namespace internal

// (`std::string(context)`: Debian's Abseil has its own absl::string_view, so std::string_view does not
// convert to StrCat's arguments.)
// Runs `fn` and converts any exception into an INTERNAL status prefixed with `context` (for example
// "mimi encode"). `fn` may return void, absl::Status, T or absl::StatusOr<T>; the result is
// absl::Status for the first two and absl::StatusOr<T> otherwise.
template <typename Fn>
auto GuardTorch(std::string_view context, Fn&& fn) ->
    typename internal::GuardedResult<std::invoke_result_t<Fn>>::type {
  using R = std::invoke_result_t<Fn>;
  try {
    if constexpr (std::is_void_v<R>) {
      std::forward<Fn>(fn)();
      return absl::OkStatus();
    } else {
      return std::forward<Fn>(fn)();
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(std::string(context), ": ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(std::string(context), ": ", e.what()));
  }
}

}  // namespace monologue
