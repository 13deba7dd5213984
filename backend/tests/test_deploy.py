"""The deployment files: Kubernetes manifests checked offline against the Kubernetes schemas (strict: unknown
fields are errors), and against the product itself (the config they mount loads, the Redis URL they build
parses, the commands they run exist)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from backend.src.core.config import load_active
from backend.src.core.redis_url import parse_sentinel
from backend.src.core.settings import REPO_ROOT

K8S = REPO_ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.33.0"  # the oldest release still supported upstream when written


def manifests() -> list[tuple[str, dict[str, Any]]]:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    out = []
    for name in kust["resources"]:
        out += [(name, doc) for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]
    return out


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in manifests() if d["kind"] == kind}


def test_the_kustomization_lists_every_manifest() -> None:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kust["resources"]) == sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("version", [KUBERNETES_VERSION, kubernetes_validate.latest_version()])
def test_every_manifest_is_valid_kubernetes(version: str) -> None:
    docs = manifests()
    assert len(docs) >= 10
    for name, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_a_broken_manifest_is_caught() -> None:
    sts = by_kind("StatefulSet")["levibot-manager"]
    broken = {**sts, "spec": {**sts["spec"], "replicas": "three"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    unknown = {**sts, "spec": {**sts["spec"], "replica": 3}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown, KUBERNETES_VERSION, strict=True)


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_the_managers_are_a_pool_with_their_own_volumes(tmp_path: Path) -> None:
    sts = by_kind("StatefulSet")["levibot-manager"]
    pod = sts["spec"]["template"]["spec"]
    env = env_of(pod["containers"][0])
    assert env["LEVIBOT_POOL"] and sts["spec"]["replicas"] >= 2
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert pod["containers"][0]["volumeMounts"][0] == {"name": "data", "mountPath": "/app/backend/data"}
    # the mounted config is one the manager loads
    engines = tmp_path / "engines.yaml"
    engines.write_text(by_kind("ConfigMap")["levibot-engines"]["data"]["engines.yaml"])
    assert len(load_active(engines, None)) >= 3


def test_every_levibot_container_reaches_redis_through_the_sentinels() -> None:
    redis_sts = by_kind("StatefulSet")["levibot-redis"]
    hosts = {f"levibot-redis-{i}.{redis_sts['spec']['serviceName']}" for i in range(redis_sts["spec"]["replicas"])}
    pods = [d["spec"]["template"]["spec"] for _, d in manifests() if d["kind"] in ("StatefulSet", "Deployment")
            and d["metadata"]["name"] != "levibot-redis"]
    assert len(pods) == 3
    for pod in pods:
        env = env_of(pod["containers"][0])
        url = parse_sentinel(str(env["LEVIBOT_REDIS_URL"]).replace("$(REDIS_PASSWORD)", "pw"))
        assert url is not None and url.password == "pw" and {h for h, _ in url.hosts} == hosts
        assert env["REDIS_PASSWORD"] == {"secretKeyRef": {"name": "levibot", "key": "redis-password"}}
        names = [e["name"] for e in pod["containers"][0]["env"]]
        assert names.index("REDIS_PASSWORD") < names.index("LEVIBOT_REDIS_URL")  # $(VAR) expands earlier vars only
        assert not any("value" in e and any(w in e["name"] for w in ("TOKEN", "KEY", "PASSWORD", "SECRET"))
                       for e in pod["containers"][0]["env"]), "a secret written into a manifest"


def test_workers_scale_on_a_metric_the_api_exports() -> None:
    from backend.src.app.metrics import SnapshotCollector
    from backend.src.core.fleet import Snapshot

    hpa = by_kind("HorizontalPodAutoscaler")["levibot-workers"]
    assert hpa["spec"]["scaleTargetRef"]["name"] in by_kind("Deployment")
    exported = {m.name for m in SnapshotCollector(Snapshot(0.0, [], None, queues={"sentiment": 3})).collect()}
    for m in hpa["spec"]["metrics"]:
        assert m["external"]["metric"]["name"] in exported
