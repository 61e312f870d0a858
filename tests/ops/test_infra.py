"""The deployment files: every YAML parses, and each names commands and settings the code has."""

from __future__ import annotations

import ast
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import pytest
import yaml  # type: ignore[import-untyped]

from api.app import create_app
from ledger.cli import build_parser
from ledger.settings import Settings

ROOT: Final = Path(__file__).resolve().parents[2]
DEPLOY: Final = ROOT / "infra" / "deploy"
KUBERNETES: Final = DEPLOY / "kubernetes"
ENV_NAME: Final = re.compile(r"\bLEDGER_[A-Z0-9_]+\b")


class Recording(Mapping[str, str]):
    """An empty environment that remembers every name asked of it."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:
        self.asked.add(name)
        return default

    def __contains__(self, name: object) -> bool:
        self.asked.add(str(name))
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def code_env_names() -> set[str]:
    """Every LEDGER_* name the service's code spells out as a string."""
    names: set[str] = set()
    for package in ("ledger", "api", "projections"):
        for source in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and re.fullmatch(r"LEDGER_[A-Z0-9_]+", node.value)
                ):
                    names.add(node.value)
    return names


def yaml_files() -> list[Path]:
    return sorted(p for p in (ROOT / "infra").rglob("*") if p.suffix in (".yaml", ".yml"))


def documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def kubernetes_objects() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(KUBERNETES.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in documents(path)
    ]


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    found: list[dict[str, Any]] = spec.get("containers", [])
    return found


def assert_a_ledger_command(args: list[str]) -> None:
    """`ledger ARGS` parses: the sub-command exists."""
    parsed = build_parser().parse_args(args)
    assert callable(parsed.command), args


def image_instruction(name: str) -> Any:
    """The JSON form of a Containerfile instruction (ENTRYPOINT, CMD)."""
    text = (DEPLOY / "Containerfile").read_text(encoding="utf-8")
    (line,) = [ln for ln in text.splitlines() if ln.startswith(f"{name} ")]
    return yaml.safe_load(line.removeprefix(f"{name} "))


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_yaml_file_parses(path: Path) -> None:
    assert documents(path), f"{path} holds no document"


def test_the_settings_module_reads_only_names_the_code_knows() -> None:
    recording = Recording()
    Settings.from_env(recording)
    assert recording.asked <= code_env_names()
    assert {"LEDGER_DATABASE_URL", "LEDGER_LOG_FORMAT", "LEDGER_RUN_PROJECTIONS"} <= recording.asked


def test_every_setting_the_deployment_files_name_is_one_the_code_reads() -> None:
    known = code_env_names()
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file():
            unknown = set(ENV_NAME.findall(path.read_text(encoding="utf-8"))) - known
            assert not unknown, f"{path.relative_to(ROOT)} names unknown settings {unknown}"


def test_the_image_runs_the_ledger_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoint, command = image_instruction("ENTRYPOINT"), image_instruction("CMD")
    assert entrypoint == ["ledger"] and scripts["ledger"] == "ledger.cli:main"
    assert command == ["serve"]
    assert_a_ledger_command(command)
    text = (DEPLOY / "Containerfile").read_text(encoding="utf-8")
    for package in ("ledger", "projections", "api", "infra"):
        assert f"COPY {package} {package}" in text  # what the wheel packages
    assert "LEDGER_HOST=0.0.0.0" in text  # reachable from outside the container


def test_every_container_and_service_runs_a_real_ledger_command() -> None:
    commands = [c["args"] for obj in kubernetes_objects() for c in containers(obj)]
    compose = documents(DEPLOY / "compose.yaml")[0]["services"]
    commands += [s["command"] for s in compose.values() if "build" in s]  # the ledger image
    for unit in DEPLOY.glob("*.service"):
        for line in unit.read_text().splitlines():
            if line.startswith("ExecStart="):
                program, *args = shlex.split(line.removeprefix("ExecStart="))
                assert Path(program).name == "ledger"
                commands.append(args)
    assert ["migrate"] in commands and ["serve"] in commands
    assert ["projections", "run"] in commands
    for args in commands:
        assert_a_ledger_command(args)


def test_the_compose_file_has_postgres_two_api_replicas_and_a_balancer() -> None:
    services = documents(DEPLOY / "compose.yaml")[0]["services"]
    apis = [name for name, s in services.items() if s.get("command") == ["serve"]]
    assert len(apis) == 2
    for name in apis:
        env = services[name]["environment"]
        assert env["LEDGER_RUN_PROJECTIONS"] == "false" and env["LEDGER_HOST"] == "0.0.0.0"
        assert "LEDGER_DATABASE_URL" in env and "@postgres:5432/" in env["LEDGER_DATABASE_URL"]
    assert services["postgres"]["image"].startswith("postgres:")
    balancer = (DEPLOY / "nginx.conf").read_text()
    for name in apis:
        assert f"server {name}:8000" in balancer
    assert "./nginx.conf" in services["lb"]["volumes"][0]


def test_the_kubernetes_manifests_fit_together_and_probe_real_routes(settings: Settings) -> None:
    objects = kubernetes_objects()
    kinds = {(obj["kind"], obj["metadata"]["name"]) for obj in objects}
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job"):
        assert any(k == kind for k, _ in kinds), kind
    kustomization = documents(KUBERNETES / "kustomization.yaml")[0]
    for resource in kustomization["resources"]:
        assert (KUBERNETES / resource).is_file(), resource

    routes = set(create_app(settings).route_handler_method_map)
    (api,) = [
        o for o in objects if o["metadata"]["name"] == "ledger-api" and o["kind"] == "Deployment"
    ]
    (container,) = containers(api)
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert {"/ready", "/health", "/metrics", "/dashboard"} <= routes
    port_names = {p["name"] for p in container["ports"]}
    labels = api["spec"]["template"]["metadata"]["labels"]
    for obj in objects:
        selector = obj.get("spec", {}).get("selector", {})
        wanted = selector.get("matchLabels", selector) if obj["kind"] != "Deployment" else {}
        if (
            obj["kind"] in ("Service", "PodDisruptionBudget")
            and wanted.get("app.kubernetes.io/component") == "api"
        ):
            assert wanted.items() <= labels.items(), obj["metadata"]["name"]
        if obj["kind"] == "Service":
            assert all(p["targetPort"] in port_names for p in obj["spec"]["ports"])
        if obj["kind"] == "HorizontalPodAutoscaler":
            assert ("Deployment", obj["spec"]["scaleTargetRef"]["name"]) in kinds
    known = code_env_names()
    for obj in objects:
        names = set(obj.get("data", {})) | set(obj.get("stringData", {}))
        names |= {e["name"] for c in containers(obj) for e in c.get("env", [])}
        assert names <= known, names - known
