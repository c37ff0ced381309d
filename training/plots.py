"""PNG figures: a training run's loss and evaluation curves, and the figure helpers every PNG writer here uses."""

from __future__ import annotations

import json
from pathlib import Path


def subplots(*args, **kwargs):
    """``matplotlib.pyplot.subplots`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def save_figure(fig, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def read_logs(log_paths: list[str | Path]) -> list[dict]:
    """The rows of one or more ``train_log.jsonl`` files, in order (a run continued in another folder)."""
    return [json.loads(line) for p in log_paths for line in Path(p).read_text().splitlines() if line.strip()]


def plot_curves(log_paths: str | Path | list[str | Path], out_path: str | Path) -> Path:
    """Plot the loss and the PSNR/SSIM of SR vs bicubic from a ``train_log.jsonl`` (or several, in order: a run
    continued in another folder)."""
    rows = read_logs(log_paths if isinstance(log_paths, list) else [log_paths])
    losses = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    evals = [(r["step"], r["eval"]["average"]) for r in rows if r.get("eval")]
    fig, axes = subplots(1, 3, figsize=(15, 4))
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
    return save_figure(fig, out_path)


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="Training curves (loss, eval PSNR/SSIM) of one run from its folders, in order.")
    ap.add_argument("train_dirs", type=Path, nargs="+", help="Global.save_model_dir of each part of the run")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    print(plot_curves([d / "train_log.jsonl" for d in args.train_dirs], args.out))


if __name__ == "__main__":
    main()
