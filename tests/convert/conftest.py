import pytest

pytest.importorskip("paddle", reason="paddle is needed for the training tests (pip install -e '.[train]')")
