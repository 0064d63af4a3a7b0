"""The local Hub server (`tests/hub_server.py`) driven by the real, unpatched `huggingface_hub` client over HTTP.

The client is pointed at the server only through its public arguments (`HfApi(endpoint=..., token=...)`,
`snapshot_download(..., endpoint=..., token=...)`) or, in a subprocess, through `HF_ENDPOINT`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
from hub_server import LocalHub, git_blob_sha1

ALICE, BOB = "tok-alice", "tok-bob"
TOKENS = {ALICE: "alice", BOB: "bob"}
BIG = 11 * 1024 * 1024  # above the 10 MiB LFS threshold


@pytest.fixture
def client_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Configure the client for a local Hub through environment variables; returns a fresh download cache dir."""
    cache = tmp_path / "hf_cache"
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    env = {
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_XET": "1",  # LFS-mode uploads need the plain git-LFS path
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # huggingface_hub reads these two variables once, at import time, which happened already (conftest.py imports it
    # with HF_HUB_OFFLINE=1). The client checks the module-level mirrors of those variables at call time, so set the
    # mirrors to the values just put in the environment. No client code is replaced.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    return cache


@pytest.fixture
def hub(tmp_path: Path, client_env: Path):
    with LocalHub(tmp_path / "hub", TOKENS) as server:
        yield server


def _api(hub: LocalHub, token: str | bool | None):
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub.endpoint, token=token)


def _make_folder(root: Path, seed: int = 0) -> Path:
    """A model-like folder: card, config, small text file, code file and an 11 MiB binary file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text("---\nlicense: apache-2.0\nlibrary_name: sentence-transformers\n---\n# Model\n")
    (root / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    (root / "notes.txt").write_text(f"hello from seed {seed}\n")
    (root / "sub").mkdir(exist_ok=True)
    (root / "sub" / "modeling_x.py").write_text("X = 1\n")
    block = hashlib.sha256(f"seed-{seed}".encode()).digest() + b"\0" * 32
    (root / "weights.bin").write_bytes((block * (BIG // len(block) + 1))[:BIG])
    return root


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and ".cache" not in p.relative_to(folder).parts
    }


def _paths(hub: LocalHub, method: str, fragment: str) -> list[tuple[str, str, int]]:
    return [entry for entry in hub.request_log if entry[0] == method and fragment in entry[1]]


def test_whoami_create_repo_refs_and_branches(hub: LocalHub) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    api = _api(hub, ALICE)
    assert api.whoami()["name"] == "alice"
    url = api.create_repo("alice/model")
    assert url.repo_id == "alice/model" and url.endpoint == hub.endpoint
    assert api.create_repo("model", exist_ok=True).repo_id == "alice/model"  # no namespace -> the token's user
    with pytest.raises(HfHubHTTPError) as duplicate:
        api.create_repo("alice/model")
    assert duplicate.value.response.status_code == 409
    with pytest.raises(HfHubHTTPError) as foreign:
        api.create_repo("bob/model")
    assert foreign.value.response.status_code == 403

    assert api.list_repo_files("alice/model") == [".gitattributes"]
    api.create_branch("alice/model", branch="dev")
    api.create_tag("alice/model", tag="v0")
    refs = api.list_repo_refs("alice/model")
    assert {b.name for b in refs.branches} == {"main", "dev"}
    assert [t.ref for t in refs.tags] == ["refs/tags/v0"]
    assert len({b.target_commit for b in refs.branches}) == 1
    assert [c.title for c in api.list_repo_commits("alice/model")] == ["initial commit"]


def test_upload_folder_lfs_and_download_by_repo_id_branch_and_commit(
    hub: LocalHub, tmp_path: Path, client_env: Path
) -> None:
    from huggingface_hub import hf_hub_download, snapshot_download

    api = _api(hub, ALICE)
    api.create_repo("alice/model")
    folder = _make_folder(tmp_path / "src")
    commit = api.upload_folder(repo_id="alice/model", folder_path=folder, commit_message="add model")
    assert hub.branch_head("alice/model") == commit.oid
    assert len(_paths(hub, "POST", ".git/info/lfs/objects/batch")) == 1
    assert len(_paths(hub, "PUT", "/_lfs/upload/")) == 1  # only weights.bin travels through LFS

    tree = {f.path: f for f in api.list_repo_tree("alice/model", recursive=True) if hasattr(f, "size")}
    assert tree["weights.bin"].lfs is not None and tree["weights.bin"].lfs.size == BIG
    assert tree["notes.txt"].lfs is None
    assert tree["notes.txt"].blob_id == git_blob_sha1((folder / "notes.txt").read_bytes())
    info = api.model_info("alice/model", files_metadata=True)
    assert info.sha == commit.oid
    assert info.card_data.license == "apache-2.0" and info.library_name == "sentence-transformers"
    assert info.config["model_type"] == "bert"
    assert {s.rfilename for s in info.siblings} == {".gitattributes", *_files(folder)}

    # Freeze the first version on a branch, then change main.
    api.create_branch("alice/model", branch="v1")
    api.upload_file(path_or_fileobj=b"changed\n", path_in_repo="notes.txt", repo_id="alice/model")

    snap = Path(snapshot_download("alice/model", endpoint=hub.endpoint, token=ALICE, cache_dir=client_env))
    assert _files(snap)["weights.bin"] == (folder / "weights.bin").read_bytes()
    assert _files(snap)["notes.txt"] == b"changed\n"
    snap_v1 = snapshot_download("alice/model", revision="v1", endpoint=hub.endpoint, token=ALICE, cache_dir=client_env)
    assert Path(snap_v1).name == commit.oid
    assert {k: v for k, v in _files(Path(snap_v1)).items() if k != ".gitattributes"} == _files(folder)
    by_commit = hf_hub_download(
        "alice/model", "notes.txt", revision=commit.oid, endpoint=hub.endpoint, token=ALICE, cache_dir=client_env
    )
    assert Path(by_commit).read_bytes() == (folder / "notes.txt").read_bytes()

    # Re-uploading identical content makes no commit and returns the current head.
    head = hub.branch_head("alice/model")
    again = api.upload_folder(repo_id="alice/model", folder_path=folder, allow_patterns=["weights.bin", "sub/*"])
    assert again.oid == head == hub.branch_head("alice/model")


def test_regular_upload_mode_works_with_xet_enabled(
    tmp_path: Path, client_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants, hf_hub_download

    monkeypatch.setenv("HF_HUB_DISABLE_XET", "0")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    with LocalHub(tmp_path / "hub", TOKENS, upload_mode="regular") as hub:
        api = _api(hub, ALICE)
        api.create_repo("alice/plain")
        payload = os.urandom(BIG)
        api.upload_file(path_or_fileobj=payload, path_in_repo="blob.bin", repo_id="alice/plain")
        assert not _paths(hub, "POST", "lfs/objects/batch")
        assert api.get_paths_info("alice/plain", ["blob.bin"])[0].lfs is None
        path = hf_hub_download("alice/plain", "blob.bin", endpoint=hub.endpoint, token=False, cache_dir=client_env)
        assert Path(path).read_bytes() == payload


def test_private_repo_is_invisible_to_other_users_and_anonymous(hub: LocalHub, client_env: Path) -> None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RepositoryNotFoundError

    alice = _api(hub, ALICE)
    alice.create_repo("alice/secret", private=True)
    alice.upload_file(path_or_fileobj=b"s3cret", path_in_repo="secret.txt", repo_id="alice/secret")
    assert alice.model_info("alice/secret").private is True

    for token in (BOB, False):
        other = _api(hub, token)
        with pytest.raises(RepositoryNotFoundError):
            other.model_info("alice/secret")
        assert other.repo_exists("alice/secret") is False
        assert [m.id for m in other.list_models(author="alice")] == []
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download("alice/secret", "secret.txt", endpoint=hub.endpoint, token=token, cache_dir=client_env)
    path = hf_hub_download("alice/secret", "secret.txt", endpoint=hub.endpoint, token=ALICE, cache_dir=client_env)
    assert Path(path).read_bytes() == b"s3cret"


def test_wrong_token_is_refused_with_401(hub: LocalHub, client_env: Path) -> None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    alice = _api(hub, ALICE)
    alice.create_repo("alice/public")
    wrong = _api(hub, "tok-wrong")
    for call in (
        lambda: wrong.whoami(),
        lambda: wrong.model_info("alice/public"),
        lambda: hf_hub_download(
            "alice/public", ".gitattributes", endpoint=hub.endpoint, token="tok-wrong", cache_dir=client_env
        ),
    ):
        with pytest.raises(HfHubHTTPError) as error:
            call()
        assert error.value.response.status_code == 401
        assert not isinstance(error.value, RepositoryNotFoundError)
    assert error.value.response.headers["X-Error-Message"] == "Invalid credentials in Authorization header"
    assert _api(hub, False).model_info("alice/public").id == "alice/public"  # anonymous reads of public repos work


def test_missing_files_and_revisions_answer_like_the_hub(hub: LocalHub, client_env: Path) -> None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

    api = _api(hub, ALICE)
    api.create_repo("alice/model")
    head = hub.branch_head("alice/model")
    for optional in ("modules.json", "config_sentence_transformers.json", "adapter_config.json"):
        assert api.file_exists("alice/model", optional) is False
        with pytest.raises(EntryNotFoundError):
            hf_hub_download("alice/model", optional, endpoint=hub.endpoint, token=ALICE, cache_dir=client_env)
    # The client caches the miss under .no_exist/<commit>, which needs X-Repo-Commit on the 404.
    assert (client_env / "models--alice--model" / ".no_exist" / head / "modules.json").exists()
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("alice/model", ".gitattributes", revision="nope", endpoint=hub.endpoint, cache_dir=client_env)

    request = urllib.request.Request(f"{hub.endpoint}/alice/model/resolve/main/.gitattributes", method="HEAD")
    with urllib.request.urlopen(request) as response:
        assert response.headers["X-Repo-Commit"] == head
        assert response.headers["ETag"].strip('"') == next(iter(api.list_repo_tree("alice/model"))).blob_id
    ranged = urllib.request.Request(
        f"{hub.endpoint}/alice/model/resolve/main/.gitattributes", headers={"Range": "bytes=0-9"}
    )
    with urllib.request.urlopen(ranged) as response:
        assert response.status == 206 and len(response.read()) == 10


def test_pull_request_commit_and_tag(hub: LocalHub, client_env: Path) -> None:
    from huggingface_hub import CommitOperationAdd, hf_hub_download

    api = _api(hub, ALICE)
    api.create_repo("alice/model")
    pr = api.create_commit(
        "alice/model", [CommitOperationAdd("pr.txt", b"from a PR")], commit_message="PR", create_pr=True
    )
    assert pr.pr_num == 1 and pr.pr_revision == "refs/pr/1"
    assert "pr.txt" not in api.list_repo_files("alice/model")
    assert "pr.txt" in api.list_repo_files("alice/model", revision="refs/pr/1")
    api.create_tag("alice/model", tag="v-pr", revision="refs/pr/1")
    path = hf_hub_download("alice/model", "pr.txt", revision="v-pr", endpoint=hub.endpoint, cache_dir=client_env)
    assert Path(path).read_bytes() == b"from a PR"


def test_push_interrupted_half_way_can_be_retried(hub: LocalHub, tmp_path: Path, client_env: Path) -> None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    api = _api(hub, ALICE)
    api.create_repo("alice/model")
    before = hub.branch_head("alice/model")
    folder = _make_folder(tmp_path / "src", seed=1)
    weights_sha = hashlib.sha256((folder / "weights.bin").read_bytes()).hexdigest()

    hub.fail_next_commits = 1  # the LFS upload goes through, then the commit call fails
    with pytest.raises(HfHubHTTPError) as error:
        api.upload_folder(repo_id="alice/model", folder_path=folder)
    assert error.value.response.status_code == 500
    assert hub.has_blob(weights_sha)  # half-way: the content is on the server ...
    assert hub.branch_head("alice/model") == before  # ... but nothing was committed
    assert api.list_repo_files("alice/model") == [".gitattributes"]

    hub.request_log.clear()
    commit = api.upload_folder(repo_id="alice/model", folder_path=folder)
    assert hub.branch_head("alice/model") == commit.oid
    assert not _paths(hub, "PUT", "/_lfs/upload/")  # the stored blob is not sent again
    snap = Path(snapshot_download("alice/model", endpoint=hub.endpoint, token=ALICE, cache_dir=client_env))
    assert {k: v for k, v in _files(snap).items() if k != ".gitattributes"} == _files(folder)


def test_failed_content_upload_is_retried_by_the_client(hub: LocalHub, tmp_path: Path) -> None:
    api = _api(hub, ALICE)
    api.create_repo("alice/model")
    hub.fail_next_uploads = 1
    commit = api.upload_file(path_or_fileobj=b"\0binary" * 10, path_in_repo="w.safetensors", repo_id="alice/model")
    assert [status for _, _, status in _paths(hub, "PUT", "/_lfs/upload/")] == [500, 200]
    assert hub.branch_head("alice/model") == commit.oid


def test_state_survives_a_restart(tmp_path: Path, client_env: Path) -> None:
    with LocalHub(tmp_path / "hub", TOKENS) as first:
        _api(first, ALICE).create_repo("alice/kept", private=True)
        head = first.branch_head("alice/kept")
    with LocalHub(tmp_path / "hub", TOKENS) as second:
        assert _api(second, ALICE).model_info("alice/kept").sha == head


def test_env_configured_client_in_a_subprocess(hub: LocalHub, tmp_path: Path) -> None:
    """`HF_ENDPOINT` + `HF_TOKEN` in a fresh process, with no endpoint or token arguments anywhere."""
    api = _api(hub, ALICE)
    api.create_repo("alice/env", private=True)
    folder = _make_folder(tmp_path / "src", seed=2)
    api.upload_folder(repo_id="alice/env", folder_path=folder)
    script = textwrap.dedent(
        """
        import json, sys
        from huggingface_hub import HfApi, snapshot_download
        path = snapshot_download("alice/env", revision="main")
        print(json.dumps({"path": path, "user": HfApi().whoami()["name"]}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "HUGGING_FACE_HUB_TOKEN")}
    env.update(HF_ENDPOINT=hub.endpoint, HF_TOKEN=ALICE, HF_HOME=str(tmp_path / "sub_home"), HF_HUB_OFFLINE="0")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["user"] == "alice"
    assert Path(result["path"]).is_relative_to(tmp_path / "sub_home")
    assert {k: v for k, v in _files(Path(result["path"])).items() if k != ".gitattributes"} == _files(folder)
