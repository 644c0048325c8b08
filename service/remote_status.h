// A gRPC status from a server, as the CLI's clients report it: "server ADDR: <message>". Some statuses come
// from gRPC itself with no message (UNIMPLEMENTED from a server that does not host the service: one started
// for another mode); those say what they mean instead of ending in "server ADDR: ".
#pragma once

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace monologue {

inline absl::Status RemoteStatus(const grpc::Status& status, const std::string& server, const char* service,
                                 const char* serve_flag) {
  std::string message = status.error_message();
  if (message.empty()) {
    message = status.error_code() == grpc::StatusCode::UNIMPLEMENTED
                  ? absl::StrCat("it does not serve ", service, " (a `monologue serve` started without ",
                                 serve_flag, "?)")
                  : absl::StrCat("gRPC status ", static_cast<int>(status.error_code()), " with no message");
  }
  return absl::Status(static_cast<absl::StatusCode>(static_cast<int>(status.error_code())),
                      absl::StrCat("server ", server, ": ", message));
}

}  // namespace monologue
