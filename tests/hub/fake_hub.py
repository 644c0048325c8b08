#!/usr/bin/env python3
"""A fake Hugging Face Hub for the tests: loopback only, standard library only, bounded lifetime.

Serves repositories from ROOT/OWNER/NAME/<files> with the endpoints and headers a Hub client uses:

  HEAD|GET /OWNER/NAME/resolve/REVISION/PATH
      Non-LFS files (anything but *.safetensors, *.model, *.bin): 200 with the bytes, ETag = git blob sha1,
      X-Repo-Commit. LFS files: 302 to an absolute CDN URL with X-Linked-Etag = sha256, X-Linked-Size,
      X-Repo-Commit (the metadata rides on the redirect, as on huggingface.co).
      Errors carry X-Error-Code: RepoNotFound (401), GatedRepo (401 without a token, 403 with a wrong one),
      RevisionNotFound (404), EntryNotFound (404).
  GET /cdn/OWNER/NAME/PATH   the bytes, with Range support (206 + Content-Range).

Per-repo switches (files in the repo folder, not served):
  .gated       the token (one line) that may read the repo; any other or none is refused
  .flaky       file names whose full (non-Range) CDN download stops half-way and drops the connection
  .moved_to    OWNER2/NAME2: every request is redirected there with a relative Location (a renamed repo)

Revisions: "main", the tag "v1" and the commit hash all resolve to one commit (sha1 of the repo content).
Every request is appended to --log as "METHOD PATH RANGE" (RANGE "-" when none). Usage:
  fake_hub.py --root DIR --port-file FILE --log FILE [--lifetime SECONDS]
"""
import argparse
import hashlib
import http.server
import os
import sys
import threading
import urllib.parse

LFS_SUFFIXES = (".safetensors", ".model", ".bin")


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--lifetime", type=float, default=120.0)
    return p.parse_args()


ARGS = parse_args()
LOG_LOCK = threading.Lock()


def log(line):
    with LOG_LOCK:
        with open(ARGS.log, "a") as f:
            f.write(line + "\n")


def repo_dir(owner, name):
    d = os.path.join(ARGS.root, owner, name)
    return d if os.path.isdir(d) else None


def read_switch(d, name):
    path = os.path.join(d, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read().strip()


def repo_files(d):
    out = []
    for base, _, files in os.walk(d):
        for f in files:
            rel = os.path.relpath(os.path.join(base, f), d)
            if not rel.startswith("."):
                out.append(rel)
    return sorted(out)


def commit_of(d):
    h = hashlib.sha1()
    for rel in repo_files(d):
        h.update(rel.encode())
        with open(os.path.join(d, rel), "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def _error(self, status, code, message, commit=None):
        body = ('{"error": "%s"}' % message).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_bytes(self, data, headers, flaky=False):
        rng = self.headers.get("Range")
        start, status = 0, 200
        if rng and rng.startswith("bytes="):
            first = rng[len("bytes="):].split("-")[0]
            start = int(first) if first else 0
            if start >= len(data) and len(data) > 0:
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % len(data))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if flaky and status == 200:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return
        self.wfile.write(body)

    def _handle(self):
        path = urllib.parse.urlparse(self.path).path
        log("%s %s %s" % (self.command, path, self.headers.get("Range") or "-"))
        parts = [urllib.parse.unquote(p) for p in path.split("/")[1:]]
        if len(parts) >= 4 and parts[0] == "cdn":
            d = repo_dir(parts[1], parts[2])
            rel = "/".join(parts[3:])
            if d is None or not os.path.isfile(os.path.join(d, rel)):
                return self._error(404, "EntryNotFound", "no such CDN object")
            with open(os.path.join(d, rel), "rb") as f:
                data = f.read()
            flaky = rel in (read_switch(d, ".flaky") or "").split()
            return self._send_bytes(data, {"ETag": '"%s"' % hashlib.sha256(data).hexdigest()}, flaky=flaky)
        if len(parts) < 5 or parts[2] != "resolve":
            return self._error(404, "EntryNotFound", "unknown endpoint")
        owner, name, revision, rel = parts[0], parts[1], parts[3], "/".join(parts[4:])
        d = repo_dir(owner, name)
        if d is None:
            return self._error(401, "RepoNotFound", "Repository Not Found for url: %s." % path)
        moved = read_switch(d, ".moved_to")
        if moved:
            self.send_response(307)
            self.send_header("Location", "/%s/resolve/%s/%s" % (moved, revision, "/".join(parts[4:])))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        gated = read_switch(d, ".gated")
        if gated is not None:
            auth = self.headers.get("Authorization") or ""
            if auth != "Bearer " + gated:
                return self._error(403 if auth else 401, "GatedRepo",
                                   "Access to model %s/%s is restricted." % (owner, name))
        commit = commit_of(d)
        if revision not in ("main", "v1", commit):
            return self._error(404, "RevisionNotFound", "Invalid rev id: %s" % revision)
        full = os.path.join(d, rel)
        if rel.startswith(".") or not os.path.isfile(full):
            return self._error(404, "EntryNotFound", "Entry not found", commit=commit)
        with open(full, "rb") as f:
            data = f.read()
        if rel.endswith(LFS_SUFFIXES):
            host = "http://127.0.0.1:%d" % self.server.server_address[1]
            self.send_response(302)
            self.send_header("Location", "%s/cdn/%s/%s/%s" % (host, owner, name, urllib.parse.quote(rel)))
            self.send_header("X-Repo-Commit", commit)
            self.send_header("X-Linked-Etag", '"%s"' % hashlib.sha256(data).hexdigest())
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("ETag", '"%s"' % git_blob_sha1(data))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._send_bytes(data, {"ETag": '"%s"' % git_blob_sha1(data), "X-Repo-Commit": commit})

    do_GET = _handle
    do_HEAD = _handle


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    tmp = ARGS.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, ARGS.port_file)
    timer = threading.Timer(ARGS.lifetime, lambda: os._exit(0))
    timer.daemon = True
    timer.start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
