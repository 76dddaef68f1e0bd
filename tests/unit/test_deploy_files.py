"""The deployment files (issue 9), checked as far as a machine without a container engine allows:
every YAML and JSON file parses; the compose file passes `docker-compose config`; its Prometheus
configuration passes `promtool check config`; every file it mounts exists; every HERALD_*
setting it passes is a real setting with a valid value; the image's runtime file set is enough
to build the catalog and load every template."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from herald.service.app import build_catalog_and_templates
from herald.service.settings import Settings, load_config_file
from tests.support import build_wheel

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"


def yaml_documents(path: Path) -> list[Any]:
    return [document for document in yaml.safe_load_all(path.read_text("utf-8")) if document]


def deploy_files(*suffixes: str) -> list[Path]:
    return sorted(path for path in DEPLOY.rglob("*") if path.suffix in suffixes)


@pytest.mark.parametrize(
    "path", deploy_files(".yaml", ".yml"), ids=lambda path: str(path.relative_to(ROOT))
)
def test_every_yaml_file_parses(path: Path) -> None:
    assert yaml_documents(path), f"{path} is empty"


@pytest.mark.parametrize(
    "path", deploy_files(".json"), ids=lambda path: str(path.relative_to(ROOT))
)
def test_every_json_file_parses(path: Path) -> None:
    assert json.loads(path.read_text("utf-8"))


def assert_valid_settings(environment: dict[str, str], where: str) -> Settings:
    """Every HERALD_* variable names a setting (the settings class ignores unknown ones, so a
    typo would silently fall back to a default) and the values validate."""
    values: dict[str, Any] = {}
    for key, value in environment.items():
        assert key.startswith("HERALD_"), f"{where}: {key}"
        if key.startswith("HERALD_WEBHOOK_SECRET_"):
            continue
        name = key.removeprefix("HERALD_").lower()
        assert name in Settings.model_fields, f"{where}: {key} is not a Herald setting"
        values[name] = value
    return Settings(**values)


# Compose ---------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text("utf-8"))
    return document


def docker_compose_v2() -> list[str]:
    """`docker compose`: Compose v2, the CLI plugin (the Python docker-compose 1.x is end of
    life). scripts/install-compose-v2.sh installs it."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.fail("the docker CLI is missing (it comes with this kind of machine)")
    done = subprocess.run(
        [docker, "compose", "version", "--short"], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        pytest.fail(
            "`docker compose` (Compose v2) is not installed: run scripts/install-compose-v2.sh "
            f"({done.stderr.strip().splitlines()[0] if done.stderr.strip() else done.returncode})"
        )
    assert done.stdout.strip().removeprefix("v").startswith("2."), done.stdout
    return [docker, "compose"]


def test_docker_compose_v2_config_accepts_the_stack() -> None:
    done = subprocess.run(
        [*docker_compose_v2(), "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_every_image_of_the_stack_is_pinned_to_a_release() -> None:
    """Issue 22: no untagged (latest) image. Compose's own view of the file is read, so an image
    set through an anchor or a variable counts too."""
    done = subprocess.run(
        [*docker_compose_v2(), "-f", str(COMPOSE), "config", "--images"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    images = set(done.stdout.split())
    assert len(images) >= 7, images
    declared = {service.get("image") for service in compose()["services"].values()}
    assert images == declared - {None}
    for image in images:
        name, _, tag = image.split("@")[0].rpartition(":")
        assert name and tag and "/" not in tag, f"{image} has no tag"
        assert tag != "latest", f"{image} is not pinned"
    rabbitmq = compose()["services"]["rabbitmq"]["image"]
    assert re.fullmatch(r"rabbitmq:4\.\d+\.\d+-management", rabbitmq), rabbitmq


def test_the_stack_has_every_part_and_two_replicas_on_the_shared_ledger() -> None:
    services = compose()["services"]
    assert {"rabbitmq", "rabbitmq-definitions", "postgres", "mailpit", "prometheus", "grafana"} <= (
        set(services)
    )
    replicas = [name for name in services if name.startswith("herald-")]
    assert len(replicas) == 2
    environments = [services[name]["environment"] for name in replicas]
    assert environments[0] == environments[1]
    for name in replicas:
        service = services[name]
        settings = assert_valid_settings(service["environment"], name)
        assert settings.database_url.startswith("postgresql://")
        assert "@postgres:" in settings.database_url
        assert settings.smtp_host == "mailpit"
        assert service["depends_on"]["rabbitmq-definitions"]["condition"] == (
            "service_completed_successfully"
        )
        # The stop timeout must outlast Herald's drain grace, or Docker SIGKILLs a drain.
        grace = int(service["stop_grace_period"].removesuffix("s"))
        assert grace > settings.shutdown_grace_seconds
        config_mount = next(
            volume
            for volume in service["volumes"]
            if volume.endswith(":/etc/herald/herald.yaml:ro")
        )
        load_config_file(DEPLOY / config_mount.split(":")[0])  # the mounted file validates
    assert "15672:15672" in services["rabbitmq"]["ports"]
    assert "management" in services["rabbitmq"]["image"]


def test_every_file_the_stack_mounts_exists() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which is missing"


def test_the_definitions_import_posts_herald_s_definitions_then_its_policies() -> None:
    loader = compose()["services"]["rabbitmq-definitions"]
    mounted = {volume.split(":")[1]: volume.split(":")[0] for volume in loader["volumes"]}
    command = loader["command"]
    requests = " ".join(command[1:]).split(" --next ")  # curl: one request per part
    posted = [
        next(arg for arg in part.split() if arg.startswith("@")).removeprefix("@")
        for part in requests
    ]
    assert [(DEPLOY / mounted[path]).resolve() for path in posted] == [
        DEPLOY / "rabbitmq/definitions.json",
        DEPLOY / "rabbitmq/policies.json",
    ]
    for part in requests:
        assert "--fail-with-body" in part.split()
        assert part.split()[-1] == "http://rabbitmq:15672/api/definitions"


def test_no_quorum_queue_of_the_stack_has_rabbitmq_4s_default_delivery_limit() -> None:
    """RabbitMQ 4.x gives a quorum queue without x-delivery-limit a limit of 20, past which a
    message without a dead-letter exchange is dropped. The domain queues set 50 themselves;
    herald.dead-letter, read with basic.reject by every `herald replay` command, gets no limit
    from the stack's policy."""
    definitions = json.loads((DEPLOY / "rabbitmq/definitions.json").read_text("utf-8"))
    policies = json.loads((DEPLOY / "rabbitmq/policies.json").read_text("utf-8"))["policies"]
    for policy in policies:
        assert policy["vhost"] == "/" and policy["apply-to"] == "quorum_queues"
    consumed = {
        binding["destination"]
        for binding in definitions["bindings"]
        if binding["destination_type"] == "queue"
    }
    for queue in definitions["queues"]:
        if queue["arguments"].get("x-queue-type") != "quorum" or queue["name"] not in consumed:
            continue  # the retry queues are never consumed: their messages only expire
        limits = [
            policy["definition"]["delivery-limit"]
            for policy in policies
            if re.search(policy["pattern"], queue["name"])
            and "delivery-limit" in policy["definition"]
        ]
        if "x-delivery-limit" in queue["arguments"]:
            assert queue["arguments"]["x-delivery-limit"] == 50, queue["name"]
            assert not limits, f"a policy would change {queue['name']}'s own limit"
        else:
            assert limits == [-1], queue["name"]
    assert "herald.dead-letter" in consumed  # the case the policy is for was checked above


def test_prometheus_of_the_stack_scrapes_both_replicas_with_the_alert_rules(
    tmp_path: Path,
) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (scripts/ensure-services.sh installs it)")
    services = compose()["services"]
    mounts = dict(
        (volume.split(":")[1], DEPLOY / volume.split(":")[0])
        for volume in services["prometheus"]["volumes"]
    )
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text("utf-8"))
    # promtool reads the rule files too: point them at the files the container would see.
    config["rule_files"] = [str(mounts[path]) for path in config["rule_files"]]
    assert config["rule_files"] == [str(DEPLOY / "prometheus/alerts.yml")]
    checked = tmp_path / "prometheus.yml"
    checked.write_text(yaml.safe_dump(config), "utf-8")
    done = subprocess.run(
        [promtool, "check", "config", str(checked)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "herald"  # the alert rules select job="herald"
    replicas = sorted(name for name in services if name.startswith("herald-"))
    assert sorted(job["static_configs"][0]["targets"]) == [f"{name}:9464" for name in replicas]


def test_grafana_of_the_stack_provisions_the_dashboard_and_its_data_source() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in grafana["volumes"]}
    dashboard_target = next(target for target, source in mounts.items() if source.endswith(".json"))
    assert (DEPLOY / mounts[dashboard_target]).resolve() == DEPLOY / "grafana/herald.json"
    provisioning = DEPLOY / mounts["/etc/grafana/provisioning"]
    (provider,) = yaml.safe_load((provisioning / "dashboards/herald.yaml").read_text())["providers"]
    assert provider["options"]["path"] == str(Path(dashboard_target).parent)
    (source,) = yaml.safe_load((provisioning / "datasources/prometheus.yaml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"


# The image ---------------------------------------------------------------------------------


def dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuations joined), split into stages."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text("utf-8"))
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def test_the_image_is_multi_stage_slim_non_root_with_a_health_check() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    runtime = stages[-1]
    assert runtime[0].startswith("FROM python:3.11-slim")
    (user,) = [line for line in runtime if line.startswith("USER ")]
    assert user.split()[1].split(":")[0] not in ("0", "root")
    (health,) = [line for line in runtime if line.startswith("HEALTHCHECK ")]
    assert "/healthz" in health
    assert 'ENTRYPOINT ["herald"]' in runtime
    assert 'CMD ["run"]' in runtime
    # Only runtime dependencies, never the extras: the builder installs requirements.lock.
    builder = "\n".join(stages[0])
    assert ".[dev" not in builder and "bench" not in builder


def test_the_image_installs_the_locked_dependencies_before_the_source_arrives() -> None:
    """Issue 22: the exact versions of requirements.lock, hash-checked, in their own layer (the
    lock is copied alone, before the source); Herald's wheel then adds no dependency."""
    builder = dockerfile_stages()[0]
    copy_lock = builder.index("COPY requirements.lock ./")
    (install,) = [line for line in builder if "-r requirements.lock" in line]
    assert copy_lock < builder.index(install) < builder.index("COPY . .")
    assert install.startswith("RUN pip install ") and "--require-hashes" in install.split()
    assert not any("pyproject.toml" in line for line in builder[: builder.index("COPY . .")])
    (wheel,) = [line for line in builder if "pip wheel" in line]
    assert "--no-build-isolation" in wheel  # the locked setuptools builds it
    assert all("--no-deps" in part for part in wheel.split("&&") if "install" in part)
    ignored = (ROOT / ".dockerignore").read_text("utf-8").split()
    assert "requirements.lock" not in ignored and "*.lock" not in ignored


def test_the_image_installs_the_wheel_and_copies_nothing_else() -> None:
    """The builder builds Herald's wheel and installs it (never editable); the runtime stage
    copies only the builder's venv, so the image runs what the wheel holds (tests/integration/
    test_wheel.py runs that wheel from a folder outside the checkout)."""
    builder, runtime = dockerfile_stages()[0], dockerfile_stages()[-1]
    assert any(line.startswith("RUN ") and "pip wheel" in line for line in builder)
    (install,) = [line for line in builder if "/wheels/herald-" in line]
    assert " -e " not in install and "--editable" not in install
    copies = [line for line in runtime if line.startswith("COPY ")]
    assert copies == ["COPY --from=builder /opt/venv /opt/venv"]


def test_the_build_context_builds_a_complete_wheel(tmp_path: Path) -> None:
    """What .dockerignore lets into the build context is enough for the wheel: every template
    and the gallery's assets are in it."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(directory: str, names: list[str]) -> set[str]:
        relative = Path(directory).relative_to(ROOT)
        return {
            name
            for name in names
            if any(
                fnmatch.fnmatch(str(relative / name), pattern.removeprefix("**/"))
                or fnmatch.fnmatch(name, pattern.removeprefix("**/"))
                for pattern in patterns
            )
        }

    context = tmp_path / "context"
    shutil.copytree(ROOT, context, symlinks=True, ignore=ignored)
    wheel = build_wheel(context, tmp_path / "dist")
    names = set(zipfile.ZipFile(wheel).namelist())
    notifications = [spec.id for spec in build_catalog_and_templates()[0]]
    for notification in notifications:
        assert f"herald/templates/{notification}/body.html" in names, notification
    assert "herald/templates/layouts/email.css" in names
    assert "herald/tools/gallery_site/gallery.css" in names
    assert "herald/service/cli.py" in names
    assert not any(name.split("/")[0] in ("consumers", "schemas", "tests") for name in names)


# Kubernetes ------------------------------------------------------------------------------------

K8S = DEPLOY / "k8s"
CUSTOM_KINDS = {"ScaledObject", "TriggerAuthentication", "ServiceMonitor"}


def kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is not installed (scripts/ensure-services.sh installs it)")
    done = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [document for document in yaml.safe_load_all(done.stdout) if document]


def by_kind(resources: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        kinds.setdefault(resource["kind"], []).append(resource)
    return kinds


@pytest.mark.parametrize("variant", ["base", "overlays/example"])
def test_kustomize_builds_and_standard_kinds_match_the_kubernetes_schema(variant: str) -> None:
    import kubernetes_validate

    resources = kustomize(K8S / variant)
    for resource in resources:
        if resource["kind"] in CUSTOM_KINDS:
            continue  # no schema offline; their structure is checked below
        kubernetes_validate.validate(resource, "1.30.0", strict=True)
    assert {resource["kind"] for resource in resources} >= CUSTOM_KINDS


def test_the_example_overlay_is_consistent() -> None:
    kinds = by_kind(kustomize(K8S / "overlays/example"))
    (deployment,) = kinds["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert all(
        resource["metadata"].get("namespace") == "herald"
        for resources in kinds.values()
        for resource in resources
        if resource["kind"] != "Namespace"
    )
    assert container["image"] == "registry.example.com/herald:0.1.0"
    # Probes: ready on /readyz, alive on /healthz, on the metrics port.
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"]["memory"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    # Every ConfigMap and Secret the pod names exists under that name in the build.
    config_maps = {item["metadata"]["name"]: item for item in kinds["ConfigMap"]}
    secrets = {item["metadata"]["name"]: item for item in kinds["Secret"]}
    environment = {
        name: value
        for ref in container["envFrom"]
        for name, value in config_maps[ref["configMapRef"]["name"]]["data"].items()
    }
    for variable in container["env"]:
        reference = variable.get("valueFrom", {}).get("secretKeyRef")
        if reference is not None:
            assert reference["key"] in secrets[reference["name"]]["data"], reference
            environment[variable["name"]] = "x"
        else:
            environment[variable["name"]] = variable["value"]
    mounted = {volume["name"]: volume for volume in pod["volumes"]}
    for mount in container["volumeMounts"]:
        source = mounted[mount["name"]]
        if "configMap" in source:
            files = config_maps[source["configMap"]["name"]]["data"]
            assert environment["HERALD_CONFIG"] == f"{mount['mountPath']}/herald.yaml"
            assert "herald.yaml" in files
    # The settings the pod gets are real settings with valid values.
    environment["HERALD_AMQP_URL"] = "amqp://u:p@rabbitmq:5672/"
    environment["HERALD_DATABASE_URL"] = "postgresql://u:p@postgres:5432/herald"
    environment.pop("HERALD_SMTP_PASSWORD")
    environment.pop("HERALD_SMTP_USERNAME")
    settings = assert_valid_settings(environment, "deployment")
    assert pod["terminationGracePeriodSeconds"] > settings.shutdown_grace_seconds
    # The scrape: port 9464, job "herald" (the Service's name) as the alert rules expect.
    services = {item["metadata"]["name"]: item for item in kinds["Service"]}
    assert services.keys() == {"herald", "herald-public"}
    service = services["herald"]
    assert service["spec"]["ports"][0]["port"] == settings.http_port
    # What faces the internet is the public listener (and the bounce listener), never metrics.
    container_ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert container_ports["public"] == settings.public_http_port != settings.http_port
    public_targets = {port["targetPort"] for port in services["herald-public"]["spec"]["ports"]}
    assert public_targets == {"public", "bounce-smtp"}
    (monitor,) = kinds["ServiceMonitor"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    assert service["spec"]["selector"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    (budget,) = kinds["PodDisruptionBudget"]
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]


def test_keda_scales_the_deployment_on_exactly_the_five_domain_queues() -> None:
    from herald.consumers.topology import DOMAINS, queue_name

    kinds = by_kind(kustomize(K8S / "overlays/example"))
    (scaled,) = kinds["ScaledObject"]
    (deployment,) = kinds["Deployment"]
    (authentication,) = kinds["TriggerAuthentication"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert scaled["spec"]["minReplicaCount"] >= 2
    assert scaled["spec"]["maxReplicaCount"] == 6  # the overlay's patch
    triggers = scaled["spec"]["triggers"]
    assert sorted(trigger["metadata"]["queueName"] for trigger in triggers) == sorted(
        queue_name(domain) for domain in DOMAINS
    )
    for trigger in triggers:
        assert trigger["type"] == "rabbitmq"
        assert trigger["metadata"]["mode"] == "QueueLength"
        assert int(trigger["metadata"]["value"]) > 0
        assert trigger["authenticationRef"]["name"] == authentication["metadata"]["name"]
    # KEDA connects with the same Secret key as Herald.
    (host,) = authentication["spec"]["secretTargetRef"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    amqp = next(item for item in container["env"] if item["name"] == "HERALD_AMQP_URL")
    assert amqp["valueFrom"]["secretKeyRef"] == {"name": host["name"], "key": host["key"]}
    secrets = {item["metadata"]["name"] for item in kinds["Secret"]}
    assert host["name"] in secrets


def _annotated_for_scraping(node: Any, where: str = "") -> list[tuple[str, dict[str, str]]]:
    """Every `annotations` map, anywhere in a resource (pod templates included), that carries
    prometheus.io/* keys, with where it is."""
    found: list[tuple[str, dict[str, str]]] = []
    if isinstance(node, dict):
        annotations = node.get("annotations")
        if isinstance(annotations, dict) and any(
            key.startswith("prometheus.io/") for key in annotations
        ):
            found.append((where, annotations))
        for key, value in node.items():
            found += _annotated_for_scraping(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _annotated_for_scraping(value, f"{where}/{index}")
    return found


def scrape_paths(resources: list[dict[str, Any]]) -> list[str]:
    """How Prometheus would find Herald in a build: ServiceMonitors, PodMonitors and
    prometheus.io/* annotations."""
    paths = [
        f"{resource['kind']} {resource['metadata']['name']}"
        for resource in resources
        if resource["kind"] in ("ServiceMonitor", "PodMonitor")
    ]
    for resource in resources:
        for where, _ in _annotated_for_scraping(resource):
            paths.append(f"annotations of {resource['kind']} {resource['metadata']['name']}{where}")
    return paths


@pytest.mark.parametrize("variant", ["base", "overlays/example"])
def test_the_base_has_exactly_one_scrape_path_the_service_monitor(variant: str) -> None:
    """Issue 22: a ServiceMonitor beside prometheus.io/* annotations scrapes every replica twice
    where both are honoured. The base keeps the ServiceMonitor (deploy/k8s/README.md)."""
    assert scrape_paths(kustomize(K8S / variant)) == ["ServiceMonitor herald"]


def test_the_annotations_overlay_swaps_the_service_monitor_for_pod_annotations() -> None:
    resources = kustomize(K8S / "overlays/prometheus-annotations")
    kinds = by_kind(resources)
    (deployment,) = kinds["Deployment"]
    paths = scrape_paths(resources)
    assert paths == ["annotations of Deployment herald/spec/template/metadata"]
    # The rest of the base is all there.
    assert {resource["kind"] for resource in resources} == (
        {resource["kind"] for resource in kustomize(K8S / "base")} - {"ServiceMonitor"}
    )
    for resource in resources:
        if resource["kind"] not in CUSTOM_KINDS:
            kubernetes_validate_resource(resource)
    pod = deployment["spec"]["template"]
    annotations = pod["metadata"]["annotations"]
    (container,) = pod["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == ports["http"]
    assert annotations["prometheus.io/path"] == "/metrics"


def kubernetes_validate_resource(resource: dict[str, Any]) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(resource, "1.30.0", strict=True)


def test_the_base_config_file_is_the_example_config() -> None:
    copy = (K8S / "base/herald.yaml").read_text("utf-8")
    original = (DEPLOY / "config/herald.example.yaml").read_text("utf-8")
    assert yaml.safe_load(copy) == yaml.safe_load(original)
    load_config_file(K8S / "base/herald.yaml")
