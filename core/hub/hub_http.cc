// The Hub's HTTP side over libcurl (hub_http.h): HEAD for a file's metadata, resumable GET with progress.
#include "core/hub/hub_http.h"

#ifdef MONOLOGUE_HAVE_CURL

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace monologue::hub::internal {

namespace fs = std::filesystem;

std::string HumanBytes(double bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  int u = 0;
  while (bytes >= 1000 && u < 4) {
    bytes /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

void GlobalInit() {
  static const bool done = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();
  (void)done;
}

namespace {

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names; the last response's only
  std::string body;                            // error bodies (small)
  std::string effective_url;
};

std::string Header(const HttpResponse& r, const std::string& name) {
  auto it = r.headers.find(name);
  return it == r.headers.end() ? std::string() : it->second;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<HttpResponse*>(user);
  std::string line(data, size * n);
  if (absl::StartsWith(line, "HTTP/")) {
    r->headers.clear();  // a new response (redirect or 100-continue)
  } else if (size_t colon = line.find(':'); colon != std::string::npos) {
    r->headers[absl::AsciiStrToLower(line.substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return size * n;
}

size_t OnSmallBody(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<HttpResponse*>(user);
  if (r->body.size() < 4096) r->body.append(data, std::min<size_t>(size * n, 4096 - r->body.size()));
  return size * n;
}

struct CurlHandle {
  CURL* curl = curl_easy_init();
  curl_slist* headers = nullptr;
  ~CurlHandle() {
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
  }
};

void CommonSetup(CurlHandle& h, const HubOptions& o, const std::string& url, HttpResponse* response) {
  curl_easy_setopt(h.curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h.curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h.curl, CURLOPT_CONNECTTIMEOUT, o.connect_timeout_s);
  curl_easy_setopt(h.curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h.curl, CURLOPT_LOW_SPEED_TIME, o.stall_timeout_s);
  curl_easy_setopt(h.curl, CURLOPT_USERAGENT, "monologue/0.1; hf_hub-compatible");
  curl_easy_setopt(h.curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(h.curl, CURLOPT_HEADERDATA, response);
  h.headers = curl_slist_append(h.headers, "Accept-Encoding: identity");
  // libcurl sends a custom Authorization header to the first host only: never to a CDN it is redirected to.
  if (!o.token.empty())
    h.headers = curl_slist_append(h.headers, ("Authorization: Bearer " + o.token).c_str());
}

std::string UrlEncodePath(const std::string& s, bool keep_slash) {
  std::string out;
  static const char* kHex = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

absl::Status NetworkError(const HubOptions& o, const std::string& what, CURLcode code, const char* detail) {
  return absl::UnavailableError(absl::StrCat(
      "cannot reach the Hugging Face Hub at ", o.endpoint, " (", what, ": ",
      *detail ? detail : curl_easy_strerror(code),
      "); check the network connection or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only the local cache"));
}

// The Hub's error for a non-2xx/3xx answer, as one sentence.
absl::Status HubError(const HubOptions& o, const HttpResponse& r, const std::string& repo,
                      const std::string& filename, const std::string& revision) {
  const std::string code = Header(r, "x-error-code");
  const std::string page = absl::StrCat(o.endpoint, "/", repo);
  if (code == "GatedRepo" || (r.status == 403 && code.empty())) {
    return absl::PermissionDeniedError(
        absl::StrCat(repo, " is a gated repository and ",
                     o.token.empty() ? "no Hugging Face token is set"
                                     : "the Hugging Face token in use has no access to it",
                     ": log in at ", page, " and accept its conditions, create a read token at ",
                     "https://huggingface.co/settings/tokens, then set HF_TOKEN=<token> (or run "
                     "`huggingface-cli login`)"));
  }
  if (code == "RepoNotFound" || (r.status == 401 && code.empty())) {
    return absl::NotFoundError(absl::StrCat(
        "repository ", repo, " was not found on ", o.endpoint,
        o.token.empty() ? " (check the name; if it is private, set HF_TOKEN to a token that can read it)"
                        : " (check the name and that your HF_TOKEN can read it)"));
  }
  if (code == "RevisionNotFound") {
    return absl::NotFoundError(absl::StrCat(repo, " has no revision '", revision, "' (check --revision)"));
  }
  if (code == "EntryNotFound" || r.status == 404) {
    return absl::NotFoundError(
        absl::StrCat(repo, " has no file '", filename, "' at revision '", revision, "'"));
  }
  return absl::UnavailableError(absl::StrCat("the Hugging Face Hub at ", o.endpoint, " answered HTTP ",
                                             r.status, " for ", repo, "/", filename, "; try again later"));
}

struct Transfer {
  std::FILE* out = nullptr;
  int write_errno = 0;
  int64_t offset = 0;    // bytes already in the file when the request started
  int64_t received = 0;  // bytes written by this request
  int64_t total = -1;
  bool progress = false;
  std::string label;
  std::chrono::steady_clock::time_point start, last_print;
  HttpResponse* response = nullptr;
  long status = 0;
  bool refused_body = false;  // a non-2xx body or a 200 answer to a Range request: not written
  bool range_ignored = false;
};

void PrintProgress(Transfer& t, bool final) {
  const auto now = std::chrono::steady_clock::now();
  if (!final && now - t.last_print < std::chrono::milliseconds(200)) return;
  t.last_print = now;
  const double secs = std::chrono::duration<double>(now - t.start).count();
  const int64_t done = t.offset + t.received;
  const double rate = secs > 0 ? t.received / secs : 0;
  std::string bar;
  if (t.total > 0) {
    const int width = 24;
    const int filled = static_cast<int>(width * std::min<double>(1.0, double(done) / t.total));
    bar = absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, '.'), "] ",
                       static_cast<int>(100.0 * done / t.total), "% ", HumanBytes(done), "/",
                       HumanBytes(t.total));
  } else {
    bar = HumanBytes(done);
  }
  std::fprintf(stderr, "\r\033[K%s %s %s/s%s", t.label.c_str(), bar.c_str(), HumanBytes(rate).c_str(),
               final ? "\n" : "");
  std::fflush(stderr);
}

}  // namespace

absl::StatusOr<RemoteFile> Metadata(const HubOptions& o, const std::string& repo, const std::string& filename,
                                    const std::string& revision) {
  std::string url = absl::StrCat(o.endpoint, "/", repo, "/resolve/", UrlEncodePath(revision, false), "/",
                                 UrlEncodePath(filename, true));
  for (int hop = 0; hop < 10; ++hop) {
    CurlHandle h;
    HttpResponse r;
    CommonSetup(h, o, url, &r);
    curl_easy_setopt(h.curl, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(h.curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h.curl, CURLOPT_TIMEOUT, o.connect_timeout_s + o.stall_timeout_s);
    curl_easy_setopt(h.curl, CURLOPT_HTTPHEADER, h.headers);
    char err[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(h.curl, CURLOPT_ERRORBUFFER, err);
    const CURLcode rc = curl_easy_perform(h.curl);
    if (rc != CURLE_OK) return NetworkError(o, "HEAD " + url, rc, err);
    curl_easy_getinfo(h.curl, CURLINFO_RESPONSE_CODE, &r.status);
    if (r.status >= 300 && r.status < 400) {
      const std::string location = Header(r, "location");
      if (!location.empty() && location.front() == '/') {
        const size_t scheme = url.find("://");
        url = url.substr(0, url.find('/', scheme + 3)) + location;
        continue;
      }
    } else if (r.status >= 400) {
      return HubError(o, r, repo, filename, revision);
    }
    RemoteFile f;
    f.commit = Header(r, "x-repo-commit");
    f.etag = Header(r, "x-linked-etag");
    if (f.etag.empty()) f.etag = Header(r, "etag");
    if (absl::StartsWith(f.etag, "W/")) f.etag = f.etag.substr(2);
    f.etag = std::string(absl::StripPrefix(absl::StripSuffix(f.etag, "\""), "\""));
    std::string size = Header(r, "x-linked-size");
    if (size.empty()) size = Header(r, "content-length");
    if (!size.empty()) f.size = std::strtoll(size.c_str(), nullptr, 10);
    const std::string location = Header(r, "location");
    f.url = (r.status >= 300 && r.status < 400 && !location.empty()) ? location : url;
    if (f.commit.empty() || f.etag.empty()) {
      return absl::UnavailableError(
          absl::StrCat("the server at ", o.endpoint, " sent no ", f.commit.empty() ? "X-Repo-Commit" : "ETag",
                       " header for ", repo, "/", filename, " (is HF_ENDPOINT a Hugging Face Hub?)"));
    }
    if (f.etag.find('/') != std::string::npos || f.etag.find("..") != std::string::npos) {
      return absl::UnavailableError(
          absl::StrCat("the server sent an invalid ETag for ", repo, "/", filename));
    }
    return f;
  }
  return absl::UnavailableError(absl::StrCat("too many redirects for ", repo, "/", filename));
}

absl::Status Fetch(const HubOptions& o, const std::string& url, const fs::path& part,
                   const RemoteFile& remote, const std::string& repo, const std::string& filename) {
  std::error_code ec;
  int64_t offset = fs::exists(part, ec) ? static_cast<int64_t>(fs::file_size(part, ec)) : 0;
  if (remote.size >= 0 && offset > remote.size) offset = 0;  // longer than the file: start over
  std::FILE* out = std::fopen(part.c_str(), offset > 0 ? "ab" : "wb");
  if (out == nullptr) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot write ", part.string(), ": ", std::strerror(errno)));
  }
  CurlHandle h;
  HttpResponse r;
  CommonSetup(h, o, url, &r);
  if (offset > 0)
    h.headers = curl_slist_append(h.headers, absl::StrCat("Range: bytes=", offset, "-").c_str());
  curl_easy_setopt(h.curl, CURLOPT_HTTPHEADER, h.headers);
  curl_easy_setopt(h.curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(h.curl, CURLOPT_MAXREDIRS, 10L);
  Transfer t;
  t.out = out;
  t.offset = offset;
  t.total = remote.size;
  t.progress = o.progress;
  t.label = filename;
  t.start = t.last_print = std::chrono::steady_clock::now();
  t.response = &r;
  // The status is known once the headers are in: decide there whether the body goes to the file.
  struct HeaderCtx {
    Transfer* t;
    HttpResponse* r;
  } ctx{&t, &r};
  curl_easy_setopt(h.curl, CURLOPT_HEADERDATA, &ctx);
  curl_easy_setopt(
      h.curl, CURLOPT_HEADERFUNCTION, +[](char* data, size_t size, size_t n, void* user) -> size_t {
        auto* c = static_cast<HeaderCtx*>(user);
        std::string line(data, size * n);
        if (absl::StartsWith(line, "HTTP/")) {
          std::vector<std::string> parts = absl::StrSplit(line, ' ');
          c->t->status = parts.size() > 1 ? std::strtol(parts[1].c_str(), nullptr, 10) : 0;
          const bool redirect = c->t->status >= 300 && c->t->status < 400;
          c->t->refused_body = !redirect && !(c->t->status == 200 || c->t->status == 206);
          if (c->t->status == 200 && c->t->offset > 0) c->t->range_ignored = true;
        }
        return OnHeader(data, size, n, c->r);
      });
  curl_easy_setopt(
      h.curl, CURLOPT_WRITEFUNCTION, +[](char* data, size_t size, size_t n, void* user) -> size_t {
        auto* t = static_cast<Transfer*>(user);
        if (t->range_ignored) {
          // The server sent the whole file rather than the range: start the part file over.
          if (std::fflush(t->out) != 0 || ::ftruncate(::fileno(t->out), 0) != 0 ||
              std::fseek(t->out, 0, SEEK_SET) != 0) {
            t->write_errno = errno;
            return 0;
          }
          t->offset = 0;
          t->range_ignored = false;
        }
        const size_t bytes = size * n;
        if (t->refused_body) return OnSmallBody(data, size, n, t->response);
        if (std::fwrite(data, 1, bytes, t->out) != bytes) {
          t->write_errno = errno;
          return 0;
        }
        t->received += static_cast<int64_t>(bytes);
        if (t->progress) PrintProgress(*t, false);
        return bytes;
      });
  curl_easy_setopt(h.curl, CURLOPT_WRITEDATA, &t);
  char err[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(h.curl, CURLOPT_ERRORBUFFER, err);
  const CURLcode rc = curl_easy_perform(h.curl);
  curl_easy_getinfo(h.curl, CURLINFO_RESPONSE_CODE, &r.status);
  if (std::fflush(out) != 0 && t.write_errno == 0) t.write_errno = errno;
  if (::fsync(::fileno(out)) != 0 && t.write_errno == 0 && errno != EINVAL) t.write_errno = errno;
  if (std::fclose(out) != 0 && t.write_errno == 0) t.write_errno = errno;
  if (t.progress && t.received > 0) PrintProgress(t, true);
  if (t.write_errno != 0) {
    if (t.write_errno == ENOSPC || t.write_errno == EDQUOT) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the disk is full: cannot write ", part.string(), " (", repo, "/", filename, " needs ",
                       remote.size >= 0 ? HumanBytes(remote.size) : std::string("more space"),
                       "); free some space or point HF_HUB_CACHE elsewhere, then run again to resume"));
    }
    return absl::InternalError(
        absl::StrCat("cannot write ", part.string(), ": ", std::strerror(t.write_errno)));
  }
  if (r.status == 416 && offset > 0) {
    fs::remove(part, ec);  // the range is past the end: the part file is not a prefix of this file
    return absl::DataLossError("range not satisfiable");
  }
  if (r.status >= 400) return HubError(o, r, repo, filename, "");
  if (rc != CURLE_OK) {
    const int64_t have = t.offset + t.received;
    return absl::UnavailableError(
        absl::StrCat("the download of ", repo, "/", filename, " was interrupted after ", HumanBytes(have),
                     remote.size >= 0 ? absl::StrCat(" of ", HumanBytes(remote.size)) : std::string(), " (",
                     *err ? err : curl_easy_strerror(rc), "); run the same command again to resume it"));
  }
  return absl::OkStatus();
}

}  // namespace monologue::hub::internal

#endif  // MONOLOGUE_HAVE_CURL
