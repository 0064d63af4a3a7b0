"""mteb as a client of a model folder (the `[mteb]` extra; docs/mteb.md): every saved prompt name is one mteb
accepts, the names of the MMEB tasks mteb also has are mteb's, and `mteb.evaluate` on a local image task scores what
`vlm2vec eval` scores on the same pairs. Nothing is downloaded: the task is built in-process from mini-MMEB."""

from __future__ import annotations

import json
import socket
import warnings

import pandas as pd
import pytest
from datasets import Dataset
from PIL import Image

from vlm2vec_hf.st_module import MMEB_INSTRUCTIONS, MTEB_PROMPT_NAMES, default_prompts
from vlm2vec_hf.st_module.prompts import TABLE, _read_table

try:
    import mteb
except ImportError:  # the table tests below still run
    mteb = None
needs_mteb = pytest.mark.skipif(
    mteb is None, reason="mteb is the [mteb] extra: pip install -e '.[dev,mteb]' -c constraints.txt"
)

# The mini-MMEB subset and the mteb task it stands in for: image -> caption among every caption (MMEB's MSCOCO_i2t).
SUBSET, MMEB_TASK = "Photos_i2t", "MSCOCO_i2t"
IMAGE_TAG = "<|image_1|>"


def _warnings_from_mteb(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "mteb" in w.filename.replace("\\", "/").split("/")]


def test_the_table_saves_query_document_and_the_mteb_named_instructions():
    assert len(MMEB_INSTRUCTIONS) == 36 and MMEB_INSTRUCTIONS["A-OKVQA"].endswith("with the following question:")
    assert default_prompts() == {
        "query": "",
        "document": "",
        **{name: MMEB_INSTRUCTIONS[task] for task, name in MTEB_PROMPT_NAMES.items()},
    }
    assert default_prompts()["MSCOCOT2IRetrieval-query"] == MMEB_INSTRUCTIONS["MSCOCO_t2i"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda rows: rows + [rows[-1]], "data row 37 repeats the name 'Visual7W-Pointing'"),
        (lambda rows: rows + ["Extra,An instruction.,Imagenet1k"], "data row 37 repeats the name 'Imagenet1k'"),
        (lambda rows: rows + ["Extra,An instruction.,query"], "data row 37 repeats the name 'query'"),
        (lambda rows: rows + ["Extra,,"], "data row 37 needs mmeb_task, instruction"),
        (lambda rows: rows + ["Extra"], "data row 37 needs mmeb_task, instruction"),
    ],
    ids=["repeated MMEB task", "repeated saved name", "saved as query", "no instruction", "missing cells"],
)
def test_a_bad_table_row_is_an_error_naming_it(edit, message, tmp_path):
    lines = TABLE.read_text().splitlines()
    comments = [line for line in lines if line.startswith("#")]
    rows = [line for line in lines if not line.startswith("#")]
    bad = tmp_path / "table.csv"
    bad.write_text("\n".join(comments + edit(rows)) + "\n")
    with pytest.raises(ValueError, match=message):
        _read_table(bad)


@needs_mteb
def test_every_saved_prompt_name_is_one_mteb_accepts():
    from mteb.models.abs_encoder import AbsEncoder

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        AbsEncoder.validate_task_to_prompt_name(default_prompts())  # raises KeyError naming an invalid key
    assert _warnings_from_mteb(caught) == []


@needs_mteb
def test_each_mteb_name_is_the_same_image_task():
    """Retrieval instructions go to mteb's query side only (`-query`); classification ones (mteb encodes only the
    images, with no prompt type) under the bare task name."""
    assert set(MTEB_PROMPT_NAMES) < set(MMEB_INSTRUCTIONS)
    for mmeb_task, name in MTEB_PROMPT_NAMES.items():
        task_name, side = name.removesuffix("-query"), name.endswith("-query")
        metadata = mteb.get_task(task_name).metadata
        assert "image" in metadata.modalities, mmeb_task
        assert metadata.type == ("Any2AnyRetrieval" if side else "ImageClassification"), mmeb_task


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test: mteb must not fetch task or model metadata from the Hub."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def _local_task(mini_mmeb):
    """mteb's own MSCOCOI2TRetrieval task (its name, type and modalities) on mini-MMEB's Photos_i2t pairs: every
    query image against the one pool of captions, the gold caption relevant; and its number of queries."""
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData

    rows = pd.read_parquet(mini_mmeb / "eval" / SUBSET / "test.parquet")
    assert {text.removeprefix(IMAGE_TAG).strip() for text in rows["qry_text"]} == {MMEB_INSTRUCTIONS[MMEB_TASK]}
    captions = sorted(set(rows["tgt_text"].iloc[0]))
    assert all(sorted(candidates) == captions for candidates in rows["tgt_text"])  # one global pool
    metadata = mteb.get_task(MTEB_PROMPT_NAMES[MMEB_TASK].removesuffix("-query")).metadata.model_copy(
        update={"dataset": {"path": str(mini_mmeb / "eval" / SUBSET), "revision": "local"}}
    )

    class LocalImageToCaption(AbsTaskRetrieval):
        def load_data(self, **kwargs) -> None:
            queries = {
                "id": [f"q{i}" for i in range(len(rows))],
                "image": [Image.open(mini_mmeb / "images" / path).convert("RGB") for path in rows["qry_img_path"]],
            }
            corpus = {"id": [f"d{i}" for i in range(len(captions))], "text": captions}
            relevant = {f"q{i}": {f"d{captions.index(gold)}": 1} for i, gold in enumerate(rows["tgt_text"].str[0])}
            split = RetrievalSplitData(
                queries=Dataset.from_dict(queries),
                corpus=Dataset.from_dict(corpus),
                relevant_docs=relevant,
                top_ranked=None,
            )
            self.dataset = {"default": {"test": split}}
            self.data_loaded = True

    LocalImageToCaption.metadata = metadata
    return LocalImageToCaption(), len(rows)


@needs_mteb
@pytest.mark.slow
def test_mteb_evaluate_on_a_local_image_task_equals_vlm2vec_eval(
    tiny_random_model_dir, mini_mmeb, tmp_path, no_network
):
    from mteb.models import ModelMeta, SentenceTransformerEncoderWrapper
    from mteb.types import PromptType

    from vlm2vec_hf.cli import main

    # A local folder: mteb reads modalities only from the Hub, so the ModelMeta names them (docs/mteb.md).
    meta = ModelMeta.create_empty(
        overwrites={
            "loader": SentenceTransformerEncoderWrapper,
            "name": str(tiny_random_model_dir),
            "modalities": ["text", "image"],
        }
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = meta.load_model(device="cpu", trust_remote_code=True)
    assert _warnings_from_mteb(caught) == []
    task, queries = _local_task(mini_mmeb)
    # mteb picks our instruction by its own task name: no `model_prompts` given
    assert model.get_prompt_name(task.metadata, PromptType.query) == MTEB_PROMPT_NAMES[MMEB_TASK]
    assert model.get_prompt_name(task.metadata, PromptType.document) == "document"

    results = mteb.evaluate(
        model, tasks=[task], cache=None, encode_kwargs={"batch_size": 16, "show_progress_bar": False}
    )
    mteb_hit_at_1 = results.task_results[0].scores["test"][0]["hit_rate_at_1"]

    out = tmp_path / "eval"
    args = ["eval", "--model", str(tiny_random_model_dir), "--data", str(mini_mmeb / "eval"), "--out", str(out)]
    assert main([*args, "--image-dir", str(mini_mmeb / "images"), "--subsets", SUBSET]) == 0
    ours = json.loads((out / "results.json").read_text())["datasets"][SUBSET]
    assert ours["queries"] == queries
    assert mteb_hit_at_1 == pytest.approx(ours["metrics"]["hit@1"], abs=1e-5)  # mteb rounds to 5 decimals
