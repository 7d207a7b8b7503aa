"""The built package works on its own: a wheel, installed non-editable into a fresh
virtualenv, runs Broadsheet from an empty directory, as the Docker image does.

The wheel is built from exactly the paths the Dockerfile copies, offline (no build
isolation, no downloads). The new virtualenv borrows the project's dependencies through a
`.pth` line naming the project virtualenv's site-packages, a plain path: the editable
install's finder there is not loaded, so `app` can only come from the wheel. Then
`broadsheet db upgrade`, `serve` and `worker` run against a fresh SQLite file and a real
SMTP server, and a reader subscribes, an editor previews and sends, and the archive, the
issue page and the Atom feed answer: every template, static file and migration has to
come from the installed package.
"""

from __future__ import annotations

import email
import email.policy
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest

from tests.conftest import ROOT, SECRET, TEST_DB
from tests.factories import wait_healthy
from tests.smtp import MailSink, free_port

# The install under test uses SQLite on its own whatever the suite's database is: running
# it once per CI run is enough, and building a wheel and a virtualenv twice is not free.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        TEST_DB == "postgresql", reason="the built-install test runs once, in the SQLite suite"
    ),
]

ADMIN_KEY = "packaging-admin-key-0123456789abcdef"
ATOM = "{http://www.w3.org/2005/Atom}"
WAIT = 30.0  # seconds any one step may take before the test gives up


@dataclass(frozen=True)
class Installed:
    source: Path  # what the wheel was built from: the Dockerfile's copies of the repository
    wheel: Path
    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def script(self) -> Path:
        return self.venv / "bin" / "broadsheet"


def dockerfile_sources() -> list[str]:
    """The repository paths the Dockerfile copies into the image before `pip install .`."""
    sources: list[str] = []
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        words = line.split()
        # `COPY --from=...` copies between stages, not from the repository.
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            sources.extend(words[1:-1])
    return sources


def _run(
    command: Sequence[str | Path], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("packaging")
    source = base / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in dockerfile_sources():
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    wheels = base / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "--no-build-isolation"]
        + ["--wheel-dir", str(wheels), str(source)]
    )
    (wheel,) = wheels.glob("broadsheet-*.whl")

    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    purelib = _run(
        [venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    ).stdout.strip()
    project_site = sysconfig.get_paths()["purelib"]
    Path(purelib, "broadsheet_test_dependencies.pth").write_text(project_site + "\n")
    _run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install"]
        + ["--no-deps", "--no-index", str(wheel)]
    )
    return Installed(source=source, wheel=wheel, venv=venv)


def _environment(home: Path, **values: str) -> dict[str, str]:
    """A clean environment: no PYTHONPATH, no development switches from the caller."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **values}


def test_the_wheel_maps_every_file_of_app_email_templates_and_migrations_into_app(
    installed: Installed,
) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    expected = {
        "app": "app",
        "email_templates": "app/email_templates",
        "migrations": "app/migrations",
    }
    missing = []
    for folder, target in expected.items():
        for path in (installed.source / folder).rglob("*"):
            if path.is_file():
                name = f"{target}/{path.relative_to(installed.source / folder).as_posix()}"
                if name not in names:
                    missing.append(name)
    assert missing == [], (
        f"not in the wheel: {missing}; a new package or data file needs its line in "
        "pyproject.toml ([tool.setuptools] packages, package-data)"
    )
    top_level = {name.split("/", 1)[0] for name in names}
    assert {t for t in top_level if not t.endswith(".dist-info")} == {"app"}


def test_the_installed_package_is_imported_not_the_repository(
    installed: Installed, tmp_path: Path
) -> None:
    found = _run(
        [installed.python, "-c", "import app, app.migrations; print(app.__file__)"],
        cwd=tmp_path,
        env=_environment(tmp_path),
    ).stdout.strip()
    assert Path(found).is_relative_to(installed.venv), found


@pytest.fixture
def running(
    installed: Installed, tmp_path: Path, smtp_server: tuple[MailSink, int]
) -> Iterator[str]:
    """`broadsheet db upgrade`, then `serve` and `worker`, from an empty directory."""
    workdir = tmp_path / "empty"
    workdir.mkdir()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = _environment(
        tmp_path,
        BROADSHEET_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'broadsheet.sqlite'}",
        BROADSHEET_SMTP_URL=f"smtp://127.0.0.1:{smtp_server[1]}",
        BROADSHEET_BASE_URL=base_url,
        BROADSHEET_SECRET_KEY=SECRET,
        BROADSHEET_ADMIN_API_KEY=ADMIN_KEY,
        BROADSHEET_LOG_LEVEL="WARNING",
    )
    upgraded = _run([installed.script, "db", "upgrade"], cwd=workdir, env=env)
    assert "up to date" in upgraded.stdout

    logs = tmp_path / "logs"
    logs.mkdir()
    commands = {
        "serve": [installed.script, "serve", "--host", "127.0.0.1", "--port", str(port)],
        "worker": [installed.script, "worker"],
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, command in commands.items():
            with (logs / f"{name}.log").open("wb") as log:
                processes[name] = subprocess.Popen(
                    [str(c) for c in command],
                    cwd=workdir,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
        wait_healthy(
            f"{base_url}/healthz", WAIT, processes=processes.values(), logs=lambda: _tail(logs)
        )
        yield base_url
        assert list(workdir.iterdir()) == [], "the installed commands wrote into the cwd"
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _tail(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.iterdir()))


def _mail_to(mailbox: MailSink, address: str) -> EmailMessage:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = mailbox.to(address)
        if found:
            return found[0].message
        time.sleep(0.1)
    raise AssertionError(f"no email for {address} within {WAIT:.0f} s")


def _html_and_text(message: EmailMessage) -> tuple[str, str]:
    html = message.get_body(preferencelist=("html",))
    text = message.get_body(preferencelist=("plain",))
    assert html is not None, message.get_content_type()
    assert text is not None, message.get_content_type()
    return str(html.get_content()), str(text.get_content())


def test_an_installed_broadsheet_subscribes_previews_sends_and_publishes(
    running: str, mailbox: MailSink
) -> None:
    api = httpx.Client(
        base_url=running, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=WAIT
    )
    public = httpx.Client(base_url=running, timeout=WAIT)
    with api, public:
        created = api.post(
            "/api/v1/newsletters",
            json={
                "slug": "packaged",
                "name": "The Packaged Gazette",
                "from_name": "Ada at the Gazette",
                "from_email": "ada@example.com",
                "postal_address": "1 Main Street\nSpringfield",
            },
        )
        assert created.status_code == 201, created.text
        added = api.post(
            "/api/v1/newsletters/packaged/subscribers",
            json={"email": "grace@example.com", "consent": "asked in person"},
        )
        assert added.status_code == 201, added.text

        # A reader subscribes on the public form; the confirmation is rendered from the
        # email templates the package ships.
        subscribed = public.post(
            "/newsletters/packaged/subscribe",
            data={"email": "reader@example.com", "name": "Reader"},
            headers={"Accept": "text/html"},
        )
        assert subscribed.status_code < 400, subscribed.text
        confirmation = _mail_to(mailbox, "reader@example.com")
        html, text = _html_and_text(confirmation)
        assert "The Packaged Gazette" in html
        assert f"{running}/confirm/" in html
        assert "{{" not in html
        assert "{%" not in html
        assert f"{running}/confirm/" in text

        issue = api.post(
            "/api/v1/newsletters/packaged/issues",
            json={
                "subject": "Issue one from the wheel",
                "intro": "Hello from an installed package.",
                "stories": [
                    {
                        "title": "Templates travel inside the package",
                        "body": "Nothing is read from the repository.",
                        "url": "https://example.com/story",
                    }
                ],
            },
        )
        assert issue.status_code == 201, issue.text
        issue_id = issue.json()["id"]

        preview = {
            fmt: api.get(f"/api/v1/issues/{issue_id}/preview", params={"format": fmt})
            for fmt in ("html", "text", "eml")
        }
        assert all(r.status_code == 200 for r in preview.values()), {
            f: r.text[:500] for f, r in preview.items()
        }
        assert "Templates travel inside the package" in preview["html"].text
        assert "<html" in preview["html"].text.lower()
        assert "Templates travel inside the package" in preview["text"].text
        eml = email.message_from_bytes(preview["eml"].content, policy=email.policy.default)
        assert isinstance(eml, EmailMessage)
        assert eml["Subject"] == "Issue one from the wheel"
        assert "Templates travel inside the package" in _html_and_text(eml)[0]

        sent = api.post(f"/api/v1/issues/{issue_id}/send")
        assert sent.status_code == 202, sent.text
        assert sent.json()["recipients"] == 1
        delivered_html, _ = _html_and_text(_mail_to(mailbox, "grace@example.com"))
        assert "Templates travel inside the package" in delivered_html

        deadline = time.monotonic() + WAIT
        while api.get(f"/api/v1/issues/{issue_id}").json()["status"] != "sent":
            assert time.monotonic() < deadline, "the issue never became sent"
            time.sleep(0.1)

        archive = public.get("/newsletters/packaged/archive")
        assert archive.status_code == 200, archive.text
        assert "Issue one from the wheel" in archive.text
        page = public.get("/newsletters/packaged/issues/1")
        assert page.status_code == 200, page.text
        assert "Templates travel inside the package" in page.text
        feed = public.get("/newsletters/packaged/feed.xml")
        assert feed.status_code == 200, feed.text
        assert feed.headers["content-type"].startswith("application/atom+xml")
        entries = ElementTree.fromstring(feed.content).findall(f"{ATOM}entry")
        assert [e.findtext(f"{ATOM}title") for e in entries] == ["Issue one from the wheel"]
        stylesheet = public.get("/static/broadsheet.css")
        assert stylesheet.status_code == 200
        assert stylesheet.headers["content-type"].startswith("text/css")
