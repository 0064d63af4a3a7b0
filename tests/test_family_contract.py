"""The backbone-family contract: a family defined here, registered at run time, reaches `init`, the processor and
`encode`, the CLI's choices and options and the model card with no edit anywhere else; and no code outside the family
modules and the registry names a family."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from vlm2vec_hf.modeling_vlm2vec.backbone_common import BackboneFamily, ProcessorOption
from vlm2vec_hf.modeling_vlm2vec.backbones import (
    all_families,
    get_family,
    register_family,
    unregister_family,
)

ROOT = Path(__file__).resolve().parent.parent
BASE = get_family()  # the registry's default family: the throwaway family below reuses its backbone and tokenizer


class ToyFamily(type(BASE)):
    """A throwaway recipe on the default backbone: its own name, card name, prompt prefix and processor option."""

    name = "toy_recipe"
    display_name = "Toy-VL (test family)"
    display_names = {}
    modalities = ("text", "image")
    video_token = None
    processor_options = (ProcessorOption("tile_pixels", int, "the toy's pixel budget per image"),)
    shipped_files = ()
    prompt_formats = ("toy",)

    def format_prompt(self, text, instruction, num_images, prompt_format="toy", num_videos=0) -> str:
        return "TOY " + super().format_prompt(text, instruction, num_images, "v1", num_videos)

    def conversion_image_processor(self, source, tile_pixels: int = 12544):
        return super().conversion_image_processor(source, min_pixels=3136, max_pixels=tile_pixels)

    def processor_option_values(self, image_processor) -> dict[str, Any]:
        return {"tile_pixels": image_processor.size["longest_edge"]}


@pytest.fixture
def toy_family():
    family = register_family(ToyFamily(), default=False)
    try:
        yield family
    finally:
        unregister_family(family.name)


def test_a_family_registered_at_run_time_reaches_init_encode_cli_and_card(toy_family, tmp_path, capsys):
    from sentence_transformers import SentenceTransformer

    from vlm2vec_hf.cli import build_parser, main
    from vlm2vec_hf.hub_cards.card import build_model_card
    from vlm2vec_hf.modeling_vlm2vec import VLM2VecModel, VLM2VecProcessor
    from vlm2vec_hf.st_module import VLM2VecEncoder

    # The CLI: its init choice and its option flag, from the registry.
    assert "--tile-pixels" in _help(build_parser(), "init") and "--tile-pixels" in _help(build_parser(), "convert")
    out = tmp_path / "toy"
    assert main(["init", "--family", "toy_recipe", "--tile-pixels", "6272", "--out", str(out)]) in (0, None)

    # init wrote a folder of this family with its option; the processor and model load it by the registry.
    processor = VLM2VecProcessor.from_pretrained(out)
    model = VLM2VecModel.from_pretrained(out).eval()
    assert processor.family is toy_family and model.family is toy_family
    assert processor.processor_options == {"tile_pixels": 6272}
    assert model.input_modalities == ("text", "image")

    # encode: the family's prompt, its inputs, through the sentence-transformers module.
    encoder = SentenceTransformer(modules=[VLM2VecEncoder(model, processor)], device="cpu")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (56, 84, 3), dtype=np.uint8))
    embeddings = encoder.encode([{"image": image, "text": "a red square"}, "a red square"], convert_to_tensor=True)
    assert embeddings.shape == (2, model.config.embedding_dim)
    prompt = processor.format_prompt("a red square", None, num_images=1)
    assert prompt.startswith("TOY ")
    with torch.no_grad():
        direct = model(**processor(text=[prompt], images=[image])).embeddings[0]
    assert torch.allclose(embeddings[0], direct, atol=1e-5)
    with pytest.raises(ValueError, match="takes no video"):
        processor(videos=[[image, image]])

    # The card names the family and shows its own option.
    card = str(build_model_card(out, random_weights=True))
    assert "Toy-VL (test family)" in card and "tile_pixels" in card


def test_unregistering_a_family_takes_it_out_of_the_cli(toy_family):
    from vlm2vec_hf.cli import build_parser

    assert "toy_recipe" in _help(build_parser(), "init")
    unregister_family(toy_family.name)
    try:
        assert "toy_recipe" not in _help(build_parser(), "init") and "--tile-pixels" not in _help(
            build_parser(), "init"
        )
    finally:
        register_family(toy_family, default=False)


def test_registration_refuses_a_contradictory_family():
    class NoName(ToyFamily):
        name = ""

    class VideoWithoutToken(ToyFamily):
        name = "video_without_token"
        modalities = ("text", "image", "video")

    with pytest.raises(ValueError, match="declares no name"):
        register_family(NoName())
    with pytest.raises(ValueError, match="video_token"):
        register_family(VideoWithoutToken())
    with pytest.raises(ValueError, match="already registered"):
        register_family(type(BASE)())
    with pytest.raises(TypeError, match="abstract"):
        type("Incomplete", (BackboneFamily,), {"name": "incomplete"})()


def test_no_code_outside_the_family_modules_names_a_family():
    """The family modules (`backbone_*.py` and the files they declare as theirs) and the registry may name families
    and model types; generic code, shipped or not, asks the registry. Data files, tests, docs and benchmarks (which
    measure named published models) may name them too."""
    family_files = {name for family in all_families() for name in family.shipped_files} | {"backbones.py"}
    names = set()
    for family in all_families():
        names |= {family.name, *family.model_types, family.display_name, *family.display_names.values()}
    alternatives = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    pattern = re.compile(f"(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])", re.IGNORECASE)
    generic = [
        path
        for folder in ("modeling_vlm2vec", "st_module", "training", "evaluation", "hub_cards", "vlm2vec_hf")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.name not in family_files
    ]
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in generic
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []


def _help(parser, command: str) -> str:
    """The `--help` text of `command`."""
    for action in parser._subparsers._group_actions:
        if command in action.choices:
            return action.choices[command].format_help()
    raise KeyError(command)
