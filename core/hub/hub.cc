#include "core/hub/hub.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/hub/sha256.h"
#include "nlohmann/json.hpp"

#ifdef MONOLOGUE_HAVE_CURL
#include <curl/curl.h>
#endif

namespace monologue::hub {
namespace {

namespace fs = std::filesystem;

constexpr char kCacheOnlyPayload[] = "monologue.hub/cache-only";

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

bool EnvTrue(const char* name) {
  const std::string v = absl::AsciiStrToUpper(Env(name));
  return v == "1" || v == "ON" || v == "YES" || v == "TRUE";
}

// A name no other process or thread uses at the same time, for temporary files renamed into place.
std::string UniqueSuffix() {
  static std::atomic<uint64_t> counter{0};
  return absl::StrCat(".tmp", ::getpid(), "-", counter.fetch_add(1));
}

absl::Status CacheOnlyMiss(absl::Status status) {
  status.SetPayload(kCacheOnlyPayload, absl::Cord("1"));
  return status;
}

bool IsCommitHash(const std::string& s) {
  return s.size() == 40 && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(c) != 0; });
}

bool IsSha256(const std::string& s) {
  return s.size() == 64 &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(c) || (c >= 'a' && c <= 'f'); });
}

std::string ReadFirstLine(const fs::path& path) {
  std::ifstream in(path);
  std::string line;
  if (in) std::getline(in, line);
  return std::string(absl::StripAsciiWhitespace(line));
}

absl::Status ValidateFilename(const std::string& filename) {
  if (filename.empty() || filename.front() == '/' || absl::StrContains(filename, "\\")) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid file name '", filename, "' in a Hugging Face repo"));
  }
  for (absl::string_view part : absl::StrSplit(filename, '/')) {
    if (part.empty() || part == "." || part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid file name '", filename, "' in a Hugging Face repo"));
    }
  }
  return absl::OkStatus();
}

// Writes `text` to `path` through a temporary file and a rename (readers never see a partial ref).
absl::Status WriteFileAtomically(const fs::path& path, const std::string& text) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  const fs::path tmp = path.string() + UniqueSuffix();
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) return absl::ResourceExhaustedError(absl::StrCat("cannot write ", tmp.string()));
  }
  fs::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot rename ", tmp.string(), ": ", ec.message()));
  return absl::OkStatus();
}

// snapshots/<commit>/<filename> -> ../../blobs/<etag> (one more ../ per folder in filename), as
// huggingface_hub links them.
absl::Status LinkIntoSnapshot(const fs::path& repo_dir, const std::string& commit,
                              const std::string& filename, const std::string& etag) {
  const fs::path pointer = repo_dir / "snapshots" / commit / filename;
  std::error_code ec;
  fs::create_directories(pointer.parent_path(), ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create ", pointer.parent_path().string(), ": ", ec.message()));
  }
  std::string target;
  for (size_t i = 0, n = std::count(filename.begin(), filename.end(), '/') + 2; i < n; ++i) target += "../";
  target += "blobs/" + etag;
  const fs::path tmp = pointer.string() + UniqueSuffix();
  fs::remove(tmp, ec);
  fs::create_symlink(target, tmp, ec);
  if (!ec) fs::rename(tmp, pointer, ec);
  if (ec) {
    // A file system without symlinks: huggingface_hub copies the blob then.
    fs::remove(tmp, ec);
    fs::copy_file(repo_dir / "blobs" / etag, pointer, fs::copy_options::overwrite_existing, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot create ", pointer.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

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

// A blocking exclusive lock on .locks/models--X--Y/<etag>.lock (fcntl/flock, as huggingface_hub's
// filelock), released on destruction.
class FileLock {
 public:
  static absl::StatusOr<std::unique_ptr<FileLock>> Acquire(const fs::path& path, bool progress) {
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot create the lock file ", path.string(), ": ", std::strerror(errno)));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (progress)
        std::fprintf(stderr, "waiting for another process downloading the same file (%s)\n", path.c_str());
      if (::flock(fd, LOCK_EX) != 0) {
        ::close(fd);
        return absl::InternalError(absl::StrCat("cannot lock ", path.string(), ": ", std::strerror(errno)));
      }
    }
    return std::unique_ptr<FileLock>(new FileLock(fd));
  }
  ~FileLock() {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
  }

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

std::string HubHint(const std::string& repo) {
  return absl::StrCat("`monologue download ", repo, "` on a connected machine");
}

#ifdef MONOLOGUE_HAVE_CURL

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

void GlobalInit() {
  static const bool done = [] { return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }();
  (void)done;
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

struct RemoteFile {
  std::string commit;
  std::string etag;
  int64_t size = -1;
  std::string url;  // where to GET the bytes
};

// HEAD, following relative redirects only (a renamed repo), as huggingface_hub does: an absolute redirect
// (LFS files, to the CDN) carries the metadata itself.
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

// GETs `url` into `part` (appending from its current size with a Range request). OK when the body is
// complete; the partial file stays for a later resume otherwise.
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

absl::StatusOr<fs::path> DownloadBlob(const HubOptions& o, const std::string& repo,
                                      const std::string& filename, const std::string& revision,
                                      const fs::path& repo_dir, const std::string& folder) {
  GlobalInit();
  auto remote_or = Metadata(o, repo, filename, revision);
  if (!remote_or.ok()) {
    if (absl::IsUnavailable(remote_or.status()) && o.check_remote) {
      // `monologue download` of something already cached works offline too.
      auto cached = FindCachedFile(o.cache_dir, repo, filename, revision);
      if (cached.ok()) return cached;
    }
    return remote_or.status();
  }
  const RemoteFile remote = *remote_or;
  if (revision != remote.commit) {
    if (auto s = WriteFileAtomically(repo_dir / "refs" / revision, remote.commit); !s.ok()) return s;
  }
  const fs::path pointer = repo_dir / "snapshots" / remote.commit / filename;
  const fs::path blob = repo_dir / "blobs" / remote.etag;
  std::error_code ec;
  if (fs::exists(pointer, ec) && fs::exists(blob, ec)) return pointer;
  if (!fs::exists(blob, ec)) {
    fs::create_directories(blob.parent_path(), ec);
    if (ec) {
      return absl::PermissionDeniedError(absl::StrCat("cannot create the Hugging Face cache folder ",
                                                      blob.parent_path().string(), ": ", ec.message()));
    }
    auto lock = FileLock::Acquire(o.cache_dir / ".locks" / folder / (remote.etag + ".lock"), o.progress);
    if (!lock.ok()) return lock.status();
    if (!fs::exists(blob, ec)) {  // another process may have finished it while we waited
      const fs::path part = blob.string() + ".incomplete";
      for (int attempt = 0;; ++attempt) {
        const bool resumed = fs::exists(part, ec) && fs::file_size(part, ec) > 0;
        if (resumed && o.progress) {
          std::fprintf(stderr, "resuming %s from %s\n", filename.c_str(),
                       HumanBytes(fs::file_size(part, ec)).c_str());
        }
        // A part file that is already complete (a run stopped before the rename) is only checked.
        const bool complete =
            resumed && remote.size >= 0 && static_cast<int64_t>(fs::file_size(part, ec)) == remote.size;
        absl::Status fetched =
            complete ? absl::OkStatus() : Fetch(o, remote.url, part, remote, repo, filename);
        if (absl::IsDataLoss(fetched) && attempt == 0) continue;  // 416: restart from zero
        if (!fetched.ok()) return fetched;
        const int64_t got = static_cast<int64_t>(fs::file_size(part, ec));
        std::string problem;
        if (remote.size >= 0 && got != remote.size) {
          problem = absl::StrCat("has ", got, " bytes, the Hub announced ", remote.size);
        } else if (IsSha256(remote.etag)) {
          auto sha = Sha256File(part);
          if (!sha.ok()) return sha.status();
          if (*sha != remote.etag)
            problem = absl::StrCat("has sha256 ", *sha, ", its etag says ", remote.etag);
        }
        if (problem.empty()) break;
        fs::remove(part, ec);
        if (resumed && attempt == 0) {
          if (o.progress)
            std::fprintf(stderr, "the partial download of %s was corrupt; starting over\n", filename.c_str());
          continue;
        }
        return absl::DataLossError(absl::StrCat("the download of ", repo, "/", filename, " is corrupt (it ",
                                                problem, "); it was deleted: run the command again"));
      }
      ::chmod(
          part.c_str(), 0644 & ~[] {
            const mode_t m = ::umask(0);
            ::umask(m);
            return m;
          }());
      fs::rename(part, blob, ec);
      if (ec)
        return absl::InternalError(
            absl::StrCat("cannot move ", part.string(), " into place: ", ec.message()));
    }
  }
  if (auto s = LinkIntoSnapshot(repo_dir, remote.commit, filename, remote.etag); !s.ok()) return s;
  return pointer;
}

#endif  // MONOLOGUE_HAVE_CURL

}  // namespace

HubOptions HubOptions::FromEnvironment() {
  HubOptions o;
  std::string endpoint = Env("HF_ENDPOINT");
  if (!endpoint.empty()) {
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
    o.endpoint = endpoint;
  }
  const std::string home_env = Env("HOME");
  const fs::path hf_home = !Env("HF_HOME").empty()
                               ? fs::path(Env("HF_HOME"))
                               : fs::path(home_env.empty() ? "." : home_env) / ".cache" / "huggingface";
  o.cache_dir = !Env("HF_HUB_CACHE").empty() ? fs::path(Env("HF_HUB_CACHE")) : hf_home / "hub";
  o.offline = EnvTrue("HF_HUB_OFFLINE");
  o.token = std::string(absl::StripAsciiWhitespace(Env("HF_TOKEN")));
  if (o.token.empty())
    o.token = std::string(absl::StripAsciiWhitespace(Env("HUGGING_FACE_HUB_TOKEN")));  // legacy
  if (o.token.empty()) {
    const fs::path token_path =
        !Env("HF_TOKEN_PATH").empty() ? fs::path(Env("HF_TOKEN_PATH")) : hf_home / "token";
    o.token = ReadFirstLine(token_path);
  }
  o.progress = ::isatty(STDERR_FILENO) != 0 && !EnvTrue("HF_HUB_DISABLE_PROGRESS_BARS");
  return o;
}

bool DownloadsSupported() {
#ifdef MONOLOGUE_HAVE_CURL
  return true;
#else
  return false;
#endif
}

bool IsCacheOnlyMiss(const absl::Status& status) { return status.GetPayload(kCacheOnlyPayload).has_value(); }

absl::StatusOr<std::string> RepoFolderName(const std::string& repo) {
  std::vector<std::string> parts = absl::StrSplit(repo, '/');
  if (parts.size() != 2 || parts[0].empty() || parts[1].empty() || parts[0] == ".." || parts[1] == "..") {
    return absl::InvalidArgumentError(absl::StrCat("Hugging Face repo '", repo, "': expected OWNER/NAME"));
  }
  return absl::StrCat("models--", parts[0], "--", parts[1]);
}

absl::StatusOr<fs::path> FindCachedFile(const fs::path& cache_dir, const std::string& repo,
                                        const std::string& filename, const std::string& revision) {
  auto folder = RepoFolderName(repo);
  if (!folder.ok()) return folder.status();
  if (auto s = ValidateFilename(filename); !s.ok()) return s;
  const fs::path repo_dir = cache_dir / *folder;
  std::error_code ec;
  std::string commit = ReadFirstLine(repo_dir / "refs" / revision);
  if (commit.empty() && IsCommitHash(revision)) commit = revision;
  if (!commit.empty() && fs::exists(repo_dir / "snapshots" / commit / filename, ec)) {
    return repo_dir / "snapshots" / commit / filename;
  }
  if (commit.empty() && revision == "main" && fs::is_directory(repo_dir / "snapshots", ec)) {
    fs::path best;
    fs::file_time_type newest{};
    for (const auto& entry : fs::directory_iterator(repo_dir / "snapshots", ec)) {
      if (!fs::exists(entry.path() / filename, ec)) continue;
      const auto t = entry.last_write_time(ec);
      if (best.empty() || t > newest) {
        best = entry.path() / filename;
        newest = t;
      }
    }
    if (!best.empty()) return best;
  }
  return absl::NotFoundError(absl::StrCat(repo, "/", filename, " (revision ", revision,
                                          ") is not in the local Hugging Face cache ", repo_dir.string()));
}

absl::StatusOr<fs::path> DownloadFile(const HubOptions& options, const std::string& repo,
                                      const std::string& filename, const std::string& revision_in) {
  const std::string revision = revision_in.empty() ? "main" : revision_in;
  auto folder = RepoFolderName(repo);
  if (!folder.ok()) return folder.status();
  if (auto s = ValidateFilename(filename); !s.ok()) return s;
  if (revision.find('/') != std::string::npos && revision.find("..") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("invalid revision '", revision, "'"));
  }
  auto cached = FindCachedFile(options.cache_dir, repo, filename, revision);
  if (cached.ok() && (!options.check_remote || options.offline || !DownloadsSupported())) return cached;
  if (options.offline) {
    return CacheOnlyMiss(absl::NotFoundError(absl::StrCat(
        cached.status().message(),
        " and HF_HUB_OFFLINE=1 forbids downloading it: unset HF_HUB_OFFLINE, or run ", HubHint(repo))));
  }
#ifdef MONOLOGUE_HAVE_CURL
  return DownloadBlob(options, repo, filename, revision, options.cache_dir / *folder, *folder);
#else
  return CacheOnlyMiss(absl::FailedPreconditionError(
      absl::StrCat(cached.status().message(),
                   ", and this monologue was built without libcurl (MONOLOGUE_WITH_CURL=OFF) so "
                   "it cannot download: fetch it with `huggingface-cli download ",
                   repo, "`")));
#endif
}

std::vector<std::string> ModelFileNames(const std::string& config_json_text, std::string* error) {
  nlohmann::json j = nlohmann::json::parse(config_json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    if (error != nullptr) *error = "config.json is not a JSON object";
    return {};
  }
  std::vector<std::string> names;
  auto add = [&](const char* key, const char* fallback) {
    auto it = j.find(key);
    if (it != j.end() && it->is_string()) {
      names.push_back(it->get<std::string>());
    } else if (fallback != nullptr) {
      names.push_back(fallback);
    }
  };
  // Defaults as the reference's CheckpointInfo.
  add("moshi_name", "model.safetensors");
  add("mimi_name", "tokenizer-e351c8d8-checkpoint125.safetensors");
  add("tokenizer_name", "tokenizer_spm_32k_3.model");
  add("mimi_config_name", nullptr);
  add("lora_name", nullptr);
  std::vector<std::string> out;
  for (const std::string& n : names) {
    if (n.empty() || absl::StartsWith(n, "file://") || n.front() == '/') continue;
    if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  }
  return out;
}

absl::StatusOr<fs::path> DownloadModel(const HubOptions& options, const std::string& repo,
                                       const std::string& revision_in,
                                       const std::vector<std::string>& files) {
  const std::string revision = revision_in.empty() ? "main" : revision_in;
  std::vector<std::string> names = files;
  fs::path snapshot;
  if (names.empty()) {
    auto config = DownloadFile(options, repo, "config.json", revision);
    if (config.ok()) {
      snapshot = config->parent_path();
      std::ifstream in(*config, std::ios::binary);
      std::stringstream text;
      text << in.rdbuf();
      std::string error;
      names = ModelFileNames(text.str(), &error);
      if (!error.empty()) return absl::InvalidArgumentError(absl::StrCat(config->string(), ": ", error));
    } else if (absl::IsNotFound(config.status()) && !IsCacheOnlyMiss(config.status()) &&
               absl::StrContains(config.status().message(), "has no file")) {
      names = ModelFileNames("{}", nullptr);  // the legacy Moshi 7B layout: no config.json
    } else {
      return config.status();
    }
  }
  for (const std::string& name : names) {
    if (absl::StartsWith(name, "hf://")) {
      std::vector<std::string> parts = absl::StrSplit(name.substr(5), absl::MaxSplits('/', 2));
      if (parts.size() != 3) {
        return absl::InvalidArgumentError(
            absl::StrCat("file reference '", name, "' must look like hf://owner/repo/path"));
      }
      auto other = DownloadFile(options, parts[0] + "/" + parts[1], parts[2], "main");
      if (!other.ok()) return other.status();
      continue;
    }
    auto path = DownloadFile(options, repo, name, revision);
    if (!path.ok()) return path.status();
    if (snapshot.empty()) {
      snapshot = *path;
      for (size_t i = 0, n = std::count(name.begin(), name.end(), '/') + 1; i < n; ++i)
        snapshot = snapshot.parent_path();
    }
  }
  if (snapshot.empty()) return absl::InvalidArgumentError(absl::StrCat(repo, ": no files to fetch"));
  return snapshot;
}

}  // namespace monologue::hub
