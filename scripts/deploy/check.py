#!/usr/bin/env python3
"""Agora's deploy artefacts, rendered and checked offline.

- The Helm chart (deploy/helm/agora) is linted and rendered by Helm's own engine (the
  helm-python-sdk package embeds it), with its default values and with values-prod.yaml.
- k8s/ is built by `kubectl kustomize` (k8s/, and each of k8s/overlays/*). k8s/base/agora.yaml
  and k8s/overlays/prod/autoscaling.yaml are the chart rendered (default and prod values):
  they must be up to date (`--write` regenerates them).
- Every rendered object is validated against the Kubernetes JSON schemas
  (kubernetes-validate), for the oldest Kubernetes the chart supports and the newest known.
- What matters in them is asserted: every service has probes, limits, a non-root read-only
  securityContext (code-exec: exactly privileged and root with a read-only root, for its
  sandbox) and a NetworkPolicy; credentials only by reference to the operator's Secret; the
  migration Job before the services.
- `docker-compose config` accepts docker-compose.yml; hadolint accepts deploy/Dockerfile.
- With `--binary`, each service is started as its rendered Deployment says (args, env from
  the ConfigMap and the Secret, ports), on the test PostgreSQL, Redis and Kafka, after the
  migration Job's command, and must become ready on its probes' paths; the gateway then
  routes to all of them and registers a tenant, and no process names an unknown key.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "ci"))
from free_ports import free_port  # noqa: E402 (the CI scripts' one port picker)

CHART = ROOT / "deploy" / "helm" / "agora"
BASE = ROOT / "k8s" / "base" / "agora.yaml"
BASE_CONFIG = ROOT / "k8s" / "base" / "config.env"
PROD_AUTOSCALING = ROOT / "k8s" / "overlays" / "prod" / "autoscaling.yaml"
GENERATED = (
    "# Generated from deploy/helm/agora by `python3 scripts/deploy/check.py --write` "
    "({values}); edit the chart, not this file.\n"
)
SERVICES = ["auth", "tickets", "analytics", "inventory-sync", "code-exec", "realtime", "ai", "gateway"]
STORES = ["auth", "tickets", "analytics", "inventory-sync", "code-exec", "realtime", "ai"]
# The service whose container is privileged and root, for the sandbox it builds (its pod
# asserts exactly that; every other is non-root and unprivileged).
SANDBOX = "code-exec"
SECRET = "agora-secrets"
SECRET_KEYS = {
    "auth-peer-secret",
    "auth-key-encryption-key",
    "gateway-ops-token",
    "redis-url",
    "auth-database-url",
    "tickets-database-url",
    "analytics-database-url",
    "inventory-sync-database-url",
    "code-exec-database-url",
    "realtime-database-url",
    "ai-database-url",
    "inventory-sync-key-encryption-key",
    "inventory-sync-amazon-client-secret",
    "inventory-sync-google-client-secret",
    "analytics-tickets-credential",
    "realtime-tickets-credential",
    "ai-key-encryption-key",
}
# What must never be a literal value in a manifest.
SECRET_NAMES = re.compile(
    r"(SECRET|PASSWORD|TOKEN|_KEY$|_KEYS$|CREDENTIAL|DATABASE_URL|REDIS__URL|SMTP_URL)"
)
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas.
KUBE_VERSIONS = ["1.25.0", kubernetes_validate.utils.latest_version() + ".0"]


def env_section(service: str) -> str:
    """A service's configuration section in variable names: inventory-sync -> INVENTORY_SYNC."""
    return service.replace("-", "_").upper()


class Failed(Exception):
    pass


def check(condition: bool, what: str) -> None:
    if not condition:
        raise Failed(what)


def load_all(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render_chart(values: dict | None) -> list[dict]:
    chart = helm.Chart.load(str(CHART))
    chart.validate_schema(values)
    rendered = chart.render(values, name="agora", namespace="agora", is_install=True)
    docs = []
    for path in sorted(rendered):
        if path.endswith(".yaml"):
            docs.extend(load_all(rendered[path]))
    return docs


def prod_values() -> dict:
    return yaml.safe_load((CHART / "values-prod.yaml").read_text())


def lint_chart(values: dict | None, label: str) -> None:
    report = helm.lint(str(CHART), values, strict=True, namespace="agora")
    errors = [m for m in report["messages"] if m["severity"] >= 2] + report.get("errors", [])
    check(not errors, f"helm lint ({label}): {errors}")


def generated_files() -> dict[Path, str]:
    """What --write writes: the chart rendered as k8s/'s plain manifests, with each service's
    init container migrating its own store (a Job under `kubectl apply` is immutable once
    made, and nothing would order it before the Deployments), and the ConfigMap as the
    base's configMapGenerator input (its name hashed, so that an overlay's change rolls the
    pods)."""
    base = render_chart({"migrations": {"runIn": "initContainer"}})
    config = next(doc for doc in base if doc["kind"] == "ConfigMap")
    base = [doc for doc in base if doc["kind"] != "ConfigMap"]
    for doc in base:
        template = doc.get("spec", {}).get("template", {}).get("metadata", {})
        # Helm's roll-on-change checksum: the generator's hashed name does that here.
        template.get("annotations", {}).pop("checksum/config", None)
    prod = [
        doc
        for doc in render_chart(prod_values())
        if doc["kind"] in ("HorizontalPodAutoscaler", "PodDisruptionBudget")
    ]

    def dump(docs: list[dict]) -> str:
        return yaml.safe_dump_all(docs, sort_keys=False, width=100)

    env = "".join(f"{key}={value}\n" for key, value in config["data"].items())
    return {
        BASE: GENERATED.format(values="migrations.runIn=initContainer") + dump(base),
        BASE_CONFIG: GENERATED.format(values="its ConfigMap") + env,
        PROD_AUTOSCALING: GENERATED.format(values="values-prod.yaml, autoscaling and budgets")
        + dump(prod),
    }


def kustomize(path: Path) -> list[dict]:
    """`kubectl kustomize`, or the standalone `kustomize build` where there is no kubectl."""
    command = ["kubectl", "kustomize"] if shutil.which("kubectl") else ["kustomize", "build"]
    out = subprocess.run([*command, str(path)], capture_output=True, text=True, check=False)
    check(out.returncode == 0, f"{' '.join(command)} {path}: {out.stderr.strip()}")
    return load_all(out.stdout)


def validate(docs: list[dict], label: str) -> None:
    for doc in docs:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except Exception as err:  # noqa: BLE001 (every kind of failure is reported)
                raise Failed(f"{label}: {name} is not valid for Kubernetes {version}: {err}")


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def assert_pod(spec: dict, where: str, sandbox: bool = False) -> None:
    """Non-root, read-only, unprivileged, limited, credentials only from the Secret. The
    sandbox's pod: its main container privileged and root with a read-only root, nothing more;
    its init container like every other."""
    if sandbox:
        main = spec["containers"][0]
        check(
            main.get("securityContext")
            == {
                "privileged": True,
                "runAsNonRoot": False,
                "runAsUser": 0,
                "readOnlyRootFilesystem": True,
            },
            f"{where}: the sandbox's container is privileged, root, read-only root: "
            f"{main.get('securityContext')}",
        )
        check(spec["securityContext"].get("runAsUser") == 0, f"{where}: pod as root")
    else:
        check(spec["securityContext"].get("runAsNonRoot") is True, f"{where}: pod runAsNonRoot")
    check(spec.get("automountServiceAccountToken") is False, f"{where}: no API token mounted")
    for container in spec["containers"] + spec.get("initContainers", []):
        cwhere = f"{where}/{container['name']}"
        sc = container.get("securityContext", {})
        limits = container.get("resources", {}).get("limits", {})
        check({"cpu", "memory"} <= set(limits), f"{cwhere}: cpu and memory limits")
        if sandbox and container is spec["containers"][0]:
            continue
        check(sc.get("runAsNonRoot") is True, f"{cwhere}: runAsNonRoot")
        check(sc.get("readOnlyRootFilesystem") is True, f"{cwhere}: read-only root")
        check(sc.get("allowPrivilegeEscalation") is False, f"{cwhere}: no privilege escalation")
        check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{cwhere}: drops ALL")
    for container in spec["containers"] + spec.get("initContainers", []):
        cwhere = f"{where}/{container['name']}"
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if SECRET_NAMES.search(var["name"]) or ref:
                check(
                    "value" not in var
                    and ref is not None
                    and ref["name"] == SECRET
                    and ref["key"] in SECRET_KEYS,
                    f"{cwhere}: {var['name']} must come from the Secret {SECRET}",
                )


def assert_objects(docs: list[dict], label: str) -> None:
    kinds: dict[str, list[dict]] = {}
    for doc in docs:
        kinds.setdefault(doc["kind"], []).append(doc)
    deployments = {d["metadata"]["name"]: d for d in kinds.get("Deployment", [])}
    check(
        sorted(deployments) == sorted(f"agora-{s}" for s in SERVICES),
        f"{label}: one Deployment per service, found {sorted(deployments)}",
    )
    check(
        "Secret" not in kinds, f"{label}: a Secret is rendered; credentials are by reference only"
    )
    services = {s["metadata"]["name"]: s for s in kinds.get("Service", [])}
    policies = kinds.get("NetworkPolicy", [])
    configmaps = [
        c for c in kinds.get("ConfigMap", []) if c["metadata"]["name"].startswith("agora-config")
    ]
    check(len(configmaps) == 1, f"{label}: one ConfigMap agora-config")
    config = configmaps[0]["data"]
    for key, value in config.items():
        check(not SECRET_NAMES.search(key), f"{label}: {key}={value!r} is a secret in a ConfigMap")
    autoscaled = {
        h["spec"]["scaleTargetRef"]["name"] for h in kinds.get("HorizontalPodAutoscaler", [])
    }
    jobs = [j for j in kinds.get("Job", []) if j["metadata"]["name"] == "agora-migrate"]
    check(len(kinds.get("Job", [])) == len(jobs) <= 1, f"{label}: at most the migration Job")

    for service in SERVICES:
        name = f"agora-{service}"
        deployment = deployments[name]
        pod = deployment["spec"]["template"]
        spec = pod["spec"]
        where = f"{label}: {name}"
        assert_pod(spec, where, sandbox=service == SANDBOX)
        check(
            name not in autoscaled or "replicas" not in deployment["spec"],
            f"{where}: autoscaled, so no replicas of its own (each apply would reset the HPA)",
        )
        main = spec["containers"][0]
        check(main["args"] == ["serve", "--service", service], f"{where}: args {main['args']}")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            get = main.get(probe, {}).get("httpGet", {})
            check(get.get("port") == "http" and get.get("path"), f"{where}: {probe} over HTTP")
        ports = {p["name"]: p["containerPort"] for p in main["ports"]}
        env = env_of(main)
        for port, number in ports.items():
            var = f"AGORA_{env_section(service)}__{port.upper()}_ADDR"
            listen = env.get(var, {}).get("value")
            check(
                listen == f"0.0.0.0:{number}",
                f"{where}: {var} is {listen!r}, its {port} port {number}",
            )
        svc = services.get(name)
        check(svc is not None, f"{where}: a Service")
        check(
            {p["name"]: p["targetPort"] for p in svc["spec"]["ports"]} == {p: p for p in ports},
            f"{where}: the Service targets its named ports",
        )
        labels = pod["metadata"]["labels"]
        selecting = [
            p
            for p in policies
            if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component")
            == service
            and all(labels.get(k) == v for k, v in p["spec"]["podSelector"]["matchLabels"].items())
        ]
        check(len(selecting) == 1, f"{where}: one NetworkPolicy of its own")
        rules = selecting[0]["spec"].get("ingress", [])
        if service != "gateway":
            check(
                all(rule.get("from") for rule in rules),
                f"{where}: only named peers reach it ({rules})",
            )
        # Migrations before the service: its init container waits for the Job's, or applies
        # its store's own when there is no Job.
        init = [c["args"] for c in spec.get("initContainers", [])]
        if service in STORES:
            expected = ["migrate", "--service", service] + (["--wait"] if jobs else [])
            check(
                len(init) == 1
                and init[0][: len(expected)] == expected
                and (jobs or len(init[0]) == 3),
                f"{where}: migrations first: init containers {init}",
            )
        else:
            check(not init, f"{where}: no init container ({init})")
    default_deny = [p for p in policies if not p["spec"].get("ingress")]
    check(len(default_deny) == 1, f"{label}: a default-deny NetworkPolicy")

    if jobs:
        job = jobs[0]
        assert_pod(job["spec"]["template"]["spec"], f"{label}: Job agora-migrate")
        container = job["spec"]["template"]["spec"]["containers"][0]
        check(container["args"] == ["migrate"], f"{label}: the Job runs `agora migrate`")
        hook = job["metadata"].get("annotations", {}).get("helm.sh/hook", "")
        check(
            set(hook.split(",")) == {"pre-install", "pre-upgrade"},
            f"{label}: the migration Job is a pre-install/pre-upgrade hook ({hook!r})",
        )
        # A hook runs before the ConfigMap exists, so it carries the same values itself.
        inline = {e["name"]: e.get("value") for e in container.get("env", []) if "value" in e}
        check(
            all(inline.get(key) == value for key, value in config.items()),
            f"{label}: the Job's configuration is the ConfigMap's",
        )


def assert_values_refused() -> None:
    """What the chart's schema keeps out, and where the way in for secrets leads."""
    chart = helm.Chart.load(str(CHART))
    for values in (
        {"extraEnv": {"AGORA_AUTH__SMTP_URL": "smtp://user:pass@mail:587"}},
        {"services": {"auth": {"env": {"AGORA_AUTH__SIGNING_KEY": "pem"}}}},
        {"podSecurityContext": {"runAsNonRoot": False}},
        {"migrations": {"runIn": "sometimes"}},
    ):
        try:
            chart.validate_schema(values)
        except helm.HelmValuesError:
            continue
        raise Failed(f"values.schema.json accepts {values}")
    docs = render_chart({"extraSecretEnv": {"AGORA_AUTH__SMTP_URL": "auth-smtp-url"}})
    for doc in docs:
        if doc["kind"] == "Deployment":
            var = env_of(doc["spec"]["template"]["spec"]["containers"][0])["AGORA_AUTH__SMTP_URL"]
            check(
                var["valueFrom"]["secretKeyRef"] == {"name": SECRET, "key": "auth-smtp-url"},
                f"extraSecretEnv: {var}",
            )


def compose_config() -> None:
    out = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    check(out.returncode == 0, f"docker-compose config: {out.stderr.strip()}")
    config = yaml.safe_load(
        subprocess.run(
            ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
    )
    services = config["services"]
    for service in SERVICES:
        body = services[service]
        check(body["command"] == ["serve", "--service", service], f"compose {service}: command")
        check("healthcheck" in body, f"compose {service}: health check")
        depends = body.get("depends_on", {})
        if service != "gateway":
            check(
                depends.get("migrate", {}).get("condition") == "service_completed_successfully",
                f"compose {service}: starts after the migrate step",
            )


def lint_dockerfile() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    out = subprocess.run(
        [str(hadolint), "--no-color", str(ROOT / "deploy" / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    check(out.returncode == 0, f"hadolint deploy/Dockerfile:\n{out.stdout}{out.stderr}")


# The Debian packages of debian:bookworm-slim that the binary's libraries may come from
# without being installed by the Dockerfile.
SLIM_BASE = {"libc6", "libgcc-s1", "zlib1g"}


def assert_runtime_libraries(binary: str) -> None:
    """Every shared library the binary loads comes with the runtime image: from
    debian:bookworm-slim itself or a package its Dockerfile installs (read by dpkg on this
    Debian machine)."""
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    paths = re.findall(r"=> (/\S+)", ldd)
    needed = set()
    for path in paths:
        real = os.path.realpath(path)
        # With merged /usr, dpkg knows a library by one of its spellings.
        spellings = {
            path,
            real,
            re.sub(r"^/usr/lib/", "/lib/", real),
            re.sub(r"^/lib/", "/usr/lib/", path),
        }
        owners = subprocess.run(
            ["dpkg", "-S", *sorted(spellings)], capture_output=True, text=True, check=False
        ).stdout
        packages = {line.split(":")[0] for line in owners.splitlines() if ": /" in line}
        check(len(packages) == 1, f"no one Debian package owns {path} ({owners!r})")
        needed |= packages
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    runtime = dockerfile[dockerfile.index("AS runtime") :]
    installed = set(re.findall(r"--no-install-recommends ([^\\\n]+)", runtime)[0].split())
    missing = needed - SLIM_BASE - installed
    check(not missing, f"the runtime image lacks {sorted(missing)} (the binary loads {paths})")


# -- starting the binary as the manifests say ------------------------------------------------


def get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


class Local:
    """Maps the manifests' cluster addresses onto this machine: free ports for the services'
    ports, 127.0.0.1 for their Service names, the test servers for Kafka."""

    def __init__(self, docs: list[dict], admin_url: str, redis_url: str, brokers: str):
        self.ports: dict[int, int] = {}
        for doc in docs:
            if doc["kind"] == "Deployment":
                for port in doc["spec"]["template"]["spec"]["containers"][0]["ports"]:
                    self.ports.setdefault(port["containerPort"], free_port())
        self.brokers = brokers
        run = uuid.uuid4().hex[:12]
        self.secret = {
            "auth-peer-secret": secrets.token_urlsafe(32),
            "auth-key-encryption-key": base64.b64encode(secrets.token_bytes(32)).decode(),
            "inventory-sync-key-encryption-key": base64.b64encode(secrets.token_bytes(32)).decode(),
            "gateway-ops-token": secrets.token_hex(32),
            "redis-url": redis_url,
        }
        self.admin_url = admin_url
        self.databases: list[str] = []
        try:
            for store in STORES:
                name = f"agora_deploy_{store.replace('-', '_')}_{run}"
                create = ["psql", admin_url, "-q", "-c", f"CREATE DATABASE {name}"]
                subprocess.run(create, check=True)
                self.databases.append(name)
                self.secret[f"{store}-database-url"] = re.sub(r"/[^/]*$", f"/{name}", admin_url)
        except subprocess.CalledProcessError:
            self.drop_databases()
            raise
        self.extra = {
            # This run's own consumer groups and keys beside other runs on the same servers.
            "AGORA_KAFKA__GROUP_PREFIX": f"deploy-{run}-",
            "AGORA_REDIS__KEY_PREFIX": f"agora-deploy-{run}:",
        }

    def drop_databases(self) -> None:
        for name in self.databases:
            subprocess.run(
                [
                    "psql",
                    self.admin_url,
                    "-q",
                    "-c",
                    f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
                ],
                check=False,
            )

    def value(self, name: str, value: str) -> str | None:
        if name == "AGORA_KAFKA__BROKERS":
            return self.brokers
        if name == "AGORA_KAFKA__REPLICATION":
            return "1"  # the test broker is one
        if name == "OTEL_EXPORTER_OTLP_ENDPOINT":
            return None  # no collector here
        value = re.sub(
            r"\bagora-(auth|tickets|analytics|inventory-sync|code-exec|gateway)(?=:\d)", "127.0.0.1", value
        )
        return re.sub(
            r":(\d+)\b", lambda m: f":{self.ports.get(int(m.group(1)), m.group(1))}", value
        )

    def env(self, container: dict, configmaps: dict[str, dict]) -> dict[str, str]:
        env = {"PATH": os.environ.get("PATH", "")}
        for source in container.get("envFrom", []):
            env.update(configmaps[source["configMapRef"]["name"]].get("data", {}))
        for var in container.get("env", []):
            ref = var.get("valueFrom", {})
            if "secretKeyRef" in ref:
                key = ref["secretKeyRef"]["key"]
                if key not in self.secret:
                    check(ref["secretKeyRef"].get("optional") is True, f"secret key {key} unknown")
                    continue
                env[var["name"]] = self.secret[key]
            elif "configMapKeyRef" in ref:
                cm = configmaps[ref["configMapKeyRef"]["name"]]
                env[var["name"]] = cm["data"][ref["configMapKeyRef"]["key"]]
            else:
                env[var["name"]] = var["value"]
        mapped = {}
        for name, value in env.items():
            if name == "PATH":
                mapped[name] = value
                continue
            local = self.value(name, str(value))
            if local is not None:
                mapped[name] = local
        mapped.update(self.extra)
        return mapped


def run_to_end(binary: str, container: dict, env: dict, logs: Path, what: str) -> str:
    out = subprocess.run(
        [binary, *container["args"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    text = out.stdout + out.stderr
    (logs / f"{what}.log").write_text(text)
    check(out.returncode == 0, f"{what} ({' '.join(container['args'])}) failed:\n{text}")
    return text


def start_services(docs: list[dict], binary: str, label: str) -> None:
    local = Local(
        docs,
        os.environ["AGORA_TEST_DATABASE_URL"],
        os.environ["AGORA_TEST_REDIS_URL"],
        os.environ["AGORA_TEST_KAFKA_BROKERS"],
    )
    logs = Path(tempfile.mkdtemp(prefix="agora-deploy-"))
    processes: list[tuple[str, subprocess.Popen]] = []
    try:
        run_services(docs, binary, label, local, logs, processes)
    finally:
        for _, process in processes:
            process.send_signal(signal.SIGTERM)
        stuck = []
        for service, process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                stuck.append(service)
        local.drop_databases()
    check(not stuck, f"{label}: {stuck} did not stop within 30 s of SIGTERM")
    outputs = [path.read_text() for path in sorted(logs.iterdir())]
    unknown = sorted(
        {
            line
            for text in outputs
            for line in text.splitlines()
            if "is not a configuration key" in line
        }
    )
    check(not unknown, f"{label}: keys the binary does not know: {unknown}")
    for service, process in processes:
        check(process.returncode == 0, f"{label}: {service} exited {process.returncode} on SIGTERM")


def run_services(
    docs: list[dict],
    binary: str,
    label: str,
    local: Local,
    logs: Path,
    processes: list[tuple[str, subprocess.Popen]],
) -> None:
    """The migration Job's command (when there is one), then each service in dependency
    order as its pod runs: init container to completion, then the service until its
    probes' paths answer; then a tenant registered through the gateway."""
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    for job in (d for d in docs if d["kind"] == "Job"):
        container = job["spec"]["template"]["spec"]["containers"][0]
        run_to_end(binary, container, local.env(container, configmaps), logs, "job")
    for service in SERVICES:
        spec = deployments[f"agora-{service}"]["spec"]["template"]["spec"]
        for init in spec.get("initContainers", []):
            run_to_end(binary, init, local.env(init, configmaps), logs, f"{service}-init")
        main = spec["containers"][0]
        with open(logs / f"{service}.log", "w") as log:
            process = subprocess.Popen(
                [binary, *main["args"]],
                env=local.env(main, configmaps),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        processes.append((service, process))
        port = local.ports[next(p["containerPort"] for p in main["ports"] if p["name"] == "http")]
        paths = {
            main[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")
        }
        deadline = time.monotonic() + 90
        for path in sorted(paths):
            while get(f"http://127.0.0.1:{port}{path}")[0] != 200:
                check(
                    process.poll() is None,
                    f"{label}: {service} exited:\n{(logs / f'{service}.log').read_text()}",
                )
                check(time.monotonic() < deadline, f"{label}: {service} not ready on {path}")
                time.sleep(0.3)
        print(f"  {service}: ready on {', '.join(sorted(paths))} (port {port})")

    # The gateway reaches every service by the addresses the ConfigMap gives it.
    gateway = local.ports[8080]
    deadline = time.monotonic() + 30
    while (status := get(f"http://127.0.0.1:{gateway}/health")[0]) != 200:
        check(time.monotonic() < deadline, f"{label}: gateway /health is {status}")
        time.sleep(0.5)
    body = {
        "email": "ops@deploy.test",
        "password": "Sup3r-secret!",
        "name": "Ops",
        "tenant_name": "Deploy",
    }
    request = urllib.request.Request(
        f"http://127.0.0.1:{gateway}/api/v1/auth/register",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        check(response.status == 201, f"{label}: register through the gateway: {response.status}")
        access = json.load(response)["access_token"]
    request = urllib.request.Request(
        f"http://127.0.0.1:{gateway}/api/v1/inventory/items",
        headers={"authorization": f"Bearer {access}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        check(response.status == 200, f"{label}: inventory through the gateway: {response.status}")
    # A program run in code-exec's sandbox, as its pod runs it.
    request = urllib.request.Request(
        f"http://127.0.0.1:{gateway}/api/v1/code-exec/submissions?wait=true",
        data=json.dumps({"source_code": "print(6 * 7)", "language_id": 71}).encode(),
        headers={"authorization": f"Bearer {access}", "content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        run = json.load(response)
        check(
            response.status == 201 and run["status"]["id"] == 3 and run["stdout"] == "42\n",
            f"{label}: a program through the gateway: {response.status} {run}",
        )
    print(
        "  gateway: /health 200, a tenant registered through it, its inventory read, a program run"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="regenerate k8s/'s rendered files")
    parser.add_argument("--binary", help="the agora binary: start each service as rendered")
    args = parser.parse_args()

    generated = generated_files()
    if args.write:
        for path, text in generated.items():
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
        return 0
    try:
        for path, text in generated.items():
            check(
                path.read_text() == text,
                f"{path.relative_to(ROOT)} is stale: run python3 scripts/deploy/check.py --write",
            )
        renders = {
            "helm (default values)": render_chart(None),
            "helm (values-prod.yaml)": render_chart(prod_values()),
        }
        lint_chart(None, "default values")
        lint_chart(prod_values(), "values-prod.yaml")
        assert_values_refused()
        print("ok: the values schema refuses secrets in plain variables, root and unknown modes")
        for path in [ROOT / "k8s", *sorted((ROOT / "k8s" / "overlays").iterdir())]:
            renders[f"kubectl kustomize {path.relative_to(ROOT)}"] = kustomize(path)
        for label, docs in renders.items():
            validate(docs, label)
            assert_objects(docs, label)
            print(f"ok: {label}: {len(docs)} objects valid and as required")
        for label in ("helm (values-prod.yaml)", "kubectl kustomize k8s/overlays/prod"):
            hpas = {
                d["spec"]["scaleTargetRef"]["name"]
                for d in renders[label]
                if d["kind"] == "HorizontalPodAutoscaler"
            }
            check(
                hpas == {f"agora-{s}" for s in SERVICES},
                f"{label}: every service autoscaled ({hpas})",
            )
        compose_config()
        print("ok: docker-compose config accepts docker-compose.yml")
        lint_dockerfile()
        print("ok: hadolint accepts deploy/Dockerfile")
        if args.binary:
            assert_runtime_libraries(args.binary)
            print("ok: the runtime image has every library the binary loads")
            for label in ("kubectl kustomize k8s/overlays/prod", "helm (values-prod.yaml)"):
                print(f"starting every service as {label} renders it:")
                start_services(renders[label], args.binary, label)
                print(f"ok: every service started from its rendered Deployment ({label})")
    except Failed as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
