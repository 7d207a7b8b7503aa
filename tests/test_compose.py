"""docker-compose.yml starts with no secret of its own, pins its images, and `.env.example`
names every variable it reads.

Docker cannot run here, so the file is read as compose reads it: YAML first, then each
string value interpolated from the environment (`${VAR}`, `${VAR:-default}`,
`${VAR-default}`, `${VAR:?message}`, `${VAR?message}`, `$$`), with `.env` parsed as
compose parses its simple `NAME=value` lines.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
REQUIRED_SECRETS = ("BROADSHEET_SECRET_KEY", "BROADSHEET_ADMIN_API_KEY", "POSTGRES_PASSWORD")
SECRET_WORDS = ("SECRET", "KEY", "PASSWORD")

_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"required variable {name} is missing a value: {message}")
        self.name = name


def interpolate(value: str, env: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        current = env.get(name)
        unset_or_empty = not current
        missing = unset_or_empty if op and op.startswith(":") else current is None
        if op in (":-", "-"):
            return arg if missing else (current or "")
        if op in (":?", "?") and missing:
            raise MissingVariable(name, arg)
        return current or ""

    return _REFERENCE.sub(replace, value)


def resolve(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: resolve(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(item, env) for item in node]
    return node


def compose(env: dict[str, str]) -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    resolved = resolve(loaded, env)
    assert isinstance(resolved, dict)
    return resolved


def example_env() -> dict[str, str]:
    """`.env.example` as compose reads it: its uncommented `NAME=value` lines."""
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def referenced() -> list[re.Match[str]]:
    text = COMPOSE.read_text(encoding="utf-8")
    return [m for m in _REFERENCE.finditer(text) if not m["escaped"]]


def filled() -> dict[str, str]:
    return {
        **example_env(),
        **{name: f"{name.lower()}-0123456789-abcdefghij" for name in REQUIRED_SECRETS},
    }


def test_every_image_is_pinned_to_a_version() -> None:
    services = compose(filled())["services"]
    for name, service in services.items():
        if "image" not in service:
            assert "build" in service, f"{name} has neither image nor build"
            continue
        image = service["image"]
        _, _, tag = image.rpartition(":")
        assert re.fullmatch(r"v?\d+\.\d+(\.\d+)?", tag), f"{name}: {image} is not pinned"


@pytest.mark.parametrize("secret", REQUIRED_SECRETS)
def test_compose_refuses_to_start_without_each_secret(secret: str) -> None:
    env = filled()
    for absent in ({k: v for k, v in env.items() if k != secret}, {**env, secret: ""}):
        with pytest.raises(MissingVariable) as refused:
            compose(absent)
        assert refused.value.name == secret
        assert ".env.example" in str(refused.value)


def test_the_example_as_copied_refuses_to_start_until_its_secrets_are_filled_in() -> None:
    example = example_env()
    for secret in REQUIRED_SECRETS:
        assert example.get(secret) == "", f"{secret}: the example must leave it empty"
    with pytest.raises(MissingVariable):
        compose(example)


def test_no_secret_has_a_default_value() -> None:
    for match in referenced():
        name = match["name"] or match["bare"]
        if any(word in name for word in SECRET_WORDS):
            if match["op"] in (":-", "-"):
                assert match["arg"] == "", f"{name} has a default: {match[0]}"
            elif name in REQUIRED_SECRETS:
                assert match["op"] == ":?", f"{name} must be required with :?, got {match[0]}"


def test_every_variable_compose_reads_is_in_the_env_example() -> None:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    named = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))
    used = {match["name"] or match["bare"] for match in referenced()}
    assert used - named == set()
    assert "secrets.token_urlsafe" in text  # how to make a secret


def test_the_services_get_the_secrets_and_base_url_is_overridable() -> None:
    env = filled()
    services = compose(env)["services"]
    for name in ("migrate", "api", "worker"):
        settings = services[name]["environment"]
        assert settings["BROADSHEET_SECRET_KEY"] == env["BROADSHEET_SECRET_KEY"]
        assert settings["BROADSHEET_ADMIN_API_KEY"] == env["BROADSHEET_ADMIN_API_KEY"]
        assert f":{env['POSTGRES_PASSWORD']}@postgres:" in settings["BROADSHEET_DATABASE_URL"]
        assert settings["BROADSHEET_BASE_URL"] == "http://localhost:8000"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == env["POSTGRES_PASSWORD"]

    public = compose({**env, "BROADSHEET_BASE_URL": "https://news.example.com"})
    assert public["services"]["api"]["environment"]["BROADSHEET_BASE_URL"] == (
        "https://news.example.com"
    )
