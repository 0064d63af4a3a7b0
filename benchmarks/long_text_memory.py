"""Peak memory of `SentenceTransformer.encode` on one long text beside a short one, with the model's
`split_padded_batches` on (rows of very different lengths run in separate sub-batches) and off (one padded batch,
as before), each point in a fresh process, side by side in one run.

With SDPA (the default) one padded batch hands a `(batch, 1, seq, seq)` mask to attention, which CPU SDPA widens
to float: memory grows with batch x seq^2 although the short rows hold a few tokens. Writes
`results/long_text_memory.{json,md,png}`.

    python benchmarks/long_text_memory.py [--tokens 4000 8000 16000] [--batch 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from provenance import write_result  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

RESULTS = Path(__file__).parent / "results"

CHILD = r"""
import json, resource, sys, time
import torch
from sentence_transformers import SentenceTransformer
folder, tokens, batch, split = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "on"
torch.set_num_threads(2)
model = SentenceTransformer(folder, trust_remote_code=True, device="cpu")
model[0].model.config.split_padded_batches = split
tokenizer = model[0].processor.tokenizer
unit = len(tokenizer("word " * 100)["input_ids"]) / 100
inputs = ["a short text"] * (batch - 1) + ["word " * int(tokens / unit)]
length = len(tokenizer(inputs[-1])["input_ids"])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
embeddings = model.encode(inputs, batch_size=batch, convert_to_tensor=True)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"long_row_tokens": length, "peak_mib": peak / 1024, "loaded_mib": before / 1024,
                  "seconds": seconds, "embeddings": embeddings.tolist()}))
"""


def measure(folder: Path, tokens: int, batch: int, split: bool) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), str(tokens), str(batch), "on" if split else "off"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def run(token_counts: list[int], batch: int) -> dict:
    from vlm2vec_hf.tiny import write_random_model

    points = []
    with tempfile.TemporaryDirectory() as workdir:
        folder = write_random_model(Path(workdir) / "tiny")
        for tokens in token_counts:
            on, off = measure(folder, tokens, batch, True), measure(folder, tokens, batch, False)
            difference = max(
                abs(a - b)
                for row_on, row_off in zip(on["embeddings"], off["embeddings"])
                for a, b in zip(row_on, row_off)
            )
            points.append(
                {
                    "long_row_tokens": on["long_row_tokens"],
                    "batch": batch,
                    "split_peak_mib": on["peak_mib"],
                    "padded_peak_mib": off["peak_mib"],
                    "loaded_mib": on["loaded_mib"],
                    "split_seconds": on["seconds"],
                    "padded_seconds": off["seconds"],
                    "max_embedding_difference": difference,
                }
            )
            print(points[-1])
    return {"model": "tiny random Qwen2-VL (0.4M), SDPA, CPU fp32, 2 threads", "points": points}


def _encode_mib(point: dict, mode: str) -> float:
    """Memory `encode` added on top of the loaded model, in MiB."""
    return point[f"{mode}_peak_mib"] - point["loaded_mib"]


def to_markdown(result: dict) -> str:
    lines = [
        f"Peak resident memory of one `encode` call: one long text plus {result['points'][0]['batch'] - 1} short "
        f"one(s) in one batch; {result['model']}; each point in a fresh process.",
        "",
        "Peaks are the process's; `encode`'s own memory is the peak minus the memory after loading the model.",
        "",
        "| long row (tokens) | padded: peak / encode (MiB) | split: peak / encode (MiB) | encode memory padded / split "
        "| padded time (s) | split time (s) | max embedding difference |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for point in result["points"]:
        padded, split = _encode_mib(point, "padded"), _encode_mib(point, "split")
        lines.append(
            f"| {point['long_row_tokens']:,} | {point['padded_peak_mib']:.0f} / {padded:.0f} | "
            f"{point['split_peak_mib']:.0f} / {split:.0f} | {padded / max(split, 1.0):.1f}x | "
            f"{point['padded_seconds']:.2f} | {point['split_seconds']:.2f} | {point['max_embedding_difference']:.1e} |"
        )
    lines += [
        "",
        f"Process memory after loading the model: {result['points'][0]['loaded_mib']:.0f} MiB.",
    ]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tokens = [point["long_row_tokens"] for point in result["points"]]
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot(tokens, [_encode_mib(p, "padded") for p in result["points"]], "o-", label="one padded batch (before)")
    axis.plot(tokens, [_encode_mib(p, "split") for p in result["points"]], "o-", label="split by length (now)")
    axis.set_xlabel("tokens in the long row")
    axis.set_ylabel("encode's peak memory (MiB, RSS)")
    axis.set_title("encode([short, long]): peak memory")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[4000, 8000, 16000, 24000])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = run(args.tokens, args.batch)
    markdown = write_result(args.out, "long_text_memory", result, to_markdown)
    plot(result, args.out / "long_text_memory.png")
    print(markdown)


if __name__ == "__main__":
    main()
