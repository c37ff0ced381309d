"""``textsr train -c CONFIG [-o Section.key=value ...]``: PaddleOCR-config training of TBSRN / TSRN.

Writes PaddleOCR-format checkpoints (``latest`` and ``best_accuracy``: ``.pdparams`` with the
``transform.`` prefix, ``.pdopt``, and ``.states`` - ours is JSON, never a pickle), a JSON-lines
log, and ``curves.png``. Resuming from ``Global.checkpoints`` continues exactly: the data order is
a function of (seed, epoch) and the random state of every step a function of (seed, step).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError
from training.config import architecture, flag, load_config, recognizer_width


@dataclass(frozen=True)
class TrainSettings:
    """The parts of a PaddleOCR config the loop reads, checked once."""

    epochs: int
    max_steps: int
    batch_size: int
    learning_rate: float
    lr_schedule: dict[str, Any]
    optimizer: str
    beta1: float
    beta2: float
    momentum: float
    clip_norm: float | None
    eval_every: int
    print_every: int
    save_dir: Path
    train_dir: Path
    eval_dir: Path | None
    resume: Path | None
    pretrained: Path | None
    seed: int
    eval_max_images: int | None
    shuffle: bool
    drop_last: bool
    loss: dict[str, Any]
    eval_recognition: bool
    best_metric: str
    best_needs_fidelity: bool
    ema_decay: float
    lr_mult: dict[str, float]
    prior_forcing: float
    """The share of each batch's crops whose network input is the label written as a prior
    (:func:`training.networks.text_prior.aligned_prior`) instead of the generator's reading; 0 is off."""

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> TrainSettings:
        g, opt = cfg.get("Global") or {}, cfg.get("Optimizer") or {}
        if opt.get("name", "Adam") not in OPTIMIZERS:
            raise ConfigError(f"Optimizer.name {opt.get('name')!r} is not supported; choose one of {sorted(OPTIMIZERS)}")
        lr = opt.get("lr") or {}
        train = cfg.get("Train") or {}
        loader = train.get("loader") or {}
        eval_dir = ((cfg.get("Eval") or {}).get("dataset") or {}).get("data_dir")
        steps = g.get("eval_batch_step", [0, 1000])
        eval_recognition = flag(g, "eval_recognition", False)
        return cls(
            epochs=int(g.get("epoch_num", 1)),
            max_steps=int(g.get("max_steps", 0) or 0),
            batch_size=int(loader.get("batch_size_per_card", 16)),
            learning_rate=float(lr.get("learning_rate", 1e-4)),
            lr_schedule=dict(lr),
            optimizer=str(opt.get("name", "Adam")),
            beta1=float(opt.get("beta1", 0.9)),
            beta2=float(opt.get("beta2", 0.999)),
            momentum=float(opt.get("momentum", 0.9)),
            clip_norm=float(opt["clip_norm"]) if opt.get("clip_norm") else None,
            eval_every=int(steps[1] if isinstance(steps, list) else steps),
            print_every=int(g.get("print_batch_step", 10)),
            save_dir=Path(g.get("save_model_dir", "./output/sr")),
            train_dir=Path(((train.get("dataset") or {}).get("data_dir")) or "./train_data/TextZoom/train"),
            eval_dir=Path(eval_dir) if eval_dir else None,
            resume=Path(g["checkpoints"]) if g.get("checkpoints") else None,
            pretrained=Path(g["pretrained_model"]) if g.get("pretrained_model") else None,
            seed=int(g.get("seed", 0)),
            eval_max_images=int(g["eval_max_images"]) if g.get("eval_max_images") else None,
            shuffle=flag(loader, "shuffle", True, "Train.loader"),
            drop_last=flag(loader, "drop_last", True, "Train.loader"),
            loss=dict(cfg.get("Loss") or {"name": "MSELoss"}),
            eval_recognition=eval_recognition,
            best_metric=_best_metric(g.get("best_metric", "psnr"), eval_recognition),
            best_needs_fidelity=flag(g, "best_needs_fidelity", False),
            ema_decay=_share(g, "ema_decay", upper_included=False),  # the decay of a moving average of the weights
            lr_mult=_lr_mult(opt.get("lr_mult")),
            prior_forcing=_share(g, "prior_forcing", upper_included=True),
        )


OPTIMIZERS = ("Adam", "Momentum")
"""``Optimizer.name`` values (PaddleOCR's names; ``Momentum`` reads ``Optimizer.momentum``, default 0.9)."""

BEST_METRICS = {
    "psnr": ("sr", "psnr_paddleocr"),
    "ssim": ("sr", "ssim"),
    "accuracy": ("accuracy", "sr"),
}
"""``Global.best_metric`` -> where it sits in an evaluation's ``average``; ``best_accuracy`` maximises it."""


def _best_metric(name: Any, eval_recognition: bool) -> str:
    if name not in BEST_METRICS:
        raise ConfigError(f"Global.best_metric must be one of {sorted(BEST_METRICS)}, got {name!r}")
    if name == "accuracy" and not eval_recognition:
        raise ConfigError("Global.best_metric=accuracy needs Global.eval_recognition=true")
    return name


def _share(g: dict[str, Any], key: str, upper_included: bool) -> float:
    """``Global.<key>``: 0 (or absent) is off; otherwise a number in [0, 1), or [0, 1] with ``upper_included``."""
    value = g.get(key)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value <= 1 if upper_included else 0 <= value < 1):
        raise ConfigError(f"Global.{key} must be a number in [0, 1{']' if upper_included else ')'} (0: off), got {value!r}")
    return float(value)


def _lr_mult(value: Any) -> dict[str, float]:
    """``Optimizer.lr_mult``: ``{layer name: multiplier}`` of the learning rate for that layer's parameters
    (e.g. ``{prior: 10, prior_proj: 10}``: new layers learn faster than the trained ones they join). A dotted name is a
    sublayer and wins over its parents (``{prior: 10, prior.generator: 1}``)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and not isinstance(v, bool) and isinstance(v, (int, float)) and v > 0 for k, v in value.items()
    ):
        raise ConfigError(f"Optimizer.lr_mult must map layer names to numbers > 0, got {value!r}")
    return {k: float(v) for k, v in value.items()}


def ema_factor(decay: float, step: int) -> float:
    """The weight of the old average after ``step`` steps: ``decay`` with timm's warm-up (the first averages forget the
    starting weights faster)."""
    return min(decay, (1 + step) / (10 + step))


def _ckpt_prefix(path: Path) -> Path:
    """Accept ``x``, ``x.pdparams`` or ``x.states`` for a checkpoint prefix."""
    return path.with_suffix("") if path.suffix in (".pdparams", ".pdopt", ".states") else path


class Trainer:
    """One training run: model, optimiser, loss, data, and the bookkeeping around them."""

    def __init__(self, cfg: dict[str, Any], log: Callable[[str], None] = print) -> None:
        import paddle

        from training.data.lmdb_dataset import LMDBDataSetSR
        from training.losses import build_loss
        from training.networks import PaddleOCRLayout, build_network, load_checkpoint

        self.cfg, self.log = cfg, log
        self.settings = s = TrainSettings.from_config(cfg)
        self.arch = architecture(cfg)
        g = cfg.get("Global") or {}
        paddle.set_device("gpu" if g.get("use_gpu") and paddle.device.is_compiled_with_cuda() else "cpu")
        self.world, self.rank = paddle.distributed.get_world_size(), paddle.distributed.get_rank()
        paddle.seed(s.seed)
        self.model = build_network(self.arch.backbone, stn=self.arch.stn, **self.arch.kwargs)
        self.forward_model = self.model
        if self.world > 1:  # launched by `python -m paddle.distributed.launch --gpus ...`
            paddle.distributed.init_parallel_env()
            self.forward_model = paddle.DataParallel(self.model)
        self.loss_fn = build_loss(s.loss, self.model, recognizer_width(cfg))
        carried = self.loss_fn.carried_layers()
        # a loss that looks at the served operating point (bicubic + s x the network's part) declares needs_base
        self.loss_needs_base = bool(getattr(self.loss_fn, "needs_base", False))
        if self.loss_needs_base and not (self.arch.kwargs.get("bicubic_residual") and not self.arch.stn):
            raise ConfigError(
                "Loss.operating_scale looks at bicubic + a part of the network's output: it needs "
                "Architecture.Transform.bicubic_residual: true and STN: false"
            )
        # a loss that trains a text prior's generator (Loss.prior_weight) declares needs_prior: it reads the prior the
        # network consumed
        self.loss_needs_prior = bool(getattr(self.loss_fn, "needs_prior", False))
        if self.loss_needs_prior and not getattr(self.model, "prior_trainable", False):
            raise ConfigError(
                "Loss.prior_weight trains the text prior's generator: it needs Architecture.Transform.text_prior: true "
                "and prior_trainable: true"
            )
        if s.prior_forcing and not getattr(self.model, "text_prior", False):
            raise ConfigError("Global.prior_forcing feeds the network the label as its text prior: it needs "
                              "Architecture.Transform.text_prior: true")
        # what checkpoints hold: the network and the loss's frozen layers, in PaddleOCR's layout
        self.checkpointed = PaddleOCRLayout(self.model, carried)
        self.data = LMDBDataSetSR(s.train_dir)
        layers = dict(self.model.named_sublayers())
        # Paddle's optimizers scale a parameter's step by its own learning_rate; parents first, so sublayers win
        for name, mult in sorted(s.lr_mult.items(), key=lambda item: item[0].count(".")):
            if name not in layers:
                top = sorted(dict(self.model.named_children()))
                raise ConfigError(f"Optimizer.lr_mult: the network has no layer {name!r}; its top-level layers are {top}")
            for p in layers[name].parameters():
                p.optimize_attr["learning_rate"] = mult
        clip = paddle.nn.ClipGradByGlobalNorm(s.clip_norm) if s.clip_norm else None
        if s.optimizer == "Momentum":  # steps in proportion to the gradient (Adam moves every weight by ~lr)
            self.optimizer = paddle.optimizer.Momentum(
                learning_rate=self._learning_rate(), momentum=s.momentum, parameters=self.model.parameters(), grad_clip=clip
            )
        else:
            self.optimizer = paddle.optimizer.Adam(
                learning_rate=self._learning_rate(), beta1=s.beta1, beta2=s.beta2, parameters=self.model.parameters(), grad_clip=clip
            )
        self.step, self.epoch, self.best, self.best_faithful = 0, 0, -math.inf, False
        self._reader = None
        self._terms: dict[str, list[float]] = {}
        rec_path = g.get("pretrained_recognizer")
        if rec_path and len(carried) != 1:
            raise ConfigError(f"Global.pretrained_recognizer is set, but Loss {s.loss.get('name')} carries no recognizer to load it into")
        # with a recognizer file of its own, SR weights may come without the recognizer (an MSE run's)
        self.optional = tuple(f"{name}." for name in carried) if rec_path else ()
        if s.pretrained:
            # a PaddleOCR checkpoint's recognizer is dropped when this run's loss carries none; layers the network adds to
            # PaddleOCR's layout (a text prior's) may be absent: they start as built
            optional = self.optional + self.model.added_prefixes
            load_checkpoint(self.checkpointed, s.pretrained, drop_training_only=True, optional=optional)
        if rec_path:
            (recognizer,) = carried.values()
            load_checkpoint(recognizer, rec_path)
        # Global.ema_decay: a moving average of the weights (timm's ModelEma), evaluated and kept instead of them
        self.ema = self.ema_layout = None
        if s.ema_decay:
            self.ema = build_network(self.arch.backbone, stn=self.arch.stn, **self.arch.kwargs)
            self.ema.set_state_dict(self.model.state_dict())
            self.ema.eval()
            for p in self.ema.parameters():
                p.stop_gradient = True
            self.ema_layout = PaddleOCRLayout(self.ema, carried)
        if s.resume:
            self.load(s.resume)
        s.save_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = s.save_dir / "train_log.jsonl"

    def _learning_rate(self) -> Any:
        """A float, or PaddleOCR's ``lr: {name: Piecewise, values: [...], decay_steps|decay_epochs: [...]}``."""
        import paddle

        s, lr = self.settings, self.settings.lr_schedule
        name = lr.get("name")
        if name is None:
            self.scheduler = None
            return s.learning_rate
        if name != "Piecewise":
            raise ConfigError(f"Optimizer.lr.name {name!r} is not supported; use Piecewise or a plain learning_rate")
        per_epoch = max(1, len(self.data) // s.batch_size)
        bounds = lr.get("decay_steps") or [int(e) * per_epoch for e in lr.get("decay_epochs", [])]
        values = [float(v) for v in lr.get("values", [])]
        if len(values) != len(bounds) + 1:
            raise ConfigError(f"Optimizer.lr: {len(values)} values for {len(bounds)} boundaries (need one more value)")
        self.scheduler = paddle.optimizer.lr.PiecewiseDecay([int(b) for b in bounds], values)
        return self.scheduler

    # -- checkpoints -------------------------------------------------------------------------
    def save(self, name: str) -> Path:
        """``<name>.pdparams`` (the weights evaluated: the moving average with ``Global.ema_decay``, else the trained
        ones), ``.pdopt``, ``.states``; with the average also ``<name>.train.pdparams``, the trained weights to resume."""
        import paddle

        from training.networks import save_checkpoint

        prefix = self.settings.save_dir / name
        trained = prefix.with_suffix(".train.pdparams")
        if self.ema_layout is not None:
            save_checkpoint(self.ema_layout, prefix.with_suffix(".pdparams"))
            save_checkpoint(self.checkpointed, trained)
        else:
            save_checkpoint(self.checkpointed, prefix.with_suffix(".pdparams"))
            trained.unlink(missing_ok=True)  # an earlier averaged run's: load() would resume it instead of these weights
        paddle.save(self._portable_optimizer_state(), str(prefix.with_suffix(".pdopt")))
        states = {"epoch": self.epoch, "global_step": self.step, "best_metric": self.settings.best_metric, "best": self.best,
                  "best_faithful": self.best_faithful, "config": self.cfg}
        prefix.with_suffix(".states").write_text(json.dumps(states, indent=2, default=str))
        return prefix

    def load(self, path: Path) -> None:
        import paddle

        from training.networks import load_checkpoint

        prefix = _ckpt_prefix(Path(path))
        trained = prefix.with_suffix(".train.pdparams")  # an averaged run's trained weights (see save)
        weights = trained if trained.is_file() else prefix.with_suffix(".pdparams")
        load_checkpoint(self.checkpointed, weights, drop_training_only=False, optional=self.optional)
        if self.ema_layout is not None:  # the average goes on where it was; a run without one starts it here
            load_checkpoint(self.ema_layout, prefix.with_suffix(".pdparams"), drop_training_only=False, optional=self.optional)
        self._load_optimizer_state(paddle.load(str(prefix.with_suffix(".pdopt"))))
        states = json.loads(prefix.with_suffix(".states").read_text())
        self.epoch, self.step = int(states["epoch"]), int(states["global_step"])
        self.best = float(states["best"] if "best" in states else states["best_psnr"])  # older runs kept PSNR only
        self.best_faithful = bool(states.get("best_faithful", True))
        if self.scheduler is not None:
            self.scheduler.step(self.step)
        self.log(f"resumed from {prefix} at epoch {self.epoch}, step {self.step}")

    def _portable_optimizer_state(self) -> dict[str, Any]:
        """Optimizer state keyed by structured parameter names (``block1.0.weight_moment1_0``).

        Paddle keys it by generated names (``conv2d_92.w_0``) that differ between processes,
        which would make a resumed run refuse its own checkpoint.
        """
        names = {p.name: k for k, p in self.model.named_parameters()}
        out = {}
        for key, value in self.optimizer.state_dict().items():
            match = next((n for n in names if isinstance(key, str) and key.startswith(n + "_")), None)
            out[names[match] + key[len(match) :] if match else key] = value
        return out

    def _load_optimizer_state(self, state: dict[str, Any]) -> None:
        names = {k: p.name for k, p in self.model.named_parameters()}
        out = {}
        for key, value in state.items():
            match = next((n for n in sorted(names, key=len, reverse=True) if key.startswith(n + "_")), None)
            out[names[match] + key[len(match) :] if match else key] = value
        self.optimizer.set_state_dict(out)

    # -- one step ----------------------------------------------------------------------------
    def train_step(self, lr: np.ndarray, hr: np.ndarray, labels: list[str]) -> float:
        import paddle

        paddle.seed(self.settings.seed * 1_000_003 + self.step)
        self.model.train()
        lr_t = paddle.to_tensor(lr)
        extra = {"base": self.model.base(lr_t)} if self.loss_needs_base else {}
        if self.loss_needs_prior or self.settings.prior_forcing:
            prior = self.model.prior.probabilities(lr_t)
            if self.loss_needs_prior:
                extra["prior"] = prior  # the generator learns from its own reading, forced or not
            sr = self.forward_model(lr_t, self.forced_prior(prior, labels))
        else:
            sr = self.forward_model(lr_t)
        loss = self.loss_fn(sr, paddle.to_tensor(hr), labels, **extra)
        for key, value in getattr(self.loss_fn, "terms", {}).items():
            self._terms.setdefault(key, []).append(value)
        loss.backward()
        self.optimizer.step()
        self.optimizer.clear_grad()
        self.step += 1
        if self.ema is not None:
            self._update_ema()
        if self.scheduler is not None:
            self.scheduler.step(self.step)
        return float(loss)

    def forced_prior(self, prior: Any, labels: list[str]) -> Any:
        """``Global.prior_forcing``: that share of the crops (drawn per step from the run's seed) gets its label written
        as a prior, so the network learns to draw what a prior reads; the others keep ``prior``."""
        import paddle

        if not self.settings.prior_forcing:
            return prior
        from training.networks.text_prior import aligned_prior

        rng = np.random.default_rng([self.settings.seed, self.step])
        chosen = rng.random(len(labels)) < self.settings.prior_forcing
        if not chosen.any():
            return prior
        aligned = paddle.to_tensor(aligned_prior(prior.numpy(), labels))
        mask = paddle.to_tensor(chosen.astype(np.float32)).reshape([-1, 1, 1])
        return mask * aligned + (1 - mask) * prior

    def _update_ema(self) -> None:
        """``ema = d * ema + (1 - d) * weights`` for every float tensor (BatchNorm statistics too), with timm's warm-up
        ``d = min(ema_decay, (1 + step) / (10 + step))`` so the first averages forget the starting weights faster."""
        import paddle

        d = ema_factor(self.settings.ema_decay, self.step)
        live = self.model.state_dict()
        with paddle.no_grad():
            for key, avg in self.ema.state_dict().items():
                value = live[key]
                avg.set_value(d * avg + (1 - d) * value if avg.dtype in (paddle.float32, paddle.float64) else value)

    # -- evaluation --------------------------------------------------------------------------
    def evaluate(self) -> dict[str, Any]:
        """PSNR/SSIM on the Eval splits (``Global.eval_max_images`` per split, if set), and with
        ``Global.eval_recognition`` the service recognizer's accuracy on bicubic, SR and HR."""
        from training.evaluate import Memoized, default_recognizer, evaluate_sr

        if self.settings.eval_dir is None:
            return {}
        model = self.ema if self.ema is not None else self.model
        model.eval()
        if self.settings.eval_recognition and self._reader is None:
            self._reader = Memoized(default_recognizer())  # the same bicubic and HR crops at every evaluation
        return evaluate_sr(model, self.settings.eval_dir, self.settings.eval_max_images, self._reader)

    def _record(self, row: dict[str, Any]) -> None:
        if self.rank != 0:
            return
        with self.log_path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")

    # -- the loop ----------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        from tqdm import tqdm

        from training.plots import plot_curves

        s = self.settings
        per_epoch = len(self.data) // s.batch_size if s.drop_last else math.ceil(len(self.data) / s.batch_size)
        total = min(s.epochs * per_epoch, s.max_steps or 10**12)
        bar = tqdm(total=total, initial=self.step, desc="train", unit="step")
        t0, recent, last_eval = time.perf_counter(), [], {}
        while self.step < total:
            skip = self.step - self.epoch * per_epoch  # batches of this epoch already done (resume)
            batches = self.data.batches(s.batch_size, s.shuffle, s.seed, s.drop_last, epoch=self.epoch)
            for i, (lr, hr, labels) in enumerate(batches):
                if i < skip:
                    continue
                if self.world > 1:  # each rank takes its share of the batch
                    lr, hr, labels = lr[self.rank :: self.world], hr[self.rank :: self.world], labels[self.rank :: self.world]
                recent.append(self.train_step(lr, hr, labels))
                bar.update(1)
                if self.step % s.print_every == 0:
                    loss = float(np.mean(recent))
                    terms = {f"loss_{k}": float(np.mean(v)) for k, v in self._terms.items()}
                    recent.clear()
                    self._terms.clear()
                    bar.set_postfix(loss=f"{loss:.4f}")
                    self._record({"step": self.step, "epoch": self.epoch, "loss": loss, **terms, "time_s": time.perf_counter() - t0})
                if s.eval_every and self.step % s.eval_every == 0:
                    last_eval = self._eval_and_save()
                if self.step >= total:
                    break
            else:
                self.epoch += 1
                continue
            break
        bar.close()
        if not last_eval or last_eval.get("step") != self.step:
            last_eval = self._eval_and_save()
        if self.rank == 0:
            plot_curves(self.log_path, s.save_dir / "curves.png")
        return last_eval

    def _faithful(self, result: dict[str, Any]) -> bool:
        """Whether this evaluation's SR is at least bicubic on PSNR and SSIM (always, without
        ``Global.best_needs_fidelity``): a faithful checkpoint wins ``best_accuracy`` over an unfaithful one whatever
        ``best_metric`` says; an unfaithful one is kept only while no faithful one has been seen."""
        from training.evaluate import at_least_bicubic

        return not self.settings.best_needs_fidelity or at_least_bicubic(result)

    def _eval_and_save(self) -> dict[str, Any]:
        if self.rank != 0:  # only the first rank evaluates and writes checkpoints
            return {"step": self.step}
        result = self.evaluate()
        row = {"step": self.step, "epoch": self.epoch, "eval": result}
        self._record(row)
        group, key = BEST_METRICS[self.settings.best_metric]
        score = result.get("average", {}).get(group, {}).get(key, -math.inf) if result else -math.inf
        faithful = self._faithful(result)
        self.save("latest")
        if (faithful, score) > (self.best_faithful, self.best):
            self.best, self.best_faithful = score, faithful
            self.save("best_accuracy")
        if result:
            avg = result["average"]
            acc = avg.get("accuracy")
            self.log(
                f"step {self.step}: PSNR SR {avg['sr']['psnr_paddleocr']:.2f} dB vs bicubic {avg['bicubic']['psnr_paddleocr']:.2f} dB;"
                f" SSIM SR {avg['sr']['ssim']:.4f} vs bicubic {avg['bicubic']['ssim']:.4f}"
                + (f"; accuracy SR {acc['sr']:.3f} vs bicubic {acc['bicubic']:.3f}, raw crop {acc['raw']:.3f} (HR {acc['hr']:.3f})"
                   if acc else "")
                + (f"; the prior reads {avg['prior_accuracy']:.3f}" if "prior_accuracy" in avg else "")
            )
        return row


def train(config: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Run ``textsr train``; returns the last evaluation row."""
    return Trainer(load_config(config, overrides)).fit()
