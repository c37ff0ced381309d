"""Graft one checkpoint's prior generator onto another network's checkpoint (PaddleOCR layout, same architecture).

    .venv/bin/python -m training.graft NETWORK.pdparams GENERATOR.pdparams OUT.pdparams

With ``Global.prior_forcing: 1.0`` an SR run never feeds its layers the generator's reading, so a generator trained
alone (``textsr train-prior``, from any checkpoint of the same architecture) and an SR run trained on meanwhile combine
without retraining: every ``transform.prior.generator.*`` tensor comes from GENERATOR, every other one from NETWORK.
Session 19's ``checkpoints/glyph-prior/model.pdparams`` was made this way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.errors import ConfigError, DataError, InputNotFound

GENERATOR_PREFIX = "transform.prior.generator."


def graft(network: str | Path, generator: str | Path, out: str | Path) -> int:
    """Write ``out``: ``network``'s tensors with ``generator``'s prior generator; returns how many tensors were grafted."""
    import paddle

    from training.networks import read_checkpoint

    a, b = read_checkpoint(network), read_checkpoint(generator)
    keys = [k for k in a if k.startswith(GENERATOR_PREFIX)]
    if not keys:
        raise ConfigError(f"{network} has no trainable prior generator ({GENERATOR_PREFIX}*)")
    if set(a) != set(b):
        raise ConfigError(f"{network} and {generator} are not the same architecture: "
                          f"{len(set(a) ^ set(b))} tensors are in only one of them")
    for k in keys:
        if tuple(a[k].shape) != tuple(b[k].shape):
            raise ConfigError(f"{k} is {list(a[k].shape)} in {network} but {list(b[k].shape)} in {generator}")
        a[k] = b[k]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    paddle.save(a, str(out))
    return len(keys)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("network", help="the SR network's checkpoint (.pdparams)")
    ap.add_argument("generator", help="the checkpoint whose prior generator is taken (e.g. prior_best.pdparams)")
    ap.add_argument("out", help="the grafted checkpoint to write")
    args = ap.parse_args(argv)
    try:
        n = graft(args.network, args.generator, args.out)
    except (ConfigError, DataError, InputNotFound) as exc:
        ap.exit(2, f"error: {exc}\n")
    print(f"grafted {n} generator tensors from {args.generator} onto {args.network} -> {args.out}")


if __name__ == "__main__":
    main()
