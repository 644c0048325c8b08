// Whether a server could listen at HOST:PORT, checked before any model is loaded: a busy or foreign
// address then fails in a moment with the system's reason, not after minutes of loading (a 7B model) and
// behind gRPC's own log lines.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace monologue {

// Binds (SO_REUSEADDR, as the listeners do) every address HOST resolves to at PORT and releases them.
// OK when at least one binds (as gRPC, which listens on those it can) or when PORT is 0; otherwise an
// UNAVAILABLE status that names `flag`, the address and why ("Address already in use", "Cannot assign
// requested address"). A later listener can still lose a race for the port; this catches the usual cases.
absl::Status CheckCanListen(const std::string& address, const std::string& flag);

}  // namespace monologue
