"""The ValidatingAdmissionPolicies Tandem ships (the operator's own authority and the admin policy), generated here so that
their CEL comes from the same data as the operator's own checks.

Three policies, each with its binding:

- **admin policy** on TrainingJobs: every rule of api/admin_policy.RULES, the administrator's
  settings in its `variables`. `kubectl apply` of a refused spec fails with the rule's one line.
- **operator children**: whatever the operator's ServiceAccount creates or updates (events,
  its Lease and TrainingJob status aside) must carry Tandem's labels and be controlled by the
  TrainingJob its job-name label names. RBAC cannot say "only Tandem's children"; this can, so
  that the ServiceAccount's token, were it stolen, cannot create an arbitrary Job or Deployment.
- **operator children's pods**: what the operator's account puts in a pod template must pass
  the admin policy (the same `variables`).

No policy takes a parameter (api/admin_policy.py says why): the settings are CEL literals in the
policies themselves, rendered from the same values as the operator's ConfigMap.

`bash hack/sync-admission.sh` writes the CEL into the chart (charts/tandem/files/) and the
whole objects, for the default install, into manifests/admission.yaml; unit tests fail while
either is stale.
"""

from __future__ import annotations

from typing import Any, Optional

from ..contract import (
    API_GROUP,
    API_VERSION,
    JOB_NAME_LABEL,
    KIND,
    KUEUE_PRIORITY_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    PLURAL,
)
from .admin_policy import RULES, SWITCHES, TEMPLATE, AdminPolicy, Rule

ADMISSION_API = "admissionregistration.k8s.io/v1"

#: Requests of the operator's account the children policy does not look at: events (best
#: effort, no owner), its Lease (leader election) and TrainingJobs themselves (status, TTL delete).
NOT_CHILDREN = [
    {"apiGroups": [""], "apiVersions": ["*"], "resources": ["events"], "operations": ["*"]},
    {"apiGroups": ["events.k8s.io"], "apiVersions": ["*"], "resources": ["events"], "operations": ["*"]},
    {"apiGroups": ["coordination.k8s.io"], "apiVersions": ["*"], "resources": ["leases"], "operations": ["*"]},
    {"apiGroups": [API_GROUP], "apiVersions": ["*"], "resources": [PLURAL, f"{PLURAL}/status"], "operations": ["*"]},
]


def admin_policy_validations() -> list[dict[str, str]]:
    """One validation per rule: its CEL, and its message as the operator says it."""
    return [{"expression": rule.cel, "message": rule.message} for rule in RULES]


def _label(key: str) -> str:
    return f"object.metadata.labels[{key!r}]"


#: A child's pod template and its spec, as CEL sees a Job or Deployment under admission.
TEMPLATE_OF_POD = "object.spec.template"
POD = f"{TEMPLATE_OF_POD}.spec"
#: True of an object without a pod template (a Service; a Secret has not even a spec).
NO_POD_TEMPLATE = f"!has(object.spec) || !has(object.spec.template) || !has({POD})"
#: The podTemplate field that stands for every container's securityContext in a child.
CONTAINER_CONTEXT = "containerSecurityContext"


def _guarded(root: str, parts: list[str], test: str) -> str:
    guards = [f"!has({root}.{'.'.join(parts[:i + 1])})" for i in range(len(parts))]
    return " || ".join([*guards, f"({test})"])


#: Every list of containers a pod spec has: an init or ephemeral container runs in the pod too.
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


def _child_rule(rule: Rule) -> Optional[dict[str, str]]:
    """A rule of the admin policy as it reads on a child's pod template: the same test, with the
    podTemplate's fields where a pod spec has them (containerSecurityContext: every container's
    securityContext, init and ephemeral ones included; annotations: the template's metadata). None
    for a rule that spans fields (its test names the podTemplate) or is not on the podTemplate
    (spec.priorityClassName: child_pod_validations checks its label instead)."""
    if TEMPLATE in rule.holds or rule.root != TEMPLATE:
        return None
    leaf = rule.field.removeprefix("spec.podTemplate.").split(".")
    opened = f"variables.{rule.setting} || " if rule.setting in SWITCHES else ""
    if leaf[0] == CONTAINER_CONTEXT:
        parts = ["securityContext", *leaf[1:]]
        each = _guarded("c", parts, rule.holds.replace("$", "c." + ".".join(parts)))
        test = " && ".join(f"(!has({POD}.{kind}) || {POD}.{kind}.all(c, {each}))" for kind in CONTAINER_LISTS)
        field = f"spec.template.spec.{{{','.join(CONTAINER_LISTS)}}}[*].{'.'.join(parts)}"
    elif leaf[0] == "annotations":
        parts = ["metadata", *leaf]
        test = _guarded(TEMPLATE_OF_POD, parts, rule.holds.replace("$", f"{TEMPLATE_OF_POD}.{'.'.join(parts)}"))
        field = f"spec.template.{'.'.join(parts)}"
    else:
        test = _guarded(POD, leaf, rule.holds.replace("$", f"{POD}.{'.'.join(leaf)}"))
        field = f"spec.template.spec.{'.'.join(leaf)}"
    return {"expression": f"{NO_POD_TEMPLATE} || {opened}({test})",
            "message": f"{field}: {rule.refusal} (adminPolicy.{rule.setting})"}


def child_pod_validations() -> list[dict[str, str]]:
    """What the operator's account may put in a pod template (Jobs, Deployments), by the admin
    policy's settings: its rules, and a token only with an allowed account. So that even its
    stolen token, within the children policy, cannot make a pod a TrainingJob could not."""
    own = [
        {"expression": f"{NO_POD_TEMPLATE} || (has({POD}.automountServiceAccountToken) && "
                       f"{POD}.automountServiceAccountToken == false) || (has({POD}.serviceAccountName) && "
                       f"{POD}.serviceAccountName in variables.allowedServiceAccounts)",
         "message": "spec.template.spec.automountServiceAccountToken: the Tandem operator may mount a token only "
                    "of an account the admin policy allows (adminPolicy.allowedServiceAccounts)"},
        # spec.priorityClassName reaches the Job as Kueue's label: an allowed class only.
        {"expression": f"!has(object.metadata.labels) || !({KUEUE_PRIORITY_LABEL!r} in object.metadata.labels) || "
                       f"{_label(KUEUE_PRIORITY_LABEL)} in variables.allowedPriorityClasses",
         "message": f"metadata.labels[{KUEUE_PRIORITY_LABEL}]: the Tandem operator may set only a WorkloadPriorityClass "
                    "the admin policy allows (adminPolicy.allowedPriorityClasses)"},
    ]
    return own + [v for v in map(_child_rule, RULES) if v is not None]


#: Pod fields that share the node's namespaces; Tandem never sets them.
HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")


#: True while the request removes an object: `object` is null, `oldObject` is what goes.
DELETING = "request.operation == 'DELETE'"
#: True while the request makes a new object: there is no `oldObject` to have been Tandem's.
CREATING = "request.operation == 'CREATE'"


def _tandems(root: str) -> str:
    """CEL: `root` (object or oldObject) carries the job-name and managed-by labels and is
    controlled by the TrainingJob its job-name label names."""
    labels = f"{root}.metadata.labels"
    return (f"has({labels}) && {JOB_NAME_LABEL!r} in {labels} && {MANAGED_BY_LABEL!r} in {labels} && "
            f"{labels}[{MANAGED_BY_LABEL!r}] == {MANAGED_BY!r} && has({root}.metadata.ownerReferences) && "
            f"{root}.metadata.ownerReferences.exists(r, r.apiVersion == {API_VERSION!r} && r.kind == {KIND!r} && "
            f"has(r.controller) && r.controller == true && r.name == {labels}[{JOB_NAME_LABEL!r}])")


def children_validations() -> list[dict[str, str]]:
    """A child carries the job-name and managed-by labels and is controlled by that TrainingJob,
    and its pods (if it has a template) stay out of the host's namespaces and the scheduler's
    hands stay on them (no nodeName). An update or delete touches only an object that already
    was Tandem's: else a patch adding Tandem's labels and an ownerReference to any object (a
    tenant's NetworkPolicy) would hand it to the garbage collector. No parameter."""
    has_labels = "has(object.metadata.labels)"
    owned = (f"has(object.metadata.ownerReferences) && object.metadata.ownerReferences.exists(r, "
             f"r.apiVersion == {API_VERSION!r} && r.kind == {KIND!r} && has(r.controller) && r.controller == true && "
             f"{has_labels} && {JOB_NAME_LABEL!r} in object.metadata.labels && r.name == {_label(JOB_NAME_LABEL)})")
    on_object = [
        {"expression": f"{has_labels} && {JOB_NAME_LABEL!r} in object.metadata.labels",
         "message": f"the Tandem operator may create only objects labelled {JOB_NAME_LABEL}"},
        {"expression": f"{has_labels} && {MANAGED_BY_LABEL!r} in object.metadata.labels && "
                       f"{_label(MANAGED_BY_LABEL)} == {MANAGED_BY!r}",
         "message": f"the Tandem operator may create only objects labelled {MANAGED_BY_LABEL}={MANAGED_BY}"},
        {"expression": owned,
         "message": f"the Tandem operator may create only objects controlled by the {KIND} (apiVersion {API_VERSION}) "
                    f"their {JOB_NAME_LABEL} label names"},
        {"expression": f"{NO_POD_TEMPLATE} || "
                       f"({' && '.join(f'(!has({POD}.{k}) || {POD}.{k} != true)' for k in HOST_NAMESPACES)})",
         "message": "spec.template.spec: the Tandem operator may not create pods in the host's namespaces "
                    f"({', '.join(HOST_NAMESPACES)})"},
        {"expression": f"{NO_POD_TEMPLATE} || !has({POD}.nodeName)",
         "message": "spec.template.spec.nodeName: the Tandem operator may not bind pods to a node "
                    "(the scheduler, taints and the admin policy's reserved nodes decide)"},
    ]
    # On DELETE `object` is null: the checks above are of what is written, so they pass there.
    guarded = [{**v, "expression": f"{DELETING} || ({v['expression']})"} for v in on_object]
    was_tandems = {"expression": f"{CREATING} || ({_tandems('oldObject')})",
                   "message": f"the Tandem operator may update or delete only objects that already carry "
                              f"{JOB_NAME_LABEL} and {MANAGED_BY_LABEL}={MANAGED_BY} and are controlled by the "
                              f"{KIND} that label names"}
    return [*guarded, was_tandems]


def operator_username(namespace: str, service_account: str) -> str:
    return f"system:serviceaccount:{namespace}:{service_account}"


def admission_objects(prefix: str, namespace: str, service_account: str,
                      policy: AdminPolicy, labels: dict[str, str]) -> list[dict[str, Any]]:
    """The ConfigMap of settings (the operator's), the three policies (the settings in their
    `variables`) and their bindings, as `helm template` renders them for release `prefix` in
    `namespace` (manifests/admission.yaml is this for the defaults)."""
    config_map = f"{prefix}-admin-policy"
    meta = {"labels": dict(labels)}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": config_map, "namespace": namespace, **meta}, "data": policy.to_data()},
        {"apiVersion": ADMISSION_API, "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": config_map, **meta},
         "spec": {
             "failurePolicy": "Fail",
             "matchConstraints": {"resourceRules": [{"apiGroups": [API_GROUP], "apiVersions": ["*"],
                                                     "resources": [PLURAL], "operations": ["CREATE", "UPDATE"]}]},
             "variables": policy.variables(),
             "validations": admin_policy_validations(),
         }},
        {"apiVersion": ADMISSION_API, "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": config_map, **meta},
         "spec": {"policyName": config_map, "validationActions": ["Deny"]}},
        *_children_policy(f"{prefix}-operator-children", namespace, service_account, meta,
                          children_validations(), None, ["CREATE", "UPDATE", "DELETE"]),
        *_children_policy(f"{prefix}-operator-children-pods", namespace, service_account, meta,
                          child_pod_validations(), policy, ["CREATE", "UPDATE"]),
    ]


def _children_policy(name: str, namespace: str, service_account: str, meta: dict[str, Any],
                     validations: list[dict[str, str]], policy: Optional[AdminPolicy],
                     operations: list[str]) -> list[dict[str, Any]]:
    """A policy on what the operator's account does (`operations`), and its binding; with
    `policy`, its settings are the policy's `variables`."""
    spec: dict[str, Any] = {
        "failurePolicy": "Fail",
        "matchConstraints": {
            "resourceRules": [{"apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"],
                               "operations": operations}],
            "excludeResourceRules": NOT_CHILDREN,
        },
        "matchConditions": [{"name": "operator-service-account",
                             "expression": f"request.userInfo.username == "
                                           f"{operator_username(namespace, service_account)!r}"}],
    }
    if policy is not None:
        spec["variables"] = policy.variables()
    spec["validations"] = validations
    binding: dict[str, Any] = {"policyName": name, "validationActions": ["Deny"]}
    return [
        {"apiVersion": ADMISSION_API, "kind": "ValidatingAdmissionPolicy", "metadata": {"name": name, **meta},
         "spec": spec},
        {"apiVersion": ADMISSION_API, "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": name, **meta},
         "spec": binding},
    ]


# ------------------------------------------------------------------ the files it is shipped as

GENERATED = "# Generated by hack/sync-admission.sh from tandem.api.admission; do not edit by hand.\n"
#: The chart's copies of the CEL (templates/admission.yaml reads them with .Files.Get).
CHART_ADMIN_POLICY = "files/admin-policy-validations.yaml"
CHART_CHILDREN = "files/operator-children-validations.yaml"
CHART_CHILDREN_PODS = "files/operator-children-pods-validations.yaml"
#: Names and labels of the default install (`helm install tandem charts/tandem -n tandem-system`).
DEFAULT_PREFIX, DEFAULT_NAMESPACE, DEFAULT_SERVICE_ACCOUNT = "tandem", "tandem-system", "tandem-operator"
DEFAULT_LABELS = {"app.kubernetes.io/name": "tandem", "app.kubernetes.io/instance": "tandem",
                  "app.kubernetes.io/version": "0.1.0", "app.kubernetes.io/part-of": "tandem"}


def _yaml(documents: list[Any]) -> str:
    import yaml

    return GENERATED + yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False, width=120)


def shipped_files() -> dict[str, str]:
    """Path (under the repository root) -> text, for every file hack/sync-admission.sh writes."""
    return {
        f"charts/tandem/{CHART_ADMIN_POLICY}": _yaml([admin_policy_validations()]),
        f"charts/tandem/{CHART_CHILDREN}": _yaml([children_validations()]),
        f"charts/tandem/{CHART_CHILDREN_PODS}": _yaml([child_pod_validations()]),
        "manifests/admission.yaml": _yaml(admission_objects(DEFAULT_PREFIX, DEFAULT_NAMESPACE, DEFAULT_SERVICE_ACCOUNT,
                                                            AdminPolicy(), DEFAULT_LABELS)),
    }


if __name__ == "__main__":  # hack/sync-admission.sh: python -m tandem.api.admission <repository root>
    import sys
    from pathlib import Path

    root = Path(sys.argv[1])
    for relative, text in shipped_files().items():
        target = root / relative
        if not target.exists() or target.read_text() != text:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            print(f"sync-admission: wrote {relative}", file=sys.stderr)
