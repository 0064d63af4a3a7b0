"""Session fixtures: the model folders converted from the public parity fixtures (built once per session), their
loaded models, the mini-MMEB set and a tiny random model. Helper functions and fixture data are in `helpers.py`."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# Keep the tests' dynamic-module cache and any Hub state out of the user's ~/.cache, and never go online.
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="vlm2vec-tests-hf-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from helpers import (
    GME,
    HUB_TOKENS,
    LLAVA_NEXT,
    MAX_LENGTH,
    PHI3V,
    QWEN2VL,
    QWEN2VL_VIDEO,
    QWEN3VL,
    SMALL_EVAL_ROWS,
    SMALL_EVAL_SETS,
    RemoteLoader,
    load_auto,
    load_sentence_model,
)
from hub_server import LocalHub

from vlm2vec_hf.hub_cards.convert import convert_backbone


def _convert(tmp_path_factory, backbone: Path, name: str, **kwargs) -> Path:
    out = tmp_path_factory.mktemp("models") / name
    return convert_backbone(backbone, out, dtype=torch.float32, **kwargs)


@pytest.fixture(scope="session")
def expected() -> dict[str, torch.Tensor]:
    """The Qwen2-VL image fixture's reference embeddings."""
    return QWEN2VL.expected


@pytest.fixture(scope="session")
def fixture_model_dir(tmp_path_factory) -> Path:
    """The Qwen2-VL parity backbone as a VLM2Vec model folder: reference positions, V1 prompts, max_length 256."""
    return _convert(tmp_path_factory, QWEN2VL.backbone, "vlm2vec-fixture-v1", max_length=MAX_LENGTH)


@pytest.fixture(scope="session")
def fixture_model_dir_v2(tmp_path_factory) -> Path:
    return _convert(tmp_path_factory, QWEN2VL.backbone, "vlm2vec-fixture-v2", max_length=MAX_LENGTH, prompt_format="v2")


@pytest.fixture(scope="session")
def video_model_dir(tmp_path_factory) -> Path:
    """The video fixture backbone with the V2 recipe: no truncation (max_len None)."""
    return _convert(tmp_path_factory, QWEN2VL_VIDEO.backbone, "vlm2vec-video-fixture", max_length=None)


@pytest.fixture(scope="session")
def phi3v_model_dir(tmp_path_factory) -> Path:
    return _convert(tmp_path_factory, PHI3V.backbone, "vlm2vec-phi3v", max_length=PHI3V.recipe["max_len"])


@pytest.fixture(scope="session")
def llava_next_model_dir(tmp_path_factory) -> Path:
    return _convert(
        tmp_path_factory, LLAVA_NEXT.backbone, "vlm2vec-llava-next", max_length=LLAVA_NEXT.recipe["max_len"]
    )


@pytest.fixture(scope="session")
def gme_model_dir(tmp_path_factory) -> Path:
    """The GME fixture converted as a user does: `vlm2vec convert --prompt-format gme` (the GME recipe's defaults)."""
    from vlm2vec_hf.cli import main

    out = tmp_path_factory.mktemp("models") / "gme"
    assert main(["convert", "--base", str(GME.backbone), "--prompt-format", "gme", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def qwen3vl_model_dir(tmp_path_factory) -> Path:
    """The Qwen3-VL-Embedding fixture converted as a user does: `vlm2vec convert --base B` (the family's defaults:
    the embedding chat prompt, native M-RoPE, right padding, max_length 8192)."""
    from vlm2vec_hf.cli import main

    out = tmp_path_factory.mktemp("models") / "qwen3vl"
    assert main(["convert", "--base", str(QWEN3VL.backbone), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def phi3v_auto(phi3v_model_dir):
    return load_auto(phi3v_model_dir)


@pytest.fixture(scope="session")
def llava_next_auto(llava_next_model_dir):
    return load_auto(llava_next_model_dir)


@pytest.fixture(scope="session")
def llava_next_sentence_model(llava_next_model_dir):
    return load_sentence_model(llava_next_model_dir)


@pytest.fixture(scope="session")
def gme_auto(gme_model_dir):
    return load_auto(gme_model_dir)


@pytest.fixture(scope="session")
def gme_sentence_model(gme_model_dir):
    return load_sentence_model(gme_model_dir)


@pytest.fixture(scope="session")
def sentence_model(fixture_model_dir):
    return load_sentence_model(fixture_model_dir)


@pytest.fixture(scope="session")
def auto_model_and_processor(fixture_model_dir):
    return load_auto(fixture_model_dir)


@pytest.fixture(scope="session")
def mini_mmeb(tmp_path_factory) -> Path:
    """The offline mini-MMEB set (train + eval), built once per session."""
    from vlm2vec_hf.training.mini_mmeb import build_mini_mmeb

    return build_mini_mmeb(tmp_path_factory.mktemp("data") / "mini-mmeb")


@pytest.fixture(scope="session")
def tiny_random_model_dir(tmp_path_factory) -> Path:
    """A random-init (transformers' default init) tiny model with small image bounds, for training tests."""
    from vlm2vec_hf.cli import main

    out = tmp_path_factory.mktemp("models") / "tiny-random"
    assert main(["init", "--out", str(out), "--max-pixels", "12544"]) == 0
    return out


@pytest.fixture(scope="session")
def tiny_qwen3vl_model_dir(tmp_path_factory) -> Path:
    """`vlm2vec init --family qwen3_vl`: a random-init tiny Qwen3-VL folder (the family's published pixel bounds), for
    training tests."""
    from vlm2vec_hf.cli import main

    out = tmp_path_factory.mktemp("models") / "tiny-qwen3vl"
    assert main(["init", "--out", str(out), "--family", "qwen3_vl"]) == 0
    return out


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with LocalHub(tmp_path_factory.mktemp("hub"), HUB_TOKENS) as server:
        yield server


@pytest.fixture(scope="module")
def remote(hub, tmp_path_factory):
    """A fresh loader process (no vlm2vec_hf importable, only HF_ENDPOINT); started early so its imports overlap."""
    loader = RemoteLoader(hub.endpoint, tmp_path_factory.mktemp("loader") / "hf_home")
    yield loader
    loader.close()


@pytest.fixture
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


@pytest.fixture(scope="module")
def small_eval(mini_mmeb, tmp_path_factory):
    """The first `SMALL_EVAL_ROWS` rows of the `SMALL_EVAL_SETS` mini-MMEB eval sets, in the same layout."""
    import pyarrow.parquet as pq

    out = tmp_path_factory.mktemp("data") / "eval-small"
    for name in SMALL_EVAL_SETS:
        (out / name).mkdir(parents=True)
        table = pq.read_table(mini_mmeb / "eval" / name / "test.parquet").slice(0, SMALL_EVAL_ROWS)
        pq.write_table(table, out / name / "test.parquet")
    shutil.copy(mini_mmeb / "eval" / "tasks.json", out / "tasks.json")
    return out
