"""The README's code runs as written, and its Quick start is what CI runs."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language: str, text: str = README) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _quick_start() -> str:
    match = re.search(r"^## Quick start\n(.*?)(?=^## )", README, flags=re.S | re.M)
    assert match, "README has no '## Quick start' section"
    return match.group(1)


def test_quick_start_is_two_single_command_bash_blocks():
    blocks = _blocks("bash", _quick_start())
    assert len(blocks) == 2
    for block in blocks:
        lines = [line for line in block.strip().splitlines() if line.strip()]
        assert len(lines) == 1, block
    assert "python -m portable_nn" in blocks[0]
    assert "ci/test-matrix.sh" in blocks[1]


def test_ci_runs_the_readme_test_command():
    test_command = _blocks("bash", _quick_start())[1].strip()
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_readme_python_block_runs(index, capsys):
    code = _blocks("python")[index]
    for library in ("torch", "jax"):
        if f'"{library}"' in code and importlib.util.find_spec(library) is None:
            pytest.skip(f"block uses {library}, which is not installed")
    import portable_nn as pnn

    previous = pnn.get_backend()
    try:
        exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "readme"})
    finally:
        pnn.set_backend(previous)
    out = capsys.readouterr().out
    if "gradcheck" in code:
        assert out.splitlines()[-1].startswith("True")
    if "np.array_equal" in code:
        assert out.strip().endswith("True")
