#pragma once
namespace monologue {
// The project's version string, e.g. "0.1.0".
const char* Version();
}  // namespace monologue
