"""The floors of the layout (README "Architecture") hold, and breaking one fails the build.

The import contracts live in pyproject.toml ([tool.importlinter]); `make lint` runs
`lint-imports`. These tests run it on the tree as it is, and on a copy with one deliberately
wrong import per floor, which must fail naming the contract that was broken.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["faultloop", "snmpwire", "devices", "inventory", "collectors", "alarms", "ticketing", "provisioning"]
PACKAGES += ["northbound", "api", "lab"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH first: the copy's packages shadow the editable install's
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_every_package_is_a_root_of_the_contracts():
    assert sorted(_config()["root_packages"]) == sorted(PACKAGES)
    for package in PACKAGES:
        assert (ROOT / package / "__init__.py").is_file(), package


def test_the_contracts_hold():
    proc = _lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_the_kernel_contract_lists_every_kernel_module():
    """A new kernel module cannot slip past "the kernel does not import the composition root"."""
    contract = next(c for c in _config()["contracts"] if c["name"] == "the kernel does not import the composition root")
    kernel = {
        f"faultloop.{p.stem if p.is_file() else p.name}"
        for p in (ROOT / "faultloop").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())
    }
    kernel.discard("faultloop.cmd")
    assert sorted(contract["source_modules"]) == sorted(kernel)


def test_alembic_env_needs_no_domain_package():
    """env.py is loaded by path (import-linter does not see it): upgrades run the revisions as
    written, and only autogenerate gets every package's metadata, from the composition root."""
    tree = ast.parse((ROOT / "faultloop" / "migrations" / "env.py").read_text())
    imported = {
        (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert {name.split(".")[0] for name in imported} <= {"__future__", "alembic"}, imported


WRONG_IMPORTS = [
    # (file to edit, line to add, the contract that must break)
    ("faultloop/db.py", "import alarms.models", "the kernel imports no domain package"),
    ("faultloop/clock.py", "import faultloop.cmd.app", "the kernel does not import the composition root"),
    ("snmpwire/ber.py", "import faultloop.errors", "snmpwire is a leaf"),
    ("lab/model.py", "import inventory.schemas", "the lab imports only the codec"),
    ("collectors/counters.py", "import alarms.rules", "collectors do not import alarms"),
    ("alarms/flapping.py", "import ticketing.sla", "alarms do not import ticketing"),
    ("ticketing/sla.py", "import inventory.models", "only inventory imports inventory.models"),
    ("ticketing/dispatch.py", "import alarms.models", "ticketing reads alarms through alarms.queries"),
    ("alarms/engine.py", "import inventory.models", "only inventory imports inventory.models"),
    ("provisioning/policy.py", "import fastapi", "domain packages import neither the web framework nor the API"),
    ("api/problems.py", "import lab.topology", "only the composition root imports the lab"),
    ("ticketing/sla.py", "import northbound.hub", "the domains do not import the northbound interfaces"),
    ("northbound/query.py", "import fastapi", "domain packages import neither the web framework nor the API"),
]


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layout")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


@pytest.mark.parametrize(("path", "line", "contract"), WRONG_IMPORTS, ids=[w[0] for w in WRONG_IMPORTS])
def test_a_wrong_import_fails_the_lint(tree_copy: Path, path: str, line: str, contract: str):
    target = tree_copy / path
    original = target.read_text()
    try:
        target.write_text(original + f"\n{line}  # deliberately wrong\n")
        proc = _lint_imports(tree_copy)
    finally:
        target.write_text(original)
    assert proc.returncode != 0, proc.stdout[-3000:]
    broken = proc.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, proc.stdout[-3000:]
    assert path.removesuffix(".py").replace("/", ".") in broken
