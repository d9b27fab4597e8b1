"""The install keeps working: every top-level module and package is in pyproject.toml's package list."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_top_level_module_is_installed_by_the_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    modules = set(config["py-modules"])
    on_disk = {path.stem for path in ROOT.glob("*.py")}
    assert on_disk <= modules, f"add to py-modules: {sorted(on_disk - modules)}"


def test_every_top_level_package_is_installed_by_the_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    included = {pattern.rstrip("*") for pattern in config["packages"]["find"]["include"]}
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py") if path.parent.name != "tests"}
    assert packages <= included, f"add to packages.find.include: {sorted(packages - included)}"
