// The static files of the web page served at `/` by `serve --http`: embedded into the binary at build time
// (service/http/embed_web.cmake over service/http/web/), or read from `--web-root DIR` when given.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace monologue {

struct EmbeddedWebFile {
  std::string_view path;  // relative to service/http/web, '/'-separated ("index.html", "js/app.js")
  std::string_view bytes;
};

// Every embedded file (generated code).
const std::vector<EmbeddedWebFile>& EmbeddedWebFiles();

struct WebFile {
  std::string bytes;
  std::string content_type;
};

// The file for a request target's path ("/" = "/index.html"): from `web_root` when not empty, else the
// embedded copy. nullopt when there is none, or when the path tries to leave the root ("..").
std::optional<WebFile> FindWebFile(const std::string& web_root, std::string_view target_path);

}  // namespace monologue
