"""The ``textsr`` command line: one subcommand per job, each importing only what it needs.

``textsr serve`` never imports paddle; ``convert`` and the training commands do.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from core.errors import TextSRError

CONVERT_HELP = """\
Convert a PaddleOCR text super-resolution model (Text Telescope / TBSRN, Text Gestalt / TSRN)
into a verified ONNX model folder: model.onnx (+ model.fp16.onnx with --fp16) and manifest.json.

Two kinds of input:
  (a) a PaddleOCR training config and checkpoint:
        textsr convert --config configs/sr/sr_telescope.yml --checkpoint output/best_accuracy.pdparams --out models/telescope
      the config is PaddleOCR's YAML, unchanged (sr_telescope.yml or sr_tsrn_transformer_strock.yml);
      the checkpoint's keys may be bare or carry PaddleOCR's 'transform.' prefix; the STN and the
      frozen recognizer are dropped, every other key must match exactly.
  (b) a Paddle inference model directory, as PaddleOCR's tools/export_model.py writes it
      (inference.json or inference.pdmodel, plus inference.pdiparams):
        textsr convert --inference-dir output/sr_telescope/infer --algorithm Telescope --out models/telescope

The ONNX graph takes 'lr' float32 [N, 3, 16, 64] in [0, 1] (RGB) and returns 'sr' [N, 3, 32, 128]
clipped to [0, 1]. It is verified against Paddle on random and rendered text crops at batch 1 and 7;
the conversion fails if max |diff| exceeds 1e-4 (fp16 graph: 5e-2).
"""


def _cmd_convert(args: argparse.Namespace) -> int:
    from convert.pipeline import convert

    convert(
        args.out,
        config=args.config,
        overrides=args.opt,
        checkpoint=args.checkpoint,
        inference_dir=args.inference_dir,
        algorithm=args.algorithm,
        name=args.name,
        opset=args.opset,
        fp16=args.fp16,
        simplify=args.simplify,
    )
    return 0


def _add_convert(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="Paddle checkpoint or inference model -> verified ONNX",
        description=CONVERT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_argument_group("input (a): PaddleOCR config + checkpoint")
    src.add_argument("--config", help="PaddleOCR YAML config (Architecture section is read)")
    src.add_argument("--checkpoint", help="PaddleOCR .pdparams checkpoint")
    src.add_argument("-o", "--opt", nargs="*", default=[],
                     help="config overrides Section.key=value, e.g. Architecture.Transform.residual_scale=0.5")
    inf = p.add_argument_group("input (b): Paddle inference model")
    inf.add_argument("--inference-dir", help="directory with inference.json|.pdmodel + inference.pdiparams")
    inf.add_argument("--algorithm", choices=["Telescope", "Gestalt"], help="algorithm of the inference model")
    p.add_argument("--out", required=True, help="output folder for model.onnx and manifest.json")
    p.add_argument("--name", help="model name recorded in the manifest (default: algorithm-backbone)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, >= 13 (default 17)")
    p.add_argument("--fp16", action="store_true", help="also write and verify model.fp16.onnx")
    p.add_argument("--simplify", action="store_true", help="simplify the graph with onnxslim before verifying")
    p.set_defaults(func=_cmd_convert)


def _cmd_gen_data(args: argparse.Namespace) -> int:
    from training.data.synth import generate

    counts = generate(args.out, train=args.train, test=args.test, seed=args.seed, val=args.val)
    print(f"wrote {counts} to {args.out}")
    return 0


def _add_gen_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gen-data",
        help="write a synthetic TextZoom (LMDB: train, val, test/easy|medium|hard|unseen)",
        description="Render words in system fonts (HR 32x128) and degrade them like a camera (LR 16x64); "
        "writes TextZoom's exact LMDB layout. Deterministic for a given --seed.",
    )
    p.add_argument("--out", required=True, help="output root (train/, val/ and test/{easy,medium,hard,unseen}/ are created)")
    p.add_argument("--train", type=int, default=17367, help="training pairs (TextZoom has 17,367)")
    p.add_argument("--test", type=int, default=500, help="pairs per test split")
    p.add_argument("--val", type=int, default=0, help="pairs in val/ (training-time evaluation, checkpoint choice)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_gen_data)


def _config_command(sub: argparse._SubParsersAction, name: str, run: Callable[[str, list[str]], Any], help: str,
                    description: str, show: bool) -> None:
    """A training command: ``-c CONFIG -o Section.key=value ...``, running ``run(config, overrides)`` (and printing
    its result as JSON when ``show``)."""
    import json

    def command(args: argparse.Namespace) -> int:
        result = run(args.config, args.opt)
        if show:
            print(json.dumps(result, indent=2, default=str))
        return 0

    p = sub.add_parser(name, help=help, description=description)
    p.add_argument("-c", "--config", required=True)
    p.add_argument("-o", "--opt", nargs="*", default=[], help="overrides Section.key=value (values parsed as YAML)")
    p.set_defaults(func=command)


def _train(config: str, overrides: list[str]) -> Any:
    from training.train import train

    return train(config, overrides)


def _train_recognizer(config: str, overrides: list[str]) -> Any:
    from training.recognizer_train import train_recognizer

    return train_recognizer(config, overrides)


def _train_prior(config: str, overrides: list[str]) -> Any:
    from training.prior_train import train_prior

    return train_prior(config, overrides)


TRAINING_COMMANDS: list[tuple[str, Callable[[str, list[str]], Any], bool, str, str]] = [
    ("train", _train, False, "train TBSRN/TSRN from a PaddleOCR config",
     "Train with a PaddleOCR SR config (sr_telescope.yml, sr_tsrn_transformer_strock.yml or ours). "
     "Writes PaddleOCR-format checkpoints (latest, best_accuracy), train_log.jsonl and curves.png to Global.save_model_dir."),
    ("train-prior", _train_prior, True, "fine-tune a text-prior network's generator alone on LR crops",
     "Train only prior.generator (the copy of the service recognizer that reads the LR crop) of a network "
     "with Architecture.Transform.text_prior and prior_trainable true, on the CTC of the label, starting from "
     "Global.pretrained_model; writes prior_best.pdparams (for textsr train's Global.pretrained_model), "
     "prior_latest.pdparams, prior_log.jsonl, prior_metrics.json and prior_curves.png to Global.save_model_dir. "
     "Global.prior_steps, prior_learning_rate and prior_eval_step set the run."),
    ("train-recognizer", _train_recognizer, True, "pretrain the losses' text-focus recognizer and write its confusion table",
     "Train the recognizer that TelescopeLoss/StrokeFocusLoss look through (PaddleOCR's Transformer layout) "
     "on the HR crops of the config's Train data; writes recognizer.pdparams and, for Telescope, confuse.json to "
     "Global.save_model_dir. Use it in SR training with -o Global.pretrained_recognizer=.../recognizer.pdparams "
     "Loss.confuse_dict_path=.../confuse.json. Global.recognizer_steps sets the length."),
]
"""The commands that take ``-c CONFIG -o ...``: name, what runs, whether its result is printed, help, description."""


def _add_training(sub: argparse._SubParsersAction) -> None:
    for name, run, show, help, description in TRAINING_COMMANDS:
        _config_command(sub, name, run, help, description, show)


def _cmd_serve(args: argparse.Namespace) -> int:
    from service.http.server import serve
    from service.settings import Settings

    overrides = {k: v for k, v in {"host": args.host, "port": args.port, "model_dir": args.model_dir}.items() if v is not None}
    return serve(Settings(**overrides))


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the HTTP service",
        description="Serve the models under TEXTSR_MODEL_DIR (default: the shipped models/) over HTTP. "
        "Every setting is a TEXTSR_* environment variable (see the README); these flags override three of them.",
    )
    p.add_argument("--host", help="address to bind (TEXTSR_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (TEXTSR_PORT, default 8000)")
    p.add_argument("--model-dir", help="folder of converted models (TEXTSR_MODEL_DIR)")
    p.set_defaults(func=_cmd_serve)


def _cmd_eval(args: argparse.Namespace) -> int:
    import json

    from training.evaluate import run_eval

    result = run_eval(args.model_dir, args.data, args.out, args.max_images, args.grid_rows, heldout=not args.no_heldout)
    print(json.dumps(result["average"], indent=2))
    print(f"wrote {args.out}/metrics.json and {args.out}/grid.png")
    return 0


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="PSNR/SSIM and recognition accuracy of a converted model on a TextZoom-layout dataset",
        description="Evaluate a converted model folder (model.onnx + manifest.json) on every LMDB split under --data: "
        "PSNR (PaddleOCR's per-batch-of-16 figure and the per-image mean), SSIM, and the recognition accuracy of the "
        "service's recognizer (PP-OCRv6 small) and of a held-out one (PP-OCRv4, never seen by a loss) on bicubic, SR and HR, "
        "with an exact McNemar test of SR vs bicubic on the same crops. Writes metrics.json and grid.png (LR | bicubic | SR | HR).",
    )
    p.add_argument("--model-dir", required=True, help="converted model folder")
    p.add_argument("--data", required=True, help="TextZoom-layout root (e.g. .../test with easy/medium/hard)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--max-images", type=int, help="images per split at most")
    p.add_argument("--no-heldout", action="store_true", help="skip the held-out recognizer (PP-OCRv4)")
    p.add_argument("--grid-rows", type=int, default=4, help="examples per split in grid.png")
    p.set_defaults(func=_cmd_eval)


def _cmd_upscale(args: argparse.Namespace) -> int:
    from pathlib import Path

    from textsr.upscale import upscale_files

    records = upscale_files(
        [Path(f) for f in args.images], Path(args.out), server=args.server,
        model_dir=Path(args.model_dir) if args.model_dir else None, mode=args.mode,
        recognize=args.recognize, grid=args.grid, api_key=args.api_key,
    )
    for r in records:
        print(f"{r['input']} -> {r['output']} ({r['width']}x{r['height']})" + (f" text={r['text']!r}" if r["text"] is not None else ""))
    return 0


def _add_upscale(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "upscale",
        help="upscale image files, in-process or through a server",
        description="Upscale text crops 2x and write <name>_sr.png into --out; in-process on ONNX Runtime "
        "(the shipped model, or --model-dir) or through a running service with --server URL.",
    )
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--server", help="service URL, e.g. http://127.0.0.1:8000 (default: run in-process)")
    p.add_argument("--api-key", help="API key for --server")
    p.add_argument("--model-dir", help="folder of converted models for in-process runs (default: shipped models/)")
    p.add_argument("--mode", choices=["auto", "resize", "tile"], default="auto",
                   help="auto (default: tile crops far wider than the model input, resize the others), resize (PaddleOCR's way) or tile")
    p.add_argument("--recognize", action="store_true", help="also recognize the text")
    p.add_argument("--grid", action="store_true", help="also write grid.png: input | bicubic | SR")
    p.set_defaults(func=_cmd_upscale)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_convert, _add_serve, _add_upscale, _add_gen_data, _add_training, _add_eval,
]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (built on call, never at import)."""
    parser = argparse.ArgumentParser(prog="textsr", description="Scene-text super-resolution: convert, serve, train.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``textsr`` console script.

    Any of textsr's own errors (:class:`core.errors.TextSRError`: a bad config, a missing file, a
    checkpoint that does not fit, a failed conversion, a server's error answer) is printed as one
    line and exits 2; ``--debug`` shows the traceback instead. Anything else is a bug and propagates.
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TextSRError as exc:
        if args.debug:
            raise
        print(f"textsr {args.command}: error: {exc}", file=sys.stderr)
        return 2
