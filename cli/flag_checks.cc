#include "cli/flag_checks.h"

#include <cmath>
#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace monologue::cli {

CLI::Validator FiniteAtLeast(double min) {
  const std::string rule = absl::StrCat("a finite number >= ", min);
  return CLI::Validator(
      [rule, min](std::string& text) -> std::string {
        double value = 0;
        if (!absl::SimpleAtod(text, &value) || !std::isfinite(value) || value < min) {
          return absl::StrCat("must be ", rule, ", got ", text);
        }
        return std::string();
      },
      "NUMBER >= " + absl::StrCat(min));
}

CLI::Validator FiniteInRange(double min, double max) {
  const std::string rule = absl::StrCat("a finite number from ", min, " to ", max);
  return CLI::Validator(
      [rule, min, max](std::string& text) -> std::string {
        double value = 0;
        if (!absl::SimpleAtod(text, &value) || !std::isfinite(value) || value < min || value > max) {
          return absl::StrCat("must be ", rule, ", got ", text);
        }
        return std::string();
      },
      absl::StrCat("NUMBER in [", min, ", ", max, "]"));
}

CLI::Validator WholeAtLeast(int64_t min) {
  const std::string rule = absl::StrCat("a whole number >= ", min);
  return CLI::Validator(
      [rule, min](std::string& text) -> std::string {
        int64_t value = 0;
        if (!absl::SimpleAtoi(text, &value) || value < min)
          return absl::StrCat("must be ", rule, ", got ", text);
        return std::string();
      },
      "INT >= " + absl::StrCat(min));
}

CLI::Validator Seed() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        uint64_t value = 0;
        if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos ||
            !absl::SimpleAtoi(text, &value)) {
          return absl::StrCat("must be a whole number from 0 to 18446744073709551615, got ", text);
        }
        return std::string();
      },
      "UINT64");
}

CLI::Validator ServerAddress() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        const size_t colon = text.rfind(':');
        int64_t port = 0;
        if (colon == std::string::npos || colon == 0 || !absl::SimpleAtoi(text.substr(colon + 1), &port) ||
            text.substr(colon + 1).find_first_not_of("0123456789") != std::string::npos || port < 1 ||
            port > 65535) {
          return absl::StrCat("must be HOST:PORT with a port from 1 to 65535 (e.g. 127.0.0.1:50051), got '",
                              text, "'");
        }
        return std::string();
      },
      "HOST:PORT");
}

std::string LocalFlagGivenWithServer(const CLI::App& cmd, std::initializer_list<const char*> local_flags) {
  for (const char* flag : local_flags) {
    const CLI::Option* option = cmd.get_option_no_throw(flag);
    if (option != nullptr && option->count() > 0) {
      return absl::StrCat(
          flag, " goes with a local model: with --server the model and its settings are the server's");
    }
  }
  return "";
}

CLI::Validator ThreadCount() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        int64_t value = 0;
        if (!absl::SimpleAtoi(text, &value) || value < 0 || value > kMaxThreads) {
          return absl::StrCat("must be a whole number from 0 (libtorch's choice: one per core) to ",
                              kMaxThreads, ", got ", text);
        }
        return std::string();
      },
      absl::StrCat("0..", kMaxThreads));
}

}  // namespace monologue::cli
