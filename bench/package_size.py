"""Size of the deployment zip that `chalice package` builds, from a copy of the project.

The copy (app.py, chalicelib/, vendor/, requirements.txt, .chalice/ without deployments/)
keeps the shared working tree untouched; fake credentials and a region, no network.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from benchenv import MAIN_PYTHON, ROOT, subprocess_env

PARTS = ("app.py", "chalicelib", "vendor", "requirements.txt", ".chalice")


def package_size_kb(stage: str = "dev", timeout: float = 180) -> float:
    chalice = MAIN_PYTHON.parent / "chalice"
    with tempfile.TemporaryDirectory(prefix="bench-package-") as tmp:
        project, out = Path(tmp) / "project", Path(tmp) / "out"
        project.mkdir()
        for part in PARTS:
            source = ROOT / part
            if source.is_dir():
                shutil.copytree(source, project / part, ignore=shutil.ignore_patterns(
                    "__pycache__", "deployments", "venv"))
            elif source.exists():
                shutil.copy2(source, project / part)
        proc = subprocess.run([str(chalice), "--project-dir", str(project), "package", "--stage", stage,
                               str(out)], env=subprocess_env(), capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"chalice package exited {proc.returncode}: {proc.stderr.strip()[-1500:]}")
        return (out / "deployment.zip").stat().st_size / 1024
