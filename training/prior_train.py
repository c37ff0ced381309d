"""``textsr train-prior``: fine-tune a text-prior network's generator alone, on LR crops, before the SR learns to use it.

TPGSR's text-prior generator reads the LR crop; a generator that reads LR crops better gives the SR network a better
prior. Inside ``textsr train`` the generator learns at the pace of an SR step (the whole network forward and backward,
~9 s per batch of 8 on one core); here only the generator runs (the CTC of the label under the prior's classes,
``Loss.prior_weight``'s term): 0.41 s a crop against 1.1 s on the project's 2-core machine. The network's other
weights are loaded and written back untouched.

Reads the SR training config with ``Architecture.Transform.text_prior`` and ``prior_trainable`` true, starts from
``Global.pretrained_model`` (or as built: the generator is then the service recognizer's file), and trains
``Global.prior_steps`` steps (default 2000) of ``Train.loader.batch_size_per_card`` crops with Adam (beta1 0.9, not
the SR recipe's 0.5) at ``Global.prior_learning_rate`` (default 2e-5: at 1e-4 with beta1 0.5 the reading of `val/`
fell 3 points in 200 steps; session 14's notes; ``Optimizer.clip_norm`` clips). Every ``Global.prior_eval_step`` steps
(default 250) it reads the Eval LR crops (``Global.eval_max_images`` per split) with the prior alone, as the SR
evaluation's ``prior_accuracy`` does. Writes to ``Global.save_model_dir``: ``prior_latest.pdparams`` and
``prior_best.pdparams`` (the whole network in PaddleOCR's layout, for ``Global.pretrained_model``; best: the highest
Eval reading, step 0 included, so it is never worse than the start on Eval), ``prior_log.jsonl``,
``prior_metrics.json`` and ``prior_curves.png``. With ``Global.ema_decay`` a moving average of the generator's weights
(as ``textsr train`` keeps of the network's) is what is evaluated and written.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from training.config import ConfigError, load_config


def _positive(g: dict[str, Any], key: str, default: float, kind: type) -> Any:
    value = g.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or (kind is int and value != int(value)):
        raise ConfigError(f"Global.{key} must be a {'whole ' if kind is int else ''}number > 0, got {value!r}")
    return kind(value)


class PriorTrainer:
    """Trains ``prior.generator`` of one text-prior network on the config's Train LR crops."""

    def __init__(self, cfg: dict[str, Any], log: Callable[[str], None] = print) -> None:
        import paddle

        from training.config import architecture
        from training.data.lmdb_dataset import LMDBDataSetSR
        from training.networks import PaddleOCRLayout, build_network, load_checkpoint
        from training.train import TrainSettings

        self.settings = s = TrainSettings.from_config(cfg)
        self.cfg, self.log = cfg, log
        g = cfg.get("Global") or {}
        self.steps = _positive(g, "prior_steps", 2000, int)
        self.eval_every = _positive(g, "prior_eval_step", 250, int)
        learning_rate = _positive(g, "prior_learning_rate", 2e-5, float)
        arch = architecture(cfg)
        if not (arch.kwargs.get("text_prior") and arch.kwargs.get("prior_trainable")):
            raise ConfigError(
                "textsr train-prior trains a text prior's generator: it needs Architecture.Transform.text_prior: true "
                "and prior_trainable: true"
            )
        paddle.seed(s.seed)
        self.model = build_network(arch.backbone, stn=arch.stn, **arch.kwargs)
        self.layout = PaddleOCRLayout(self.model)
        if s.pretrained:
            # SR weights without a prior (or with a frozen one) leave the prior's layers as built
            load_checkpoint(self.layout, s.pretrained, drop_training_only=True, optional=self.model.added_prefixes)
        self.model.eval()  # the SR layers only carry weights through (their BatchNorm statistics too)
        self.generator = self.model.prior.generator
        clip = paddle.nn.ClipGradByGlobalNorm(s.clip_norm) if s.clip_norm else None
        self.optimizer = paddle.optimizer.Adam(
            learning_rate=learning_rate, beta1=0.9, beta2=0.999, parameters=self.generator.parameters(), grad_clip=clip
        )
        self.data = LMDBDataSetSR(s.train_dir)
        self.step = 0
        # Global.ema_decay: the average of the generator's weights is evaluated and written (the trained ones go on)
        self.average = {k: p.detach().clone() for k, p in self.generator.named_parameters()} if s.ema_decay else None

    def train_step(self, lr: np.ndarray, labels: list[str]) -> float:
        """One Adam step of the generator on the CTC of ``labels`` under its prior of ``lr``."""
        import paddle

        from training.losses import prior_ctc
        from training.train import ema_factor

        self.generator.train()
        loss = prior_ctc(self.model.prior.probabilities(paddle.to_tensor(lr)), labels)
        loss.backward()
        self.optimizer.step()
        self.optimizer.clear_grad()
        self.step += 1
        if self.average is not None:
            d = ema_factor(self.settings.ema_decay, self.step)
            with paddle.no_grad():
                for k, p in self.generator.named_parameters():
                    self.average[k].set_value(d * self.average[k] + (1 - d) * p)
        return float(loss)

    @contextlib.contextmanager
    def averaged(self):
        """The generator holds the average of its weights inside the block (with ``Global.ema_decay``), the trained ones
        again after it."""
        if self.average is None:
            yield
            return
        params = dict(self.generator.named_parameters())
        trained = {k: p.detach().clone() for k, p in params.items()}
        for k, p in params.items():
            p.set_value(self.average[k])
        try:
            yield
        finally:
            for k, p in params.items():
                p.set_value(trained[k])

    def evaluate(self) -> dict[str, Any]:
        """The prior's reading of the Eval LR crops: ``{"splits": {name: accuracy}, "average": mean of splits}``."""
        import paddle

        from training.data.lmdb_dataset import LMDBDataSetSR, find_lmdbs
        from training.evaluate import match_label, split_name

        s = self.settings
        self.generator.eval()
        splits = {}
        for folder in find_lmdbs(s.eval_dir):
            hits: list[bool] = []
            for lr, _, labels in LMDBDataSetSR(folder).batches(32):
                with paddle.no_grad():
                    texts = self.model.prior.read(paddle.to_tensor(lr))
                hits += [match_label(t, label) for (t, _), label in zip(texts, labels)]
                if s.eval_max_images and len(hits) >= s.eval_max_images:
                    hits = hits[: s.eval_max_images]
                    break
            splits[split_name(folder, s.eval_dir)] = float(np.mean(hits))
        return {"splits": splits, "average": float(np.mean(list(splits.values())))}

    def fit(self) -> dict[str, Any]:
        from tqdm import tqdm

        from training.networks import save_checkpoint

        s = self.settings
        if s.eval_dir is None:
            raise ConfigError("textsr train-prior chooses its best generator on Eval data: set Eval.dataset.data_dir")
        s.save_dir.mkdir(parents=True, exist_ok=True)
        log_path = s.save_dir / "prior_log.jsonl"
        log_path.unlink(missing_ok=True)
        t0, epoch, recent, best, rows = time.perf_counter(), 0, [], (-1.0, 0), []

        def record(row: dict[str, Any]) -> None:
            rows.append({**row, "time_s": time.perf_counter() - t0})
            with log_path.open("a") as fh:
                fh.write(json.dumps(rows[-1]) + "\n")

        def checkpoint() -> None:
            nonlocal best
            with self.averaged():
                result = self.evaluate()
                save_checkpoint(self.layout, s.save_dir / "prior_latest.pdparams")
                if result["average"] > best[0]:
                    best = (result["average"], self.step)
                    save_checkpoint(self.layout, s.save_dir / "prior_best.pdparams")
            record({"step": self.step, "prior_accuracy": result})
            self.log(f"step {self.step}: the prior reads {result['average']:.4f} of the Eval LR crops (best {best[0]:.4f} at {best[1]})")

        checkpoint()
        with tqdm(total=self.steps, desc="prior", unit="step") as bar:
            while self.step < self.steps:
                for lr, _, labels in self.data.batches(s.batch_size, s.shuffle, s.seed, s.drop_last, epoch):
                    recent.append(self.train_step(lr, labels))
                    bar.update(1)
                    if self.step % s.print_every == 0:
                        record({"step": self.step, "loss": float(np.mean(recent))})
                        bar.set_postfix(ctc=f"{np.mean(recent):.3f}")
                        recent.clear()
                    if self.step % self.eval_every == 0:
                        checkpoint()
                    if self.step >= self.steps:
                        break
                epoch += 1
        if self.step % self.eval_every:
            checkpoint()
        evals = [(r["step"], r["prior_accuracy"]["average"]) for r in rows if "prior_accuracy" in r]
        result = {
            "steps": self.step, "start": evals[0][1], "last": evals[-1][1], "best": best[0], "best_step": best[1],
            "evaluations": dict(evals), "wall_s": round(time.perf_counter() - t0, 1),
        }
        (s.save_dir / "prior_metrics.json").write_text(json.dumps(result, indent=2))
        _plot(rows, s.save_dir / "prior_curves.png")
        return result


def _plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """The generator's training CTC and its Eval reading, by step."""
    from training.plots import save_figure, subplots

    fig, (ax_loss, ax_acc) = subplots(1, 2, figsize=(10, 4))
    losses = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    evals = [(r["step"], r["prior_accuracy"]["average"]) for r in rows if "prior_accuracy" in r]
    if losses:
        ax_loss.plot(*zip(*losses))
    ax_loss.set(title="prior CTC (training batches)", xlabel="step", ylabel="nats per character")
    ax_acc.plot(*zip(*evals), "-o")
    ax_acc.set(title="the prior's reading of the Eval LR crops", xlabel="step", ylabel="accuracy")
    return save_figure(fig, path)


def train_prior(config: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Run ``textsr train-prior``."""
    return PriorTrainer(load_config(config, overrides)).fit()
