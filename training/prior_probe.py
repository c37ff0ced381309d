"""Does the SR draw what its text prior reads? A checkpoint with a text prior, fed four priors on val/:

    .venv/bin/python -m training.prior_probe -c CONFIG -o Architecture.Transform.text_prior=true ... \
        --checkpoint output/run/latest.pdparams --data train_data/synth/val --out output/probe [--scales 1 0.3]

``own``: the prior it computes (its generator's reading of the LR crop); ``sharp``: that prior one-hot at its most
likely class (does confidence matter?); ``label``: the label written as a prior
(:func:`training.networks.text_prior.aligned_prior`: what a generator that reads every crop right would say);
``blank``: every column the blank (no text). For each prior and residual strength, the service recognizer's accuracy
on the SR, PSNR and SSIM, and an exact McNemar test against ``own`` on the same crops. If ``label`` reads no better
than ``own``, a better generator would not make the SR more readable: the network does not draw the prior's
characters. Writes ``prior_probe.json``, ``prior_probe.png`` (SR - bicubic per prior and strength) and prints a
table. Use val/, never test/.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

PRIORS = ("own", "sharp", "label", "blank")


def forced(kind: str, probs: np.ndarray, labels: list[str]) -> np.ndarray:
    """The prior of ``kind`` (:data:`PRIORS`) for crops whose own prior is ``probs`` ``[N, K, T]``."""
    from training.networks.text_prior import aligned_prior

    if kind == "own":
        return probs
    if kind == "label":
        return aligned_prior(probs, labels)
    out = np.zeros_like(probs)
    cls = probs.argmax(1) if kind == "sharp" else np.zeros(probs.shape[::2], np.int64)  # class per column
    np.put_along_axis(out, cls[:, None, :], 1.0, axis=1)
    return out


def probe(net: Any, data: str | Path, scales: list[float], max_images: int | None = None) -> dict[str, Any]:
    """Evaluate ``net`` (a text-prior network, eval mode) with each of :data:`PRIORS` at each residual strength."""
    import paddle
    from tqdm import tqdm

    from training.data.lmdb_dataset import LMDBDataSetSR, find_lmdbs
    from training.evaluate import EVAL_BATCH, Memoized, default_recognizer, evaluate_splits
    from training.metrics import paired

    labels_of = {lr.tobytes(): labels for lmdb in find_lmdbs(data)  # the upscaler gets LR batches: their labels by content
                 for lr, _, labels in LMDBDataSetSR(lmdb).batches(EVAL_BATCH)}
    reader, rows = Memoized(default_recognizer()), []
    own: dict[bytes, np.ndarray] = {}  # each batch's own prior, computed once
    net.residual_scale = 1.0
    bar = tqdm(total=len(PRIORS) * len(scales), desc="prior probe", unit="eval")
    for kind in PRIORS:
        full: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}  # each batch's bicubic base and full-strength SR

        def upscale(lr: np.ndarray, scale: float, kind: str = kind, full: dict = full) -> np.ndarray:
            key = lr.tobytes()
            if key not in full:
                with paddle.no_grad():
                    x = paddle.to_tensor(lr)
                    if key not in own:
                        own[key] = net.prior.probabilities(x).numpy()
                    prior = paddle.to_tensor(forced(kind, own[key], labels_of[key]))
                    full[key] = net.base(x).numpy(), net(x, prior).numpy()
            base, sr = full[key]
            return base + scale * (sr - base)  # the network's forward at residual_scale = scale

        for scale in scales:
            result = evaluate_splits(lambda lr, scale=scale: upscale(lr, scale), data, max_images, reader)
            avg = result["average"]
            rows.append({
                "prior": kind, "scale": scale, "accuracy": avg["accuracy"]["sr"], "accuracy_bicubic": avg["accuracy"]["bicubic"],
                "psnr_gain": avg["sr"]["psnr_paddleocr"] - avg["bicubic"]["psnr_paddleocr"],
                "ssim_gain": avg["sr"]["ssim"] - avg["bicubic"]["ssim"],
                "hits": "".join(split["correct"]["sr"] for split in result["splits"].values()),
            })
            bar.update(1)
    bar.close()
    own_hits = {r["scale"]: r["hits"] for r in rows if r["prior"] == "own"}
    for row in rows:
        row["vs_own"] = paired(row["hits"], own_hits[row["scale"]])
    result = {"data": str(data), "rows": rows}
    if getattr(net.prior, "glyphs", False):
        result["drawn"] = drawn(own, labels_of, data, max_images, reader)
    return result


def drawn(own: dict[bytes, np.ndarray], labels_of: dict[bytes, list[str]], data: str | Path, max_images: int | None,
          reader: Any) -> list[dict[str, Any]]:
    """The service recognizer on each prior's drawing alone (``glyph_image`` at the SR's size, black ink on white),
    for the batches whose own prior is in ``own``; SR - bicubic and McNemar against bicubic on the same crops."""
    from core.spec import SCALE
    from service.text_prior import glyph_image
    from training.evaluate import evaluate_splits

    out = []
    for kind in ("own", "label"):
        def draw(lr: np.ndarray, kind: str = kind) -> np.ndarray:
            key = lr.tobytes()
            ink = glyph_image(forced(kind, own[key], labels_of[key]), SCALE * lr.shape[2], SCALE * lr.shape[3])
            return np.repeat(1.0 - ink, 3, axis=1)

        avg = evaluate_splits(draw, data, max_images, reader)["average"]
        out.append({"prior": kind, "accuracy": avg["accuracy"]["sr"], "accuracy_bicubic": avg["accuracy"]["bicubic"],
                    "vs_bicubic": avg["sr_vs_bicubic"]["service"]})
    return out


def table(result: dict[str, Any]) -> str:
    lines = ["| prior | strength | SR % | SR - bicubic (points) | PSNR gain dB | reads / misses vs own (McNemar p) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in result["rows"]:
        pair = r["vs_own"]
        lines.append(f"| {r['prior']} | {r['scale']:g} | {100 * r['accuracy']:.2f} | {100 * (r['accuracy'] - r['accuracy_bicubic']):+.2f} "
                     f"| {r['psnr_gain']:+.2f} | {pair['only_first']} / {pair['only_second']} (p = {pair['p']:.2g}) |")
    if result.get("drawn"):
        lines += ["", "| drawing of | drawing % | drawing - bicubic (points) | reads / misses vs bicubic (McNemar p) |",
                  "| --- | --- | --- | --- |"]
        for r in result["drawn"]:
            pair = r["vs_bicubic"]
            lines.append(f"| {r['prior']} | {100 * r['accuracy']:.2f} | {100 * (r['accuracy'] - r['accuracy_bicubic']):+.2f} "
                         f"| {pair['only_first']} / {pair['only_second']} (p = {pair['p']:.2g}) |")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str | Path) -> Path:
    from training.plots import save_figure, subplots

    scales = sorted({r["scale"] for r in result["rows"]}, reverse=True)
    fig, ax = subplots(figsize=(7, 3.5))
    width = 0.8 / len(scales)
    for i, scale in enumerate(scales):
        rows = [r for r in result["rows"] if r["scale"] == scale]
        ax.bar(np.arange(len(rows)) + i * width, [100 * (r["accuracy"] - r["accuracy_bicubic"]) for r in rows], width,
               label=f"strength {scale:g}")
        ax.set_xticks(np.arange(len(rows)) + width * (len(scales) - 1) / 2, [r["prior"] for r in rows])
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(title="service recognizer on the SR: SR - bicubic (points), by the prior fed", ylabel="points")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    from core.errors import ConfigError
    from training.config import architecture, load_config
    from training.networks import build_network, load_checkpoint

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-c", "--config", required=True)
    ap.add_argument("-o", "--opt", nargs="*", default=[], help="config overrides (key=value), as for textsr train")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True, help="the selection split (val/), never test/")
    ap.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.3])
    ap.add_argument("--max-images", type=int)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    for s in args.scales:
        if not 0 < s <= 1:
            ap.error(f"--scales must be in (0, 1], got {s}")
    spec = architecture(load_config(args.config, args.opt))
    if not spec.kwargs.get("text_prior") or not spec.kwargs.get("bicubic_residual"):
        raise ConfigError("the probe needs a network with Architecture.Transform.text_prior and bicubic_residual: true")
    net = load_checkpoint(build_network(spec.backbone, **spec.kwargs), args.checkpoint)
    net.eval()
    result = {"checkpoint": args.checkpoint, **probe(net, args.data, args.scales, args.max_images)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "prior_probe.json").write_text(json.dumps(result, indent=1))
    plot(result, out / "prior_probe.png")
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
