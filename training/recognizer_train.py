"""``textsr train-recognizer``: pretrain the losses' text-focus recognizer on HR crops, then write its
character confusion table.

The Telescope and Gestalt losses look through a frozen recognizer in PaddleOCR's Transformer layout
(``transformer`` / ``r34_transformer``). PaddleOCR ships no weights for it that we may use, so we train
it ourselves: teacher-forced cross entropy on the HR crops and labels of a TextZoom-layout dataset.
Outputs in ``Global.save_model_dir``: ``recognizer.pdparams`` (bare Transformer keys; the SR trainer
loads it with ``Global.pretrained_recognizer``), ``recognizer_log.jsonl``, ``recognizer_metrics.json``
(teacher-forced accuracy on the Eval data) and, for the Telescope alphabet, ``confuse.json``: the 62x62
confusion counts (rows: true 0-9A-Za-z, columns: predicted) that TelescopeLoss turns into its weight table.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from training.config import load_config, recognizer_width
from training.text import filter_label

CLASSES_62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


class RecognizerTrainer:
    """Trains one recognizer (Telescope letters or Gestalt strokes) on the config's Train data."""

    def __init__(self, cfg: dict[str, Any], log: Callable[[str], None] = print) -> None:
        import paddle

        from core.spec import GESTALT_ALPHABET, TELESCOPE_ALPHABET
        from training.config import architecture
        from training.data.lmdb_dataset import LMDBDataSetSR
        from training.losses import load_stroke_table
        from training.networks.recognizer import Transformer
        from training.train import TrainSettings

        self.settings = s = TrainSettings.from_config(cfg)
        self.log = log
        g = cfg.get("Global") or {}
        self.steps = int(g.get("recognizer_steps", 2000))
        self.strokes = architecture(cfg).backbone == "TSRN"
        self.table = load_stroke_table(s.loss.get("character_dict_path")) if self.strokes else None
        paddle.seed(s.seed)
        self.model = Transformer(GESTALT_ALPHABET if self.strokes else TELESCOPE_ALPHABET, recognizer_width(cfg))
        self.optimizer = paddle.optimizer.Adam(
            learning_rate=float(g.get("recognizer_learning_rate", 1e-4)), parameters=self.model.parameters(),
            grad_clip=paddle.nn.ClipGradByGlobalNorm(1.0),
        )
        self.data = LMDBDataSetSR(s.train_dir)
        self.step = 0

    def sequences(self, labels: list[str]) -> list[list[int]]:
        from training.losses import stroke_sequences, telescope_sequences

        return stroke_sequences(labels, self.table) if self.strokes else telescope_sequences(labels)

    def loss(self, hr: np.ndarray, labels: list[str]):
        import paddle
        import paddle.nn.functional as F

        from training.losses import teacher_forcing

        text_input, targets, mask = teacher_forcing(self.sequences(labels))
        logits, _ = self.model(paddle.to_tensor(hr), paddle.to_tensor(text_input))
        ce = F.cross_entropy(logits, paddle.to_tensor(targets).unsqueeze(-1), reduction="none").squeeze(-1)
        m = paddle.to_tensor(mask)
        return (ce * m).sum() / m.sum()

    def train_step(self, hr: np.ndarray, labels: list[str]) -> float:
        self.model.train()
        loss = self.loss(hr, labels)
        loss.backward()
        self.optimizer.step()
        self.optimizer.clear_grad()
        self.step += 1
        return float(loss)

    def fit(self) -> dict[str, Any]:
        import paddle
        from tqdm import tqdm

        s = self.settings
        s.save_dir.mkdir(parents=True, exist_ok=True)
        log_path = s.save_dir / "recognizer_log.jsonl"
        epoch, recent = 0, []
        with tqdm(total=self.steps, desc="recognizer", unit="step") as bar, log_path.open("a") as fh:
            while self.step < self.steps:
                for _, hr, labels in self.data.batches(s.batch_size, True, s.seed, True, epoch):
                    recent.append(self.train_step(hr, labels))
                    bar.update(1)
                    if self.step % s.print_every == 0:
                        fh.write(json.dumps({"step": self.step, "loss": float(np.mean(recent))}) + "\n")
                        fh.flush()
                        bar.set_postfix(loss=f"{np.mean(recent):.3f}")
                        recent.clear()
                    if self.step >= self.steps:
                        break
                epoch += 1
        paddle.save(self.model.state_dict(), str(s.save_dir / "recognizer.pdparams"))
        result: dict[str, Any] = {"steps": self.step, "width": self.model.width}
        if s.eval_dir is not None:
            metrics = self.evaluate(s.eval_dir)
            matrix = metrics.pop("confusion", None)
            if matrix is not None:
                (s.save_dir / "confuse.json").write_text(json.dumps({"classes": CLASSES_62, "matrix": matrix.tolist()}))
            result.update(metrics)
        (s.save_dir / "recognizer_metrics.json").write_text(json.dumps(result, indent=2))
        return result

    def evaluate(self, eval_dir: Path) -> dict[str, Any]:
        """Teacher-forced reading of the HR crops of every eval split.

        ``token_accuracy``: share of next-symbol predictions (end symbol included) that are right;
        ``sequence_accuracy``: share of crops with every symbol right; ``token_accuracy_without_image``:
        the same guesses from blank crops (each image replaced by its mean), i.e. what the decoder's
        language model alone gets right; the gap to ``token_accuracy`` is what reading adds. For the
        letter recognizer also ``char_accuracy`` (case-insensitive) and ``confusion``, the 62x62 counts
        (rows: true 0-9A-Za-z, columns: predicted) that TelescopeLoss turns into its weight table.
        """
        import paddle

        from core.spec import TELESCOPE_ALPHABET
        from training.data.lmdb_dataset import LMDBDataSetSR, find_lmdbs
        from training.losses import teacher_forcing

        matrix = np.zeros((62, 62), np.int64)
        right = blind = tokens = whole = crops = 0
        self.model.eval()

        def predict(images: np.ndarray, text_input: np.ndarray) -> np.ndarray:
            with paddle.no_grad():
                return self.model(paddle.to_tensor(images), paddle.to_tensor(text_input))[0].numpy().argmax(-1)

        for folder in find_lmdbs(eval_dir):
            for _, hr, labels in LMDBDataSetSR(folder).batches(self.settings.batch_size):
                text_input, targets, mask = teacher_forcing(self.sequences(labels))
                pred = predict(hr, text_input)
                hits = (pred == targets) * mask
                right, tokens = right + int(hits.sum()), tokens + int(mask.sum())
                flat = np.broadcast_to(hr.mean(axis=(1, 2, 3), keepdims=True), hr.shape).astype(np.float32)
                blind += int(((predict(flat, text_input) == targets) * mask).sum())
                whole, crops = whole + int((hits.sum(1) == mask.sum(1)).sum()), crops + len(labels)
                if self.strokes:
                    continue
                for b, label in enumerate(labels):
                    chars = [c for c in label if c in CLASSES_62 and filter_label(c)]
                    for t, c in enumerate(chars):
                        guess = TELESCOPE_ALPHABET[pred[b, t]] if pred[b, t] else ""
                        if guess:
                            matrix[CLASSES_62.index(c), CLASSES_62.index(guess)] += 1
        out: dict[str, Any] = {
            "token_accuracy": right / tokens if tokens else float("nan"),
            "token_accuracy_without_image": blind / tokens if tokens else float("nan"),
            "sequence_accuracy": whole / crops if crops else float("nan"),
            "eval_crops": crops,
        }
        if not self.strokes:
            total = matrix.sum()
            correct = sum(matrix[i, CLASSES_62.index(c.lower())] for i, c in enumerate(CLASSES_62))
            out["char_accuracy"] = float(correct / total) if total else float("nan")
            out["confusion"] = matrix
        return out


def train_recognizer(config: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Run ``textsr train-recognizer``."""
    return RecognizerTrainer(load_config(config, overrides)).fit()
