"""The house rules import-linter cannot say alone, checked on the real import graph.

`lint-imports` (scripts/test, contracts in pyproject.toml) keeps the layers, forbids
cycles and keeps each repository to its feature. What it cannot name is a feature's
*public face*: the few modules another feature may import. Everything else in a feature
(its repository, engine, parsers, pages) is its own business, so it can change without
touching anyone else. A module that grows into another feature's face belongs in this
list with a reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

APP = Path(__file__).resolve().parent.parent / "app"

FEATURES = (
    "throttle",
    "accounts",
    "keys",
    "newsletters",
    "subscribers",
    "issues",
    "delivery",
    "scheduling",
    "tracking",
    "health",
    "pages",
    "admin",
)

# Modules any feature may offer to another.
FACE = ("service", "schemas", "errors", "deps")

# Modules a particular feature offers beyond those, and why.
EXTRA_FACE = {
    "issues": ("lifecycle",),  # the one way to move an issue's state (SPEC section 2)
    "subscribers": ("bounces",),  # what a bounce does, wherever it is reported
    "delivery": ("metrics",),  # the Prometheus registry /metrics renders
    "pages": ("templates",),  # the one Jinja2 environment of the site's pages (and /admin)
}

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _feature(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FEATURES else None


def test_features_import_each_other_only_through_their_public_face() -> None:
    graph = grimp.build_graph("app")
    wrong = []
    for importer in sorted(graph.modules):
        source = _feature(importer)
        if source is None:
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            target = _feature(imported)
            if target is None or target == source:
                continue
            module = imported.split(".")[2] if imported.count(".") >= 2 else ""
            if module not in FACE + EXTRA_FACE.get(target, ()):
                wrong.append(f"{importer} -> {imported}")
    assert wrong == [], "a feature reached into another's internals:\n" + "\n".join(wrong)


def _sizes() -> tuple[list[str], list[str]]:
    long_modules, long_functions = [], []
    for path in sorted(APP.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        name = path.relative_to(APP.parent).as_posix()
        lines = len(source.splitlines())
        if lines > MAX_MODULE_LINES:
            long_modules.append(f"{name}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{name}:{node.lineno} {node.name}: {length} lines")
    return long_modules, long_functions


def test_no_module_is_over_400_lines() -> None:
    long_modules, _ = _sizes()
    assert long_modules == [], "split these modules:\n" + "\n".join(long_modules)


def test_no_function_is_over_60_lines() -> None:
    _, long_functions = _sizes()
    assert long_functions == [], "split these functions:\n" + "\n".join(long_functions)
