#include "core/util/version.h"
namespace monologue {
const char* Version() { return "0.1.0"; }
}  // namespace monologue
