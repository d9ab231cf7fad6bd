"""The install docs/deployment.md gives works: a built wheel installs into a clean venv."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*argv: str | Path, cwd: Path = ROOT) -> str:
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_a_built_wheel_installs_into_a_clean_venv_and_answers_help(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run("make", "-s", "dist", f"DIST={dist}", f"BIN={Path(sys.executable).parent}")
    (wheel,) = dist.glob("modbus_mqtt_bridge-*.whl")
    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    bin_dir = target / ("Scripts" if sys.platform == "win32" else "bin")
    python = bin_dir / "python"
    # The wheel alone (no network): its dependencies come from this venv, after its own
    # site-packages, so the package that runs is the installed wheel, not the checkout.
    site = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip()
    )
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", wheel)
    show = "import modbus_mqtt_bridge; print(modbus_mqtt_bridge.__file__)"
    where = _run(python, "-c", show, cwd=tmp_path)  # not the checkout: it would shadow
    assert Path(where.strip()).is_relative_to(target)
    usage = _run(bin_dir / "modbus-mqtt-bridge", "--help", cwd=tmp_path)
    assert usage.startswith("usage: modbus-mqtt-bridge")
    assert "forward" in usage and "validate" in usage
