"""What every dashboard screen is checked for in Chromium, and a logged-in browser.

`DashboardBrowser.check(path, name)` opens a page at 1280 and 375 px, saves screenshots
under /tmp/shots/admin/, and collects: horizontal overflow at 375 px, axe-core's serious
and critical violations, every request to another host, and the page's HTML for one vnu
run at the end (`validate()`), since each Java start-up costs a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.admin.support import PASSWORD
from tests.validators import axe_violations, vnu_check

SHOTS = Path("/tmp/shots/admin")
WIDTHS = ((1280, 900), (375, 812))


@dataclass
class DashboardBrowser:
    browser: Any
    base_url: str
    email: str
    password: str = PASSWORD
    problems: list[str] = field(default_factory=list)
    documents: dict[str, str] = field(default_factory=dict)
    _contexts: dict[int, Any] = field(default_factory=dict)

    async def context(self, width: int = 1280, height: int = 900) -> Any:
        """A logged-in browser context at this width (CSP bypassed so axe can run)."""
        if width not in self._contexts:
            context = await self.browser.new_context(
                viewport={"width": width, "height": height}, bypass_csp=True
            )
            page = await context.new_page()
            await page.goto(f"{self.base_url}/admin/login")
            await page.get_by_label("Email address").fill(self.email)
            await page.get_by_label("Password").fill(self.password)
            await page.get_by_role("button", name="Log in").click()
            await page.wait_for_url(f"{self.base_url}/admin")
            await page.close()
            self._contexts[width] = context
        return self._contexts[width]

    async def check(self, path: str, name: str) -> Any:
        """Open `path` at both widths, record what is wrong; return the 1280 px page."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        first = None
        for width, height in WIDTHS:
            context = await self.context(width, height)
            page = await context.new_page()
            foreign: list[str] = []
            page.on("request", lambda request, seen=foreign: self._note(request.url, seen))
            response = await page.goto(self.base_url + path)
            assert response is not None
            if response.status >= 400:
                self.problems.append(f"{name}: {path} answered {response.status}")
            await page.wait_for_load_state("networkidle")
            await page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth > document.documentElement.clientWidth"
            )
            if overflow:
                self.problems.append(f"{name}: horizontal scrolling at {width}px")
            if foreign:
                self.problems.append(f"{name}: requests to other hosts {foreign}")
            if width == 1280:
                # vnu reads what the server sent, not the DOM after scripts ran.
                self.documents[name] = await response.text()
                for violation in await axe_violations(page):
                    self.problems.append(f"{name}: axe {violation}")
                first = page
            else:
                await page.close()
        return first

    def _note(self, url: str, foreign: list[str]) -> None:
        if not url.startswith((self.base_url, "data:", "blob:", "about:")):
            foreign.append(url)

    def validate(self) -> list[str]:
        """Everything found, with vnu's errors on every page checked."""
        found = list(self.problems)
        if self.documents:
            found += [str(message) for message in vnu_check(self.documents)]
        return found

    async def close(self) -> None:
        for context in self._contexts.values():
            await context.close()
