"""`presets.yaml` read into `ConversionPreset`s: inheritance by `extends`, and errors that name the preset."""

from __future__ import annotations

import dataclasses

import pytest

from vlm2vec_hf.hub_cards.presets import PRESETS, ConversionPreset, load_presets
from vlm2vec_hf.package_data import DataFileError

BASE = """
base:
  base_model: org/base
  adapter_repo: null
  adapter_revision: null
  position_ids_mode: reference
  prompt_format: v1
  max_length: 256
  image_resize: [64, 32]
  image_processor_options: {some_option: 4}
"""


def test_extends_copies_the_earlier_preset_and_overrides_the_given_fields(tmp_path):
    path = tmp_path / "presets.yaml"
    path.write_text(BASE + "child:\n  extends: base\n  base_model: org/child\n")
    presets = load_presets(path)
    assert list(presets) == ["base", "child"]
    assert presets["base"].image_resize == (64, 32)
    assert presets["child"] == dataclasses.replace(presets["base"], name="child", base_model="org/child")
    with pytest.raises(TypeError):
        presets["child"].image_processor_options["some_option"] = 1  # read-only mapping
    with pytest.raises(dataclasses.FrozenInstanceError):
        presets["child"].max_length = 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("child:\n  extends: nowhere\n", r"preset 'child' extends 'nowhere'"),
        ("child:\n  extends: base\n  max_lenght: 1\n", r"preset 'child' has unknown fields \['max_lenght'\]"),
        ("child:\n  base_model: org/child\n", r"preset 'child': .*missing"),
        ("base:\n  extends: base\n", r"duplicate key 'base'"),
    ],
)
def test_bad_entries_name_the_preset_and_field(tmp_path, extra, message):
    path = tmp_path / "presets.yaml"
    path.write_text(BASE + extra)
    with pytest.raises(DataFileError, match=message):
        load_presets(path)


def test_packaged_presets_are_conversion_presets():
    assert PRESETS and all(isinstance(preset, ConversionPreset) for preset in PRESETS.values())
    assert PRESETS["VLM2Vec-Qwen2VL-7B"].image_resize == PRESETS["VLM2Vec-Qwen2VL-2B"].image_resize == (1344, 1344)
