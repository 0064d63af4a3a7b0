"""Package layout: non-generic import names, and Hub-shipped code that imports nothing from this project."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from vlm2vec_hf.modeling_vlm2vec.backbones import code_files

ROOT = Path(__file__).resolve().parent.parent
MODEL_LIBRARIES = {"torch", "transformers", "numpy", "PIL"}
# The model folder's code: the registry's list (the common files plus every family's `shipped_files`). PyAV only
# when a video file is given (imported inside that function, in a try block).
HUB_SHIPPED = {
    f"modeling_vlm2vec/{name}": MODEL_LIBRARIES | ({"av"} if name == "media_loading.py" else set())
    for name in code_files()
}
# peft and safetensors only when a folder holds a LoRA / DoRA adapter (imported inside that function).
HUB_SHIPPED["st_module/vlm2vec_st.py"] = MODEL_LIBRARIES | {"sentence_transformers", "peft", "safetensors"}


def test_every_model_code_file_is_shipped():
    """A code file beside the model that no family declares (and is not common) would be missing from Hub repos."""
    on_disk = {path.name for path in (ROOT / "modeling_vlm2vec").glob("*.py")} - {"__init__.py"}
    assert on_disk == set(code_files())


@pytest.mark.parametrize("name", ["training", "evaluation", "hub_cards", "st_module", "modeling_vlm2vec"])
def test_generic_top_level_names_are_not_installed(name, tmp_path):
    # The root folders install as vlm2vec_hf.<name>; a bare `import training` must not find this project. Checked
    # from another folder, since the repository root itself is on sys.path under `python -m pytest`.
    probe = (
        "import importlib.util, json; "
        f"bare = importlib.util.find_spec({name!r}); ours = importlib.util.find_spec('vlm2vec_hf.{name}'); "
        "print(json.dumps([bare.origin if bare else None, ours is not None]))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    bare_origin, ours_found = json.loads(result.stdout)
    assert bare_origin is None or ROOT not in Path(bare_origin).resolve().parents
    assert ours_found


@pytest.mark.parametrize("relative_path", sorted(HUB_SHIPPED))
def test_hub_shipped_files_import_only_allowed_libraries(relative_path):
    tree = ast.parse((ROOT / relative_path).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative imports stay inside the shipped files
                assert f"{Path(relative_path).parent}/{node.module}.py" in HUB_SHIPPED, node.module
                continue
            roots = [node.module.split(".")[0]]
        else:
            continue
        for root in roots:
            assert root in HUB_SHIPPED[relative_path] or root in sys.stdlib_module_names or root == "__future__", root
