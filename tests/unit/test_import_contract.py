"""The package's layers import in one direction (tools/import_contract.py, also run by `make lint`)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PKG = REPO / "workflow" / "sftpipe"
_spec = importlib.util.spec_from_file_location("import_contract", REPO / "tools" / "import_contract.py")
contract = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(contract)


@pytest.fixture
def pkg_copy(tmp_path: Path) -> Path:
    dest = tmp_path / "sftpipe"
    shutil.copytree(PKG, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_the_package_keeps_its_layers():
    assert contract.violations(PKG) == []


def test_a_function_local_back_edge_breaks_the_contract(pkg_copy: Path):
    fs = pkg_copy / "util" / "fs.py"
    fs.write_text(fs.read_text() + "\n\ndef _late():\n    from sftpipe.runs import store  # back-edge\n")
    problems = contract.violations(pkg_copy)
    assert any(
        "sftpipe.util.fs imports sftpipe.runs.store" in p and "may not import layer 'runs'" in p
        for p in problems
    )


def test_a_cycle_inside_one_layer_breaks_the_contract(pkg_copy: Path):
    (pkg_copy / "runs" / "a_mod.py").write_text("from sftpipe.runs import b_mod\n")
    (pkg_copy / "runs" / "b_mod.py").write_text("def f():\n    import sftpipe.runs.a_mod\n")
    problems = contract.violations(pkg_copy)
    assert "import cycle: sftpipe.runs.a_mod -> sftpipe.runs.b_mod" in problems


def test_nothing_imports_the_snakefile_planner(pkg_copy: Path):
    (pkg_copy / "report" / "uses_plan.py").write_text("from sftpipe.plan import build\n")
    assert any("plan is used only by the Snakefile" in p for p in contract.violations(pkg_copy))


def test_cli_runs_the_checker(tmp_path: Path, pkg_copy: Path, capsys):
    assert contract.main(["x", str(PKG)]) in (0, 1)
    (pkg_copy / "config" / "bad.py").write_text("import sftpipe.cli\n")
    assert contract.main(["x", str(pkg_copy)]) == 1
    assert "broken" in capsys.readouterr().out
