"""The shipped checkpoint's lineage (the card's "How it was trained") is a connected chain of commands whose configs
load, from a committed start point to the graft, and its last stage is the recipe file exactly."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from training.config import load_config

LINEAGE = Path(__file__).resolve().parents[2] / "training/configs/prior_glyph_tsrn_lineage.md"
BOOKKEEPING = {"save_model_dir", "max_steps", "epoch_num", "pretrained_model", "checkpoints"}
TRAIN_PRIOR_KEYS = {"prior_steps", "prior_learning_rate", "prior_eval_step"}


def commands() -> list[list[str]]:
    """The bash block's commands, continuation lines joined, ``$C`` expanded."""
    block = LINEAGE.read_text().split("```bash\n")[1].split("```")[0].replace("\\\n", " ")
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    assert lines[0] == "C=training/configs"
    return [shlex.split(line.replace("$C", "training/configs")) for line in lines[1:]]


def flatten(cfg: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key != "lr_mult":
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def test_lineage_commands_load_and_form_one_chain(repo_root):
    made: set[str] = set()
    recipe = flatten(yaml.safe_load((repo_root / "training/configs/prior_glyph_tsrn.yml").read_text()))
    known = set(recipe) | {f"Global.{k}" for k in TRAIN_PRIOR_KEYS}
    exact = 0
    for cmd in commands():
        if cmd[:2] == ["cp", "-r"]:
            assert cmd[2] in made, cmd
            made.add(cmd[3])
            continue
        if cmd[0] == ".venv/bin/python":
            assert cmd[1:3] == ["-m", "training.graft"] and {str(Path(c).parent) for c in cmd[3:5]} <= made, cmd
            made.add(cmd[5])
            continue
        assert cmd[0] == ".venv/bin/textsr" and cmd[1] in ("train", "train-prior") and cmd[2] == "-c" and cmd[4] == "-o", cmd
        opts = cmd[5:]
        cfg = flatten(load_config(repo_root / cmd[3], opts))
        for opt in opts:
            assert opt.split("=", 1)[0] in known, opt  # no misspelt key slips in as a new one
        start = cfg["Global.pretrained_model"] or cfg["Global.checkpoints"]
        parent = str(Path(start).parent)
        assert (repo_root / start).is_file() if start.startswith("checkpoints/") else parent in made, (start, made)
        made.add(cfg["Global.save_model_dir"])
        changed = {k for k in set(cfg) | set(recipe) if cfg.get(k) != recipe.get(k)}
        exact += cmd[3].endswith("prior_glyph_tsrn.yml") and not {k.split(".", 1)[1] for k in changed} - BOOKKEEPING
    assert exact >= 2  # (e) and its continuation are the recipe file, bookkeeping aside
    assert commands()[-1][-1] == "output/glyph-prior.pdparams"
