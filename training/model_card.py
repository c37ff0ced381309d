"""Write ``MODEL_CARD.md`` for a converted model from its training log, eval metrics, manifest and ablation."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from core.manifest import Manifest, read_manifest

TABLE_HEAD = (
    "| {first} | PSNR dB PaddleOCR's way, bicubic / SR (gain) | PSNR dB per image, bicubic / SR | SSIM bicubic / SR (gain)"
    " | service recognizer % raw / bicubic / SR / HR (SR - bicubic) | held-out recognizer % raw / bicubic / SR / HR (SR - bicubic) |"
)
TABLE_RULE = "| --- | --- | --- | --- | --- | --- |"


def _accuracy_cell(acc: dict[str, float] | None) -> str:
    if not acc:
        return ""
    raw = f"{100 * acc['raw']:.1f} / " if "raw" in acc else "- / "  # evaluations before the raw crop was read: "-"
    return raw + f"{100 * acc['bicubic']:.1f} / {100 * acc['sr']:.1f} / {100 * acc['hr']:.1f} ({100 * (acc['sr'] - acc['bicubic']):+.1f})"


def metrics_row(name: str, split: dict[str, Any]) -> str:
    sr, bic = split["sr"], split["bicubic"]
    cells = [
        name,
        f"{bic['psnr_paddleocr']:.2f} / {sr['psnr_paddleocr']:.2f} ({sr['psnr_paddleocr'] - bic['psnr_paddleocr']:+.2f})",
        f"{bic['psnr_per_image']:.2f} / {sr['psnr_per_image']:.2f}",
        f"{bic['ssim']:.4f} / {sr['ssim']:.4f} ({sr['ssim'] - bic['ssim']:+.4f})",
        _accuracy_cell(split.get("accuracy")),
        _accuracy_cell(split.get("heldout_accuracy")),
    ]
    return "| " + " | ".join(cells) + " |"


def paired_sentence(name: str, metrics: dict[str, Any], other: str = "bicubic") -> str:
    """SR vs ``other`` (bicubic, or the raw crop) on the same crops, pooled over the splits, for each recognizer (empty
    without a record)."""
    pairs = metrics["average"].get(f"sr_vs_{other}")
    if not pairs:
        return ""
    shown = "the raw crop" if other == "raw" else other
    parts = [
        f"the {'held-out' if who == 'heldout' else who} recognizer reads {p['only_first']} SR crops that {shown} misses and misses"
        f" {p['only_second']} that {shown} reads (exact McNemar p = {p['p']:.2g})"
        for who, p in pairs.items()
    ]
    crops = next(iter(pairs.values()))["crops"]
    return f"{name}, SR vs {shown} on the same {crops} crops: " + "; ".join(parts) + "."


TARGETS = (
    ("service recognizer, SR - bicubic (points; McNemar p < 0.01)", 10.0),
    ("held-out recognizer, SR - bicubic (points)", 3.0),
    ("PSNR, SR - bicubic (dB, PaddleOCR's way)", 1.0),
    ("SSIM, SR - bicubic", 0.03),
    ("unseen split, service recognizer, SR - bicubic (points)", 0.0),
)
"""The recognition issue's targets for the default model, on the average of the test splits."""


def targets_table(metrics: dict[str, Any]) -> str:
    """Each target with the measured value and whether it is met (empty without the recognition figures)."""
    avg = metrics["average"]
    if "heldout_accuracy" not in avg or "unseen" not in metrics["splits"]:
        return ""
    unseen = metrics["splits"]["unseen"]["accuracy"]
    pair = avg["sr_vs_bicubic"]["service"]
    measured = [
        100 * (avg["accuracy"]["sr"] - avg["accuracy"]["bicubic"]),
        100 * (avg["heldout_accuracy"]["sr"] - avg["heldout_accuracy"]["bicubic"]),
        avg["sr"]["psnr_paddleocr"] - avg["bicubic"]["psnr_paddleocr"],
        avg["sr"]["ssim"] - avg["bicubic"]["ssim"],
        100 * (unseen["sr"] - unseen["bicubic"]),
    ]
    met = [m >= t for (_, t), m in zip(TARGETS, measured)]
    met[0] = met[0] and pair["p"] < 0.01
    rows = ["| target | wanted | measured | met |", "| --- | --- | --- | --- |"]
    for (name, target), value, ok in zip(TARGETS, measured, met):
        shown = f"{value:+.4f}" if "SSIM" in name else f"{value:+.2f}"
        extra = f" (p = {pair['p']:.2g})" if name.startswith("service") else ""
        rows.append(f"| {name} | >= {target:+g} | {shown}{extra} | {'yes' if ok else '**no**'} |")
    return "\n".join(rows)


def write_card(model_dir: Path, metrics: dict[str, Any], train_dirs: list[Path], config: Path, data_note: str, extra: str = "",
               made_by: str = "`make train-default`", last_step: int | None = None) -> Path:
    """Render the card next to the model's manifest; returns its path. ``train_dirs``: the run's folders in order (a run
    continued in another folder lists both); the manifest names the checkpoint that was converted; ``made_by``: the
    command (or the section of ``extra``) that reproduces the checkpoint; ``last_step``: the step that was converted,
    when the logs go on past it."""
    m = read_manifest(model_dir)
    from training.plots import read_logs

    rows = [r for r in read_logs([d / "train_log.jsonl" for d in train_dirs]) if last_step is None or r["step"] <= last_step]
    losses = [r for r in rows if "loss" in r]
    steps = max((r["step"] for r in rows), default=0)
    wall, offset, last = 0.0, 0.0, 0.0
    for r in losses:  # a resumed run restarts its clock: add up the segments
        t = r.get("time_s", 0.0)
        if t < last:
            offset += last
        last, wall = t, offset + t
    best = train_dirs[-1] / "best_accuracy.states"
    if m.source.get("checkpoint") == "best_accuracy.pdparams" and best.is_file():
        shipped = f" (shipped: the best evaluated checkpoint, step {json.loads(best.read_text()).get('global_step')})"
    else:
        shipped = f" (shipped: the last checkpoint, step {steps})"
    convert = f"textsr convert -o {m.source['overrides']}" if m.source.get("overrides") else "textsr convert"
    table = [TABLE_HEAD.format(first="split"), TABLE_RULE]
    table += [metrics_row(name, split) for name, split in metrics["splits"].items()]
    table.append(metrics_row("**average**", metrics["average"]))
    table += ["", paired_sentence("Average of the splits", metrics), "", paired_sentence("Average of the splits", metrics, "raw")]
    ablation_file = model_dir / "ablation.md"
    ablation = ablation_file.read_text() if ablation_file.is_file() else ""
    text = f"""# Model card: {m.name}

- **Architecture**: {architecture(m)}
- **Graphs**: {", ".join(f"`{g.file}` ({g.precision}, verified against {g.verification.reference}: max abs diff {g.verification.max_abs_diff:.2g} <= {g.verification.tolerance:g})" for g in m.graphs)}.
- **Data**: {data_note}
- **Recipe**: `{config}` ({made_by}): loss {read_loss(config)}, {steps} steps{shipped}, then `{convert}`.
- **Hardware and time**: {platform.machine()} CPU, {os.cpu_count()} cores, Paddle {m.versions.get("paddle", "?")}; {wall / 60:.0f} min of training in
  {", ".join(f"`{d.name}/train_log.jsonl`" for d in train_dirs)}.
- **Evaluation**: `textsr eval` on the synthetic test splits ({next(iter(metrics["splits"].values()))["sr"]["images"]} images each);
  PSNR "PaddleOCR's way" averages per-batch-of-16 values, "per image" averages per-image PSNR; recognition by the service's
  recognizer (PP-OCRv6 small from the rapidocr wheel, the one the loss looks through) and by a held-out recognizer no loss
  and no checkpoint choice ever saw (PP-OCRv4 rec from the rapidocr-onnxruntime wheel), exact match after lower-casing,
  letters and digits only. Checkpoints are chosen on `val/`, never on the test splits.

{chr(10).join(table)}

{("### Targets" + chr(10) + chr(10) + targets_table(metrics)) if targets_table(metrics) else ""}

![LR | bicubic | SR | HR](grid.png)

{"![training loss and eval PSNR/SSIM, SR vs bicubic](training_curves.png)" if (model_dir / "training_curves.png").is_file() else ""}

{extra}
{ablation}
"""
    path = model_dir / "MODEL_CARD.md"
    path.write_text(text)
    return path


def architecture(m: Manifest) -> str:
    """What the exported graphs compute and take, text prior included."""
    head = f"{m.backbone} (PaddleOCR's Text {m.algorithm} backbone), PaddleOCR parameter layout; "
    image = (f"input `{m.input.name}` float32 {m.input.shape} RGB in [0, 1], output `{m.output.name}` {m.output.shape}"
             " clipped to [0, 1]")
    prior = m.text_prior
    if prior is None:
        return head + f"exported SR path only\n  (no STN, no recognizer): {image}."
    where = "in this folder, a copy of the service recognizer fine-tuned with the SR network" if prior.bundled else (
        "the service recognizer's own file")
    glyphs = (f"; that reading is also drawn as text (OpenCV, `service.text_prior.glyph_image`) and fed as `{prior.glyphs.name}`"
              f" {prior.glyphs.shape}") if prior.glyphs is not None else ""
    return (head + f"exported SR path (no STN) with a text prior: {image}. The service first reads the LR crop with"
            f" `{prior.recognizer}` ({where}) and feeds its class probabilities as `{prior.input.name}` {prior.input.shape}"
            f"{glyphs}; every request runs both graphs.")


def read_loss(config: Path) -> str:
    from training.config import load_config

    return (load_config(config).get("Loss") or {}).get("name", "?")


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Write MODEL_CARD.md for a converted model from its metrics.json and training log.")
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--train-dir", type=Path, nargs="+", required=True,
                    help="Global.save_model_dir of the training run (several, in order, for a run continued elsewhere)")
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--data-note", required=True, help="one sentence on the training data")
    ap.add_argument("--extra", type=Path, nargs="*", default=[], help="Markdown files appended to the card (lineage, notes)")
    ap.add_argument("--made-by", default="`make train-default`", help="how the checkpoint is reproduced (Markdown)")
    ap.add_argument("--last-step", type=int, help="the step that was converted, when the logs go on past it")
    args = ap.parse_args()
    missing = [str(path) for path in [args.model_dir / "metrics.json", args.config, *args.extra] if not path.is_file()]
    if missing:
        ap.error(f"no such file: {', '.join(missing)}")
    metrics = json.loads((args.model_dir / "metrics.json").read_text())
    extra = "\n".join(path.read_text() for path in args.extra)
    print(write_card(args.model_dir, metrics, args.train_dir, args.config, args.data_note, extra, args.made_by, args.last_step))


if __name__ == "__main__":
    main()
