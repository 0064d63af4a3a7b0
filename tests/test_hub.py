"""`vlm2vec push` and `vlm2vec train --push-to-hub` against the local Hub server (`tests/hub_server.py`).

Real HTTP on 127.0.0.1 and the real, unpatched huggingface_hub client. Pushed repos are loaded back by repo id in a
fresh Python process that cannot import this project (as in `test_fresh_process.py`), configured only through
`HF_ENDPOINT` / `HF_TOKEN` / `HF_HOME`. That process stays up for the whole module and takes one load job per line,
so its ~10 s of imports are paid once; it starts first so they overlap the tests that need no loading.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import socket
from pathlib import Path

import pytest
from helpers import RemoteLoader, train_args
from hub_server import LocalHub

from vlm2vec_hf.cli import main
from vlm2vec_hf.hub_cards.push import HubPushError, ModelFolderError, check_model_folder, push_model_folder

# Every test here is slow: Hub round trips, and the autouse fresh loader process starts for each module run.
pytestmark = pytest.mark.slow

ALICE, BOB = "tok-alice", "tok-bob"
TOKENS = {ALICE: "alice", BOB: "bob"}
SAME = 1e-6


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with LocalHub(tmp_path_factory.mktemp("hub"), TOKENS) as server:
        yield server


@pytest.fixture(scope="module", autouse=True)
def remote(hub, tmp_path_factory):
    loader = RemoteLoader(hub.endpoint, tmp_path_factory.mktemp("loader") / "hf_home")
    yield loader
    loader.close()


@pytest.fixture(autouse=True)
def client_env(hub, monkeypatch, tmp_path):
    """This process's client as `HF_ENDPOINT=<hub>` sets it up: online, Xet off (the server stores binaries through
    git-LFS), no ambient token."""
    from huggingface_hub import constants

    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    env = {"HF_ENDPOINT": hub.endpoint, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1"}
    for name, value in {**env, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_DISABLE_PROGRESS_BARS": "1"}.items():
        monkeypatch.setenv(name, value)
    # huggingface_hub read these variables at import, long done here (conftest imported it offline); the client reads
    # their mirrors in `constants` at call time, so set those too (HUB_API.md section 1). No client code is replaced.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
    url_template = hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url_template)


@pytest.fixture(scope="module")
def local(remote, fixture_model_dir) -> dict:
    """Embeddings of the local fixture folder, computed by the loader process (the reference for every load)."""
    answer = remote.load(fixture_model_dir, auto=True)
    assert answer["ok"], answer
    return answer


def api(hub: LocalHub, token: str | bool | None):
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub.endpoint, token=token)


def push(folder: Path, repo_id: str, *extra: str, token: str | None = ALICE) -> int:
    return main(["push", str(folder), repo_id, *(["--token", token] if token else []), *extra])


def folder_state(folder: Path) -> dict[str, str]:
    """Every path under `folder` (files by content hash), to show a push leaves it byte-identical."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        for path in sorted(folder.rglob("*"))
    }


def worst_difference(a: list[list[float]], b: list[list[float]]) -> float:
    return max(abs(x - y) for row_a, row_b in zip(a, b, strict=True) for x, y in zip(row_a, row_b, strict=True))


def assert_same_embeddings(answer: dict, reference: dict) -> None:
    assert answer["ok"], answer["error"] if "error" in answer else answer
    assert worst_difference(answer["st"], reference["st"]) < SAME
    if "auto" in reference and "auto" in answer:
        assert worst_difference(answer["auto"], reference["auto"]) < SAME


def copy_folder(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- errors first: they need no loading, so they run while the loader process is still importing ---------------------


def test_refused_folders_send_no_request(hub, fixture_model_dir, tmp_path, capsys):
    """(f) pickle weights or missing files are refused before any request reaches the server."""
    pickled = copy_folder(fixture_model_dir, tmp_path / "pickled")
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04 not really a pickle")
    no_code = copy_folder(fixture_model_dir, tmp_path / "no-code")
    (no_code / "modeling_vlm2vec.py").unlink()
    no_weights = copy_folder(fixture_model_dir, tmp_path / "no-weights")
    (no_weights / "model.safetensors").unlink()
    (no_weights / "modules.json").unlink()
    hub.request_log.clear()

    with pytest.raises(ModelFolderError, match=r"refusing to push .*pickle weights \['pytorch_model.bin'\]"):
        push_model_folder(pickled, "alice/refused", token=ALICE, endpoint=hub.endpoint)
    with pytest.raises(ModelFolderError, match="missing: modeling_vlm2vec.py"):
        push_model_folder(no_code, "alice/refused", token=ALICE, endpoint=hub.endpoint)
    with pytest.raises(ModelFolderError, match=r"missing: modules.json, weights \(\*.safetensors\)"):
        push_model_folder(no_weights, "alice/refused", token=ALICE, endpoint=hub.endpoint)
    assert push(pickled, "alice/refused") == 2
    assert "pytorch_model.bin" in capsys.readouterr().err
    assert hub.request_log == []


def test_code_files_needed_are_read_from_the_folders_own_imports(fixture_model_dir, tmp_path):
    # A folder written before the LLaVA-Next and GME families existed: its backbones.py never imports them.
    older = copy_folder(fixture_model_dir, tmp_path / "older")
    registry = older / "backbones.py"
    lines = registry.read_text().splitlines(keepends=True)
    for name in ("backbone_llava_next", "backbone_gme"):
        (older / f"{name}.py").unlink()
        lines = [line for line in lines if f"from .{name} import" not in line]
    registry.write_text("".join(lines))
    uploaded = check_model_folder(older)
    assert "backbone_phi3_v.py" in uploaded and "backbone_gme.py" not in uploaded
    # A file the folder's code does import is required, named with its importer.
    (older / "backbone_phi3_v.py").unlink()
    with pytest.raises(ModelFolderError, match=r"missing: backbone_phi3_v.py \(imported by backbones.py\)"):
        check_model_folder(older)


def test_wrong_token_forbidden_namespace_and_network_errors_are_explained(hub, fixture_model_dir, capsys):
    """(d) 401 / 403 / no token / unreachable endpoint each give a clear message; the folder is never touched."""
    before = folder_state(fixture_model_dir)

    assert push(fixture_model_dir, "alice/denied", token="tok-wrong") == 2
    assert f"authentication failed at {hub.endpoint}: check --token / HF_TOKEN" in capsys.readouterr().err
    assert push(fixture_model_dir, "bob/not-yours") == 2
    assert f"no write access to the namespace 'bob' at {hub.endpoint}" in capsys.readouterr().err
    assert push(fixture_model_dir, "alice/denied", token=None) == 2
    assert "no Hub token" in capsys.readouterr().err
    unreachable = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(HubPushError, match=f"cannot reach the Hub at {unreachable}"):
        push_model_folder(fixture_model_dir, "alice/denied", token=ALICE, endpoint=unreachable)

    # --private never publishes into an existing public repo.
    api(hub, ALICE).create_repo("alice/already-public")
    with pytest.raises(HubPushError, match="already exists .* and is public"):
        push_model_folder(fixture_model_dir, "alice/already-public", token=ALICE, private=True, endpoint=hub.endpoint)
    assert list(hub.repo_files("alice/already-public")) == [".gitattributes"]

    assert hub.branch_head("alice/denied") is None and hub.branch_head("bob/not-yours") is None
    assert folder_state(fixture_model_dir) == before


def test_only_the_files_a_hub_repo_needs_are_uploaded(hub, fixture_model_dir, tmp_path):
    """Run leftovers (checkpoints, eval reports and caches, Trainer pickles, logs, hidden files) stay local."""
    folder = copy_folder(fixture_model_dir, tmp_path / "run-final")
    extras = {
        "README.md": "---\nlicense: apache-2.0\n---\n# card\n",
        "chat_template.jinja": "{{ messages }}",
        "notes.txt": "notes",
        "assets/photo.png": "png",
        "training_args.bin": "pickle",
        "checkpoint-5/model.safetensors": "old",
        "checkpoint-5/optimizer.pt": "pickle",
        "eval/results.json": "{}",
        "eval/cache.sqlite": "db",
        "embeddings.sqlite": "db",
        "runs/events.out.tfevents.1": "log",
        ".hidden.json": "{}",
        "plot.png": "png",
    }
    for name, content in extras.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(content)
    expected = {p.name for p in fixture_model_dir.iterdir()} | {
        "README.md",
        "chat_template.jinja",
        "notes.txt",
        "assets/photo.png",
    }

    assert set(check_model_folder(folder)) == expected
    commit_url = push_model_folder(folder, "alice/selected", token=ALICE, endpoint=hub.endpoint)
    assert commit_url == f"{hub.endpoint}/alice/selected/commit/{hub.branch_head('alice/selected')}"
    assert set(hub.repo_files("alice/selected")) == expected | {".gitattributes"}


# -- pushes that are loaded back -------------------------------------------------------------------------------------


def test_pushed_folder_loads_by_repo_id_in_a_fresh_process(hub, remote, local, fixture_model_dir, capsys):
    """(a) `vlm2vec push`, then SentenceTransformer / AutoModel + AutoProcessor by repo id give the same embeddings."""
    before = folder_state(fixture_model_dir)
    assert push(fixture_model_dir, "alice/vlm2vec-fixture") == 0
    out = capsys.readouterr().out
    assert f"Pushed {fixture_model_dir} to {hub.endpoint}/alice/vlm2vec-fixture" in out
    assert 'SentenceTransformer("alice/vlm2vec-fixture", trust_remote_code=True)' in out
    assert folder_state(fixture_model_dir) == before
    pushed = hub.repo_files("alice/vlm2vec-fixture")
    assert set(pushed) == {".gitattributes", *before}
    assert pushed["model.safetensors"]["lfs"]  # weights went through git-LFS like on the Hub

    answer = remote.load("alice/vlm2vec-fixture", auto=True)  # anonymous: the repo is public
    assert_same_embeddings(answer, local)
    assert len(answer["st"]) == 3 and len(answer["auto"]) == 2
    # The code that ran is the repo's own copy (transformers' dynamic modules), not an installed package.
    assert answer["st_module"].startswith("transformers_modules.")
    assert answer["auto_module"].startswith("transformers_modules.")


def test_push_to_a_branch_leaves_main_alone(hub, remote, local, fixture_model_dir, tmp_path, capsys):
    """(b) `--revision v1` creates the branch, commits there only, and loads with `revision="v1"`."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    assert push(fixture_model_dir, "alice/branched") == 0
    main_head = hub.branch_head("alice/branched")
    card = "---\nlicense: apache-2.0\n---\n# Only on the v1 branch\n"
    changed = copy_folder(fixture_model_dir, tmp_path / "changed")
    (changed / "README.md").write_text(card)

    assert push(changed, "alice/branched", "--revision", "v1") == 0
    assert 'SentenceTransformer("alice/branched", trust_remote_code=True, revision="v1")' in capsys.readouterr().out
    assert hub.branch_head("alice/branched") == main_head
    on_main, on_v1 = hub.repo_files("alice/branched"), hub.repo_files("alice/branched", "v1")
    assert "README.md" not in on_main and set(on_v1) == set(on_main) | {"README.md"}
    assert all(on_v1[path]["sha256"] == entry["sha256"] for path, entry in on_main.items())
    cache = tmp_path / "downloads"
    kwargs = {"endpoint": hub.endpoint, "token": ALICE, "cache_dir": cache}
    assert Path(hf_hub_download("alice/branched", "README.md", revision="v1", **kwargs)).read_text() == card
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("alice/branched", "README.md", **kwargs)

    assert_same_embeddings(remote.load("alice/branched", revision="v1", auto=True), local)


def test_private_repo_is_visible_to_its_owner_only(hub, remote, local, fixture_model_dir, capsys):
    """(c) `--private`: another user's token and anonymous access see no repo; the owner loads it."""
    from huggingface_hub.errors import RepositoryNotFoundError

    assert push(fixture_model_dir, "alice/secret", "--private") == 0
    assert "[private]" in capsys.readouterr().out
    assert api(hub, ALICE).model_info("alice/secret").private is True
    for token in (BOB, False):
        with pytest.raises(RepositoryNotFoundError):
            api(hub, token).model_info("alice/secret")
    for token in (BOB, None):
        answer = remote.load("alice/secret", token=token)
        assert not answer["ok"] and answer["error"].startswith("RepositoryNotFoundError"), answer
        assert "alice/secret" in answer["error"]
    assert_same_embeddings(remote.load("alice/secret", token=ALICE), local)


def test_push_failed_half_way_completes_when_run_again(hub, remote, local, fixture_model_dir, capsys):
    """(e) the commit fails after the weights were uploaded; the same push again finishes without re-sending them."""
    weights_sha = hashlib.sha256((fixture_model_dir / "model.safetensors").read_bytes()).hexdigest()
    hub.fail_next_commits = 1
    try:
        assert push(fixture_model_dir, "alice/retried") == 2
    finally:
        hub.fail_next_commits = 0
    error = capsys.readouterr().err
    assert "pushing to alice/retried at" in error and "HTTP 500" in error and "run the same push again" in error
    assert list(hub.repo_files("alice/retried")) == [".gitattributes"]  # nothing committed ...
    assert hub.has_blob(weights_sha)  # ... but the weights are stored

    hub.request_log.clear()
    assert push(fixture_model_dir, "alice/retried") == 0
    assert not [entry for entry in hub.request_log if entry[0] == "PUT"]  # the stored weights were not sent again
    assert hub.repo_files("alice/retried")["model.safetensors"]["sha256"] == weights_sha
    assert_same_embeddings(remote.load("alice/retried", auto=True), local)


def test_train_push_to_hub_needs_a_repo_id_and_a_token(tmp_path):
    from vlm2vec_hf.training.config import TrainConfig
    from vlm2vec_hf.training.trainer import train

    with pytest.raises(ValueError, match="push_to_hub needs hub_model_id"):
        TrainConfig(model="m", data="d", image_dir="i", push_to_hub=True).validate()
    with pytest.raises(ValueError, match="hub_model_id must be namespace/name"):
        TrainConfig(model="m", data="d", image_dir="i", hub_model_id="no-namespace").validate()
    config = TrainConfig(model="m", data="d", image_dir="i", output_dir=str(tmp_path), push_to_hub=True)
    with pytest.raises(ValueError, match="no Hub token"):  # before any training
        train(config.updated({"hub_model_id": "alice/x"}))


def test_train_push_to_hub_pushes_the_final_folder(
    hub, remote, tiny_random_model_dir, mini_mmeb, tmp_path, monkeypatch
):
    """(g) `vlm2vec train ... --push-to-hub --hub-model-id alice/mini` pushes the final folder; it loads by repo id."""
    monkeypatch.setenv("HF_TOKEN", ALICE)
    run = tmp_path / "run"
    small = ["--max-steps", "2", "--save-steps", "1000", "--num-sample-per-subset", "8"]
    args = train_args(tiny_random_model_dir, mini_mmeb, run, *small, "--per-device-train-batch-size", "8")
    assert main([*args, "--push-to-hub", "--hub-model-id", "alice/mini"]) == 0

    pushed = hub.repo_files("alice/mini")
    assert {"model.safetensors", "modules.json", "config.json", "vlm2vec_st.py", "README.md"} <= set(pushed)
    assert "training_args.bin" not in pushed and not any(path.startswith("checkpoint-") for path in pushed)
    for name in ("model.safetensors", "README.md"):
        assert pushed[name]["sha256"] == hashlib.sha256((run / "final" / name).read_bytes()).hexdigest()
    if importlib.util.find_spec("vlm2vec_hf.hub_cards.card"):  # the card writer ran on the folder before the push
        assert "alice/mini" in (run / "final" / "README.md").read_text()
    assert_same_embeddings(remote.load("alice/mini"), remote.load(run / "final"))
