"""`vlm2vec push` and `vlm2vec train --push-to-hub` against the local Hub server (`tests/hub_server.py`).

Real HTTP on 127.0.0.1 and the real, unpatched huggingface_hub client. Pushed repos are loaded back by repo id in a
fresh Python process that cannot import this project (as in `test_fresh_process.py`), configured only through
`HF_ENDPOINT` / `HF_TOKEN` / `HF_HOME`. That process stays up for the whole module and takes one load job per line,
so its ~10 s of imports are paid once; it starts first so they overlap the tests that need no loading.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import socket
from pathlib import Path

import pytest
from helpers import HUB_ALICE, HUB_BOB, HUB_TOKENS, train_args
from hub_server import LocalHub
from huggingface_hub import ModelCard

from vlm2vec_hf.cli import main
from vlm2vec_hf.hub_cards.card import card_with_eval_results
from vlm2vec_hf.hub_cards.push import (
    HubPushError,
    ModelFolderError,
    check_model_folder,
    push_model_folder,
    required_code_files,
)
from vlm2vec_hf.modeling_vlm2vec.backbones import all_families

# Every test here is slow: Hub round trips, and the autouse fresh loader process starts for each module run.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("remote", "client_env")]

ALICE, BOB, TOKENS = HUB_ALICE, HUB_BOB, HUB_TOKENS
SAME = 1e-6


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


def test_the_code_files_required_are_the_registrys(fixture_model_dir, tmp_path):
    """Every family's shipped files (and the entry files) must be in the folder, each missing one named."""
    uploaded = check_model_folder(fixture_model_dir)
    assert set(required_code_files()) <= set(uploaded)
    assert {name for family in all_families() for name in family.shipped_files} <= set(required_code_files())
    for name in required_code_files():
        folder = copy_folder(fixture_model_dir, tmp_path / name)
        (folder / name).unlink()
        with pytest.raises(ModelFolderError, match=rf"missing: {re.escape(name)}\. "):
            check_model_folder(folder)


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


def eval_results(scores: dict[str, float]) -> dict:
    """A `vlm2vec eval` results JSON with these hit@1 scores (10 queries of 10 candidates each)."""
    datasets = {
        name: {
            "headline_metric": "hit@1",
            "score": score,
            "queries": 10,
            "candidates_per_query": 10.0,
            "eval_type": "local",
            "metrics": {"hit@1": score},
        }
        for name, score in scores.items()
    }
    mean = sum(scores.values()) / len(scores)
    overall = {"name": "Overall", "score": mean, "datasets": list(scores), "missing": [], "count": len(scores)}
    encoding = {"naive_items": 0, "unique_items": 0, "encoded": 0, "from_cache": 0, "forward_passes_saved": 0}
    return {
        "protocol": "v1",
        "datasets": datasets,
        "groups": {"Overall": {**overall, "expected": len(scores)}},
        "encoding": encoding,
        "seconds": 1.0,
    }


def pushed_model_index(hub, repo_id: str, tmp_path: Path) -> dict[str, tuple[str, float]]:
    """dataset -> (dataset type, value) of the `model-index` in the README.md the server holds for `repo_id`."""
    readme = api(hub, ALICE).hf_hub_download(repo_id, "README.md", local_dir=tmp_path / repo_id.replace("/", "-"))
    card = ModelCard.load(readme)
    return {result.dataset_name: (result.dataset_type, result.metric_value) for result in card.data.eval_results}


def test_eval_results_go_into_the_pushed_cards_model_index(hub, fixture_model_dir, tmp_path, capsys):
    """`vlm2vec eval`'s results.json in the folder reaches the Hub card's model-index, merged with the card's own
    entries (same dataset and metric: the new value); the local folder is left as it was."""
    folder = copy_folder(fixture_model_dir, tmp_path / "evaluated")
    earlier = card_with_eval_results(folder, eval_results({"VOC2007": 0.4, "ImageNet-1K": 0.3}), "evaluated")
    earlier.save(folder / "README.md")
    (folder / "eval").mkdir()
    (folder / "eval" / "results.json").write_text(json.dumps(eval_results({"VOC2007": 0.5, "Digits": 0.25})))
    before = folder_state(folder)

    push_model_folder(folder, "alice/evaluated", token=ALICE, endpoint=hub.endpoint)
    assert pushed_model_index(hub, "alice/evaluated", tmp_path) == {
        "VOC2007": ("TIGER-Lab/MMEB-eval", 50.0),
        "ImageNet-1K": ("TIGER-Lab/MMEB-eval", 30.0),
        "Digits": ("local", 25.0),
    }
    assert "eval/results.json" not in hub.repo_files("alice/evaluated") and folder_state(folder) == before

    # `vlm2vec push --eval-results` takes them from elsewhere; a folder without a card gets one built.
    bare = copy_folder(fixture_model_dir, tmp_path / "bare")
    results = tmp_path / "scores.json"
    results.write_text(json.dumps(eval_results({"N24News": 0.125})))
    assert push(bare, "alice/bare", "--eval-results", str(results)) == 0
    assert pushed_model_index(hub, "alice/bare", tmp_path) == {"N24News": ("TIGER-Lab/MMEB-eval", 12.5)}
    results.write_text("{}")
    assert push(bare, "alice/bare", "--eval-results", str(results)) == 2
    assert "not a `vlm2vec eval` results JSON" in capsys.readouterr().err


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
