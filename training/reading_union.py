"""Which crops can any reader of the LR crop get right? The union over readers, beside a recognition target:

    .venv/bin/textsr eval --model-dir models/gestalt-tsrn-synth --data train_data/synth/val --out output/val-eval
    .venv/bin/python -m training.reading_union --metrics output/val-eval/metrics.json \
        --model-dir models/gestalt-tsrn-synth --data train_data/synth/val --out output/union

Reads the per-crop hits ``textsr eval`` wrote (the raw crop, bicubic and the SR, each by the service recognizer and the
held-out one) and adds the reading of each LR crop by the model's text-prior generator (through the service's own
:class:`service.text_prior.TextPriorEngine`, loaded as the service loads it). An oracle that takes, crop by crop,
whichever reader is right reads the union. A target near or above it (``--target-points`` over the service
recognizer's bicubic, the recognition issue's +10 by default) asks the SR, read by one recognizer, to get nearly every
crop any of these readers gets, or crops none of them does: a text-prior SR draws its generator's reading, so that
takes a better reader of the LR crop. Writes ``reading_union.json`` (per split and on average: each reader's accuracy,
the union as readers are added, the target; per split the generator's hits) and prints the table. Choose nothing by it
on test/: there it only reports.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

FORMS = ("raw", "bicubic", "sr")
READERS = (("service", "correct"), ("held-out", "heldout_correct"))
GENERATOR = "generator (LR crop)"


def union_table(hits: dict[str, str]) -> list[dict[str, Any]]:
    """Per reader in order: its accuracy and the union's once it is added (``hits``: reader -> "1"/"0" per crop)."""
    from core.errors import DataError

    rows, union = [], None
    for name, bits in hits.items():
        read = np.frombuffer(bits.encode("ascii"), np.uint8) == ord("1")
        if union is not None and len(read) != len(union):
            raise DataError(f"{name}: {len(read)} crops, the readers before it {len(union)}")
        union = read if union is None else union | read
        rows.append({"reader": name, "accuracy": float(read.mean()), "union": float(union.mean())})
    return rows


def generator_engine(model_dir: str | Path) -> Any:
    """The model in ``model_dir`` as the service loads it (manifest and sha256 checks, CPU, fp32): a text-prior engine;
    :class:`ModelLoadError` for a model without a text prior."""
    from service.errors import ModelLoadError
    from service.repository import load_model

    model = load_model(Path(model_dir), "cpu", "fp32", 1)
    if model.manifest.text_prior is None:
        raise ModelLoadError(f"{model_dir}: the model has no text prior, so no generator reads its LR crops")
    return model.engine


def generator_hits(engine: Any, lmdb: str | Path) -> str:
    """"1"/"0" per crop of ``lmdb``: does the text-prior ``engine`` (:func:`generator_engine`) read its LR crop right?"""
    from training.data.lmdb_dataset import LMDBDataSetSR
    from training.evaluate import EVAL_BATCH, match_label
    from training.networks.text_prior import TextPrior

    hits = []
    for lr, _, labels in LMDBDataSetSR(lmdb).batches(EVAL_BATCH):
        hits += [match_label(text, label) for (text, _), label in zip(TextPrior.decode(engine.prior(lr)), labels)]
    return "".join("1" if hit else "0" for hit in hits)


def reading_union(metrics: dict[str, Any], model_dir: str | Path, data: str | Path, target_points: float = 10.0
                  ) -> dict[str, Any]:
    """:func:`union_table` for each split of ``metrics`` (``textsr eval``'s, on ``data``) and their average."""
    from core.errors import DataError
    from training.data.lmdb_dataset import find_lmdbs
    from training.evaluate import split_name

    lmdbs = {split_name(p, Path(data)): p for p in find_lmdbs(data)}
    engine = generator_engine(model_dir)
    splits = {}
    for name, split in metrics["splits"].items():
        if name not in lmdbs:
            raise DataError(f"split {name!r} of the metrics is not under {data} (found {sorted(lmdbs)})")
        hits = {GENERATOR: generator_hits(engine, lmdbs[name])}
        for reader, key in READERS:
            hits |= {f"{reader} {form}": split[key][form] for form in FORMS if form in split.get(key, {})}
        rows = union_table(hits)
        bicubic = next(r["accuracy"] for r in rows if r["reader"] == "service bicubic")
        splits[name] = {
            "crops": len(hits[GENERATOR]), "readers": rows, "target": bicubic + target_points / 100,
            "generator_correct": hits[GENERATOR],
        }
    average = [
        {k: (float(np.mean([s["readers"][i][k] for s in splits.values()])) if k != "reader" else v) for k, v in row.items()}
        for i, row in enumerate(next(iter(splits.values()))["readers"])
    ]
    return {
        "splits": splits, "target_points": target_points,
        "average": {"readers": average, "target": float(np.mean([s["target"] for s in splits.values()]))},
    }


def table(result: dict[str, Any]) -> str:
    avg = result["average"]
    lines = ["| reader (average of splits) | reads | union so far |", "| --- | --- | --- |"]
    lines += [f"| {r['reader']} | {100 * r['accuracy']:.2f}% | {100 * r['union']:.2f}% |" for r in avg["readers"]]
    lines.append(f"| target: service bicubic + {result['target_points']:g} points | {100 * avg['target']:.2f}% | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.reading_union", description=__doc__.split("\n\n")[0])
    ap.add_argument("--metrics", required=True, help="metrics.json of `textsr eval` on --data")
    ap.add_argument("--model-dir", required=True, help="the evaluated model folder (a model with a text prior)")
    ap.add_argument("--data", required=True, help="the TextZoom-layout root that was evaluated (val/ to choose by; test/ only reports)")
    ap.add_argument("--out", required=True, help="output folder for reading_union.json")
    ap.add_argument("--target-points", type=float, default=10.0, help="points over the service recognizer's bicubic")
    args = ap.parse_args(argv)
    if not Path(args.metrics).is_file():
        ap.error(f"no such file: {args.metrics}")
    result = reading_union(json.loads(Path(args.metrics).read_text()), args.model_dir, args.data, args.target_points)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "reading_union.json").write_text(json.dumps(result, indent=2))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
