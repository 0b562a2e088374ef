"""The MLproject and the entry points agree: every parameter is used, every flag is one the script accepts."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = yaml.safe_load((ROOT / "MLproject").read_text())["entry_points"]


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_entry_point_parameters_and_flags_match(name):
    spec = ENTRY_POINTS[name]
    command = " ".join(spec["command"].split())
    used = set(re.findall(r"\{(\w+)\}", command))
    assert used == set(spec.get("parameters", {})), "parameters and command placeholders differ"
    assert not re.search(r"'\{\w+\}'", command), "MLflow quotes values itself: no quotes around {param}"
    module = re.search(r"python -m (entrypoints\.\w+)", command).group(1)
    help_text = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=ROOT,
                               timeout=120, check=True).stdout
    for flag in re.findall(r"(--[\w-]+) \{", command):
        assert flag in help_text, f"{module} does not accept {flag}"
