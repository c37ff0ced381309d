"""Where a training step's time goes, and what the fixes bought: seconds per step of the default recipe on CPU.

Each row runs in its own process with ``OMP_NUM_THREADS`` set (Paddle reads it at start), on the same
batch of 8 crops from ``--data``; medians over ``--repeat`` steps after one warm-up step. Rows:

- TSRN alone (pixel MSE): forward, backward + Adam step; with Paddle's default CPU kernels, with oneDNN, and with the
  tail convolution as a plain ``nn.Conv2D`` ("plain_tail": before ``FoldedConv2D``);
- the shipped recipe's step (pixel MSE + the feature teacher through PP-OCRv6 small, ``default_tsrn.yml``) as first
  written (plain tail conv, the recognizer's ONNX graph run node by node: "before") and as it runs now ("after": the
  folded tail conv, ``OnnxGraph``'s fused plan);
- the recognition arm's loss (pixel + KL teacher + CTC through PP-OCRv6 small, weights 0.01 / 0.003) as first written
  (also with Paddle's ``F.log_softmax`` and CTC over all 18,710 classes: "before"), and as it runs now (``x -
  logsumexp(x)``, CTC on the batch's classes plus one merged class, exact; "after");
- the pieces: the recognizer's forward, its forward + backward (also unfused), the two log-softmax forms on its output.

    .venv/bin/python bench/train_step.py [--data train_data/synth/train] [--repeat 3] [--threads 1 2]

Run it alone (no training in the background): the numbers are wall-clock. Writes
bench/results/train_step-<device>.md|json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import median, table, write_result  # noqa: E402

ROWS = ("tsrn_mse_plain_tail", "tsrn_mse", "tsrn_mse_onednn", "recipe_before", "recipe_after", "recognition_before",
        "recognition_after", "recognizer_forward", "recognizer_forward_backward_unfused", "recognizer_forward_backward",
        "log_softmax_paddle", "log_softmax_logsumexp")
BEFORE_AFTER = (("TSRN step (pixel MSE)", "tsrn_mse_plain_tail", "tsrn_mse"), ("Recipe step", "recipe_before", "recipe_after"),
                ("Recognition-arm step", "recognition_before", "recognition_after"))


def _as_first_written(row: str) -> None:
    """Undo, in this child process, the speed-ups a "before" row measures without."""
    from paddle import nn

    from training import losses
    from training.networks import blocks, onnx_graph

    if row in ("tsrn_mse_plain_tail", "recipe_before", "recognition_before"):
        blocks.FoldedConv2D.forward = nn.Conv2D.forward
    if row in ("recipe_before", "recognition_before", "recognizer_forward_backward_unfused"):
        onnx_graph._fuse = lambda plan, const, keep: plan
    if row == "recognition_before":  # Paddle's log_softmax, CTC over every class
        import paddle.nn.functional as F

        losses.log_softmax = lambda x: F.log_softmax(x, axis=-1)
        losses.RecognitionLoss._ctc = staticmethod(_full_ctc)


def measure(row: str, data: Path, repeat: int, batch: int) -> dict[str, float]:
    """Run in a child process: time ``row`` and return {"seconds": median, ...}."""
    import time

    import paddle
    import paddle.nn.functional as F

    from training import losses
    from training.config import architecture, load_config
    from training.data.lmdb_dataset import LMDBDataSetSR
    from training.networks import build_network

    paddle.set_device("cpu")
    _as_first_written(row)
    if row.endswith("_onednn"):  # Paddle's oneDNN kernels (off by default in dygraph on CPU)
        paddle.set_flags({"FLAGS_use_mkldnn": True})
    lr, hr, labels = next(LMDBDataSetSR(data).batches(batch))
    lr, hr = paddle.to_tensor(lr), paddle.to_tensor(hr)
    cfg = load_config(ROOT / "training/configs/default_tsrn.yml")
    arch = architecture(cfg)
    recipe = {k: v for k, v in cfg["Loss"].items() if k != "name"}  # the shipped default: pixel + feature teacher
    # the ablation's recognition arm (Makefile RECOGNITION_ON): KL teacher + CTC
    arm = {**recipe, "teacher": "kl", "teacher_weight": 0.01, "ctc_weight": 0.003}

    if row.startswith(("recognition_", "recipe_", "tsrn_mse")):
        paddle.seed(0)
        net = build_network(arch.backbone, stn=arch.stn, **arch.kwargs)
        net.train()
        opt = paddle.optimizer.Adam(1e-5, parameters=net.parameters(), beta1=0.5)
        if row.startswith("tsrn_mse"):
            loss_fn = losses.MSELoss()
        else:
            loss_fn = losses.RecognitionLoss(**(recipe if row.startswith("recipe_") else arm))

        def step() -> None:
            loss = loss_fn(net(lr), hr, labels)
            loss.backward()
            opt.step()
            opt.clear_grad()
    else:
        rec = losses.RecognitionLoss(teacher_weight=1.0).recognizer[0]
        logits = rec(hr).detach()
        image = hr.clone()
        image.stop_gradient = False

        def step() -> None:
            if row == "recognizer_forward":
                with paddle.no_grad():
                    rec(hr)
            elif row.startswith("recognizer_forward_backward"):
                rec(image).mean().backward()
            elif row == "log_softmax_paddle":
                F.log_softmax(logits, axis=-1)
            else:
                losses.log_softmax(logits)

    step()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return {"seconds": median(times), "runs": times}


def _full_ctc(rec, log_probs, labels):
    import paddle
    import paddle.nn.functional as F

    targets, lengths = rec.encode(labels)
    steps = paddle.full([len(labels)], log_probs.shape[1], dtype="int64")
    return F.ctc_loss(log_probs.transpose([1, 0, 2]), paddle.to_tensor(targets), steps, paddle.to_tensor(lengths), blank=0, reduction="mean")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "train_data" / "synth" / "train")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print("RESULT " + json.dumps(measure(args.child, args.data, args.repeat, args.batch)))
        return
    results: dict[str, dict[str, float]] = {}
    for row in args.rows:
        for threads in args.threads:
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            cmd = [sys.executable, __file__, "--child", row, "--data", str(args.data), "--repeat", str(args.repeat), "--batch", str(args.batch)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            results[f"{row}@{threads}"] = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
            print(row, threads, results[f"{row}@{threads}"]["seconds"], flush=True)
    rows = []
    for row in args.rows:
        cells = [f"{results[f'{row}@{t}']['seconds']:.3f}" for t in args.threads]
        rows.append([row, *cells])
    md = table([f"what (batch {args.batch})", *(f"s, {t} thread(s)" for t in args.threads)], rows)
    for what, first, now in BEFORE_AFTER:
        before, after = results.get(f"{first}@{args.threads[0]}"), results.get(f"{now}@{args.threads[0]}")
        if before and after:
            md += (f"\n\n{what}, {args.threads[0]} thread(s): {before['seconds']:.2f} s before, {after['seconds']:.2f} s after:"
                   f" {before['seconds'] / after['seconds']:.1f}x faster.")
    print(md)
    print(write_result("train_step", md, {"batch": args.batch, "threads": args.threads, "results": results}))


if __name__ == "__main__":
    main()
