"""The Phi-3.5-V conversion presets (`VLM2Vec-Full`, `VLM2Vec-LoRA`) downloaded from the local Hub server, and the
hard-coded CLIP ViT-L/14-336 tower of a real Phi-3.5-V config.

`vlm2vec convert --preset NAME` without `--base` / `--adapter` snapshots the preset's Hub repos through the real,
unpatched huggingface_hub client against `tests/hub_server.py` (HF_ENDPOINT set as in `test_hub.py`). The fixture
backbone `parity-phi3v-public/backbone` stands in for `microsoft/Phi-3.5-vision-instruct` and for
`TIGER-Lab/VLM2Vec-Full`, its DoRA adapter for `TIGER-Lab/VLM2Vec-LoRA`; the written folders must embed like the
reference (`expected` / `expected_lora`, 1e-5, every case and batch) with `num_crops` 4 and `max_length` 256.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import TOLERANCE
from hub_server import LocalHub
from safetensors.torch import load_file

from vlm2vec_hf.cli import main
from vlm2vec_hf.hub_cards.presets import get_preset
from vlm2vec_hf.modeling_vlm2vec.configuration_phi3_v import Phi3VConfig
from vlm2vec_hf.modeling_vlm2vec.modeling_phi3_v import Phi3VModel

FIXTURE = Path(__file__).parent / "fixtures" / "parity-phi3v-public"
CASES_FILE = json.loads((FIXTURE / "cases.json").read_text())
TOKEN = "tok-uploader"
# The published repos hold pickle shards and remote code next to the safetensors weights (REFERENCE.md section 6);
# the stand-ins do too, and the base download must skip them.
NEVER_DOWNLOADED = ("pytorch_model-00001-of-00002.bin", "modeling_phi3_v.py")


def stand_in_backbone(tmp_path: Path, num_crops: int) -> Path:
    """The fixture backbone as a published Phi-3.5-V repo: preprocessor `num_crops` set to `num_crops` (16 is the
    reference's ModelArguments default, REFERENCE.md 2.4, so a written 4 can only come from the preset), plus a
    pickle shard and a remote-code file that are never to be downloaded."""
    folder = tmp_path / f"backbone-crops{num_crops}"
    shutil.copytree(FIXTURE / "backbone", folder)
    preprocessor = json.loads((folder / "preprocessor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps({**preprocessor, "num_crops": num_crops}))
    (folder / NEVER_DOWNLOADED[0]).write_bytes(b"\x80\x04 not a checkpoint to read")
    (folder / NEVER_DOWNLOADED[1]).write_text("raise RuntimeError('remote code must not run')\n")
    return folder


def point_client_at(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """This process's client pointed at `endpoint`, online, Xet off, no ambient token (as in `test_hub.py`: the
    client reads the mirrors in `constants` at call time, so those are set too)."""
    from huggingface_hub import constants

    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    for name, value in {"HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The local Hub with the three published Phi repos uploaded by a member of both organisations."""
    from huggingface_hub import HfApi

    root = tmp_path_factory.mktemp("phi-hub")
    with LocalHub(root / "hub", {TOKEN: "uploader"}, orgs={"uploader": ["microsoft", "TIGER-Lab"]}) as server:
        with pytest.MonkeyPatch.context() as monkeypatch:
            point_client_at(monkeypatch, server.endpoint)
            api = HfApi(endpoint=server.endpoint, token=TOKEN)
            uploads = {
                "microsoft/Phi-3.5-vision-instruct": stand_in_backbone(root, num_crops=16),
                "TIGER-Lab/VLM2Vec-Full": stand_in_backbone(root, num_crops=4),
                "TIGER-Lab/VLM2Vec-LoRA": FIXTURE / "adapter",
            }
            pickle_only = root / "pickle-only"
            pickle_only.mkdir()
            shutil.copy(FIXTURE / "backbone" / "config.json", pickle_only)
            (pickle_only / NEVER_DOWNLOADED[0]).write_bytes(b"\x80\x04 not a checkpoint to read")
            uploads["TIGER-Lab/pickle-only"] = pickle_only
            for repo_id, folder in uploads.items():
                api.create_repo(repo_id)
                api.upload_folder(repo_id=repo_id, folder_path=str(folder))
        yield server


@pytest.fixture
def online(hub, monkeypatch, tmp_path):
    """The client pointed at the local Hub, with a fresh download cache."""
    from huggingface_hub import constants

    point_client_at(monkeypatch, hub.endpoint)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))


def case_images(case_ids: list[str]) -> list[str]:
    cases = CASES_FILE["cases"]
    return [str(FIXTURE / "images" / cases[case]["image"]) for case in case_ids if cases[case]["image"]]


def assert_embeds_like_reference(folder: Path, expected: dict[str, torch.Tensor]) -> None:
    """Every fixture case and batch through the folder's AutoModel + AutoProcessor, within 1e-5 of `expected`."""
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    assert (processor.image_processor.num_crops, processor.max_length) == (4, 256)
    runs = {f"case/{case_id}": [case_id] for case_id in CASES_FILE["cases"]}
    runs |= {f"batch/{batch_id}": batch["cases"] for batch_id, batch in CASES_FILE["batches"].items()}
    for key, case_ids in runs.items():
        texts = [CASES_FILE["cases"][case]["text"] for case in case_ids]
        with torch.no_grad():
            embeddings = model(**processor(text=texts, images=case_images(case_ids) or None)).embeddings
        reference = expected[key] if key.startswith("batch/") else expected[key].unsqueeze(0)
        assert (embeddings.float() - reference.float()).abs().max().item() < TOLERANCE, key


@pytest.mark.parametrize(
    "preset_name,base,adapter,expected_file",
    [
        ("VLM2Vec-Full", "TIGER-Lab/VLM2Vec-Full", None, "expected.safetensors"),
        ("VLM2Vec-LoRA", "microsoft/Phi-3.5-vision-instruct", "TIGER-Lab/VLM2Vec-LoRA", "expected_lora.safetensors"),
    ],
)
@pytest.mark.slow
def test_preset_downloads_and_converts_like_the_reference(
    hub, online, tmp_path, preset_name, base, adapter, expected_file
):
    preset = get_preset(preset_name)
    assert (preset.base_model, preset.adapter_repo) == (base, adapter)
    hub.request_log.clear()
    out = tmp_path / preset_name
    assert main(["convert", "--preset", preset_name, "--out", str(out), "--dtype", "float32"]) == 0

    requested = [path for _, path, _ in hub.request_log]
    assert any(f"/{base}/resolve/" in path for path in requested)
    assert not [path for path in requested if path.endswith(NEVER_DOWNLOADED)]
    assert any(f"/{adapter}/resolve/" in path for path in requested) == (adapter is not None)
    saved = json.loads((out / "processor_config.json").read_text())
    assert (saved["image_processor"]["num_crops"], saved["max_length"], saved["prompt_format"]) == (4, 256, "v1")
    assert json.loads((out / "config.json").read_text())["vlm_config"]["model_type"] == "phi3_v"
    assert_embeds_like_reference(out, load_file(FIXTURE / expected_file))


def test_hub_base_without_safetensors_or_missing_is_a_clear_error(hub, online, tmp_path, capsys):
    assert main(["convert", "--base", "TIGER-Lab/pickle-only", "--out", str(tmp_path / "a")]) == 2
    assert "TIGER-Lab/pickle-only has no *.safetensors weights" in capsys.readouterr().err
    assert main(["convert", "--base", "TIGER-Lab/no-such-repo", "--out", str(tmp_path / "b")]) == 2
    assert "cannot download the base checkpoint TIGER-Lab/no-such-repo" in capsys.readouterr().err
    assert not [path for _, path, _ in hub.request_log if path.endswith(NEVER_DOWNLOADED)]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_image_processor_options_are_checked_against_the_family(tmp_path, capsys):
    """Each family takes its own image-processor options: a Qwen option on a Phi backbone (and the reverse) is an
    error naming it, raised before any weights load."""
    phi_preset = ["convert", "--preset", "VLM2Vec-Full", "--base", str(FIXTURE / "backbone")]
    assert main([*phi_preset, "--min-pixels", "3136", "--out", str(tmp_path / "a")]) == 2
    assert "min_pixels do not apply to a phi3_v backbone (its options: num_crops)" in capsys.readouterr().err
    qwen = ["convert", "--base", str(Path(__file__).parent / "fixtures" / "parity-qwen2vl-public" / "backbone")]
    assert main([*qwen, "--num-crops", "4", "--out", str(tmp_path / "b")]) == 2
    assert (
        "num_crops do not apply to a qwen2_vl backbone (its options: min_pixels, max_pixels)" in capsys.readouterr().err
    )
    assert main([*phi_preset, "--num-crops", "0", "--out", str(tmp_path / "c")]) == 2
    assert "num_crops must be a positive integer, got 0" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def clip_vision_parameters(width: int, layers: int, mlp: int, image: int, patch: int) -> int:
    """Parameters of a CLIP vision transformer (with class token, pre- and post-LayerNorm), counted by hand."""
    positions = (image // patch) ** 2 + 1
    embeddings = width + 3 * patch * patch * width + positions * width  # class token, bias-free conv, positions
    layer = 4 * (width * width + width) + (width * mlp + mlp) + (mlp * width + width) + 2 * 2 * width
    return embeddings + 2 * width + layers * layer + 2 * width


def test_real_config_builds_clip_vit_l_336():
    """A published config (no `fixture_clip_config`) gets CLIP ViT-L/14-336, built on the meta device (no memory).

    The text part uses the published Phi-3.5-vision-instruct sizes (hidden 3072, 32 layers, MLP 8192, vocab
    32064, MHA); with the untied `lm_head` the converter drops, the whole model is the published checkpoint's
    ~4.15 B parameters (REFERENCE.md section 6).
    """
    original = json.loads((FIXTURE / "backbone" / "config.json").read_text())
    original["img_processor"] = {"image_dim_out": 1024, "model_name": "openai/clip-vit-large-patch14-336"}
    original.update(hidden_size=3072, intermediate_size=8192, num_hidden_layers=32, vocab_size=32064)
    original.update(num_attention_heads=32, num_key_value_heads=32, pad_token_id=32000, rope_scaling=None)
    config = Phi3VConfig.from_original(original)
    vision = config.vision_config
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads) == (1024, 24, 16)
    assert (vision.intermediate_size, vision.hidden_act, vision.layer_norm_eps) == (4096, "quick_gelu", 1e-5)
    assert (vision.image_size, vision.patch_size) == (336, 14)
    with torch.device("meta"):
        model = Phi3VModel(config)
    tower = model.vision_embed_tokens.img_processor
    assert sum(p.numel() for p in tower.parameters()) == clip_vision_parameters(1024, 24, 4096, 336, 14) == 303_507_456
    assert model.vision_embed_tokens.img_projection[0].in_features == 4 * 1024  # the 2 x 2 merge of 1024-wide tokens
    total = sum(p.numel() for p in model.parameters()) + 32064 * 3072  # + lm_head
    assert abs(total / 1e9 - 4.15) < 0.005
    # A checkpoint whose image_dim_out disagrees with the hard-coded tower is refused, not silently rebuilt.
    original["img_processor"]["image_dim_out"] = 768
    with pytest.raises(ValueError, match="image_dim_out"):
        Phi3VConfig.from_original(original)
