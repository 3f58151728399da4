"""The wheel built from the repository carries prompts/, templates/ and package data, and works
from outside the source tree (resources resolve inside the installed package)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NETWORK_HINTS = ("No matching distribution", "Could not find a version", "Failed to establish")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    if importlib.util.find_spec("build") is None:
        pytest.skip("the 'build' package (dev extra) is not installed")
    # Without network the isolated build cannot fetch hatchling; use the installed one if any.
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-isolation"]
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", *isolation, "--outdir", str(out), str(REPO)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        if not isolation and any(h in result.stdout + result.stderr for h in NETWORK_HINTS):
            pytest.skip("no hatchling installed and no network to fetch it")
        pytest.fail(f"wheel build failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    wheels = list(out.glob("spine_reporter-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _tracked(*folders: str) -> list[str]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(
        ["git", "ls-files", *folders], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return [line for line in out.splitlines() if line and "__pycache__" not in line]


@pytest.mark.slow
def test_wheel_contains_prompts_templates_and_package_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("prompts", "templates"):
        files = [
            p for p in (REPO / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts
        ]
        assert files, f"{folder}/ is empty in the repository"
        for p in files:
            assert f"reporter/{p.relative_to(REPO)}" in names, p
    for tracked in _tracked("reporter"):
        assert tracked in names, f"{tracked} is tracked but missing from the wheel"
    assert "reporter/py.typed" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "spine-report = reporter.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.mark.slow
def test_installed_wheel_resolves_resources_outside_the_source_tree(
    wheel: Path, tmp_path: Path
) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--target", str(target), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    probe = (
        "import json, reporter\n"
        "from reporter.resources import resource_dir\n"
        "from reporter.contracts.findings import json_schema\n"
        "p, t = resource_dir('prompts'), resource_dir('templates')\n"
        "print(json.dumps({'module': reporter.__file__, 'prompts': str(p), 'templates': str(t),\n"
        "  'n_prompts': len(list(p.iterdir())), 'n_templates': len(list(t.iterdir())),\n"
        "  'schema': json_schema()['title']}))\n"
    )
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=workdir, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    for key in ("module", "prompts", "templates"):
        assert Path(info[key]).resolve().is_relative_to(target.resolve()), info
    assert info["n_prompts"] > 0 and info["n_templates"] > 0
    assert info["schema"] == "StudyFindings"
