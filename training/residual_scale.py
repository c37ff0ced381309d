"""Choose the residual strength on val/: SR = bicubic + s * (the network's part), for checkpoints x scales.

    .venv/bin/python -m training.residual_scale -c training/configs/default_tsrn.yml --data train_data/synth/val \
        --checkpoint output/a/best_accuracy.pdparams [--checkpoint ...] --scales 0.3 0.4 0.5 0.7 1 --out output/scale

A network trained with ``bicubic_residual`` adds its part to bicubic; lowering that part after training trades fidelity
for readability (the service recognizer reads a half-strength residual better than the full one; notes). Each pair is
evaluated in Paddle on every split under ``--data`` (PSNR, SSIM, the service recognizer's accuracy, McNemar against
bicubic). The pick: among pairs whose SR reads more crops than bicubic and is at least bicubic on PSNR and SSIM, the
one with the highest PSNR. Reading is the constraint and fidelity the objective because on val/ (768 crops) these pairs'
accuracies differ by a point or two, within the paired test's noise, while their PSNR differs by tenths of a dB, far
beyond it: maximising the accuracy would pick noise. Writes ``residual_scale.json`` (every pair and the pick) and
``residual_scale.png`` (accuracy and PSNR gain over bicubic against the scale). Choose on val/, never on test/.
Convert the pick with ``textsr convert ... -o Architecture.Transform.residual_scale=S``. ``--include OUT`` adds the
rows of an earlier sweep written to OUT before the pick, so checkpoints of later training compete with those already
swept (without ``--checkpoint`` it only merges); rows join only from one split (same crops and bicubic accuracy).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from training.evaluate import Memoized, at_least_bicubic, default_recognizer, evaluate_sr


def sweep(config: str | Path, checkpoints: list[str], data: str | Path, scales: list[float],
          max_images: int | None = None) -> dict[str, Any]:
    """Evaluate every checkpoint at every scale; return ``{"rows": [...], "pick": row or None}``."""
    from tqdm import tqdm

    from core.errors import ConfigError
    from training.config import architecture, load_config
    from training.networks import build_network, load_checkpoint

    for s in scales:
        if not 0 < s <= 1:
            raise ConfigError(f"scales must be in (0, 1], got {s}")
    spec = architecture(load_config(config, [f"Architecture.Transform.residual_scale={scales[0]}"]))
    reader, rows = Memoized(default_recognizer()), []
    bar = tqdm(total=len(checkpoints) * len(scales), desc="residual scale", unit="eval")
    for checkpoint in checkpoints:  # build_network refuses a residual_scale without bicubic_residual
        net = load_checkpoint(build_network(spec.backbone, **spec.kwargs), checkpoint)
        net.eval()
        for scale in scales:
            net.residual_scale = scale
            result = evaluate_sr(net, data, max_images, reader)
            avg = result["average"]
            rows.append({
                "checkpoint": str(checkpoint), "scale": scale, "faithful": at_least_bicubic(result),
                "accuracy": avg["accuracy"]["sr"], "accuracy_bicubic": avg["accuracy"]["bicubic"],
                "psnr_gain": avg["sr"]["psnr_paddleocr"] - avg["bicubic"]["psnr_paddleocr"],
                "ssim_gain": avg["sr"]["ssim"] - avg["bicubic"]["ssim"], "sr_vs_bicubic": avg["sr_vs_bicubic"]["service"],
            })
            bar.update(1)
            bar.set_postfix(scale=scale, acc=f"{100 * (rows[-1]['accuracy'] - rows[-1]['accuracy_bicubic']):+.2f}pt")
    bar.close()
    return {"data": str(data), "rows": rows, "pick": pick(rows)}


def pick(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The most faithful pair (PSNR) among those that read more crops than bicubic and are at least bicubic on PSNR
    and SSIM; None if there is none."""
    eligible = [r for r in rows if r["faithful"] and r["accuracy"] > r["accuracy_bicubic"]]
    return max(eligible, key=lambda r: r["psnr_gain"]) if eligible else None


def earlier_rows(folder: str | Path) -> list[dict[str, Any]]:
    """The rows of the sweep written to ``folder``."""
    from core.errors import ConfigError

    path = Path(folder) / "residual_scale.json"
    if not path.is_file():
        raise ConfigError(f"--include {folder}: no residual_scale.json there")
    return json.loads(path.read_text())["rows"]


def same_split(rows: list[dict[str, Any]]) -> None:
    """Rows compared by the pick must come from one split read by one recognizer: the same number of crops and the
    same bicubic accuracy (a function of the split's content, whatever its path)."""
    from core.errors import ConfigError

    seen = {(r["sr_vs_bicubic"]["crops"], round(r["accuracy_bicubic"], 9)) for r in rows}
    if len(seen) > 1:
        pairs = ", ".join(map(str, sorted(seen)))
        raise ConfigError(f"the sweeps joined were not on one split: (crops, bicubic accuracy) {pairs}")


def plot(result: dict[str, Any], path: str | Path) -> Path:
    from training.plots import save_figure, subplots

    fig, (acc, psnr) = subplots(1, 2, figsize=(11, 4))
    for checkpoint in dict.fromkeys(r["checkpoint"] for r in result["rows"]):
        rows = [r for r in result["rows"] if r["checkpoint"] == checkpoint]
        label = Path(checkpoint).parent.name + "/" + Path(checkpoint).stem
        acc.plot([r["scale"] for r in rows], [100 * (r["accuracy"] - r["accuracy_bicubic"]) for r in rows], "-o", label=label)
        psnr.plot([r["scale"] for r in rows], [r["psnr_gain"] for r in rows], "-o", label=label)
    for ax, title in ((acc, "service recognizer: SR - bicubic (points)"), (psnr, "PSNR: SR - bicubic (dB)")):
        ax.axhline(0, color="grey", lw=0.8)
        ax.set(title=title, xlabel="residual scale")
    acc.legend(fontsize=7)
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pick", metavar="OUT", help="only print the scale picked by an earlier sweep written to OUT")
    ap.add_argument("-c", "--config")
    ap.add_argument("--checkpoint", action="append", help="a .pdparams (repeat for several)")
    ap.add_argument("--data", help="the selection split (val/), never test/")
    ap.add_argument("--scales", type=float, nargs="+", default=[0.3, 0.4, 0.5, 0.6, 0.8, 1.0])
    ap.add_argument("--max-images", type=int)
    ap.add_argument("--include", action="append", default=[], metavar="OUT",
                    help="an earlier sweep's output folder whose rows (same split) join this one's before the pick")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    if args.pick:
        chosen = json.loads((Path(args.pick) / "residual_scale.json").read_text())["pick"]
        if chosen is None:
            ap.error(f"the sweep in {args.pick} found no scale that reads better than bicubic at bicubic's fidelity")
        print(chosen["scale"])
        return 0
    needed = ("config", "checkpoint", "data", "out") if args.checkpoint or not args.include else ("data", "out")
    missing = [f"--{k}" for k in needed if not getattr(args, k)]
    if missing:
        ap.error(f"a sweep needs {', '.join(missing)}")
    earlier = [earlier_rows(folder) for folder in args.include]  # a wrong folder fails before any evaluation
    same_split([row for rows in earlier for row in rows])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"data": str(args.data), "rows": []}
    if args.checkpoint:
        result = sweep(args.config, args.checkpoint, args.data, args.scales, args.max_images)
    result["rows"] = [row for rows in earlier for row in rows] + result["rows"]
    same_split(result["rows"])
    result["pick"] = pick(result["rows"])
    (out / "residual_scale.json").write_text(json.dumps(result, indent=1))
    plot(result, out / "residual_scale.png")
    chosen = result["pick"]
    print(f"pick: {chosen['checkpoint']} at residual_scale={chosen['scale']}" if chosen
          else "no pair reads better than bicubic while at least bicubic on PSNR and SSIM")
    return 0 if chosen else 1


if __name__ == "__main__":
    raise SystemExit(main())
