"""The README's architecture table names every module once, and names only files that exist."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Folders whose files the README describes elsewhere (bench/README.md, the Examples section):
# one row for the folder is enough.
FOLDER_ROWS = ("bench/", "examples/")


def _modules() -> set[str]:
    files = subprocess.run(
        ["git", "ls-files", "*.py", "*.js", "*.sh"], cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    return {
        f for f in files
        if not re.match(r"tests/test_", f) and "/migrations/" not in f
        and not f.endswith("__init__.py") and not f.startswith(FOLDER_ROWS)
    }


def _table_paths() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Architecture\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    # The first cell names the files; the second may mention others in passing.
    return [path for row in rows for path in re.findall(r"`([^`]+)`", row.split(" | ")[0])]


def test_every_module_has_a_row():
    named = set(_table_paths())
    missing = sorted(_modules() - named)
    assert not missing, f"modules without a row in README's Architecture table: {missing}"


def test_every_row_names_files_that_exist():
    gone = [p for p in _table_paths() if not (ROOT / p).exists()]
    assert not gone, f"README's Architecture table names files that do not exist: {gone}"


def test_no_module_has_two_rows():
    paths = _table_paths()
    twice = sorted({p for p in paths if paths.count(p) > 1})
    assert not twice, f"modules with more than one row: {twice}"


def test_the_folder_rows_are_there():
    assert set(FOLDER_ROWS) <= set(_table_paths())
