"""PNG figures of a training run: loss and evaluation curves."""

from __future__ import annotations

import json
from pathlib import Path


def plot_curves(log_path: str | Path, out_path: str | Path) -> Path:
    """Plot the loss and the PSNR/SSIM of SR vs bicubic from a ``train_log.jsonl``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    losses = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    evals = [(r["step"], r["eval"]["average"]) for r in rows if r.get("eval")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    if losses:
        axes[0].plot(*zip(*losses))
    axes[0].set(title="training loss", xlabel="step", yscale="log")
    for ax, key, unit in ((axes[1], "psnr_paddleocr", "PSNR (dB)"), (axes[2], "ssim", "SSIM")):
        if evals:
            steps = [s for s, _ in evals]
            for src, style in (("sr", "-o"), ("bicubic", "--")):
                ax.plot(steps, [e[src][key] for _, e in evals], style, label=src)
            ax.legend()
        ax.set(title=f"eval {unit}", xlabel="step")
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return Path(out_path)
