"""Training losses: plain MSE, Text Telescope's TelescopeLoss, Text Gestalt's StrokeFocusLoss, and
RecognitionLoss (pixel + teacher + CTC terms through the service's PP-OCRv6 recognizer).

Formulas as in PaddleOCR's ``ppocr/losses/text_focus_loss.py`` and ``stroke_focus_loss.py``:
- TelescopeLoss = MSE(SR, HR) + 10 * L1(recognizer attention on HR, on SR)
  + 0.0005 * confusion-weighted cross entropy of the recognizer's prediction on SR.
  The weight table comes from a character confusion matrix stored as JSON (never a pickle).
- StrokeFocusLoss = 100 * (MSE(SR, HR) + 50 * L1(attention maps)), the recognizer reading
  stroke sequences (``training/assets/english_decomposition.txt``, our own table) instead of letters.
The recognizer is the frozen ``transformer`` / ``r34_transformer`` held by the network.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from core.errors import ConfigError, DataError, InputNotFound
from core.spec import GESTALT_ALPHABET, TELESCOPE_ALPHABET
from training.config import flag
from training.text import filter_label

ASSETS = Path(__file__).parent / "assets"
CONFUSION_CLASSES = string.digits + string.ascii_uppercase + string.ascii_lowercase
"""Row/column order of a confusion matrix file: 0-9, A-Z, a-z (as PaddleOCR's confuse.pkl)."""


def teacher_forcing(sequences: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Build decoder inputs from class sequences that end with the end symbol (index 0).

    Returns ``(text_input [B, T], targets [B, T], mask [B, T])``: position 0 of the input is 0
    (start), position ``t`` holds target ``t - 1``; ``mask`` marks real (non-padding) targets.
    """
    length = max(len(s) for s in sequences)
    text_input = np.zeros((len(sequences), length), np.int64)
    targets = np.zeros((len(sequences), length), np.int64)
    mask = np.zeros((len(sequences), length), np.float32)
    for i, seq in enumerate(sequences):
        targets[i, : len(seq)] = seq
        mask[i, : len(seq)] = 1
        text_input[i, 1 : len(seq)] = seq[:-1]
    return text_input, targets, mask


def telescope_sequences(labels: list[str]) -> list[list[int]]:
    """Labels -> class indices in the Telescope alphabet, each ending with the end symbol 0."""
    index = {c: i for i, c in enumerate(TELESCOPE_ALPHABET)}
    return [[index[c] for c in filter_label(label)] + [0] for label in labels]


def load_stroke_table(path: str | Path | None = None) -> dict[str, str]:
    """Character -> stroke code string (digits 1-9; 0 is the end symbol); ``None``: our shipped table."""
    path = path or ASSETS / "english_decomposition.txt"
    table = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or "0" in parts[1]:
            raise DataError(f"{path}:{n}: expected 'CHAR STROKES' with stroke digits 1-9, got {line!r}")
        table[parts[0]] = parts[1]
    return table


def stroke_sequences(labels: list[str], table: dict[str, str]) -> list[list[int]]:
    """Labels -> stroke-code sequences ending with 0 (characters without an entry are skipped)."""
    return [[int(d) for c in label for d in table.get(c, "")] + [0] for label in labels]


def confusion_weights(path: str | Path | None) -> np.ndarray:
    """The [37, 37] weight table of TelescopeLoss from a 62x62 confusion matrix stored as JSON.

    As in PaddleOCR: reorder to (end, digits, lower, upper), invert (zero -> weight 1), and for a
    lower-case column keep the larger weight of the lower and upper class; then cut to 37 classes.
    ``path=None`` gives uniform weights, i.e. plain cross entropy.
    """
    if path is None:
        return np.ones((37, 37), np.float32)
    data = np.asarray(json.loads(Path(path).read_text())["matrix"], np.float64)
    if data.shape != (62, 62):
        raise DataError(f"{path}: confusion matrix must be 62x62 (0-9, A-Z, a-z), got {data.shape}")
    number, upper, lower = data[:10], data[10:36], data[36:]
    rows = np.concatenate([np.ones((1, 62)), number, lower, upper], axis=0)
    table = np.concatenate([np.ones((63, 1)), rows], axis=1)
    table = table[:, [0, *range(1, 11), *range(37, 63), *range(11, 37)]]  # columns in the same order
    with np.errstate(divide="ignore"):
        table = 1.0 / table
    table[~np.isfinite(table)] = 1.0
    for j in range(11, 37):  # lower-case columns take the stronger of lower/upper confusions
        off = np.arange(63) != j
        table[off, j] = np.maximum(table[off, j], table[off, j + 26])
    return table[:37, :37].astype(np.float32)


class MSELoss(nn.Layer):
    """Pixel MSE only: the loss that needs no recognizer."""

    def carried_layers(self) -> dict[str, nn.Layer]:
        return {}

    def forward(self, sr: paddle.Tensor, hr: paddle.Tensor, labels: list[str]) -> paddle.Tensor:
        return F.mse_loss(sr, hr)


class _RecognizerLoss(nn.Layer):
    """A loss that looks through PaddleOCR's frozen Transformer recognizer, which it owns.

    The recognizer's layout (alphabet) and its name in PaddleOCR checkpoints come from the network
    (``recognizer_alphabet``, ``recognizer_attr``); :meth:`carried_layers` tells the trainer to
    save and load it under that name, so checkpoints keep PaddleOCR's layout.
    """

    def __init__(self, network: nn.Layer, recognizer_width: float = 1.0) -> None:
        super().__init__()
        from training.networks.recognizer import Transformer

        self.checkpoint_name = type(network).recognizer_attr
        self.recognizer = Transformer(type(network).recognizer_alphabet, recognizer_width)
        self.recognizer.freeze()

    def carried_layers(self) -> dict[str, nn.Layer]:
        return {self.checkpoint_name: self.recognizer}

    def _attend(self, sr: paddle.Tensor, hr: paddle.Tensor, text_input: np.ndarray):
        rec, ti = self.recognizer, paddle.to_tensor(text_input)
        with paddle.no_grad():
            _, attn_hr = rec(hr, ti)
        sr_logits, attn_sr = rec(sr, ti)
        return sr_logits, attn_sr, attn_hr


class TelescopeLoss(_RecognizerLoss):
    """MSE + 10 x attention L1 + 0.0005 x confusion-weighted CE (Text Telescope)."""

    def __init__(self, network: nn.Layer, recognizer_width: float = 1.0, confuse_dict_path: str | None = None) -> None:
        super().__init__(network, recognizer_width)
        path = confuse_dict_path if confuse_dict_path and Path(confuse_dict_path).is_file() else None
        if confuse_dict_path and path is None:
            raise InputNotFound(f"Loss.confuse_dict_path {confuse_dict_path} not found (a JSON confusion matrix)")
        self.weights = paddle.to_tensor(confusion_weights(path))

    def forward(self, sr: paddle.Tensor, hr: paddle.Tensor, labels: list[str]) -> paddle.Tensor:
        text_input, targets, mask = teacher_forcing(telescope_sequences(labels))
        logits, attn_sr, attn_hr = self._attend(sr, hr, text_input)
        t, m = paddle.to_tensor(targets), paddle.to_tensor(mask)
        weighted = F.softmax(logits, axis=-1) * self.weights[t]  # exp(pred) * weight, normalised below
        picked = paddle.take_along_axis(weighted, t.unsqueeze(-1), axis=-1).squeeze(-1)
        ce = -(paddle.log(picked / weighted.sum(-1) + 1e-12) * m).sum() / len(labels)
        return F.mse_loss(sr, hr) + 10 * F.l1_loss(attn_sr, attn_hr) + 0.0005 * ce


class StrokeFocusLoss(_RecognizerLoss):
    """100 x (MSE + 50 x attention L1), attention from a stroke-level recognizer (Text Gestalt)."""

    def __init__(self, network: nn.Layer, recognizer_width: float = 1.0, character_dict_path: str | None = None) -> None:
        super().__init__(network, recognizer_width)
        self.table = load_stroke_table(character_dict_path)
        if len(self.recognizer.alphabet) != len(GESTALT_ALPHABET):
            raise ConfigError("StrokeFocusLoss needs the stroke recognizer (10 classes); use the TSRN network")

    def forward(self, sr: paddle.Tensor, hr: paddle.Tensor, labels: list[str]) -> paddle.Tensor:
        text_input, _, _ = teacher_forcing(stroke_sequences(labels, self.table))
        _, attn_sr, attn_hr = self._attend(sr, hr, text_input)
        return 100 * (F.mse_loss(sr, hr) + 50 * F.l1_loss(attn_sr, attn_hr))


class RecognitionLoss(nn.Layer):
    """Pixel loss plus recognition terms through the service's own recognizer (PP-OCRv6 small, frozen).

    ``loss = pixel_weight * MSE(SR, HR) + teacher_weight * teacher + ctc_weight * CTC(SR, label)`` where
    ``teacher`` needs no label: ``kl`` is KL(p_HR || p_SR) of the recognizer's per-timestep class
    distributions (nats per timestep), ``l1`` the mean absolute difference of those probabilities,
    ``feature`` a perceptual loss on the recognizer's own features: ``|f_SR - f_HR|^2 / |f_HR|^2`` (batch means)
    of the value ``feature_layer`` (an ONNX value name; the default is a stride-4 stage, 192 x 12 x 80). A
    weight of 0 turns its term off (and the recognizer is not run for it). Gradients reach the SR
    network only: the recognizer's weights are constants (see :class:`training.networks.onnx_graph.OnnxGraph`).
    ``eot`` (expectation over transformation): the recognizer sees SR and HR through the same random view
    (:meth:`jitter`: down-scaled by 0.5-1 and back, plus Gaussian noise), so its terms reward what survives
    such a view (strokes) rather than pixel patterns only this recognizer reacts to; the pixel term is unchanged.
    ``operating_scale`` s (default 1: the SR itself): the recognizer's terms look at ``base + s * (SR - base)``,
    ``base`` being the network's bicubic upscaling of the LR, i.e. at the image a model exported with
    ``Architecture.Transform.residual_scale: s`` serves, while the pixel term still pulls the full SR to HR; such a
    loss ``needs_base``, and the trainer passes ``base``.
    ``prior_weight`` (a network with a trainable text prior, ``Architecture.Transform.prior_trainable``): adds
    ``prior_weight * CTC(prior, label)``, the labels' CTC under the prior's own classes
    (:func:`training.networks.text_prior.prior_targets`), so the prior's generator learns to read LR crops; such a loss
    ``needs_prior``, and the trainer passes the ``prior`` the network consumed.
    ``terms`` holds the last batch's value of each term, for the training log.
    """

    TEACHERS = ("kl", "l1", "feature")
    FEATURE_LAYER = "p2o.pd_op.conv2d.7.0"
    """Default ``feature_layer``: in PP-OCRv6_rec_small.onnx, a backbone stage at 1/4 of the input (192 x 12 x 80)."""

    def __init__(
        self,
        pixel_weight: float = 1.0,
        teacher: str = "kl",
        teacher_weight: float = 0.0,
        ctc_weight: float = 0.0,
        recognizer_model: str | None = None,
        feature_layer: str = FEATURE_LAYER,
        eot: bool = False,
        operating_scale: float = 1.0,
        prior_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if teacher not in self.TEACHERS:
            raise ConfigError(f"Loss.teacher must be one of {list(self.TEACHERS)}, got {teacher!r}")
        self.eot = flag({"eot": eot}, "eot", False, "Loss")
        weights = {"pixel_weight": pixel_weight, "teacher_weight": teacher_weight, "ctc_weight": ctc_weight,
                   "prior_weight": prior_weight}
        for key, value in weights.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"Loss.{key} must be a number >= 0, got {value!r}")
        self.pixel_weight, self.teacher_weight, self.ctc_weight = float(pixel_weight), float(teacher_weight), float(ctc_weight)
        self.prior_weight = float(prior_weight)
        self.needs_prior = self.prior_weight > 0
        if isinstance(operating_scale, bool) or not isinstance(operating_scale, (int, float)) or not 0 < operating_scale <= 1:
            raise ConfigError(f"Loss.operating_scale must be a number in (0, 1], got {operating_scale!r}")
        self.operating_scale = float(operating_scale)
        self.needs_base = self.operating_scale != 1 and bool(self.teacher_weight or self.ctc_weight)
        self.teacher = teacher
        self.recognizer = None
        if self.teacher_weight or self.ctc_weight:
            from training.networks.service_recognizer import ServiceRecognizer

            self.recognizer = [ServiceRecognizer(recognizer_model)]  # a list: its buffers are not this loss's state
            if teacher == "feature" and self.teacher_weight:
                self.recognizer[0].graph.require(feature_layer)  # a wrong name fails here, not at the first step
        self.feature_layer = feature_layer
        self.terms: dict[str, float] = {}

    def carried_layers(self) -> dict[str, nn.Layer]:
        return {}  # the recognizer is read from its ONNX file, never saved with the SR weights

    def forward(
        self, sr: paddle.Tensor, hr: paddle.Tensor, labels: list[str], base: paddle.Tensor | None = None,
        prior: paddle.Tensor | None = None,
    ) -> paddle.Tensor:
        pixel = F.mse_loss(sr, hr)
        total, terms = self.pixel_weight * pixel, {"pixel": pixel}
        if self.needs_prior:
            if prior is None:
                raise ValueError("Loss.prior_weight needs the prior the network consumed")
            terms["prior"] = prior_ctc(prior, labels)
            total = total + self.prior_weight * terms["prior"]
        if self.recognizer is not None:
            rec = self.recognizer[0]
            if self.needs_base:
                if base is None:
                    raise ValueError(f"Loss.operating_scale {self.operating_scale} needs the bicubic base of the SR")
                sr = base + self.operating_scale * (sr - base)
            if self.eot:
                sr, hr = self.jitter(sr, hr)
            feature = self.teacher == "feature" and self.teacher_weight > 0
            probs = self.ctc_weight > 0 or (self.teacher_weight > 0 and not feature)
            names = ((rec.logits,) if probs else ()) + ((self.feature_layer,) if feature else ())
            out_sr = rec.run(sr, names)
            with paddle.no_grad():  # the HR pass runs only what the teacher compares
                out_hr = rec.run(hr, (self.feature_layer,) if feature else (rec.logits,)) if self.teacher_weight else {}
            log_sr = log_softmax(out_sr[rec.logits]) if probs else None  # [N, T, C]
            if self.teacher_weight:
                if feature:
                    f_sr, f_hr = out_sr[self.feature_layer], out_hr[self.feature_layer]
                    teacher = ((f_sr - f_hr) ** 2).mean() / ((f_hr**2).mean() + 1e-8)
                else:
                    log_hr = log_softmax(out_hr[rec.logits])
                    p_hr = paddle.exp(log_hr)
                    if self.teacher == "kl":
                        teacher = (p_hr * (log_hr - log_sr)).sum(-1).mean()
                    else:
                        teacher = (paddle.exp(log_sr) - p_hr).abs().sum(-1).mean()
                total, terms["teacher"] = total + self.teacher_weight * teacher, teacher
            if self.ctc_weight:
                ctc = self._ctc(rec, log_sr, labels)
                total, terms["ctc"] = total + self.ctc_weight * ctc, ctc
        self.terms = {k: float(v) for k, v in terms.items()}
        return total

    JITTER_SCALE = (0.5, 1.0)
    JITTER_NOISE = 0.03

    def jitter(self, *images: paddle.Tensor) -> list[paddle.Tensor]:
        """One random view applied to each of ``images`` alike (``eot``): area down-scale to a random fraction
        (``JITTER_SCALE``) of the size, bilinear back up, plus the same Gaussian noise (std up to ``JITTER_NOISE``).
        Drawn from Paddle's generator, so ``paddle.seed`` makes a run repeatable."""
        lo, hi = self.JITTER_SCALE
        u = paddle.rand([2]).numpy()
        scale, sigma = lo + (hi - lo) * float(u[0]), self.JITTER_NOISE * float(u[1])
        _, _, h, w = images[0].shape
        small = [max(1, round(h * scale)), max(1, round(w * scale))]
        noise = paddle.randn(images[0].shape) * sigma
        return [
            F.interpolate(F.interpolate(x, size=small, mode="area"), size=[h, w], mode="bilinear", align_corners=False) + noise
            for x in images
        ]

    @staticmethod
    def _ctc(rec: nn.Layer, log_probs: paddle.Tensor, labels: list[str]) -> paddle.Tensor:
        """CTC of the labels under ``log_probs`` [N, T, C], exactly, on the classes the batch uses.

        CTC reads only the blank's and the labels' characters' probabilities; the other classes are
        merged into one "rest" class (probability 1 - the others'), so the CTC kernel's softmax runs
        over a few dozen classes instead of the model's ~18,700. The value and its gradient are those
        of CTC over all classes.
        """
        targets, lengths = rec.encode(labels)
        used = np.unique(np.concatenate([[0], targets[targets > 0]]))
        remap = np.zeros(int(used.max()) + 1, np.int32)
        remap[used] = np.arange(len(used), dtype=np.int32)
        picked = paddle.index_select(log_probs, paddle.to_tensor(used.astype(np.int64)), axis=-1)
        rest = paddle.log(paddle.clip(1 - paddle.exp(picked).sum(-1, keepdim=True), min=1e-12))
        reduced = paddle.concat([picked, rest], axis=-1).transpose([1, 0, 2])  # [T, N, K + 1]
        steps = paddle.full([len(labels)], log_probs.shape[1], dtype="int64")
        return F.ctc_loss(
            reduced, paddle.to_tensor(remap[targets] * (targets > 0)), steps, paddle.to_tensor(lengths), blank=0, reduction="mean"
        )


def prior_ctc(prior: paddle.Tensor, labels: list[str]) -> paddle.Tensor:
    """CTC of the labels under a text prior ``[N, classes, T]`` of probabilities (its classes: blank, the prior's
    characters, rest), per label character, averaged over the crops whose label fits in the prior's T columns (a
    label needs one column per character and one more per repeated pair; one that cannot fit has no alignment, an
    infinite loss that would poison the step, and is left out; a batch with none gives 0)."""
    from training.networks.text_prior import prior_targets

    targets, lengths = prior_targets(labels)
    steps = prior.shape[2]
    needed = lengths + np.asarray([int((t[1:n] == t[: max(n - 1, 0)]).sum()) for t, n in zip(targets, lengths)])
    fits = needed <= steps
    if not fits.any():
        return paddle.zeros([])
    keep = paddle.to_tensor(np.flatnonzero(fits).astype(np.int64))
    log_probs = paddle.log(paddle.clip(paddle.index_select(prior, keep), min=1e-12)).transpose([2, 0, 1])  # [T, n, K]
    per_crop = F.ctc_loss(
        log_probs, paddle.to_tensor(targets[fits]), paddle.full([int(fits.sum())], steps, dtype="int64"),
        paddle.to_tensor(lengths[fits]), blank=0, reduction="none",
    )
    return (per_crop.reshape([-1]) / paddle.to_tensor(np.maximum(lengths[fits], 1).astype(np.float32))).mean()


def log_softmax(logits: paddle.Tensor) -> paddle.Tensor:
    """Log-softmax over the last axis as ``x - logsumexp(x)``.

    Paddle 3.3's CPU ``F.log_softmax`` takes ~7 s forward and 7 s backward on [8, 40, 18710] (the
    recognizer's class count) on one core; this takes 0.1 s each (bench/results/train_step-cpu-2core.md).
    """
    return logits - paddle.logsumexp(logits, axis=-1, keepdim=True)


LOSSES: dict[str, Callable[..., nn.Layer]] = {
    "MSELoss": lambda network, recognizer_width: MSELoss(),
    "RecognitionLoss": lambda network, recognizer_width, **kw: RecognitionLoss(**kw),
    "TelescopeLoss": TelescopeLoss,
    "StrokeFocusLoss": StrokeFocusLoss,
}
"""``Loss.name`` -> builder ``(network, recognizer_width, **the section's other keys)``. Every loss has
``carried_layers()``: the frozen layers it owns that checkpoints keep, by their PaddleOCR names."""


def build_loss(cfg: dict[str, Any], network: nn.Layer, recognizer_width: float = 1.0) -> nn.Layer:
    """Build the ``Loss`` section's loss for ``network``; an unknown key in the section is an error."""
    cfg = dict(cfg)
    name = cfg.pop("name", "MSELoss")
    if name not in LOSSES:
        raise ConfigError(f"unknown Loss.name {name!r}; choose one of {sorted(LOSSES)}")
    try:
        return LOSSES[name](network, recognizer_width, **cfg)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):  # a bug, not a key in the config
            raise
        raise ConfigError(f"Loss ({name}): {exc}") from None
