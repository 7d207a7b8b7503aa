"""Real Postfix programs on loopback for the SMTP fast-path tests.

- `SmtpSink`: Postfix's `smtp-sink` (offers PIPELINING, not CHUNKING), dumping every
  transaction to files so the bytes can be read back, optionally with faults (`-Q`, `-q`).
- `PostfixRelay`: a whole Postfix instance (master, smtpd, cleanup, qmgr, smtp) with its
  own configuration and queue in a temporary directory, listening on one loopback port.
  Its smtpd offers PIPELINING and CHUNKING; it relays what it accepts to a test sink
  (aiosmtpd), and refuses chosen senders, recipients and subjects with chosen replies.
Both need the `postfix` Debian package (`scripts/test` installs it); Postfix also needs
to start as root, which `scripts/test` is (the tests are skipped otherwise, saying why).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.smtp import free_port

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"


def _wait_for_port(port: int, timeout: float = 15.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def need_postfix(*, root: bool = False) -> None:
    if not Path(SMTP_SINK).exists() or not Path(POSTFIX).exists():
        pytest.skip("Postfix is not installed (scripts/test installs the postfix package)")
    if root and os.geteuid() != 0:
        pytest.skip("a Postfix instance must be started as root")


class SmtpSink:
    """`smtp-sink` on a free loopback port; each transaction dumped to a directory.

    As root, smtp-sink runs as `nobody`, which cannot reach pytest's private temporary
    directories, so the dumps go to a directory of their own, removed by `stop`.
    """

    def __init__(self, flags: Sequence[str] = ()) -> None:
        need_postfix()
        self.port = free_port()
        dump_dir = self.dump_dir = Path(tempfile.mkdtemp(prefix="broadsheet-smtp-sink-"))
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        if user:
            shutil.chown(dump_dir, "nobody")
        self.process = subprocess.Popen(
            [SMTP_SINK, *user, *flags, "-d", f"{dump_dir}/msg.", f"127.0.0.1:{self.port}", "64"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def dumps(self) -> list[bytes]:
        return [path.read_bytes() for path in sorted(self.dump_dir.iterdir())]

    def wait_for(self, count: int, last_line: bytes, timeout: float = 10.0) -> list[bytes]:
        """The dumps (LF line endings), once `count` of them hold `last_line` (bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dumps = self.dumps()
            if sum(last_line + b"\n" in dump for dump in dumps) >= count:
                return dumps
            time.sleep(0.05)
        return self.dumps()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        shutil.rmtree(self.dump_dir, ignore_errors=True)


_MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
postlog unix-dgram n - n - 1 postlogd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
"""


class PostfixRelay:
    """A Postfix instance of its own, relaying to `relay_port` (an aiosmtpd sink).

    `refuse` maps an address (sender or recipient) to the reply that refuses it at RCPT
    time; `refuse_subjects` maps a Subject to a reply given at the end of the message.
    """

    def __init__(
        self,
        relay_port: int,
        *,
        refuse: dict[str, str] | None = None,
        refuse_subjects: dict[str, str] | None = None,
    ) -> None:
        need_postfix(root=True)
        # Postfix's daemons run as `postfix`, which cannot enter pytest's private
        # temporary directories: the instance gets a directory of its own.
        root = self.root = Path(tempfile.mkdtemp(prefix="broadsheet-postfix-"))
        root.chmod(0o755)
        self.port = free_port()
        conf, queue, data = root / "conf", root / "queue", root / "data"
        for path in (conf, queue, data):
            path.mkdir(parents=True, exist_ok=True)
        shutil.chown(data, "postfix")
        access = " ".join(f"{{ {addr} = {reply} }}" for addr, reply in (refuse or {}).items())
        access_checks = (
            f"check_sender_access inline:{{ {access} }}, "
            f"check_recipient_access inline:{{ {access} }}, "
            if access
            else ""
        )
        checks = "\n".join(
            f"/^Subject: {subject}$/ REJECT {reply}"
            for subject, reply in (refuse_subjects or {}).items()
        )
        (conf / "header_checks").write_text(checks + "\n")
        (conf / "main.cf").write_text(
            "\n".join(
                [
                    "compatibility_level = 3.6",
                    f"queue_directory = {queue}",
                    f"data_directory = {data}",
                    "mail_owner = postfix",
                    "myhostname = relay.test",
                    "mydestination =",
                    "inet_interfaces = 127.0.0.1",
                    "inet_protocols = ipv4",
                    "mynetworks = 127.0.0.0/8",
                    f"maillog_file = {root}/maillog",
                    f"maillog_file_prefixes = {root}",
                    f"relayhost = [127.0.0.1]:{relay_port}",
                    "smtp_tls_security_level = none",
                    f"smtpd_recipient_restrictions = {access_checks}permit_mynetworks, reject",
                    f"header_checks = regexp:{conf}/header_checks",
                    "smtpd_banner = $myhostname ESMTP",
                    "",
                ]
            )
        )
        (conf / "master.cf").write_text(_MASTER_CF.format(port=self.port))
        self._postfix("start")
        _wait_for_port(self.port)

    def _postfix(self, command: str) -> None:
        done = subprocess.run(
            [POSTFIX, "-c", str(self.root / "conf"), command],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise AssertionError(f"postfix {command} failed: {done.stderr}\n{self.log()}")

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def log(self) -> str:
        path = self.root / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        subprocess.run(
            [POSTFIX, "-c", str(self.root / "conf"), "stop"], capture_output=True, timeout=60
        )
        shutil.rmtree(self.root, ignore_errors=True)
