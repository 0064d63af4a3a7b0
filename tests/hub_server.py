"""A local, Hugging Face Hub-compatible HTTP server for tests.

It speaks the subset of the Hub HTTP API that ``huggingface_hub`` 2.4 (and, through it, transformers and
sentence-transformers) uses to create repos, push files and download them back: repo create/delete/move/settings,
repo info, trees, paths-info, refs, commits, branches, tags, ``validate-yaml``, ``preupload``, the git-LFS batch API
with single-``PUT`` uploads, NDJSON commits, and ``resolve`` downloads (``HEAD``/``GET``, ranges, ``EntryNotFound``).
See ``shared/docs/HUB_API.md`` for the specification it follows.

Only the standard library is required. PyYAML, when importable, is used to parse ``README.md`` front matter for
``cardData`` and ``validate-yaml``; without it a small fallback parser handles simple top-level keys.

State lives under ``root``: ``state.json`` (repos, branches, tags, PR refs and immutable commits, each with its full
file map) and ``blobs/<sha256>`` (content-addressed file contents). A new :class:`LocalHub` on the same ``root``
picks the state up again.

Typical use::

    with LocalHub(tmp_path / "hub", tokens={"tok-alice": "alice"}) as hub:
        api = HfApi(endpoint=hub.endpoint, token="tok-alice")
        api.create_repo("alice/model")

The client must not be in offline mode. In the default ``upload_mode="lfs"`` (Hub-like: binaries and files of
10 MiB or more go through git-LFS) the client needs Xet disabled (``HF_HUB_DISABLE_XET=1``); with
``upload_mode="regular"`` every file travels inline in the commit and no client setting is needed.

Run ``python tests/hub_server.py --root DIR --token TOKEN=USER`` to serve from a separate process; it prints
``LocalHub ready at <endpoint>`` once it listens.
"""

from __future__ import annotations

import argparse
import base64
import copy
import fnmatch
import hashlib
import json
import os
import re
import secrets
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote

try:  # Optional: precise README front-matter parsing. The server works without it.
    import yaml as _yaml
except ImportError:  # pragma: no cover - depends on the environment
    _yaml = None

__all__ = ["LocalHub", "LFS_PATTERNS", "git_blob_sha1", "lfs_pointer"]

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
COMMIT_RE = re.compile(r"[0-9a-f]{40}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
LFS_CONTENT_TYPE = "application/vnd.git-lfs+json"
CHUNK = 1024 * 1024

#: File-name patterns that the Hub-like upload mode sends through git-LFS (besides NUL-containing and large files).
LFS_PATTERNS: tuple[str, ...] = tuple(
    "*.safetensors *.bin *.pt *.pth *.ckpt *.h5 *.onnx *.msgpack *.npy *.npz *.pkl *.pickle *.gguf *.tar *.tar.gz"
    " *.zip *.parquet *.arrow *.model *.tflite *.ot *tfevents*".split()
)

#: Content of the ``.gitattributes`` file of a new repo's initial commit (the Hub's default LFS patterns).
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack *.npy *.npz"
        " *.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors saved_model/**/* *.tar.* *.tar"
        " *.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents*"
    ).split()
)


# ----------------------------------------------------------------------------------------------------------------------
# Hashing helpers


def git_blob_sha1(content: bytes) -> str:
    """Git blob id of ``content``: ``sha1("blob <len>\\0" + content)``, the oid of a regular (non-LFS) file."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-LFS pointer file text stored in git in place of an LFS file's content."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    """Current UTC time in the ISO-8601 ``...Z`` form the client parses."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# ----------------------------------------------------------------------------------------------------------------------
# README front matter


def _front_matter(text: str) -> str | None:
    """The YAML block between the leading ``---`` lines of a model card, or None when there is none."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "\n".join(lines[1:i])
    return None


def _parse_scalar(value: str) -> Any:
    """Parse a YAML flow scalar or flow list the way the fallback parser understands it."""
    value = value.strip()
    if value.startswith("[") and value.endswith("]"):
        inner = value[1:-1].strip()
        return [_parse_scalar(v) for v in inner.split(",")] if inner else []
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "~", ""):
        return None
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


def _fallback_yaml(block: str) -> dict[str, Any]:
    """Tiny YAML subset parser (top-level ``key: scalar``, ``key: [a, b]`` and ``key:`` + ``- item`` lists)."""
    result: dict[str, Any] = {}
    current: str | None = None
    for raw in block.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        if raw[0] not in " \t-":
            key, sep, value = raw.partition(":")
            if not sep:
                raise ValueError(f"cannot parse line: {raw!r}")
            current = key.strip().strip("'\"")
            result[current] = _parse_scalar(value) if value.strip() else None
        elif current is not None and raw.lstrip().startswith("- ") and (raw[0] == "-" or raw.startswith("  - ")):
            existing = result.get(current)
            if not isinstance(existing, list):
                existing = result[current] = []
            existing.append(_parse_scalar(raw.lstrip()[2:]))
        # deeper nesting is ignored by the fallback parser
    return result


def parse_card_data(readme: str) -> tuple[dict[str, Any] | None, str | None]:
    """Return ``(metadata, error)`` for a README: the front-matter mapping (None if absent) or an error message."""
    block = _front_matter(readme)
    if block is None:
        return None, None
    try:
        data = _yaml.safe_load(block) if _yaml is not None else _fallback_yaml(block)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a validation error
        return None, f"Invalid YAML in README.md front matter: {exc}"
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        return None, "README.md front matter must be a YAML mapping"
    return data, None


# ----------------------------------------------------------------------------------------------------------------------
# Request / response plumbing


class HubError(Exception):
    """An error answered as ``{"error": message}`` with ``X-Error-Message`` (and ``X-Error-Code`` when set)."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


@dataclass
class _Response:
    """What the handler writes back: a status, headers and either bytes or a byte range of a blob file."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    file: Path | None = None
    offset: int = 0
    length: int = 0

    @classmethod
    def json(cls, payload: Any, status: int = 200, content_type: str = "application/json") -> _Response:
        return cls(status=status, headers={"Content-Type": content_type}, body=json.dumps(payload).encode())


@dataclass
class _Request:
    """A parsed request: unquoted path segments, query, headers, the acting user and a lazily read body."""

    method: str
    raw_path: str
    segments: list[str]
    query: dict[str, list[str]]
    headers: Any
    endpoint: str
    handler: _Handler
    user: str | None = None
    _body: bytes | None = None
    _consumed: bool = False

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def flag(self, name: str) -> bool:
        return (self.param(name) or "").lower() in ("1", "true", "yes")

    def iter_body(self) -> Iterator[bytes]:
        """Yield the request body in chunks (Content-Length or chunked transfer encoding); reads it only once."""
        if self._consumed:
            if self._body:
                yield self._body
            return
        self._consumed = True
        rfile = self.handler.rfile
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            while True:
                size_line = rfile.readline(65537)
                if not size_line:
                    raise HubError(400, "Truncated chunked request body")
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                remaining = size
                while remaining:
                    data = rfile.read(min(remaining, CHUNK))
                    if not data:
                        raise HubError(400, "Truncated chunked request body")
                    remaining -= len(data)
                    yield data
                rfile.readline(65537)  # CRLF after each chunk
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining > 0:
                data = rfile.read(min(remaining, CHUNK))
                if not data:
                    raise HubError(400, "Truncated request body")
                remaining -= len(data)
                yield data

    def body(self) -> bytes:
        if self._body is None:
            self._body = b"".join(self.iter_body())
        return self._body

    def json(self) -> Any:
        raw = self.body()
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise HubError(400, f"Invalid JSON body: {exc}") from exc

    def drain(self) -> None:
        """Read whatever is left of the body so the keep-alive connection stays in sync."""
        for _ in self.iter_body():
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], hub: LocalHub):
        self.hub = hub
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Close idle keep-alive connections so their handler threads end."""
        with self.connections_lock:
            connections = list(self.connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalHub/1.0"
    timeout = 300  # idle keep-alive connections end after this many seconds
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        if self.server.hub.verbose:
            super().log_message(format, *args)

    def _handle(self) -> None:
        self.server.hub._handle(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


# ----------------------------------------------------------------------------------------------------------------------
# The hub


class LocalHub:
    """A Hugging Face Hub-compatible HTTP server on ``127.0.0.1`` with an ephemeral port, persisted under ``root``.

    Args:
        root: Folder holding ``state.json`` and ``blobs/``. Created if missing; existing state is loaded.
        tokens: ``token -> username``. Requests without ``Authorization`` are anonymous; a bearer token not in
            this mapping gets ``401 Invalid credentials in Authorization header``. With an empty mapping the hub
            runs in "open mode": any bearer token acts as ``open_user``.
        orgs: Optional ``username -> [org, ...]``; a user may write to (and see private repos of) these namespaces.
        host: Interface to bind. Defaults to ``127.0.0.1``.
        port: Port to bind; ``0`` (default) picks a free one. Read the result from :attr:`endpoint`.
        upload_mode: ``"lfs"`` (default, Hub-like): files matching :data:`LFS_PATTERNS`, files whose first 512 bytes
            contain a NUL byte and files of at least ``lfs_threshold`` bytes are announced as LFS, so the client
            uploads them through the LFS batch API (clients need ``HF_HUB_DISABLE_XET=1``). ``"regular"``: every
            file travels base64-encoded inside the commit (works with Xet enabled).
        lfs_threshold: Size in bytes from which a file is LFS in ``"lfs"`` mode (default 10 MiB).
        fail_next_uploads: Fault injection: the next N LFS file-content uploads (``PUT``) answer ``fault_status``.
            Note that the client retries a failed ``PUT`` up to 5 times with exponential backoff (1 s, 2 s, ...).
        fail_next_commits: Fault injection: the next N commit calls answer ``fault_status``. The client does not
            retry commits, so the push fails after its LFS blobs were stored: a push interrupted half-way.
        fault_status: HTTP status of injected faults (default 500).
        open_user: The user that any token maps to in open mode.
        verbose: Log each request to stderr.

    Attributes:
        endpoint: ``"http://127.0.0.1:PORT"`` once started.
        request_log: ``(method, raw path, status)`` of every request answered, in order (clear it freely).
        fail_next_uploads, fail_next_commits, fault_status: the fault hooks above; set them at any time.
    """

    def __init__(
        self,
        root: Path | str,
        tokens: dict[str, str] | None = None,
        *,
        orgs: dict[str, list[str]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        upload_mode: Literal["lfs", "regular"] = "lfs",
        lfs_threshold: int = 10 * 1024 * 1024,
        fail_next_uploads: int = 0,
        fail_next_commits: int = 0,
        fault_status: int = 500,
        open_user: str = "user",
        verbose: bool = False,
    ) -> None:
        if upload_mode not in ("lfs", "regular"):
            raise ValueError(f"upload_mode must be 'lfs' or 'regular', not {upload_mode!r}")
        self.root = Path(root)
        self.tokens: dict[str, str] = dict(tokens or {})
        self.orgs: dict[str, list[str]] = {user: list(names) for user, names in (orgs or {}).items()}
        self.host = host
        self.port = port
        self.upload_mode = upload_mode
        self.lfs_threshold = lfs_threshold
        self.fail_next_uploads = fail_next_uploads
        self.fail_next_commits = fail_next_commits
        self.fault_status = fault_status
        self.open_user = open_user
        self.verbose = verbose
        self.request_log: list[tuple[str, str, int]] = []

        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._blobs = self.root / "blobs"
        self._state_path = self.root / "state.json"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._state: dict[str, Any] = {"repos": {}}
        if self._state_path.exists():
            self._state = json.loads(self._state_path.read_text())
        self._pending_lfs: dict[str, int] = {}

    # -- lifecycle -----------------------------------------------------------------------------------------------------

    def start(self) -> LocalHub:
        """Bind and serve in a background thread. Returns self."""
        if self._server is not None:
            return self
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="LocalHub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket and open connections. State stays on disk."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """Base URL of the running hub, e.g. ``http://127.0.0.1:43127`` (what ``HF_ENDPOINT`` should be)."""
        if self._server is None:
            raise RuntimeError("LocalHub is not running; call start() first")
        return f"http://{self.host}:{self.port}"

    # -- introspection helpers for tests ------------------------------------------------------------------------------

    def branch_head(self, repo_id: str, branch: str = "main", repo_type: str = "model") -> str | None:
        """Commit id a branch (or ``refs/pr/N``) points at, or None if the repo or branch does not exist."""
        with self._lock:
            repo = self._state["repos"].get(f"{repo_type}/{repo_id}")
            return None if repo is None else repo["branches"].get(branch)

    def has_blob(self, sha256: str) -> bool:
        """Whether the content with this SHA-256 has been stored (inline or via LFS upload)."""
        return SHA256_RE.fullmatch(sha256) is not None and (self._blobs / sha256).is_file()

    def repo_files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, dict[str, Any]]:
        """File map (``path -> {sha256, size, lfs, oid, ...}``) of a revision, bypassing auth."""
        with self._lock:
            repo = self._state["repos"][f"{repo_type}/{repo_id}"]
            return copy.deepcopy(repo["commits"][self._resolve(repo, revision)]["files"])

    # -- storage -------------------------------------------------------------------------------------------------------

    def _save(self) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".state-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(self._state, f)
        os.replace(tmp, self._state_path)

    def _store_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        target = self._blobs / sha
        if not target.exists():
            fd, tmp = tempfile.mkstemp(dir=self._blobs, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        return sha

    def _blob_bytes(self, sha256: str) -> bytes:
        return (self._blobs / sha256).read_bytes()

    def _entry(self, sha256: str, size: int, lfs: bool, content: bytes | None = None) -> dict[str, Any]:
        """A file-map entry; ``oid`` is the git blob id (of the content, or of the LFS pointer)."""
        if lfs:
            pointer = lfs_pointer(sha256, size)
            return {
                "sha256": sha256,
                "size": size,
                "lfs": True,
                "oid": git_blob_sha1(pointer),
                "pointerSize": len(pointer),
            }
        data = content if content is not None else self._blob_bytes(sha256)
        return {"sha256": sha256, "size": size, "lfs": False, "oid": git_blob_sha1(data)}

    def _new_commit(
        self, repo: dict[str, Any], parent: str | None, files: dict[str, Any], title: str, message: str, author: str
    ) -> str:
        date = _now()
        payload = {"parent": parent, "files": files, "title": title, "message": message, "author": author}
        payload.update(date=date, nonce=secrets.token_hex(8))
        commit_id = hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        repo["commits"][commit_id] = {
            "id": commit_id,
            "parent": parent,
            "title": title,
            "message": message,
            "author": author,
            "date": date,
            "files": files,
        }
        return commit_id

    # -- auth ----------------------------------------------------------------------------------------------------------

    def _authenticate(self, req: _Request) -> None:
        header = req.headers.get("Authorization")
        if not header:
            return
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise HubError(401, INVALID_CREDENTIALS)
        if not self.tokens:
            req.user = self.open_user
            return
        user = self.tokens.get(token)
        if user is None:
            raise HubError(401, INVALID_CREDENTIALS)
        req.user = user

    def _namespaces(self, user: str | None) -> set[str]:
        return set() if user is None else {user, *self.orgs.get(user, [])}

    def _repo(self, req: _Request, repo_type: str, namespace: str, name: str, write: bool = False) -> dict[str, Any]:
        """Look a repo up with the Hub's visibility rules: private repos look missing to everyone but their owner."""
        repo_id = f"{namespace}/{name}"
        repo = self._state["repos"].get(f"{repo_type}/{repo_id}")
        if repo is None or (repo["private"] and namespace not in self._namespaces(req.user)):
            message = (
                f"Repository Not Found for url: {req.endpoint}{req.raw_path}. Please make sure you specified the "
                "correct `repo_id` and `repo_type`. If you are trying to access a private or gated repo, make sure "
                "you are authenticated."
            )
            raise HubError(401 if req.user is None else 404, message, "RepoNotFound")
        if write:
            self._require_write(req, namespace)
        return repo

    def _require_write(self, req: _Request, namespace: str) -> None:
        if req.user is None:
            raise HubError(401, "You must be authenticated to perform this action (no token was sent).")
        if namespace not in self._namespaces(req.user):
            raise HubError(403, f"You don't have the rights to write to the namespace '{namespace}' as '{req.user}'.")

    # -- revisions -----------------------------------------------------------------------------------------------------

    @staticmethod
    def _resolve(repo: dict[str, Any], revision: str) -> str:
        branches, tags = repo["branches"], repo["tags"]
        if revision in branches:
            return branches[revision]
        if revision.startswith("refs/heads/") and revision[len("refs/heads/") :] in branches:
            return branches[revision[len("refs/heads/") :]]
        if revision in tags:
            return tags[revision]
        if revision.startswith("refs/tags/") and revision[len("refs/tags/") :] in tags:
            return tags[revision[len("refs/tags/") :]]
        if COMMIT_RE.fullmatch(revision) and revision in repo["commits"]:
            return revision
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    @staticmethod
    def _branch_name(repo: dict[str, Any], revision: str) -> str:
        name = revision[len("refs/heads/") :] if revision.startswith("refs/heads/") else revision
        if name not in repo["branches"]:
            raise HubError(404, f"Invalid rev id: {revision} (not a branch)", "RevisionNotFound")
        return name

    # -- request entry point -------------------------------------------------------------------------------------------

    def _handle(self, handler: _Handler) -> None:
        method = handler.command
        raw_path, _, raw_query = handler.path.partition("?")
        segments = [unquote(s) for s in raw_path.split("/")[1:]]
        while segments and segments[-1] == "" and len(segments) > 1:
            segments.pop()
        host = handler.headers.get("Host") or f"{self.host}:{self.port}"
        req = _Request(
            method=method,
            raw_path=raw_path,
            segments=segments,
            query=parse_qs(raw_query, keep_blank_values=True),
            headers=handler.headers,
            endpoint=f"http://{host}",
            handler=handler,
        )
        try:
            if segments != ["health"]:
                self._authenticate(req)
            response = self._dispatch(req)
        except HubError as err:
            response = self._error_response(err)
        except Exception as exc:  # noqa: BLE001 - surface server bugs to the client as 500s
            response = self._error_response(HubError(500, f"Internal error in LocalHub: {exc!r}"))
        try:
            req.drain()
        except Exception:  # noqa: BLE001
            response.headers["Connection"] = "close"
            handler.close_connection = True
        with self._lock:
            self.request_log.append((method, handler.path, response.status))
        self._write(handler, response, head_only=method == "HEAD")

    @staticmethod
    def _error_response(err: HubError) -> _Response:
        response = _Response.json({"error": err.message}, status=err.status)
        header_message = " ".join(err.message.split()).encode("ascii", "replace").decode("ascii")
        response.headers["X-Error-Message"] = header_message
        if err.code:
            response.headers["X-Error-Code"] = err.code
        response.headers.update(err.headers)
        return response

    @staticmethod
    def _write(handler: _Handler, response: _Response, head_only: bool) -> None:
        length = response.length if response.file is not None else len(response.body)
        try:
            handler.send_response(response.status)
            for key, value in response.headers.items():
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(length))
            handler.end_headers()
            if head_only:
                return
            if response.file is None:
                handler.wfile.write(response.body)
                return
            with open(response.file, "rb") as f:
                f.seek(response.offset)
                remaining = length
                while remaining > 0:
                    data = f.read(min(remaining, CHUNK))
                    if not data:
                        break
                    handler.wfile.write(data)
                    remaining -= len(data)
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True

    def _dispatch(self, req: _Request) -> _Response:
        seg, method = req.segments, req.method
        if seg == ["health"]:
            return _Response.json({"status": "ok"})
        if seg[:2] == ["_lfs", "upload"] and len(seg) == 3 and method == "PUT":
            return self._lfs_put(req, seg[2])
        if seg and seg[0] == "api":
            return self._dispatch_api(req, seg[1:])
        repo_type = "model"
        rest = seg
        if seg and seg[0] in ("datasets", "spaces"):
            repo_type, rest = REPO_TYPES[seg[0]], seg[1:]
        if len(rest) >= 4 and rest[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve_file(req, repo_type, rest[0], rest[1], rest[3], "/".join(rest[4:]))
        if (
            len(rest) == 6
            and rest[1].endswith(".git")
            and rest[2:] == ["info", "lfs", "objects", "batch"]
            and method == "POST"
        ):
            return self._lfs_batch(req, repo_type, rest[0], rest[1][: -len(".git")])
        raise HubError(404, f"Not found: {method} {req.raw_path}")

    def _dispatch_api(self, req: _Request, seg: list[str]) -> _Response:
        method = req.method
        if seg == ["agent-harnesses"]:
            return _Response.json({"standardEnvVars": [], "harnesses": {}})
        if seg == ["whoami-v2"] and method == "GET":
            return self._whoami(req)
        if seg == ["validate-yaml"] and method == "POST":
            return self._validate_yaml(req)
        if seg == ["repos", "create"] and method == "POST":
            return self._create_repo(req)
        if seg == ["repos", "delete"] and method == "DELETE":
            return self._delete_repo(req)
        if seg == ["repos", "move"] and method == "POST":
            return self._move_repo(req)
        if not seg or seg[0] not in REPO_TYPES:
            raise HubError(404, f"Not found: {method} {req.raw_path}")
        repo_type = REPO_TYPES[seg[0]]
        if len(seg) == 1 and method == "GET":
            return self._list_repos(req, repo_type)
        if len(seg) < 3:
            raise HubError(404, f"Not found: {method} {req.raw_path}")
        ns, name, action, args = seg[1], seg[2], (seg[3] if len(seg) > 3 else None), seg[4:]
        arg = "/".join(args)
        req.body()  # read the body before taking the lock, so slow uploads never block other requests
        with self._lock:
            if action is None and method == "GET":
                return self._repo_info(req, repo_type, ns, name, None)
            if action == "revision" and method == "GET" and args:
                return self._repo_info(req, repo_type, ns, name, args[0])
            if action == "tree" and method == "GET" and args:
                return self._tree(req, repo_type, ns, name, args[0], "/".join(args[1:]))
            if action == "paths-info" and method == "POST" and args:
                return self._paths_info(req, repo_type, ns, name, args[0])
            if action == "refs" and method == "GET":
                return self._refs(req, repo_type, ns, name)
            if action == "commits" and method == "GET" and args:
                return self._commits(req, repo_type, ns, name, args[0])
            if action == "branch" and args and method in ("POST", "DELETE"):
                return self._branch(req, repo_type, ns, name, arg)
            if action == "tag" and args and method in ("POST", "DELETE"):
                return self._tag(req, repo_type, ns, name, arg)
            if action == "preupload" and method == "POST" and args:
                return self._preupload(req, repo_type, ns, name, args[0])
            if action == "commit" and method == "POST" and args:
                return self._commit(req, repo_type, ns, name, args[0])
            if action == "settings" and method == "PUT":
                return self._settings(req, repo_type, ns, name)
            if action == "auth-check" and method == "GET":
                self._repo(req, repo_type, ns, name)
                return _Response.json({})
            if action in ("xet-read-token", "xet-write-token"):
                self._repo(req, repo_type, ns, name)
                raise HubError(
                    501,
                    "Xet storage is not supported by this local Hub server; set HF_HUB_DISABLE_XET=1 in the client "
                    "environment (or start LocalHub with upload_mode='regular').",
                )
        raise HubError(404, f"Not found: {method} {req.raw_path}")

    # -- account -------------------------------------------------------------------------------------------------------

    def _whoami(self, req: _Request) -> _Response:
        if req.user is None:
            raise HubError(401, "Invalid user token.")
        user = req.user
        return _Response.json(
            {
                "type": "user",
                "id": hashlib.sha1(user.encode()).hexdigest()[:24],
                "name": user,
                "fullname": user,
                "email": f"{user}@localhub.test",
                "emailVerified": True,
                "canPay": False,
                "isPro": False,
                "periodEnd": None,
                "avatarUrl": "",
                "orgs": [
                    {"type": "org", "name": org, "fullname": org, "roleInOrg": "write"}
                    for org in self.orgs.get(user, [])
                ],
                "auth": {
                    "type": "access_token",
                    "accessToken": {
                        "displayName": "localhub",
                        "role": "write",
                        "createdAt": "2024-01-01T00:00:00.000Z",
                    },
                },
            }
        )

    @staticmethod
    def _validate_yaml(req: _Request) -> _Response:
        body = req.json()
        _, error = parse_card_data(str(body.get("content") or ""))
        if error:
            return _Response.json({"errors": [{"message": error}], "warnings": []}, status=400)
        return _Response.json({"errors": [], "warnings": []})

    # -- repos ---------------------------------------------------------------------------------------------------------

    def _repo_url(self, req: _Request, repo_type: str, repo_id: str) -> str:
        return f"{req.endpoint}/{URL_PREFIXES[repo_type]}{repo_id}"

    def _create_repo(self, req: _Request) -> _Response:
        body = req.json()
        name = body.get("name")
        repo_type = body.get("type") or "model"
        if repo_type not in URL_PREFIXES:
            raise HubError(400, f"Invalid repo type: {repo_type!r}")
        if req.user is None:
            raise HubError(401, "You must be authenticated to create a repository (no token was sent).")
        namespace = body.get("organization") or req.user
        if not isinstance(name, str) or not NAME_RE.fullmatch(name) or not NAME_RE.fullmatch(namespace):
            raise HubError(400, f"Invalid repo name: {namespace}/{name}")
        self._require_write(req, namespace)
        repo_id = f"{namespace}/{name}"
        url = self._repo_url(req, repo_type, repo_id)
        visibility = body.get("visibility")
        private = visibility == "private" if visibility is not None else bool(body.get("private", False))
        with self._lock:
            key = f"{repo_type}/{repo_id}"
            if key in self._state["repos"]:
                payload = {"error": f"You already created this {repo_type} repo", "url": url}
                response = _Response.json(payload, status=409)
                response.headers["X-Error-Message"] = payload["error"]
                return response
            repo: dict[str, Any] = {
                "type": repo_type,
                "id": repo_id,
                "private": private,
                "gated": False,
                "createdAt": _now(),
                "branches": {},
                "tags": {},
                "commits": {},
                "nextPr": 1,
            }
            content = DEFAULT_GITATTRIBUTES.encode()
            sha = self._store_bytes(content)
            files = {".gitattributes": self._entry(sha, len(content), False, content)}
            repo["branches"]["main"] = self._new_commit(repo, None, files, "initial commit", "", req.user)
            self._state["repos"][key] = repo
            self._save()
        return _Response.json({"url": url, "name": repo_id, "id": hashlib.sha1(key.encode()).hexdigest()[:24]})

    def _delete_repo(self, req: _Request) -> _Response:
        body = req.json()
        repo_type = body.get("type") or "model"
        namespace = body.get("organization") or req.user or ""
        with self._lock:
            self._repo(req, repo_type, namespace, str(body.get("name")), write=True)
            del self._state["repos"][f"{repo_type}/{namespace}/{body.get('name')}"]
            self._save()
        return _Response.json({})

    def _move_repo(self, req: _Request) -> _Response:
        body = req.json()
        repo_type = body.get("type") or "model"
        source, target = str(body.get("fromRepo", "")), str(body.get("toRepo", ""))
        if source.count("/") != 1 or target.count("/") != 1:
            raise HubError(400, "fromRepo and toRepo must be of the form namespace/name")
        target_ns, target_name = target.split("/")
        if not NAME_RE.fullmatch(target_ns) or not NAME_RE.fullmatch(target_name):
            raise HubError(400, f"Invalid repo name: {target}")
        with self._lock:
            repo = self._repo(req, repo_type, *source.split("/"), write=True)
            self._require_write(req, target_ns)
            if f"{repo_type}/{target}" in self._state["repos"]:
                raise HubError(409, f"A repo named {target} already exists")
            del self._state["repos"][f"{repo_type}/{source}"]
            repo["id"] = target
            self._state["repos"][f"{repo_type}/{target}"] = repo
            self._save()
        return _Response.json({})

    def _settings(self, req: _Request, repo_type: str, ns: str, name: str) -> _Response:
        body = req.json()
        repo = self._repo(req, repo_type, ns, name, write=True)
        if body.get("visibility") in ("private", "public"):
            repo["private"] = body["visibility"] == "private"
        elif isinstance(body.get("private"), bool):
            repo["private"] = body["private"]
        if "gated" in body:
            repo["gated"] = body["gated"]
        self._save()
        return _Response.json({})

    def _info_payload(self, req: _Request, repo: dict[str, Any], commit_id: str, siblings: bool) -> dict[str, Any]:
        commit = repo["commits"][commit_id]
        files: dict[str, Any] = commit["files"]
        namespace = repo["id"].split("/")[0]
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo["id"].encode()).hexdigest()[:24],
            "id": repo["id"],
            "author": namespace,
            "sha": commit_id,
            "lastModified": commit["date"],
            "createdAt": repo["createdAt"],
            "private": repo["private"],
            "gated": repo["gated"],
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "usedStorage": sum(entry["size"] for entry in files.values()),
        }
        card: dict[str, Any] | None = None
        if "README.md" in files:
            card, _ = parse_card_data(self._blob_bytes(files["README.md"]["sha256"]).decode("utf-8", "replace"))
            if card is not None:
                info["cardData"] = card
                card_tags = card.get("tags")
                info["tags"] = [str(t) for t in card_tags] if isinstance(card_tags, list) else []
                for key in ("library_name", "pipeline_tag"):
                    if isinstance(card.get(key), str):
                        info[key] = card[key]
                if isinstance(card.get("library_name"), str) and card["library_name"] not in info["tags"]:
                    info["tags"].insert(0, card["library_name"])
        if repo["type"] == "model":
            info["modelId"] = repo["id"]
            if "config.json" in files:
                try:
                    config = json.loads(self._blob_bytes(files["config.json"]["sha256"]))
                except ValueError:
                    config = None
                if isinstance(config, dict):
                    info["config"] = {k: config[k] for k in ("architectures", "model_type", "auto_map") if k in config}
        if siblings:
            blobs = (req.param("blobs") or "").lower() in ("1", "true")
            info["siblings"] = [self._sibling(path, files[path], blobs) for path in sorted(files)]
        return info

    @staticmethod
    def _sibling(path: str, entry: dict[str, Any], blobs: bool) -> dict[str, Any]:
        sibling: dict[str, Any] = {"rfilename": path}
        if blobs:
            sibling.update(size=entry["size"], blobId=entry["oid"])
            if entry["lfs"]:
                sibling["lfs"] = {"size": entry["size"], "sha256": entry["sha256"], "pointerSize": entry["pointerSize"]}
        return sibling

    def _repo_info(self, req: _Request, repo_type: str, ns: str, name: str, revision: str | None) -> _Response:
        repo = self._repo(req, repo_type, ns, name)
        commit_id = self._resolve(repo, revision if revision is not None else "main")
        return _Response.json(self._info_payload(req, repo, commit_id, siblings=True))

    def _list_repos(self, req: _Request, repo_type: str) -> _Response:
        author, search = req.param("author"), req.param("search")
        limit = int(req.param("limit") or 0)
        visible = self._namespaces(req.user)
        results = []
        with self._lock:
            for repo in sorted(self._state["repos"].values(), key=lambda r: r["id"]):
                namespace = repo["id"].split("/")[0]
                if repo["type"] != repo_type or (repo["private"] and namespace not in visible):
                    continue
                if (author and namespace != author) or (search and search.lower() not in repo["id"].lower()):
                    continue
                results.append(self._info_payload(req, repo, repo["branches"]["main"], siblings=False))
        return _Response.json(results[:limit] if limit > 0 else results)

    # -- trees ---------------------------------------------------------------------------------------------------------

    @staticmethod
    def _file_item(path: str, entry: dict[str, Any]) -> dict[str, Any]:
        item: dict[str, Any] = {"type": "file", "oid": entry["oid"], "size": entry["size"], "path": path}
        if entry["lfs"]:
            item["lfs"] = {"oid": entry["sha256"], "size": entry["size"], "pointerSize": entry["pointerSize"]}
        return item

    @staticmethod
    def _dir_item(path: str, files: dict[str, Any]) -> dict[str, Any]:
        prefix = path + "/"
        listing = "".join(f"{p}:{e['oid']}\n" for p, e in sorted(files.items()) if p.startswith(prefix))
        return {"type": "directory", "oid": hashlib.sha1(listing.encode()).hexdigest(), "size": 0, "path": path}

    @staticmethod
    def _directories(files: dict[str, Any]) -> set[str]:
        dirs: set[str] = set()
        for path in files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        return dirs

    def _tree(self, req: _Request, repo_type: str, ns: str, name: str, revision: str, path: str) -> _Response:
        repo = self._repo(req, repo_type, ns, name)
        commit_id = self._resolve(repo, revision)
        files = repo["commits"][commit_id]["files"]
        dirs = self._directories(files)
        path = path.strip("/")
        if path in files:
            raise HubError(400, f"{path} is a file, not a directory", headers={"X-Repo-Commit": commit_id})
        if path and path not in dirs:
            raise HubError(404, f"{path} does not exist on {revision}", "EntryNotFound", {"X-Repo-Commit": commit_id})
        recursive = req.flag("recursive")
        prefix = path + "/" if path else ""

        def wanted(p: str) -> bool:
            return p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :])

        items = [self._dir_item(d, files) for d in sorted(dirs) if wanted(d)]
        items += [self._file_item(p, files[p]) for p in sorted(files) if wanted(p)]
        response = _Response.json(items)
        response.headers["X-Repo-Commit"] = commit_id
        return response

    def _paths_info(self, req: _Request, repo_type: str, ns: str, name: str, revision: str) -> _Response:
        content_type = (req.headers.get("Content-Type") or "").lower()
        if "json" in content_type:
            paths = req.json().get("paths") or []
        else:
            paths = parse_qs(req.body().decode(), keep_blank_values=True).get("paths", [])
        repo = self._repo(req, repo_type, ns, name)
        files = repo["commits"][self._resolve(repo, revision)]["files"]
        dirs = self._directories(files)
        items = []
        for raw in [paths] if isinstance(paths, str) else paths:
            path = str(raw).strip("/")
            if path in files:
                items.append(self._file_item(path, files[path]))
            elif path in dirs:
                items.append(self._dir_item(path, files))
        return _Response.json(items)

    # -- refs, commits, branches, tags ---------------------------------------------------------------------------------

    def _refs(self, req: _Request, repo_type: str, ns: str, name: str) -> _Response:
        repo = self._repo(req, repo_type, ns, name)
        branches, prs = [], []
        for branch, target in sorted(repo["branches"].items()):
            if branch.startswith("refs/pr/"):
                prs.append({"name": branch, "ref": branch, "targetCommit": target})
            else:
                branches.append({"name": branch, "ref": f"refs/heads/{branch}", "targetCommit": target})
        tags = [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": c} for t, c in sorted(repo["tags"].items())]
        payload: dict[str, Any] = {"branches": branches, "tags": tags, "converts": []}
        if req.flag("include_prs"):
            payload["pullRequests"] = prs
        return _Response.json(payload)

    def _commits(self, req: _Request, repo_type: str, ns: str, name: str, revision: str) -> _Response:
        repo = self._repo(req, repo_type, ns, name)
        commit_id: str | None = self._resolve(repo, revision)
        formatted = any("formatted" in v for k, vs in req.query.items() if k.startswith("expand") for v in vs)
        items = []
        while commit_id is not None:
            commit = repo["commits"][commit_id]
            item: dict[str, Any] = {
                "id": commit_id,
                "title": commit["title"],
                "message": commit["message"],
                "date": commit["date"],
                "authors": [{"user": commit["author"], "avatar": ""}],
            }
            if formatted:
                item["formatted"] = {"title": commit["title"], "message": commit["message"]}
            items.append(item)
            commit_id = commit["parent"]
        return _Response.json(items)

    def _branch(self, req: _Request, repo_type: str, ns: str, name: str, branch: str) -> _Response:
        body = req.json() if req.method == "POST" else {}
        repo = self._repo(req, repo_type, ns, name, write=True)
        if req.method == "DELETE":
            if branch == "main":
                raise HubError(400, "Cannot delete the main branch")
            if branch not in repo["branches"] or branch.startswith("refs/"):
                raise HubError(404, f"Branch not found: {branch}", "RevisionNotFound")
            del repo["branches"][branch]
        else:
            if branch.startswith("refs/") or COMMIT_RE.fullmatch(branch) or not branch.strip():
                raise HubError(400, f"Invalid branch name: {branch}")
            if branch in repo["branches"]:
                raise HubError(409, f"Reference already exists: refs/heads/{branch}")
            repo["branches"][branch] = self._resolve(repo, str(body.get("startingPoint") or "main"))
        self._save()
        return _Response.json({})

    def _tag(self, req: _Request, repo_type: str, ns: str, name: str, argument: str) -> _Response:
        body = req.json() if req.method == "POST" else {}
        repo = self._repo(req, repo_type, ns, name, write=True)
        if req.method == "DELETE":
            if argument not in repo["tags"]:
                raise HubError(404, f"Tag not found: {argument}", "RevisionNotFound")
            del repo["tags"][argument]
        else:
            tag = body.get("tag")
            if not isinstance(tag, str) or not tag.strip():
                raise HubError(400, "Missing tag name")
            if tag in repo["tags"]:
                raise HubError(409, f"Tag already exists: {tag}")
            repo["tags"][tag] = self._resolve(repo, argument)
        self._save()
        return _Response.json({})

    # -- uploads -------------------------------------------------------------------------------------------------------

    def _wants_lfs(self, path: str, size: int, sample: bytes) -> bool:
        if self.upload_mode == "regular" or size == 0:
            return False
        basename = path.rsplit("/", 1)[-1]
        if any(fnmatch.fnmatchcase(basename, pattern) for pattern in LFS_PATTERNS):
            return True
        return b"\0" in sample or size >= self.lfs_threshold

    def _preupload(self, req: _Request, repo_type: str, ns: str, name: str, revision: str) -> _Response:
        body = req.json()
        repo = self._repo(req, repo_type, ns, name, write=True)
        if req.flag("create_pr"):
            commit_id = self._resolve(repo, revision)
        else:
            commit_id = repo["branches"][self._branch_name(repo, revision)]
        current = repo["commits"][commit_id]["files"]
        if not isinstance(body.get("files"), list):
            raise HubError(400, "Body must contain a 'files' list")
        answers = []
        for item in body["files"]:
            path, size = str(item.get("path")), int(item.get("size") or 0)
            try:
                sample = base64.b64decode(item.get("sample") or "")
            except ValueError:
                sample = b""
            lfs = self._wants_lfs(path, size, sample)
            answer: dict[str, Any] = {"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
            existing = current.get(path)
            if existing is not None and existing["lfs"] == lfs:
                answer["oid"] = existing["sha256"] if lfs else existing["oid"]
            answers.append(answer)
        return _Response.json({"files": answers, "commitOid": commit_id})

    def _lfs_batch(self, req: _Request, repo_type: str, ns: str, name: str) -> _Response:
        body = req.json()
        with self._lock:
            self._repo(req, repo_type, ns, name, write=True)
        if body.get("operation") != "upload":
            raise HubError(400, "Only the 'upload' LFS batch operation is supported")
        objects = []
        for obj in body.get("objects") or []:
            oid, size = str(obj.get("oid", "")), obj.get("size")
            if not SHA256_RE.fullmatch(oid) or not isinstance(size, int) or size < 0:
                objects.append({"oid": oid, "size": size, "error": {"code": 422, "message": "Invalid oid or size"}})
                continue
            if self.has_blob(oid) and (self._blobs / oid).stat().st_size == size:
                objects.append({"oid": oid, "size": size})
                continue
            with self._lock:
                self._pending_lfs[oid] = size
            href = f"{req.endpoint}/_lfs/upload/{oid}"
            objects.append({"oid": oid, "size": size, "actions": {"upload": {"href": href, "header": {}}}})
        return _Response.json({"transfer": "basic", "objects": objects}, content_type=LFS_CONTENT_TYPE)

    def _take_fault(self, attribute: str) -> bool:
        with self._lock:
            remaining = getattr(self, attribute)
            if remaining > 0:
                setattr(self, attribute, remaining - 1)
                return True
            return False

    def _lfs_put(self, req: _Request, oid: str) -> _Response:
        if not SHA256_RE.fullmatch(oid):
            raise HubError(400, f"Invalid LFS oid: {oid}")
        fd, tmp = tempfile.mkstemp(dir=self._blobs, prefix=".upload-")
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as f:
                for data in req.iter_body():
                    digest.update(data)
                    size += len(data)
                    f.write(data)
            if self._take_fault("fail_next_uploads"):
                raise HubError(self.fault_status, "Injected upload failure (LocalHub.fail_next_uploads)")
            if digest.hexdigest() != oid:
                raise HubError(400, f"SHA-256 mismatch: body hashes to {digest.hexdigest()}, expected {oid}")
            with self._lock:
                expected = self._pending_lfs.get(oid)
            if expected is not None and expected != size:
                raise HubError(400, f"Size mismatch for {oid}: got {size} bytes, expected {expected}")
            os.replace(tmp, self._blobs / oid)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        with self._lock:
            self._pending_lfs.pop(oid, None)
        response = _Response.json({})
        response.headers["ETag"] = f'"{oid}"'
        return response

    @staticmethod
    def _clean_path(path: Any) -> str:
        if not isinstance(path, str) or not path or path.startswith("/") or "\\" in path:
            raise HubError(400, f"Invalid path in commit: {path!r}")
        if any(part in ("", ".", "..") for part in path.rstrip("/").split("/")):
            raise HubError(400, f"Invalid path in commit: {path!r}")
        return path

    def _commit(self, req: _Request, repo_type: str, ns: str, name: str, revision: str) -> _Response:
        raw = req.body()
        repo = self._repo(req, repo_type, ns, name, write=True)
        if self._take_fault("fail_next_commits"):
            raise HubError(self.fault_status, "Injected commit failure (LocalHub.fail_next_commits)")
        try:
            lines = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
        except ValueError as exc:
            raise HubError(400, f"Invalid NDJSON commit payload: {exc}") from exc
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The first line of a commit payload must be the header")
        header = lines[0].get("value") or {}
        create_pr = req.flag("create_pr")
        if create_pr:
            branch, head = None, self._resolve(repo, revision)
        else:
            branch = self._branch_name(repo, revision)
            head = repo["branches"][branch]
        parent_commit = header.get("parentCommit")
        if parent_commit and parent_commit != head:
            raise HubError(412, f"A commit has happened since {parent_commit}. Please refresh and try again.")
        files = copy.deepcopy(repo["commits"][head]["files"])
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value") or {}
            if key == "file":
                path = self._clean_path(value.get("path"))
                try:
                    content = base64.b64decode(value.get("content") or "", validate=True)
                except ValueError as exc:
                    raise HubError(400, f"Invalid base64 content for {path}") from exc
                files[path] = self._entry(self._store_bytes(content), len(content), False, content)
            elif key == "lfsFile":
                path, oid = self._clean_path(value.get("path")), str(value.get("oid", ""))
                if not self.has_blob(oid):
                    raise HubError(422, f"LFS object {oid} for {path} was never uploaded; upload it before committing")
                size = (self._blobs / oid).stat().st_size
                if value.get("size") is not None and int(value["size"]) != size:
                    raise HubError(422, f"Size mismatch for LFS object {oid}: stored {size}, got {value['size']}")
                files[path] = self._entry(oid, size, True)
            elif key == "deletedFile":
                path = self._clean_path(value.get("path"))
                if path not in files:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                del files[path]
            elif key == "deletedFolder":
                prefix = self._clean_path(value.get("path")).rstrip("/") + "/"
                doomed = [p for p in files if p.startswith(prefix)]
                if not doomed:
                    raise HubError(404, f"A folder with this name doesn't exist: {prefix}", "EntryNotFound")
                for p in doomed:
                    del files[p]
            else:
                raise HubError(400, f"Unsupported commit operation: {key!r}")
        title = str(header.get("summary") or "Upload files")
        commit_id = self._new_commit(repo, head, files, title, str(header.get("description") or ""), str(req.user))
        prefix_url = self._repo_url(req, repo_type, repo["id"])
        pr_url = None
        if create_pr:
            number = repo["nextPr"]
            repo["nextPr"] = number + 1
            repo["branches"][f"refs/pr/{number}"] = commit_id
            pr_url = f"{prefix_url}/discussions/{number}"
        else:
            repo["branches"][branch] = commit_id
        self._save()
        return _Response.json(
            {
                "success": True,
                "commitOid": commit_id,
                "commitUrl": f"{prefix_url}/commit/{commit_id}",
                "commitMessage": title,
                "pullRequestUrl": pr_url,
            }
        )

    # -- downloads -----------------------------------------------------------------------------------------------------

    def _resolve_file(self, req: _Request, repo_type: str, ns: str, name: str, revision: str, path: str) -> _Response:
        with self._lock:
            repo = self._repo(req, repo_type, ns, name)
            commit_id = self._resolve(repo, revision)
            entry = repo["commits"][commit_id]["files"].get(path)
        if entry is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit_id})
        size = entry["size"]
        etag = f'"{entry["sha256"]}"' if entry["lfs"] else f'"{entry["oid"]}"'
        headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "ETag": etag,
            "X-Repo-Commit": commit_id,
        }
        if entry["lfs"]:
            headers.update({"X-Linked-Etag": etag, "X-Linked-Size": str(size)})
        start, end, status = 0, size - 1, 200
        range_header = req.headers.get("Range")
        if range_header:
            match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", range_header)
            if match and (match.group(1) or match.group(2)):
                first, last = match.groups()
                if first:
                    start, end = int(first), min(int(last), size - 1) if last else size - 1
                else:
                    start, end = max(0, size - int(last)), size - 1
                if start >= size or start > end or (not first and int(last) == 0):
                    raise HubError(
                        416, f"Range {range_header} not satisfiable", headers={"Content-Range": f"bytes */{size}"}
                    )
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return _Response(
            status=status,
            headers=headers,
            file=self._blobs / entry["sha256"],
            offset=start,
            length=max(0, end - start + 1),
        )


# ----------------------------------------------------------------------------------------------------------------------
# Command line


def main(argv: list[str] | None = None) -> None:
    """Serve a LocalHub until interrupted; prints ``LocalHub ready at <endpoint>`` once listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, required=True, help="storage folder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--token", action="append", default=[], metavar="TOKEN=USER[:ORG,...]", help="a token, its user and orgs"
    )
    parser.add_argument("--upload-mode", choices=("lfs", "regular"), default="lfs")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    tokens: dict[str, str] = {}
    orgs: dict[str, list[str]] = {}
    for spec in args.token:
        token, _, user_spec = spec.partition("=")
        user, _, org_list = user_spec.partition(":")
        if not token or not user:
            parser.error(f"invalid --token {spec!r}; expected TOKEN=USER[:ORG,...]")
        tokens[token] = user
        if org_list:
            orgs.setdefault(user, []).extend(o for o in org_list.split(",") if o)
    hub = LocalHub(
        args.root,
        tokens,
        orgs=orgs,
        host=args.host,
        port=args.port,
        upload_mode=args.upload_mode,
        verbose=args.verbose,
    )
    hub.start()
    print(f"LocalHub ready at {hub.endpoint}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()
        sys.exit(0)


if __name__ == "__main__":
    main()
