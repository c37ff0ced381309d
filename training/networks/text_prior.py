"""A text prior for the SR network (TPGSR-style, Ma et al. 2023): the service recognizer's reading of the LR crop.

The frozen service recognizer (PP-OCRv6 small, read from the ONNX file the service reads) looks at the LR crop as
``/v1/recognize?source=raw`` does; its per-timestep class probabilities, cut to the columns that hold the crop
(the rest is padding) and to :data:`PRIOR_CHARSET` plus the blank and a "rest" class (all other characters), are
embedded per timestep, resampled to the LR width and repeated down the rows. :meth:`TextPrior.probabilities` is the
recognizer's part (the service computes the same from its own ONNX session), :meth:`TextPrior.forward` the network's.
The network adds this map into its residual trunk through zero-initialised 1x1 convolutions, so a network with a
prior starts as the same function as one without (and loads its weights: the prior's keys are new).
The recognizer is not a sublayer: its weights are constants, never saved with the SR weights. Built with
``trainable=True`` (``Architecture.Transform.prior_trainable``), the prior comes from a *generator*: a copy of the
service recognizer, started from the same file, whose weights are the network's (``prior.generator.*``) and learn
(TPGSR's fine-tuned text-prior generator): from the SR losses through the prior, and from a CTC term on the prior
itself (``Loss.prior_weight``, labels as :func:`prior_targets` encodes them). :meth:`TextPrior.read` decodes a prior.
:func:`aligned_prior` writes a label as a prior (its best CTC path under a prior's own columns, one-hot): what a
perfect generator would say, for training the network to draw what its prior reads (``Global.prior_forcing``).
With ``rows`` the map has rows of its own (a learned template per class, built as the repeated row); with ``glyphs``
the prior's reading is also drawn as an image (:func:`service.text_prior.glyph_image`, the service's own drawing: each
character in OpenCV's Hershey font where its columns are) and joins the map through a zero-initialised convolution:
strokes the network can copy instead of inventing them from a class. With ``tail_scale`` (``prior_glyph_tail``) the
reading is drawn at the SR's size instead and also joins the network's features at that size, just before its last
convolution (:meth:`TextPrior.join`: a small zero-initialised residual of the features and the drawing), so strokes
reach the output without passing the low-resolution trunk; the trunk's copy is that drawing area-averaged to the LR
size. Drawing is not a graph op: the exported graph takes the drawing as an input of its own (at :meth:`TextPrior.
glyph_size`), which the service draws as training does.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from core.spec import PRIOR_CHARSET
from service.text_prior import character_runs, glyph_image
from training.networks.blocks import Mish

__all__ = ["PRIOR_CHARSET", "TextPrior", "aligned_prior", "glyph_image", "prior_targets"]


def prior_targets(labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """CTC targets in the prior's classes: ``(targets [N, L] int32, lengths [N] int64)``.

    A character of :data:`PRIOR_CHARSET` is its class (1 + its index; 0 is the blank); any other character but a space
    is the "rest" class (the last); spaces are dropped, as the recognizer's columns between words are blanks."""
    rest = len(PRIOR_CHARSET) + 1
    seqs = [[PRIOR_CHARSET.index(c) + 1 if c in PRIOR_CHARSET else rest for c in label if not c.isspace()] for label in labels]
    out = np.zeros((len(seqs), max(1, max(map(len, seqs), default=1))), np.int32)
    for i, seq in enumerate(seqs):
        out[i, : len(seq)] = seq
    return out, np.asarray([len(s) for s in seqs], np.int64)


def aligned_prior(probs: np.ndarray, labels: list[str]) -> np.ndarray:
    """The labels as priors ``[N, K, T]``: one-hot columns along each label's most probable CTC path under ``probs``
    (a prior, ``[N, K, T]``; Viterbi over the blank-extended label), i.e. the label placed where the prior sees its
    characters. A crop whose label cannot fit its columns (too many characters) keeps its prior."""
    targets, lengths = prior_targets(labels)
    out = np.array(probs, dtype=np.float32, copy=True)
    log = np.log(np.clip(probs, 1e-12, None))
    for i, (row, n) in enumerate(zip(targets, lengths)):
        ext = np.zeros(2 * n + 1, np.int64)
        ext[1::2] = row[:n]
        path = _best_path(log[i], ext)
        if path is not None:
            out[i] = 0
            out[i, path, np.arange(len(path))] = 1
    return out


def _best_path(log: np.ndarray, ext: np.ndarray) -> np.ndarray | None:
    """Viterbi over CTC's blank-extended label ``ext`` (blank = class 0) and ``log`` probabilities ``[K, T]``: the class
    of each column on the best path that reads ``ext``, or None when no path fits."""
    steps, states = log.shape[1], len(ext)
    skip = np.zeros(states, bool)  # a state may be entered from two back: a character after a different character
    skip[2:] = (ext[2:] != 0) & (ext[2:] != ext[:-2])
    score = np.full(states, -np.inf)
    score[: min(2, states)] = log[ext[: min(2, states)], 0]
    back = np.zeros((steps, states), np.int64)
    for t in range(1, steps):
        moves = np.full((3, states), -np.inf)  # stay, come from one back, from two back
        moves[0], moves[1, 1:], moves[2, 2:] = score, score[:-1], np.where(skip[2:], score[:-2], -np.inf)
        step = moves.argmax(0)
        score = moves.max(0) + log[ext, t]
        back[t] = np.arange(states) - step
    ends = [states - 1] + ([states - 2] if states > 1 else [])
    state = max(ends, key=lambda e: score[e])
    if not np.isfinite(score[state]):
        return None
    path = np.zeros(steps, np.int64)
    for t in range(steps - 1, -1, -1):
        path[t] = ext[state]
        state = back[t, state]
    return path


class TextPrior(nn.Layer):
    """``probabilities(lr [N, 3, h, w] in [0, 1]) -> [N, classes, T_crop]``, ``forward(those, w, h) -> [N, channels, h, w]``."""

    def __init__(
        self,
        channels: int,
        recognizer_model: str | None = None,
        trainable: bool = False,
        rows: int = 0,
        glyphs: bool = False,
        tail_scale: int = 0,
    ) -> None:
        super().__init__()
        from training.networks.service_recognizer import ServiceRecognizer

        recognizer = ServiceRecognizer(recognizer_model, trainable=trainable)
        self.trainable = trainable
        if trainable:
            self.generator = recognizer  # a sublayer: its weights are the network's, saved and trained with it
        self.recognizer = [recognizer]  # a list: the frozen one is not a sublayer, never in the state dict
        index = recognizer.index
        missing = [c for c in PRIOR_CHARSET if c not in index]
        if missing:
            raise ValueError(f"the service recognizer lacks prior characters {missing}")
        self.columns = paddle.to_tensor([0] + [index[c] for c in PRIOR_CHARSET], dtype="int64")  # blank first
        self.classes = len(PRIOR_CHARSET) + 2  # blank, the characters, rest
        self.embed = nn.Sequential(nn.Conv1D(self.classes, channels, 1), Mish(), nn.Conv1D(channels, channels, 3, padding=1))
        self.channels, self.rows_count = channels, rows
        if rows:  # each column's embedding -> `rows` rows of its own: a learned glyph template per class
            self.rows = nn.Conv1D(channels, channels * rows, 1)
            # built as every row = the embedding (output channel c * rows + r copies channel c): the repeated map
            self.rows.weight.set_value(paddle.to_tensor(np.repeat(np.eye(channels, dtype=np.float32), rows, axis=0)[:, :, None]))
            self.rows.bias.set_value(paddle.zeros_like(self.rows.bias))
        self.glyphs = glyphs
        if glyphs:  # the reading drawn as text, into the map (zero at the start: the same function as without)
            self.glyph = nn.Conv2D(1, channels, 3, padding=1)
            self.glyph.weight.set_value(paddle.zeros_like(self.glyph.weight))
            self.glyph.bias.set_value(paddle.zeros_like(self.glyph.bias))
        if tail_scale and not glyphs:
            raise ValueError("a prior's tail joins its drawing: tail_scale needs glyphs")
        self.tail_scale = tail_scale
        if tail_scale:  # features at the SR's size + the drawing there -> a residual on those features (zero at the start)
            hidden = channels // 2
            self.tail = nn.Sequential(
                nn.Conv2D(channels + 1, hidden, 3, padding=1), Mish(), nn.Conv2D(hidden, channels, 3, padding=1)
            )
            self.tail[-1].weight.set_value(paddle.zeros_like(self.tail[-1].weight))
            self.tail[-1].bias.set_value(paddle.zeros_like(self.tail[-1].bias))

    def probabilities(self, lr: paddle.Tensor) -> paddle.Tensor:
        """The recognizer's class probabilities over the crop's columns: ``[N, classes, T_crop]`` (columns sum to 1);
        differentiable in the generator's weights when it is trainable, a constant otherwise."""
        from service.recognizer import WIDTH, target_width

        rec = self.recognizer[0]
        with contextlib.nullcontext() if self.trainable else paddle.no_grad():
            logits = rec(lr)  # [N, T, C]
            used = max(1, math.ceil(logits.shape[1] * target_width(lr.shape[2], lr.shape[3]) / WIDTH))
            # Paddle's softmax kernel, not exp(x - logsumexp x): its CPU exp is off by ~4e-4 (ONNX Runtime's is not)
            probs = F.softmax(logits[:, :used], axis=-1)
            picked = paddle.index_select(probs, self.columns, axis=-1)  # [N, T_crop, K]
            rest = paddle.clip(1 - picked.sum(-1, keepdim=True), min=0.0)
            probs = paddle.concat([picked, rest], axis=-1).transpose([0, 2, 1])
        return probs if self.trainable else probs.detach()

    def read(self, lr: paddle.Tensor) -> list[tuple[str, float]]:
        """The prior's own reading of ``lr``: :meth:`decode` of its :meth:`probabilities`."""
        with paddle.no_grad():
            return self.decode(self.probabilities(lr).numpy())

    @staticmethod
    def decode(probs: np.ndarray) -> list[tuple[str, float]]:
        """Greedy CTC over a prior's classes ``[N, K, T]`` (the "rest" class reads as nothing), with the mean top
        probability: how well the generator reads LR crops (the evaluation's ``prior`` accuracy)."""
        return [("".join(char for char, _, _ in character_runs(p.argmax(0))), float(p.max(0).mean())) for p in probs]

    def glyph_size(self, height: int, width: int) -> tuple[int, int]:
        """The size the reading is drawn at for an LR crop of ``height`` x ``width``: the SR's with a tail, else the LR's."""
        scale = self.tail_scale or 1
        return height * scale, width * scale

    def draw(self, probabilities: paddle.Tensor, height: int, width: int) -> paddle.Tensor:
        """:func:`glyph_image` of ``probabilities`` at :meth:`glyph_size` for an LR crop of ``height`` x ``width``."""
        return paddle.to_tensor(glyph_image(probabilities.detach().numpy(), *self.glyph_size(height, width)))

    def join(self, features: paddle.Tensor, drawn: paddle.Tensor) -> paddle.Tensor:
        """With ``tail_scale``: the network's features at the SR's size ``[N, channels, H, W]`` plus :attr:`tail` of them
        and the drawing there (``drawn`` ``[N, 1, H, W]``)."""
        return features + self.tail(paddle.concat([features, drawn], axis=1))

    def forward(
        self, probabilities: paddle.Tensor, width: int, height: int, drawn: paddle.Tensor | None = None
    ) -> paddle.Tensor:
        """Embed :meth:`probabilities` ``[N, classes, T_crop]`` into a ``[N, channels, height, width]`` map: one row
        repeated down the crop, or with ``rows`` that many rows resampled to ``height``; with ``glyphs`` plus the
        reading drawn: ``drawn`` (at :meth:`glyph_size`; area-averaged to ``height`` x ``width`` when larger) when given
        (an exported graph's input), else :meth:`draw` of ``probabilities``."""
        features = self.embed(probabilities)  # [N, channels, T_crop]
        if self.rows_count:
            features = self.rows(features).reshape([0, self.channels, self.rows_count, -1])  # [N, channels, rows, T_crop]
            features = F.interpolate(features, size=[height, width], mode="bilinear", align_corners=False)
        else:
            features = F.interpolate(features.unsqueeze(2), size=[1, width], mode="bilinear", align_corners=False)
            features = features.expand([features.shape[0], features.shape[1], height, width])
        if self.glyphs:
            if drawn is None:
                drawn = self.draw(probabilities, height, width)
            if self.tail_scale:
                drawn = F.avg_pool2d(drawn, self.tail_scale)
            features = features + self.glyph(drawn)
        elif drawn is not None:
            raise ValueError("this prior was built without glyphs (prior_glyphs); it takes no drawing")
        return features
