"""Which way does each recognition term push the image? Image-space gradients of the training losses.

For each crop, the gradient of one term of ``RecognitionLoss`` (pixel MSE, the feature teacher, the KL teacher, CTC to
the label) with respect to the image the SR network would output, with and without ``Loss.eot`` (the recognizer sees SR
and HR through one random view; averaged over ``--views`` draws). Reported per term: the mean and median cosine between
the descent direction ``-grad`` and ``HR - image`` (1 for pixel MSE by construction; near 0 for a direction that changes
what the recognizer reads without moving towards HR: an adversarial one), the share of crops where it is positive, and
the share of the gradient's energy below 1/8 of the sampling rate (strokes are low-frequency, adversarial patterns are
not). Images: the SR of ``--model``'s source checkpoint, built the way its manifest says (config and ``-o`` overrides,
e.g. the shipped residual strength), or of ``--checkpoint`` with the default config, and plain bicubic, on the first
``--crops`` crops of ``--data`` (a val split: never a test split).

    .venv/bin/python bench/loss_alignment.py [--data train_data/synth/val] [--crops 48] [--views 4]

Writes bench/results/loss_alignment-<device>.md|json. Not a timing: the numbers do not depend on machine load.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import table, write_result  # noqa: E402

FEATURE = "p2o.pd_op.transpose.8.0"  # the default config's feature_layer: the CTC head's input
TERMS = {
    "pixel MSE": {"pixel_weight": 1.0},
    "feature teacher": {"pixel_weight": 0.0, "teacher": "feature", "teacher_weight": 1.0, "feature_layer": FEATURE},
    "KL teacher": {"pixel_weight": 0.0, "teacher": "kl", "teacher_weight": 1.0},
    "CTC": {"pixel_weight": 0.0, "ctc_weight": 1.0},
}


def alignment(grad, image, hr) -> dict[str, float]:
    """Cosine of ``-grad`` with ``hr - image`` per crop, and the low-frequency share of the gradient's energy."""
    import numpy as np

    n = grad.shape[0]
    d, g = (hr - image).reshape(n, -1), (-grad).reshape(n, -1)
    cos = (d * g).sum(1) / (np.linalg.norm(d, axis=1) * np.linalg.norm(g, axis=1) + 1e-12)
    power = np.abs(np.fft.fft2(grad)) ** 2
    fy, fx = np.abs(np.fft.fftfreq(grad.shape[2]))[:, None], np.abs(np.fft.fftfreq(grad.shape[3]))[None, :]
    low = (fy < 0.125) & (fx < 0.125)
    return {"cos_mean": float(cos.mean()), "cos_median": float(np.median(cos)), "positive": float((cos > 0).mean()),
            "low_freq_energy": float((power * low).sum() / power.sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "train_data/synth/val")
    ap.add_argument("--model", type=Path, default=ROOT / "models/gestalt-tsrn-synth-fast",
                    help="a converted model folder without a text prior: its source checkpoint, config and overrides make the SR")
    ap.add_argument("--checkpoint", type=Path, help="a checkpoint of the default config instead of --model's")
    ap.add_argument("--crops", type=int, default=48)
    ap.add_argument("--views", type=int, default=4, help="random views averaged per gradient when eot is on")
    ap.add_argument("--terms", nargs="+", choices=list(TERMS), default=list(TERMS))
    args = ap.parse_args()

    import paddle
    from tqdm import tqdm

    from core.manifest import read_manifest
    from training.config import architecture, load_config
    from training.data.lmdb_dataset import LMDBDataSetSR
    from training.losses import RecognitionLoss
    from training.networks import build_network, load_checkpoint

    paddle.seed(0)
    data = LMDBDataSetSR(args.data)
    lr, hr, labels = next(data.batches(min(args.crops, len(data))))
    lr, hr = paddle.to_tensor(lr), paddle.to_tensor(hr)
    if args.checkpoint is None:
        source = read_manifest(args.model).source
        checkpoint = args.model / "source" / source["checkpoint"]
        config, overrides = ROOT / "training/configs" / source["config"], source.get("overrides", "").split()
    else:
        checkpoint, config, overrides = args.checkpoint, ROOT / "training/configs/default_tsrn.yml", []
    spec = architecture(load_config(config, overrides))
    net = load_checkpoint(build_network(spec.backbone, **spec.kwargs), checkpoint)
    net.eval()
    with paddle.no_grad():
        bases = {"SR": net(lr), "bicubic": net.base(lr)}
    rows, results = [], {}
    jobs = [(t, eot) for t in args.terms for eot in (False, True) if not (eot and t == "pixel MSE")]
    for term, eot in tqdm(jobs, desc="terms"):
        loss = RecognitionLoss(**TERMS[term], eot=eot)
        name = f"{term}{', eot' if eot else ''}"
        for base_name, base in bases.items():
            grad = 0
            for _ in range(args.views if eot else 1):
                x = paddle.to_tensor(base.numpy(), stop_gradient=False)
                (g,) = paddle.grad(loss(x, hr, labels), x)
                grad = grad + g.numpy()
            r = alignment(grad, base.numpy(), hr.numpy())
            results[f"{name} @ {base_name}"] = r
            rows.append([name, base_name, f"{r['cos_mean']:+.4f}", f"{r['cos_median']:+.4f}", f"{r['positive']:.2f}",
                         f"{r['low_freq_energy']:.2f}"])
    md = table(["term", "image", "cos(-grad, HR - image) mean", "median", "share > 0", "low-frequency energy"], rows)
    made = f"`{checkpoint.parent.parent.name}/{checkpoint.parent.name}/{checkpoint.name}`"
    made += f" with `{' '.join(overrides)}`" if overrides else ""
    md += f"\n\n{len(labels)} crops of `{args.data.name}`; SR of {made}; eot: {args.views} random views per gradient."
    print(md)
    write_result("loss_alignment", md, {"crops": len(labels), "views": args.views, "checkpoint": str(checkpoint),
                                        "overrides": overrides, "results": results})


if __name__ == "__main__":
    main()
