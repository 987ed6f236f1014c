"""The Kubernetes manifests: valid against the Kubernetes schemas, and true to the services.

Both kustomizations (base, dev overlay) are rendered with `kubectl kustomize` (no network) and
every rendered object is validated with kubernetes-validate. Then each workload is checked against
what the services really are: the image's Dockerfile (port, user), the console script and its
`serve`/`migrate` commands, the probe paths the app serves, and every environment name set
(directly, or through a ConfigMap or Secret) is a field of that service's settings class.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic_settings import BaseSettings

from modelyard_common.settings import ServiceSettings
from modelyard_deployer.settings import DeployerSettings
from modelyard_gateway.settings import GatewaySettings
from modelyard_registry.settings import RegistrySettings

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "deploy" / "k8s"
KUSTOMIZATIONS = ["base", "overlays/dev"]
KUBERNETES_VERSION = "1.30.0"
SETTINGS: dict[str, type[ServiceSettings]] = {
    "registry": RegistrySettings,
    "deployer": DeployerSettings,
    "gateway": GatewaySettings,
}
AUTOSCALED = set(SETTINGS)


def kubectl() -> str:
    found = os.environ.get("MODELYARD_KUBECTL") or shutil.which("kubectl")
    assert found, "kubectl is needed to render the kustomizations (.ci/run installs it)"
    return found


def render(kustomization: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S / kustomization)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def env_names(settings: type[BaseSettings]) -> set[str]:
    """Return every environment name a settings class reads (shared and own prefix)."""
    service = getattr(settings, "service_name", "").upper().replace("-", "_")
    names = set()
    for field in settings.model_fields:
        names.add(f"MODELYARD_{field.upper()}")
        names.add(f"MODELYARD_{service}_{field.upper()}")
    return names


def dockerfile(service: str) -> str:
    """Return the recipe of the service's image: the shared stages of deploy/service.Dockerfile
    and the service's own (`FROM service AS <service>`), not the other services' stages."""
    recipe = (REPO / "deploy" / "service.Dockerfile").read_text()
    blocks = re.split(r"^(?=FROM )", recipe, flags=re.M)
    stages = {block.split()[3]: block for block in blocks if re.match(r"FROM \S+ AS ", block)}
    return stages["builder"] + stages["service"] + stages[service]


def console_script(service: str) -> str:
    project = tomllib.loads((REPO / "services" / service / "pyproject.toml").read_text())
    (script,) = project["project"]["scripts"]
    return str(script)


def test_every_rendered_object_is_valid_kubernetes(rendered: list[dict[str, Any]]) -> None:
    assert len(rendered) >= 20
    for doc in rendered:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            name = f"{doc['kind']}/{doc['metadata']['name']}"
            raise AssertionError(f"{name}: {exc.message} at {list(exc.path)}") from exc


def test_each_service_has_its_workload_objects(rendered: list[dict[str, Any]]) -> None:
    deployments = of_kind(rendered, "Deployment")
    for kind in ("Service", "PodDisruptionBudget", "ConfigMap"):
        names = set(of_kind(rendered, kind))
        for service in SETTINGS:
            assert any(service in n for n in names), f"no {kind} for {service}"
    hpas = of_kind(rendered, "HorizontalPodAutoscaler")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas.values()} == AUTOSCALED
    assert all(h["spec"]["scaleTargetRef"]["name"] in deployments for h in hpas.values())
    jobs = of_kind(rendered, "Job")
    assert set(jobs) == {f"{s}-migrate" for s in SETTINGS}
    assert of_kind(rendered, "Ingress"), "devices and people need a way in"


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    pod = doc["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def _config_keys(
    rendered: list[dict[str, Any]], container: dict[str, Any]
) -> tuple[set[str], list[str]]:
    """Return the environment names a container gets, and the Secrets it needs."""
    names = {e["name"] for e in container.get("env", [])}
    config_maps = of_kind(rendered, "ConfigMap")
    secrets = of_kind(rendered, "Secret")
    missing_secrets = []
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            names |= set(config_maps[source["configMapRef"]["name"]].get("data", {}))
        if "secretRef" in source:
            secret = secrets.get(source["secretRef"]["name"])
            if secret is None:
                missing_secrets.append(source["secretRef"]["name"])
            else:
                names |= set(secret.get("stringData", {})) | set(secret.get("data", {}))
    return names, missing_secrets


def test_workloads_match_what_the_services_really_are(rendered: list[dict[str, Any]]) -> None:
    deployments = of_kind(rendered, "Deployment")
    services = of_kind(rendered, "Service")
    jobs = of_kind(rendered, "Job")
    for service, settings in SETTINGS.items():
        deployment = deployments[service]
        docker = dockerfile(service)
        script = console_script(service)
        (port,) = (int(p) for p in re.findall(r"^EXPOSE (\d+)", docker, re.M))
        (uid,) = (int(u) for u in re.findall(r"useradd .*--uid (\d+)", docker))
        (app,) = deployment["spec"]["template"]["spec"]["containers"]
        assert app["image"].split(":")[0] == f"modelyard/{service}"
        assert app["command"][:2] == [script, "serve"]
        assert app["command"][app["command"].index("--port") + 1] == str(port)
        assert app["command"][app["command"].index("--host") + 1] == "0.0.0.0"
        (container_port,) = app["ports"]
        assert container_port == {"name": "http", "containerPort": port, "protocol": "TCP"}
        assert app["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert app["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        migrations = [c for c in _containers(deployment) if c is not app]
        migrations += jobs[f"{service}-migrate"]["spec"]["template"]["spec"]["containers"]
        for migration in migrations:
            assert migration["command"] == [script, "migrate"]
            assert migration["image"] == app["image"]
        for doc in (deployment, jobs[f"{service}-migrate"]):
            pod = doc["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["runAsUser"] == uid
            for container in _containers(doc):
                security = container["securityContext"]
                assert security["readOnlyRootFilesystem"] is True
                assert security["allowPrivilegeEscalation"] is False
                assert container["resources"]["requests"]
                assert container["resources"]["limits"]
                known = env_names(settings)
                names, missing_secrets = _config_keys(rendered, container)
                unknown = {n for n in names if n.startswith("MODELYARD_")} - known
                assert not unknown, f"{service} does not read {sorted(unknown)}"
                if not missing_secrets:
                    assert {
                        "MODELYARD_DATABASE_URL",
                        "MODELYARD_AMQP_URL",
                        "MODELYARD_JWT_SECRET",
                    } <= names
        selector = deployment["spec"]["selector"]["matchLabels"]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items()
        for job in jobs.values():  # a Service must never route to a migration pod
            job_labels = job["spec"]["template"]["metadata"]["labels"]
            assert not services[service]["spec"]["selector"].items() <= job_labels.items()
        ports = {p["name"]: p for p in services[service]["spec"]["ports"]}
        assert ports["http"]["targetPort"] == "http"
        assert ports["metrics"]["targetPort"] == "http"  # /metrics is on the app's port


def app_factory(service: str) -> Any:
    """Return the app factory the service's `serve` command runs (read from its CLI)."""
    cli = next((REPO / "services" / service / "src").glob("modelyard_*/cli.py")).read_text()
    (app_path,) = re.findall(r'app_path="([\w.]+:\w+)"', cli)
    module, name = app_path.split(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("service", sorted(SETTINGS))
def test_the_probed_paths_are_served(service: str) -> None:
    paths = set(app_factory(service)().openapi()["paths"])
    assert {"/healthz", "/readyz", "/metrics"} <= paths


def test_in_cluster_urls_point_at_the_services(rendered: list[dict[str, Any]]) -> None:
    common = of_kind(rendered, "ConfigMap")["modelyard-common"]["data"]
    services = of_kind(rendered, "Service")
    for key, service in (
        ("MODELYARD_REGISTRY_URL", "registry"),
        ("MODELYARD_DEPLOYER_URL", "deployer"),
    ):
        assert common[key] == f"http://{service}:{services[service]['spec']['ports'][0]['port']}"


def test_config_values_parse_with_the_settings_classes(rendered: list[dict[str, Any]]) -> None:
    """A typo'd value (`"yes"` for a float) would crash the pod at start; it fails here."""
    config_maps = of_kind(rendered, "ConfigMap")
    common = config_maps["modelyard-common"]["data"]
    for service, settings in SETTINGS.items():
        own = config_maps[f"modelyard-{service}"].get("data") or {}
        env = {**common, **own}
        saved = dict(os.environ)
        try:
            os.environ.update(env)
            parsed = settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        if service == "deployer":
            assert isinstance(parsed, DeployerSettings)
            assert parsed.artifact_backend in {"local", "s3"}
