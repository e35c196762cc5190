from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reflex_groot.builtin import write_tiny_groot

    directory = tmp_path_factory.mktemp("tiny-groot")
    write_tiny_groot(directory)
    return directory
