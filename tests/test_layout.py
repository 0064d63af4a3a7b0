"""Package layout: non-generic import names, and Hub-shipped code that imports nothing from this project."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HUB_SHIPPED = {
    "modeling_vlm2vec/configuration_vlm2vec.py": {"torch", "transformers", "numpy", "PIL"},
    "modeling_vlm2vec/modeling_vlm2vec.py": {"torch", "transformers", "numpy", "PIL"},
    "modeling_vlm2vec/processing_vlm2vec.py": {"torch", "transformers", "numpy", "PIL"},
    "st_module/vlm2vec_st.py": {"torch", "transformers", "numpy", "PIL", "sentence_transformers"},
}


@pytest.mark.parametrize("name", ["training", "evaluation", "hub_cards", "st_module", "modeling_vlm2vec"])
def test_generic_top_level_names_are_not_installed(name):
    # The root folders install as vlm2vec_hf.<name>; a bare `import training` must not find this project.
    spec = importlib.util.find_spec(name)
    assert spec is None or ROOT not in Path(spec.origin or "").resolve().parents
    assert importlib.util.find_spec(f"vlm2vec_hf.{name}") is not None


@pytest.mark.parametrize("relative_path", sorted(HUB_SHIPPED))
def test_hub_shipped_files_import_only_allowed_libraries(relative_path):
    tree = ast.parse((ROOT / relative_path).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative imports stay inside the shipped folder
                assert (ROOT / relative_path).parent.joinpath(f"{node.module}.py").is_file()
                continue
            roots = [node.module.split(".")[0]]
        else:
            continue
        for root in roots:
            assert root in HUB_SHIPPED[relative_path] or root in sys.stdlib_module_names or root == "__future__", root
