"""A small, real HTTP server on 127.0.0.1 speaking the part of the Hugging Face Hub API that
``huggingface_hub`` uses to publish and download a model repo.

Why: huggingface_hub 2.x talks through ``httpx2``, which mocking libraries do not intercept, and
no pip-installable hub emulator works offline. With this server the *client* side of the tests is
the library's real code (create_repo, create_branch, create_commit, validate-yaml, hf_hub_download,
ModelCard.load); only the endpoint differs.

Routes (method, path) and what they answer:

- POST ``/api/repos/create``                       -> ``{"url": ...}``; 409 (with ``url``) if it exists
- POST ``/api/models/{repo}/branch/{branch}``       -> new branch at ``startingPoint`` (default main); 409 if it exists
- POST ``/api/validate-yaml``                       -> checks the README front matter; 400 ``{"errors": [...]}``
- POST ``/api/models/{repo}/preupload/{rev}``       -> every file is "regular" (content comes inline, base64)
- POST ``/api/models/{repo}/commit/{rev}``          -> NDJSON commit, applied all-or-nothing; with
  ``?create_pr=1`` the commit goes to a new ``refs/pr/N`` ref started from ``rev`` (a pull request)
- GET  ``/api/models/{repo}[/revision/{rev}]``      -> model_info / repo_info
- HEAD/GET ``/{repo}/resolve/{rev}/{path}``         -> file with ETag, X-Repo-Commit, Content-Length

Writes need ``Authorization: Bearer <token>`` with a token from ``tokens`` (401 otherwise) for a
namespace the token's user owns (403 otherwise). ``server.fail["commit"] = 500`` makes a route
answer that status (before touching any state) to test server errors mid-upload.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

# Licence ids the Hub accepts in model card metadata (https://huggingface.co/docs/hub/repositories-licenses).
# Deliberately a copy, not an import of fsgen_hub.cards.HUB_LICENSES: the server stands in for the Hub, and
# validating cards against our own list would pass whatever that list says.
HUB_LICENSES = frozenset({
    "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m",
    "bigscience-bloom-rail-1.0", "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd",
    "bsd-2-clause", "bsd-3-clause", "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0", "cc-by-2.0",
    "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0",
    "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0",
    "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cdla-sharing-1.0", "cdla-permissive-1.0", "cdla-permissive-2.0",
    "wtfpl", "ecl-2.0", "epl-1.0", "epl-2.0", "etalab-2.0", "eupl-1.1", "eupl-1.2", "agpl-3.0", "gfdl",
    "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "isc", "h-research", "intel-research",
    "lppl-1.3c", "ms-pl", "apple-ascl", "apple-amlr", "mpl-2.0", "odc-by", "odbl", "openrail++", "osl-3.0",
    "postgresql", "ofl-1.1", "ncsa", "unlicense", "zlib", "pddl", "lgpl-lr", "deepfloyd-if-license",
    "llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "llama4", "gemma", "unknown", "other",
})
PIPELINE_TAGS = frozenset({
    "unconditional-image-generation", "text-to-image", "image-to-image", "image-classification",
    "text-generation", "feature-extraction", "other",
})
BASE_MODEL_RELATIONS = frozenset({"adapter", "merge", "quantized", "finetune"})
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}(/[\w.-]{1,96})?$")
YAML_BLOCK = re.compile(r"^(\s*---(?:\r\n|\r|\n))([\S\s]*?)((?:\r\n|\r|\n)---[ \t]*(\r\n|\n|$))")


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob: what the Hub reports for regular (non-LFS) files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    oid: str
    parent: str | None
    message: str
    files: dict[str, bytes]


@dataclass
class Repo:
    repo_id: str
    owner: str
    private: bool
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit | None:
        oid = self.branches.get(revision, revision)
        return self.commits.get(oid)

    def history(self, branch: str = "main") -> list[Commit]:
        """Commits of ``branch`` from the newest to the first."""
        out, commit = [], self.resolve(branch)
        while commit is not None:
            out.append(commit)
            commit = self.commits.get(commit.parent) if commit.parent else None
        return out


class HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra or {}


class HubServer:
    """In-memory hub. ``tokens`` maps a write token to its user; ``orgs`` maps a user to extra namespaces."""

    def __init__(self, tokens: dict[str, str] | None = None, orgs: dict[str, list[str]] | None = None):
        self.tokens = dict(tokens or {})
        self.orgs = dict(orgs or {})
        self.repos: dict[str, Repo] = {}
        self.fail: dict[str, int] = {}          # route name -> status to answer instead (failure injection)
        self.requests: list[dict[str, Any]] = []  # every request: method, path, route, status, body (no headers)
        self.request_headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def endpoint(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> HubServer:
        server = self

        class Handler(_Handler):
            hub = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False  # idle keep-alive connections must not block shutdown
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="hub-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ inspection helpers for tests
    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        commit = self.repos[repo_id].resolve(revision)
        return dict(commit.files) if commit else {}

    def history(self, repo_id: str, branch: str = "main") -> list[Commit]:
        return self.repos[repo_id].history(branch) if repo_id in self.repos else []

    def stored_bytes(self) -> Iterator[tuple[str, bytes]]:
        """Every byte the server keeps: file contents and commit messages of every repo."""
        for repo in self.repos.values():
            for commit in repo.commits.values():
                yield f"{repo.repo_id}@{commit.oid}:message", commit.message.encode()
                for path, data in commit.files.items():
                    yield f"{repo.repo_id}@{commit.oid}:{path}", data

    # ------------------------------------------------------------------ auth
    def _user(self, headers, required: bool) -> str | None:
        auth = headers.get("Authorization") or ""
        if not auth:
            if required:
                raise HttpError(401, "Invalid username or password.")
            return None
        match = re.fullmatch(r"Bearer (\S+)", auth)
        if not match or match.group(1) not in self.tokens:
            raise HttpError(401, "Invalid credentials in Authorization header")
        return self.tokens[match.group(1)]

    def _can_write(self, user: str, namespace: str) -> bool:
        return namespace == user or namespace in self.orgs.get(user, [])

    def _repo(self, repo_id: str, user: str | None, write: bool = False) -> Repo:
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and (user is None or not self._can_write(user, repo.repo_id.split("/")[0]))):
            raise HttpError(404, "Repository not found", code="RepoNotFound")
        if write and (user is None or not self._can_write(user, repo_id.split("/")[0])):
            raise HttpError(403, f"You don't have the rights to write to {repo_id}")
        return repo

    def _commit(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HttpError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return commit

    # ------------------------------------------------------------------ routes
    def create_repo(self, headers, body: dict) -> dict:
        user = self._user(headers, required=True)
        namespace = body.get("organization") or user
        repo_id = f"{namespace}/{body.get('name')}"
        if not REPO_ID.match(repo_id) or body.get("type", "model") not in (None, "model"):
            raise HttpError(400, f"invalid repo name or type: {repo_id!r}")
        if not self._can_write(user, namespace):
            raise HttpError(403, f"You don't have the rights to create a model under the namespace {namespace!r}")
        url = f"{self.endpoint}/{repo_id}"
        with self._lock:
            if repo_id in self.repos:
                raise HttpError(409, "You already created this model repo", extra={"url": url})
            private = bool(body.get("private")) or body.get("visibility") == "private"
            repo = Repo(repo_id, owner=user, private=private)
            self._add_commit(repo, "main", None, "initial commit", {".gitattributes": b"*.safetensors filter=lfs\n"})
            self.repos[repo_id] = repo
        return {"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]}

    def create_branch(self, headers, repo_id: str, branch: str, body: dict) -> dict:
        user = self._user(headers, required=True)
        with self._lock:
            repo = self._repo(repo_id, user, write=True)
            if branch in repo.branches:
                raise HttpError(409, f"Reference already exists: refs/heads/{branch}")
            start = self._commit(repo, body.get("startingPoint") or "main")
            repo.branches[branch] = start.oid
        return {}

    def preupload(self, headers, repo_id: str, revision: str, body: dict) -> dict:
        user = self._user(headers, required=True)
        with self._lock:
            repo = self._repo(repo_id, user, write=True)
            current = self._commit(repo, revision).files
        files = []
        for item in body.get("files", []):
            path = item["path"]
            oid = git_blob_oid(current[path]) if path in current else None
            files.append({"path": path, "uploadMode": "regular", "shouldIgnore": False, "oid": oid})
        return {"files": files, "commitOid": None}

    def commit(self, headers, repo_id: str, revision: str, raw: bytes, create_pr: bool = False) -> dict:
        user = self._user(headers, required=True)
        lines = [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HttpError(400, "commit payload must start with a header line")
        header = lines[0]["value"]
        with self._lock:  # all-or-nothing: state changes only once every line has been checked
            repo = self._repo(repo_id, user, write=True)
            parent = self._commit(repo, revision)
            if revision not in repo.branches:
                raise HttpError(400, f"cannot commit to {revision!r}: not a branch")
            if header.get("parentCommit") and header["parentCommit"] != parent.oid:
                raise HttpError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(parent.files)
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value") or {}
                path = value.get("path", "")
                if not path or path.startswith("/") or ".." in path.split("/"):
                    raise HttpError(400, f"invalid path {path!r}")
                if key == "file":
                    if value.get("encoding") != "base64":
                        raise HttpError(400, "only base64 file content is supported")
                    files[path] = base64.b64decode(value["content"], validate=True)
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        raise HttpError(404, "A file with this name doesn't exist", code="EntryNotFound")
                elif key == "deletedFolder":
                    files = {p: d for p, d in files.items() if not p.startswith(path.rstrip("/") + "/")}
                else:  # lfsFile: preupload never asks for LFS here
                    raise HttpError(400, f"unsupported commit operation {key!r}")
            summary = header.get("summary") or ""
            if header.get("description"):
                summary += "\n\n" + header["description"]
            pr_url = None
            if create_pr:  # the Hub keeps a PR's commits on refs/pr/N; the base branch does not move
                number = 1 + sum(ref.startswith("refs/pr/") for ref in repo.branches)
                revision = f"refs/pr/{number}"
                pr_url = f"{self.endpoint}/{repo_id}/discussions/{number}"
            commit = self._add_commit(repo, revision, parent.oid, summary, files)
        return {"success": True, "commitOid": commit.oid, "commitUrl": f"{self.endpoint}/{repo_id}/commit/{commit.oid}",
                "hookOutput": "", "pullRequestUrl": pr_url}

    def _add_commit(self, repo: Repo, branch: str, parent: str | None, message: str, files: dict[str, bytes]) -> Commit:
        digest = hashlib.sha1(f"{parent}\n{message}\n{time.time_ns()}".encode())
        for path in sorted(files):
            digest.update(f"{path}:{git_blob_oid(files[path])}".encode())
        commit = Commit(digest.hexdigest(), parent, message, files)
        repo.commits[commit.oid] = commit
        repo.branches[branch] = commit.oid
        return commit

    def model_info(self, headers, repo_id: str, revision: str) -> dict:
        user = self._user(headers, required=False)
        with self._lock:
            repo = self._repo(repo_id, user)
            commit = self._commit(repo, revision)
        return {"id": repo_id, "modelId": repo_id, "sha": commit.oid, "private": repo.private,
                "author": repo_id.split("/")[0], "siblings": [{"rfilename": p} for p in sorted(commit.files)],
                "tags": [], "downloads": 0, "likes": 0}

    def resolve(self, headers, repo_id: str, revision: str, path: str) -> tuple[dict[str, str], bytes]:
        user = self._user(headers, required=False)
        with self._lock:
            repo = self._repo(repo_id, user)
            commit = self._commit(repo, revision)
        if path not in commit.files:
            raise HttpError(404, "Entry not found", code="EntryNotFound",
                            extra={"_headers": {"X-Repo-Commit": commit.oid}})
        data = commit.files[path]
        return {"X-Repo-Commit": commit.oid, "ETag": f'"{git_blob_oid(data)}"',
                "Content-Type": "application/octet-stream"}, data

    def validate_yaml(self, body: dict) -> dict:
        errors = validate_card_metadata(body.get("content") or "")
        if errors:
            raise HttpError(400, errors[0], extra={"errors": [{"message": e} for e in errors]})
        return {"errors": [], "warnings": []}


def validate_card_metadata(content: str) -> list[str]:
    """The server's own checks of a README front matter (a subset of the Hub's rules)."""
    match = YAML_BLOCK.search(content)
    if not match:
        return []
    try:
        data = yaml.safe_load(match.group(2))
    except yaml.YAMLError as exc:
        return [f"YAML is invalid: {exc}"]
    if data is None:
        return []
    if not isinstance(data, dict):
        return ["metadata must be a YAML mapping"]
    errors = []

    def str_or_list(key: str, check=None) -> None:
        value = data.get(key)
        if value is None:
            return
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(v, str) and v for v in items):
            errors.append(f'"{key}" must be a string or a list of strings')
        elif check is not None:
            errors.extend(f'"{key}": {msg}' for v in items if (msg := check(v)))

    str_or_list("license", lambda v: None if v in HUB_LICENSES else f"{v!r} is not a Hub licence id (use 'other')")
    str_or_list("tags")
    str_or_list("datasets", lambda v: None if REPO_ID.match(v) else f"{v!r} is not a dataset id")
    str_or_list("base_model", lambda v: None if REPO_ID.match(v) else f"{v!r} is not a model id")
    for key in ("library_name", "pipeline_tag", "license_name", "license_link", "base_model_relation"):
        if key in data and not isinstance(data[key], str):
            errors.append(f'"{key}" must be a string')
    if isinstance(data.get("pipeline_tag"), str) and data["pipeline_tag"] not in PIPELINE_TAGS:
        errors.append(f'"pipeline_tag" {data["pipeline_tag"]!r} is not a known task')
    if isinstance(data.get("base_model_relation"), str) and data["base_model_relation"] not in BASE_MODEL_RELATIONS:
        errors.append('"base_model_relation" must be one of adapter, merge, quantized, finetune')
    if data.get("base_model_relation") and not data.get("base_model"):
        errors.append('"base_model_relation" needs "base_model"')
    if "model-index" in data:
        errors.extend(_model_index_errors(data["model-index"]))
    return errors


def _model_index_errors(index: Any) -> list[str]:
    if not isinstance(index, list) or not index:
        return ['"model-index" must be a non-empty list']
    errors = []
    for model in index:
        if not isinstance(model, dict) or not isinstance(model.get("name"), str) \
                or not isinstance(model.get("results"), list):
            errors.append('"model-index" entries need "name" (string) and "results" (list)')
            continue
        for result in model["results"]:
            task, dataset, metrics = result.get("task"), result.get("dataset"), result.get("metrics")
            if not isinstance(task, dict) or not isinstance(task.get("type"), str):
                errors.append('"model-index" result needs task.type')
            if not isinstance(dataset, dict) or not all(isinstance(dataset.get(k), str) for k in ("type", "name")):
                errors.append('"model-index" result needs dataset.type and dataset.name')
            if not isinstance(metrics, list) or not metrics:
                errors.append('"model-index" result needs a non-empty metrics list')
                continue
            for metric in metrics:
                if not isinstance(metric, dict) or not isinstance(metric.get("type"), str):
                    errors.append('"model-index" metric needs a type')
                elif isinstance(metric.get("value"), bool) or not isinstance(metric.get("value"), (int, float, str)):
                    errors.append(f'"model-index" metric {metric["type"]!r} needs a number or string value')
    return errors


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"  # keep-alive like the real hub: every response carries Content-Length
    timeout = 30

    def log_message(self, format, *args):  # keep test output clean
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self, method: str) -> None:
        hub = self.hub
        raw = self._body() if method == "POST" else b""
        parts = [unquote(p) for p in urlsplit(self.path).path.split("/")[1:]]
        route, args = _route(method, parts)
        record = {"method": method, "path": self.path, "route": route, "body": raw}
        hub.request_headers.append({k: v for k, v in self.headers.items()})
        try:
            if route in hub.fail:
                raise HttpError(hub.fail[route], f"injected failure on {route}")
            if route is None:
                raise HttpError(404, f"no route for {method} {self.path}")
            json_body = json.loads(raw or b"{}") if route not in ("commit",) else None
            if route == "create_repo":
                result = hub.create_repo(self.headers, json_body)
            elif route == "create_branch":
                result = hub.create_branch(self.headers, *args, json_body)
            elif route == "preupload":
                result = hub.preupload(self.headers, *args, json_body)
            elif route == "commit":
                create_pr = parse_qs(urlsplit(self.path).query).get("create_pr", ["0"])[0] in ("1", "true", "True")
                result = hub.commit(self.headers, *args, raw, create_pr=create_pr)
            elif route == "validate_yaml":
                result = hub.validate_yaml(json_body)
            elif route == "model_info":
                result = hub.model_info(self.headers, *args)
            else:  # resolve
                headers, data = hub.resolve(self.headers, *args)
                record["status"] = 200
                hub.requests.append(record)
                self._send(200, data, headers, head=method == "HEAD")
                return
            record["status"] = 200
            hub.requests.append(record)
            self._send(200, json.dumps(result).encode(), {"Content-Type": "application/json"})
        except HttpError as exc:
            record["status"] = exc.status
            hub.requests.append(record)
            extra = dict(exc.extra)
            headers = {"Content-Type": "application/json", "X-Error-Message": exc.message, **extra.pop("_headers", {})}
            if exc.code:
                headers["X-Error-Code"] = exc.code
            self._send(exc.status, json.dumps({"error": exc.message, **extra}).encode(), headers, head=method == "HEAD")
        except (ValueError, KeyError, TypeError) as exc:  # malformed request: the client's bug, answer 400
            record["status"] = 400
            hub.requests.append(record)
            self._send(400, json.dumps({"error": f"bad request: {exc}"}).encode(), {"Content-Type": "application/json"})

    def _send(self, status: int, data: bytes, headers: dict[str, str], head: bool = False) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)


_API_ACTIONS = {"preupload": "preupload", "commit": "commit", "branch": "create_branch", "revision": "model_info"}


def _route(method: str, parts: list[str]) -> tuple[str | None, tuple]:
    """(route name, arguments) for a request path split into unquoted segments."""
    if method == "POST" and parts == ["api", "repos", "create"]:
        return "create_repo", ()
    if method == "POST" and parts == ["api", "validate-yaml"]:
        return "validate_yaml", ()
    if len(parts) >= 3 and parts[:2] == ["api", "models"]:
        rest = parts[2:]
        for n in (2, 1):  # "namespace/name" or a bare legacy "name"
            if len(rest) == n and method == "GET":
                return "model_info", ("/".join(rest), "main")
            if len(rest) == n + 2 and rest[n] in _API_ACTIONS:
                name = _API_ACTIONS[rest[n]]
                if (name == "model_info") == (method == "GET"):
                    return name, ("/".join(rest[:n]), rest[n + 1])
        return None, ()
    if method in ("GET", "HEAD"):
        for n in (2, 1):
            if len(parts) > n + 2 and parts[n] == "resolve":
                return "resolve", ("/".join(parts[:n]), parts[n + 1], "/".join(parts[n + 2:]))
    return None, ()


@contextlib.contextmanager
def local_hub(monkeypatch, cache_dir, tokens: dict[str, str] | None = None, orgs=None) -> Iterator[HubServer]:
    """Start a server and point huggingface_hub at it (endpoint, cache, no stored token, online).

    ``constants.ENDPOINT`` and the resolve-URL template are computed from ``HF_ENDPOINT`` when
    huggingface_hub is imported, so both are patched; the token file is redirected so that a
    developer's own login can never leak into (or rescue) a test.
    """
    from huggingface_hub import constants

    with HubServer(tokens=tokens, orgs=orgs) as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.endpoint)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            server.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache_dir))
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(cache_dir / "no-token"))
        monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(cache_dir / "no-stored-tokens"))
        for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)  # for subprocesses (read at their import)
        monkeypatch.setenv("HF_HUB_CACHE", str(cache_dir))
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield server
