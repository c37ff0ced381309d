"""Compare training recipes side by side: the ``textsr eval`` results of each arm -> ``ablation.md`` / ``.json``.

``python -m training.ablation --arm "MSE only=DIR" --arm "StrokeFocusLoss=DIR" --out MODEL_DIR`` reads each
``DIR/metrics.json`` (and, with ``--recognizer``, the pretraining run's ``recognizer_metrics.json``) and
writes a table of the average over splits plus recognition per split. ``make ablation-default`` runs the
whole experiment; the model card includes the table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.errors import ConfigError, InputNotFound
from training.metrics import paired
from training.model_card import TABLE_HEAD, TABLE_RULE, metrics_row, paired_sentence


def _arm(spec: str) -> tuple[str, Path]:
    label, sep, folder = spec.partition("=")
    if not sep or not label.strip() or not folder.strip():
        raise ConfigError(f"--arm {spec!r} must look like LABEL=DIR")
    path = Path(folder.strip()) / "metrics.json"
    if not path.is_file():
        raise InputNotFound(f"--arm {label.strip()}: {path} not found (run `textsr eval --out {folder.strip()}` first)")
    return label.strip(), path


def build(arms: list[str], recognizer: Path | None = None, note: str = "") -> tuple[str, dict[str, Any]]:
    """Return (Markdown, JSON summary) for the arms, in the order given.

    The summary holds every input (each arm's full metrics, the recognizer's, the note), so
    :func:`render` rebuilds the same Markdown from the JSON alone.
    """
    summary: dict[str, Any] = {"note": note, "arms": {}}
    for label, path in map(_arm, arms):
        m = json.loads(path.read_text())
        avg = m["average"]
        summary["arms"][label] = {
            "psnr_gain_db": avg["sr"]["psnr_paddleocr"] - avg["bicubic"]["psnr_paddleocr"],
            "ssim_gain": avg["sr"]["ssim"] - avg["bicubic"]["ssim"],
            "recognition_gain_points": 100 * (avg["accuracy"]["sr"] - avg["accuracy"]["bicubic"]),
            "recognition_gain_points_per_split": {
                s: 100 * (v["accuracy"]["sr"] - v["accuracy"]["bicubic"]) for s, v in m["splits"].items()
            },
            "metrics": m,
        }
    if recognizer is not None:
        summary["recognizer"] = json.loads(Path(recognizer).read_text())
    return render(summary), summary


def render(summary: dict[str, Any]) -> str:
    """The Markdown section of a summary written by :func:`build`."""
    arms, note = summary["arms"], summary.get("note", "")
    splits = sorted({s for a in arms.values() for s in a["recognition_gain_points_per_split"]})
    lines = ["## Ablation", "", *([note, ""] if note else []), TABLE_HEAD.format(first="arm (average of splits)"), TABLE_RULE]
    lines += [metrics_row(label, a["metrics"]["average"]) for label, a in arms.items()]
    lines += ["", "| arm | " + " | ".join(f"{s}: SR - bicubic recognition (points)" for s in splits) + " |",
              "| --- |" + " --- |" * len(splits)]
    for label, a in arms.items():
        gains = a["recognition_gain_points_per_split"]
        lines.append(f"| {label} | " + " | ".join(f"{gains[s]:+.1f}" if s in gains else "" for s in splits) + " |")
    lines += _paired(arms)
    for label, a in arms.items():
        sentence = paired_sentence(label, a["metrics"])
        lines += ["", sentence] if sentence else []
    rec = summary.get("recognizer")
    if rec is not None:
        lines += ["", f"Recognizer the text-focus arm looks through: width {rec['width']:g}, {rec['steps']} pretraining steps; "
                  f"teacher-forced on the HR test crops: {100 * rec['token_accuracy']:.1f}% of symbols "
                  f"({100 * rec['token_accuracy_without_image']:.1f}% from blank crops, i.e. without reading), "
                  f"{100 * rec['sequence_accuracy']:.1f}% of whole sequences right ({rec['eval_crops']} crops)."]
    return "\n".join(lines) + "\n"


def _paired(arms: dict[str, Any]) -> list[str]:
    """Each arm against the first on the same crops: who reads which SR crops, and McNemar's p."""
    labels = list(arms)

    def hits(label: str) -> str | None:
        splits = arms[label]["metrics"]["splits"]
        if not all("correct" in v for v in splits.values()):
            return None
        return "".join(splits[s]["correct"]["sr"] for s in sorted(splits))

    base = hits(labels[0]) if labels else None
    lines = []
    for label in labels[1:]:
        other = hits(label)
        if base is None or other is None or len(other) != len(base):
            continue
        pair = paired(other, base)
        lines.append(
            f"Paired on the same {len(base)} crops: {label} reads {pair['only_first']} SR crops that {labels[0]} misses, and misses"
            f" {pair['only_second']} that {labels[0]} reads; exact McNemar test p = {pair['p']:.2g}."
        )
    return ["", *lines] if lines else []


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Write ablation.md and ablation.json from the `textsr eval` folders of each arm.")
    ap.add_argument("--arm", action="append", required=True, help="LABEL=DIR, DIR holding metrics.json; repeat per arm")
    ap.add_argument("--out", type=Path, required=True, help="folder for ablation.md / ablation.json (the model folder)")
    ap.add_argument("--recognizer", type=Path, help="recognizer_metrics.json of the pretraining run")
    ap.add_argument("--note", default="", help="a paragraph above the table: what differs between the arms")
    args = ap.parse_args()
    text, summary = build(args.arm, args.recognizer, args.note)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ablation.md").write_text(text)
    (args.out / "ablation.json").write_text(json.dumps(summary, indent=2))
    print(text)


if __name__ == "__main__":
    main()
