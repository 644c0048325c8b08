#include "service/listen_probe.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "service/metrics.h"

namespace monologue {

absl::Status CheckCanListen(const std::string& address, const std::string& flag) {
  std::string host;
  int port = 0;
  if (absl::Status st = SplitHostPort(address, flag, host, port); !st.ok()) return st;
  if (port == 0) return absl::OkStatus();  // any free port
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found);
      rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", address, ": cannot resolve '", host, "' (", gai_strerror(rc), ")"));
  }
  std::string why;
  bool any = false;
  for (const addrinfo* a = found; a != nullptr && !any; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      if (why.empty()) why = std::strerror(errno);
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0) {
      any = true;
    } else if (why.empty()) {
      why = std::strerror(errno);
    }
    close(fd);
  }
  freeaddrinfo(found);
  if (any) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(flag, " ", address, ": cannot listen there: ", why,
                                             why == std::strerror(EADDRINUSE) ? " (another server has it?)"
                                             : why == std::strerror(EADDRNOTAVAIL)
                                                 ? " (not an address of this machine)"
                                                 : ""));
}

}  // namespace monologue
