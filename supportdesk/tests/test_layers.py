"""The apps stand in layers (``.importlinter``): common ← accounts, departments ← conversations ←
whatsapp, botflows ← supportdesk. A lower app meets a higher one through domain events and ports,
never by importing it, not even inside a function."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = (
    "common",
    "accounts",
    "departments",
    "conversations",
    "whatsapp",
    "botflows",
    "reports",
    "integrations",
    "supportdesk",
)


def test_the_import_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--config", str(ROOT / ".importlinter")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def _function_level_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of another app made inside a function of ``path``."""
    own = path.relative_to(ROOT).parts[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            names = []
            if isinstance(inner, ast.Import):
                names = [alias.name for alias in inner.names]
            elif isinstance(inner, ast.ImportFrom) and inner.level == 0 and inner.module:
                names = [inner.module]
            found.extend(
                (inner.lineno, name)
                for name in names
                if name.split(".")[0] in APPS and name.split(".")[0] != own
            )
    return found


def test_no_app_imports_another_inside_a_function_to_dodge_a_cycle():
    offenders = []
    for app in APPS:
        if app == "supportdesk":  # the top may know everyone, however it imports them
            continue
        for path in sorted((ROOT / app).rglob("*.py")):
            if "tests" in path.parts or "migrations" in path.parts:
                continue
            offenders += [
                f"{path.relative_to(ROOT)}:{line} {name}"
                for line, name in _function_level_imports(path)
            ]
    assert offenders == []
