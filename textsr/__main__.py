"""``python -m textsr``: the same entry point as the ``textsr`` console script."""

from textsr.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
