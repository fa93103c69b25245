"""The README's Python examples run as written and print what the README says."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(heading: str) -> str:
    text = README.read_text()
    section = text[text.index(heading):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_your_own_network_example(tmp_path):
    code = _block("## Your own network")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    acc, agree, shape = out.stdout.strip().splitlines()[-1].split(" ", 2)
    assert agree == "1.0" and shape == "(397, 4, 128)"
    assert float(acc) > 0.85  # the README says 0.919 on this machine
    assert (tmp_path / "my-sim" / "spikes.npz").is_file() and (tmp_path / "my-net.safetensors").is_file()


def test_functional_core_example(tmp_path):
    code = _block("## The functional core in ten lines").replace("epochs=20", "epochs=2")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    last = out.stdout.strip().splitlines()[-1].split()
    assert last[2] == "1.0"  # forward agreement
