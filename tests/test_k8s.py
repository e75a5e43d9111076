"""deploy/k8s/ renders as a kustomize base and every object validates against the pinned
Kubernetes version's schemas (kubernetes-validate, offline); the commands, ports, paths and
environment variables the manifests use are the ones crewline has.

There is no kubectl here, so :func:`render` is a renderer for exactly the kustomize subset
the base uses (resources, namespace, labels, a configMapGenerator without hash suffix); a
kustomization using anything else fails the test instead of being half-rendered."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bot.config import CONFIG_ENV, WORKER_ENV, Secrets, load_config
from bot.observe import HEALTH_PATH, READY_PATH
from forge import metrics
from forge.webhooks.settings import WebhookSettings
from tests.support.deploy import assert_real_command, final_stage, only

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES = "1.33.0"  # the oldest release still supported upstream when this was written
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "StorageClass", "ClusterRole"}
SUPPORTED = {"apiVersion", "kind", "namespace", "labels", "resources", "configMapGenerator",
             "generatorOptions"}  # fmt: skip


def render(base: Path = K8S) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text(encoding="utf-8"))
    assert set(kustomization) <= SUPPORTED, f"unsupported here: {set(kustomization) - SUPPORTED}"
    assert kustomization["kind"] == "Kustomization"
    objects: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        text = (base / resource).read_text(encoding="utf-8")
        objects += [doc for doc in yaml.safe_load_all(text) if doc is not None]
    assert kustomization.get("generatorOptions") == {"disableNameSuffixHash": True}
    for generator in kustomization.get("configMapGenerator", []):
        assert set(generator) == {"name", "files"}, generator
        data = {Path(f).name: (base / f).read_text(encoding="utf-8") for f in generator["files"]}
        objects.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]},
             "data": data}
        )  # fmt: skip
    for obj in objects:
        meta = obj.setdefault("metadata", {})
        if obj["kind"] not in CLUSTER_SCOPED:
            meta["namespace"] = kustomization["namespace"]
        for pairs in kustomization.get("labels", []):
            assert set(pairs) == {"pairs"}, "only plain label pairs (no selectors) are rendered"
            meta.setdefault("labels", {}).update(pairs["pairs"])
    return objects


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [obj for obj in render() if obj["kind"] == kind]


def one(kind: str, name: str) -> dict[str, Any]:
    found = [obj for obj in render() if obj["kind"] == kind and obj["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    yield "run", one("Deployment", "crewline-run")["spec"]["template"]["spec"]
    yield "worker", one("StatefulSet", "crewline-worker")["spec"]["template"]["spec"]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item for item in container["env"]}


def test_the_base_renders_and_every_object_validates() -> None:
    objects = render()
    kinds = sorted(obj["kind"] for obj in objects)
    assert kinds == sorted(["ConfigMap", "Deployment", "NetworkPolicy", "PersistentVolumeClaim",
                            "Service", "Service", "StatefulSet"])  # fmt: skip
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_a_broken_object_is_refused_by_the_validation() -> None:
    deployment = one("Deployment", "crewline-run")
    deployment["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)
    deployment["spec"]["replicas"] = 1
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 60  # a misspelt key
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_the_autoscaling_examples_target_the_workers_on_a_real_metric() -> None:
    hpa = yaml.safe_load((K8S / "autoscaling" / "hpa-external.yaml").read_text(encoding="utf-8"))
    kubernetes_validate.validate(hpa, KUBERNETES, strict=True)
    keda = yaml.safe_load(
        (K8S / "autoscaling" / "keda-scaledobject.yaml").read_text(encoding="utf-8")
    )
    assert keda["apiVersion"] == "keda.sh/v1alpha1" and keda["kind"] == "ScaledObject"
    names = {metric.describe()[0].name for metric in [metrics.READY_ISSUES]}
    for scaler in (hpa, keda):
        target = scaler["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("StatefulSet", "crewline-worker")
    assert hpa["spec"]["metrics"][0]["external"]["metric"]["name"] in names
    query = keda["spec"]["triggers"][0]["metadata"]["query"]
    assert any(name in query for name in names), query
    assert 'role="dev"' in query and metrics.READY_ISSUES._labelnames == ("role", "project")


def test_commands_ports_paths_and_variables_are_crewlines_own(tmp_path: Path) -> None:
    configmap = one("ConfigMap", "crewline-config")
    (tmp_path / "crewline.toml").write_text(configmap["data"]["crewline.toml"], encoding="utf-8")
    config = load_config(tmp_path / "crewline.toml", environ={WORKER_ENV: "crewline-worker-0"})
    assert config.worker_id == "crewline-worker-0"
    secret_files = {f"CREWLINE_{name.upper()}_FILE" for name in Secrets.model_fields}
    user = only(final_stage(), "USER").split(":")[0]
    for role, spec in pod_specs():
        (container,) = spec["containers"]
        assert_real_command(container["args"])
        assert container["args"][0] == role
        env = env_of(container)
        mounts = {m["name"]: PurePosixPath(m["mountPath"]) for m in container["volumeMounts"]}
        assert PurePosixPath(env[CONFIG_ENV]["value"]) == mounts["config"] / "crewline.toml"
        assert env[WORKER_ENV]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        for name, item in env.items():
            if name.endswith("_FILE"):
                assert name in secret_files, name
                assert PurePosixPath(item["value"]).parent == mounts["secrets"]
            elif name not in (CONFIG_ENV, WORKER_ENV):
                agents = {v for a in config.agents.values() for v in a.env_allow}
                assert name in agents, f"{name} reaches no agent (agents.*.env_allow)"
        assert "CREWLINE_GITLAB_TOKEN_FILE" in env
        assert ("CREWLINE_WEBHOOK_SECRET_FILE" in env) == (role == "run")
        data = mounts["data"]
        for path in (config.storage.path, config.workspaces.root, config.runs_dir):
            assert PurePosixPath(path).is_relative_to(data), path
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["metrics"] == config.observability.port
        assert config.observability.enabled and config.observability.host == "0.0.0.0"
        if role == "run":
            assert ports["webhooks"] == config.webhook.port and config.webhook.host == "0.0.0.0"
        assert container["livenessProbe"]["httpGet"]["path"] == HEALTH_PATH
        assert container["readinessProbe"]["httpGet"]["path"] == READY_PATH
        assert {p["httpGet"]["port"] for p in (container["livenessProbe"],
                container["readinessProbe"])} == {"metrics"}  # fmt: skip
        drain = WebhookSettings.model_fields["drain_timeout_seconds"].default
        assert spec["terminationGracePeriodSeconds"] > drain + 30
        assert str(spec["securityContext"]["runAsUser"]) == user
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert mounts["tmp"] == PurePosixPath("/tmp")  # writable scratch on a read-only root
    worker = one("StatefulSet", "crewline-worker")["spec"]
    assert [t["metadata"]["name"] for t in worker["volumeClaimTemplates"]] == ["data"]
    assert one("Deployment", "crewline-run")["spec"]["strategy"] == {"type": "Recreate"}
    assert one("Deployment", "crewline-run")["spec"]["replicas"] == 1
    service = one("Service", "crewline-webhooks")["spec"]
    assert {p["port"] for p in service["ports"]} == {config.webhook.port, 9464}
    # The webhook URL the comments give GitLab is the configured path.
    assert f":{config.webhook.port}{config.webhook.path}" in (K8S / "run.yaml").read_text()


def test_the_worker_id_comes_from_the_environment_when_set(tmp_path: Path) -> None:
    configmap = one("ConfigMap", "crewline-config")
    path = tmp_path / "crewline.toml"
    path.write_text('worker_id = "from-file"\n' + configmap["data"]["crewline.toml"])
    assert load_config(path, environ={}).worker_id == "from-file"
    assert load_config(path, environ={WORKER_ENV: ""}).worker_id == "from-file"
    assert load_config(path, environ={WORKER_ENV: "pod-3"}).worker_id == "pod-3"


def test_the_grafana_dashboard_queries_only_families_crewline_exports() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    exported = {
        sample_name
        for family in metrics.REGISTRY.collect()
        if family.name.startswith("crewline_")
        for sample_name in {family.name, f"{family.name}_total", f"{family.name}_bucket"}
    }
    labels = {
        name: set(collector._labelnames)
        for name, collector in vars(metrics).items()
        if hasattr(collector, "_labelnames")
    }
    known_labels = set().union(*labels.values()) | {"le"}
    titles = [panel["title"] for panel in dashboard["panels"]]
    for word in ("Board", "Throughput", "Failures", "Spend", "API budget"):
        assert any(title.startswith(word) for title in titles), word
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used = set(re.findall(r"\bcrewline_[a-z_]+", target["expr"]))
            assert used and used <= exported, (panel["title"], used - exported)
            grouped = re.findall(r"by \(([^)]*)\)", target["expr"])
            by = {label.strip() for group in grouped for label in group.split(",")}
            assert by <= known_labels, (panel["title"], by - known_labels)
