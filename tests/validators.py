"""Outside validators the suite runs on what people see: the Nu HTML checker and axe-core.

Both come from npm (`tests/node/package.json`, installed by `scripts/test`): `vnu.jar`
runs on Debian's Java, axe-core is injected into a page open in headless Chromium.
A test that needs one skips with the reason when it is not installed, so a partial
checkout still runs the rest; `scripts/test` installs both, so CI never skips them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

NODE_MODULES = Path(__file__).resolve().parent / "node" / "node_modules"
VNU_JAR = NODE_MODULES / "vnu-jar" / "build" / "dist" / "vnu.jar"
AXE_JS = NODE_MODULES / "axe-core" / "axe.min.js"


@dataclass(frozen=True)
class VnuMessage:
    document: str
    kind: str  # "error", "info" (warnings are infos with subType "warning")
    message: str
    extract: str

    def __str__(self) -> str:
        return f"{self.document}: {self.kind}: {self.message} [{self.extract.strip()}]"


def require_vnu() -> None:
    if not VNU_JAR.exists() or shutil.which("java") is None:
        pytest.skip("vnu.jar or java missing: run scripts/test (npm install in tests/node)")


def vnu_check(documents: dict[str, str], *, errors_only: bool = True) -> list[VnuMessage]:
    """Validate HTML documents (name -> markup) in one run of vnu.jar; return its messages.

    One Java start-up costs about a second, so every document of a test goes in one call.
    """
    require_vnu()
    with tempfile.TemporaryDirectory() as folder:
        paths: dict[str, str] = {}
        for index, (name, markup) in enumerate(documents.items()):
            path = Path(folder) / f"doc{index}.html"
            path.write_text(markup, encoding="utf-8")
            paths[path.as_uri().replace("file:///", "file:/")] = name
        args = ["java", "-jar", str(VNU_JAR), "--format", "json", "--exit-zero-always"]
        if errors_only:
            args.append("--errors-only")
        result = subprocess.run(
            [*args, *(str(Path(folder) / f"doc{i}.html") for i in range(len(documents)))],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    report: dict[str, Any] = json.loads(result.stderr or result.stdout or '{"messages": []}')
    messages = []
    for item in report.get("messages", []):
        kind = item.get("subType") or item.get("type", "")
        messages.append(
            VnuMessage(
                document=paths.get(item.get("url", ""), item.get("url", "")),
                kind=kind,
                message=item.get("message", ""),
                extract=item.get("extract", ""),
            )
        )
    return messages


def require_axe() -> None:
    if not AXE_JS.exists():
        pytest.skip("axe-core missing: run scripts/test (npm install in tests/node)")


async def axe_violations(
    page: Any, *, impacts: tuple[str, ...] = ("serious", "critical")
) -> list[str]:
    """Run axe-core in an open Playwright page; the violations of the given impacts.

    axe is injected with `add_script_tag(content=...)`, which a strict CSP refuses; the
    caller's page may be loaded with `bypass_csp=True` on its browser context for that.
    """
    require_axe()
    await page.add_script_tag(content=AXE_JS.read_text(encoding="utf-8"))
    result = await page.evaluate("async () => await axe.run(document)")
    found = []
    for violation in result["violations"]:
        if violation.get("impact") in impacts:
            targets = [node.get("target") for node in violation.get("nodes", [])][:5]
            found.append(
                f"{violation['id']} ({violation['impact']}): {violation['help']} {targets}"
            )
    return found
