"""A small stand-in for the Hugging Face Hub's HTTP API, so uploads and downloads run offline through the real client.

`install(storage)` points huggingface_hub at a fake endpoint and answers its requests from an `httpx2.MockTransport`
(the client factory hook, `huggingface_hub.set_client_factory`); repos are folders under `storage` (one per branch),
so a second process that installs the stand-in on the same folder sees what the first uploaded. It depends on
huggingface_hub only, never on hf_diffusion_lm, so it serves a process that does not have the package.

Endpoints (and the fields the client reads), as listed in shared/reference/hf-integration.md:
- POST /api/repos/create -> {"url"}; records `visibility` (`private` in older clients).
- POST /api/models/{repo}/branch/{branch} -> {}.
- POST /api/validate-yaml -> {} or 400 {"error"} (a missing or unknown license, a model-index that is not a list).
- POST /api/models/{repo}/preupload/{revision} -> {"files": [{"path", "uploadMode": "regular", "shouldIgnore"}]}.
- POST /api/models/{repo}/commit/{revision} (NDJSON, base64 file contents; `create_pr=1` commits to a PR ref)
  -> {"commitUrl", "commitOid", "pullRequestUrl"}.
- HEAD / GET /{repo}/resolve/{revision}/{path} -> the file with ETag and X-Repo-Commit; 404 with
  X-Error-Code: EntryNotFound (RepositoryNotFound for an unknown repo).
Every request must carry the token given to `install` except downloads of public repos.
"""

import base64
import hashlib
import json
import os
import re
from pathlib import Path
from urllib.parse import unquote

import httpx2
import yaml
from huggingface_hub import constants, set_client_factory


ENDPOINT = "https://hub.stand-in.test"
LICENSES = {"apache-2.0", "mit", "bsd-3-clause", "cc-by-4.0", "other"}


class HubStandIn:
    def __init__(self, storage, token: str):
        self.storage = Path(storage)
        self.storage.mkdir(parents=True, exist_ok=True)
        self.token = token
        self.requests = []

    # ---- state on disk -------------------------------------------------------------------------------------------
    def repo_folder(self, repo_id: str, revision: str = "main") -> Path:
        return self.storage / repo_id / unquote(revision).replace("/", "%2F")

    def repo_meta(self, repo_id: str) -> dict | None:
        path = self.storage / repo_id / "_repo.json"
        return json.loads(path.read_text()) if path.is_file() else None

    # ---- HTTP ----------------------------------------------------------------------------------------------------
    def authorised(self, request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.token}"

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        path = unquote(request.url.path)
        self.requests.append((request.method, path))
        if request.method == "POST" and path == "/api/validate-yaml":
            return self.validate_yaml(json.loads(request.content))
        if not path.startswith("/api/") and "/resolve/" in path:
            return self.resolve(request, path)
        if not self.authorised(request):
            return httpx2.Response(401, json={"error": "Invalid credentials"}, headers={"X-Error-Code": "Unauthorized"})
        if request.method == "POST" and path == "/api/repos/create":
            body = json.loads(request.content)
            repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
            (self.storage / repo_id).mkdir(parents=True, exist_ok=True)
            if self.repo_meta(repo_id) is None:
                (self.storage / repo_id / "_repo.json").write_text(json.dumps({"private": body.get("visibility") == "private"
                                                                                or bool(body.get("private"))}))
            self.repo_folder(repo_id).mkdir(exist_ok=True)
            return httpx2.Response(200, json={"url": f"{ENDPOINT}/{repo_id}", "name": repo_id})
        match = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(branch|preupload|commit)/(.+)", path)
        if match is None:
            return httpx2.Response(404, json={"error": f"stand-in has no {request.method} {path}"})
        repo_id, action, revision = match.groups()
        if self.repo_meta(repo_id) is None:
            return httpx2.Response(404, json={"error": "Repository not found"},
                                   headers={"X-Error-Code": "RepoNotFound"})
        if action == "branch":
            self.repo_folder(repo_id, revision).mkdir(exist_ok=True)
            return httpx2.Response(200, json={})
        if action == "preupload":
            files = json.loads(request.content)["files"]
            return httpx2.Response(200, json={"files": [{"path": file["path"], "uploadMode": "regular",
                                                         "shouldIgnore": False, "oid": None} for file in files]})
        return self.commit(request, repo_id, revision)

    def validate_yaml(self, body: dict) -> httpx2.Response:
        try:
            metadata = yaml.safe_load(body["content"].split("---")[1]) if body["content"].startswith("---") else \
                yaml.safe_load(body["content"])
        except yaml.YAMLError as error:
            return httpx2.Response(400, json={"error": f"Invalid YAML: {error}"})
        metadata = metadata or {}
        if metadata.get("license") not in LICENSES:
            return httpx2.Response(400, json={"error": f"\"license\" must be one of {sorted(LICENSES)}"})
        if "model-index" in metadata and not isinstance(metadata["model-index"], list):
            return httpx2.Response(400, json={"error": "\"model-index\" must be an array"})
        return httpx2.Response(200, json={})

    def commit(self, request, repo_id: str, revision: str) -> httpx2.Response:
        lines = [json.loads(line) for line in request.content.decode().splitlines() if line.strip()]
        pr = request.url.params.get("create_pr") in ("1", "true", "True")
        number = len(list((self.storage / repo_id).glob("refs%2Fpr%2F*"))) + 1
        target = self.repo_folder(repo_id, f"refs/pr/{number}" if pr else revision)
        if not pr and not target.is_dir():
            return httpx2.Response(404, json={"error": f"Revision {revision} not found"},
                                   headers={"X-Error-Code": "RevisionNotFound"})
        if pr:  # a pull request starts from the base revision's files
            target.mkdir()
            base = self.repo_folder(repo_id, revision)
            for file in base.rglob("*") if base.is_dir() else []:
                if file.is_file():
                    (target / file.relative_to(base)).parent.mkdir(parents=True, exist_ok=True)
                    (target / file.relative_to(base)).write_bytes(file.read_bytes())
        digest = hashlib.sha1()
        for line in lines:
            if line["key"] != "file":
                continue
            value = line["value"]
            destination = target / value["path"]
            destination.parent.mkdir(parents=True, exist_ok=True)
            content = base64.b64decode(value["content"])
            destination.write_bytes(content)
            digest.update(value["path"].encode() + content)
        oid = digest.hexdigest()
        (target / "_commit").write_text(oid)
        answer = {"commitUrl": f"{ENDPOINT}/{repo_id}/commit/{oid}", "commitOid": oid}
        if pr:
            answer["pullRequestUrl"] = f"{ENDPOINT}/{repo_id}/discussions/{number}"
        return httpx2.Response(200, json=answer)

    def resolve(self, request, path: str) -> httpx2.Response:
        match = re.fullmatch(r"/(?:models/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if match is None:
            return httpx2.Response(404, headers={"X-Error-Code": "EntryNotFound"})
        repo_id, revision, file_path = match.groups()
        meta = self.repo_meta(repo_id)
        if meta is None or (meta["private"] and not self.authorised(request)):
            return httpx2.Response(401, json={"error": "Repository not found"},
                                   headers={"X-Error-Code": "RepoNotFound"})
        folder = self.repo_folder(repo_id, revision)
        file = folder / file_path
        if not file.is_file() or file.name in ("_commit", "_repo.json"):
            return httpx2.Response(404, json={"error": "Entry not found"}, headers={"X-Error-Code": "EntryNotFound"})
        content = file.read_bytes()
        headers = {"ETag": f'"{hashlib.sha1(content).hexdigest()}"', "Content-Length": str(len(content)),
                   "X-Repo-Commit": (folder / "_commit").read_text() if (folder / "_commit").is_file() else "0" * 40}
        return httpx2.Response(200, content=b"" if request.method == "HEAD" else content, headers=headers)


def install(storage, token: str = "hf_stand_in_token") -> HubStandIn:
    """Route huggingface_hub's HTTP calls in this process to a stand-in over `storage`; sets HF_ENDPOINT/HF_TOKEN."""
    hub = HubStandIn(storage, token)
    os.environ["HF_ENDPOINT"] = ENDPOINT
    os.environ["HF_TOKEN"] = token
    constants.ENDPOINT = ENDPOINT
    constants.HUGGINGFACE_CO_URL_TEMPLATE = ENDPOINT + "/{repo_id}/resolve/{revision}/{filename}"
    set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(hub.handle), follow_redirects=True))
    return hub
