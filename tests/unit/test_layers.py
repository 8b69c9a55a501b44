"""Which way the imports go: the product starts the sandbox but never borrows from it, and the
sandbox (an emulator of Sinch) knows nothing of the product that it stands in front of.

Read from the source with :mod:`ast`, so that an import inside a function or under
``TYPE_CHECKING`` counts as much as one at the top.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "campaign"
SANDBOX = PACKAGE / "sandbox"

# The only product modules that may import the sandbox: they start it.
STARTS_THE_SANDBOX = frozenset(
    {
        "campaign/cli/commands.py",
        "campaign/cli/parser.py",
        "campaign/demo.py",
        "campaign/resources.py",
    }
)

# What the sandbox may take from outside itself: neutral, pure modules.
SANDBOX_MAY_IMPORT = frozenset(
    {
        "campaign.errors",
        "campaign.jsonutil",
        "campaign.lazy",
        "campaign.localcredentials",
        "campaign.messages",
        "campaign.models",
        "campaign.serving",
        "campaign.sinch.signature",
    }
)
# Named on their own, so that a failure says plainly what must never happen.
SANDBOX_MUST_NOT_IMPORT = ("campaign.config", "campaign.runner", "campaign.cli")


def _name(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def _imports(path: Path) -> Iterator[str]:
    """Every ``campaign...`` name that ``path`` imports, in full (``from campaign.errors
    import ConfigError`` gives ``campaign.errors.ConfigError``, within ``campaign.errors``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        yield from (name for name in names if name == "campaign" or name.startswith("campaign."))


def _within(name: str, module: str) -> bool:
    return name == module or name.startswith(module + ".")


def _product_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if SANDBOX not in p.parents)


def test_the_walk_finds_the_code() -> None:
    names = {_name(p) for p in _product_files()}
    assert {"campaign/campaignfile.py", "campaign/messages/content.py"} <= names
    assert any(name.startswith("campaign/loading/") for name in names)
    assert any(name.startswith("campaign/store/") for name in names)
    assert len(list(SANDBOX.glob("*.py"))) > 10


@pytest.mark.parametrize("path", _product_files(), ids=_name)
def test_product_code_imports_the_sandbox_only_where_it_starts_it(path: Path) -> None:
    if _name(path) in STARTS_THE_SANDBOX:
        return
    borrowed = sorted({n for n in _imports(path) if _within(n, "campaign.sandbox")})
    assert not borrowed, f"{_name(path)} imports the emulator: {borrowed}"


@pytest.mark.parametrize("path", sorted(SANDBOX.glob("*.py")), ids=_name)
def test_the_sandbox_imports_only_neutral_modules(path: Path) -> None:
    outside = {n for n in _imports(path) if not _within(n, "campaign.sandbox")}
    forbidden = sorted(n for n in outside for m in SANDBOX_MUST_NOT_IMPORT if _within(n, m))
    assert not forbidden, f"{_name(path)} imports product code: {forbidden}"
    unknown = sorted(n for n in outside if not any(_within(n, m) for m in SANDBOX_MAY_IMPORT))
    assert not unknown, f"{_name(path)} imports modules not known to be neutral: {unknown}"
