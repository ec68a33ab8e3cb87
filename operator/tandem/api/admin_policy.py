"""The cluster administrator's policy on what a TrainingJob's podTemplate may ask for.

The operator creates worker pods with its own rights, so without a policy a user who may only
create TrainingJobs could get pods they could not create directly: another ServiceAccount's
token, a node's files (hostPath), a Secret, a privileged or root container, every node (a
tolerate-all toleration, the control plane's node labels) or any PriorityClass. The policy's
safe defaults refuse all of these; an administrator opens what the cluster allows.

Each rule is enforced twice, from the same data: by the API server at `kubectl apply` (a
ValidatingAdmissionPolicy whose CEL is `Rule.cel`, generated into the chart and manifests by
api/admission.py) and by the operator (controller/policy/validity.py marks the job Invalid and
creates nothing), which also covers clusters without the admission policy. Both say the same
line, `Rule.message`, naming the field and the setting. The settings have one source, the chart's
`adminPolicy` values, rendered twice at install time: into the admission policies' `variables`
(CEL literals, `AdminPolicy.variables`) and into a ConfigMap, the directory the operator reads
(`tandem operator run --admin-policy`). The policies take no parameter: the API server's view of a
policy's parameter object was seen to go stale for minutes after a reinstall (refusing every
TrainingJob while the ConfigMap was there), and a lost parameter forces a choice between refusing
everything and allowing everything. A policy's own spec has neither problem.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping, Optional

from ..errors import UsageError
from .model import TrainingJob

#: Node label and taint keys of control-plane nodes: no job may select or tolerate them by default.
CONTROL_PLANE_KEYS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")


@dataclass(frozen=True)
class AdminPolicy:
    """The settings; the defaults are the chart's `adminPolicy` defaults (a unit test checks)."""

    allowed_service_accounts: tuple[str, ...] = ()
    allowed_priority_classes: tuple[str, ...] = ()
    reserved_node_keys: tuple[str, ...] = CONTROL_PLANE_KEYS
    allow_host_path: bool = False
    allow_secret_volumes: bool = False
    allow_privileged: bool = False
    allow_run_as_root: bool = False
    allow_tolerate_all: bool = False

    @classmethod
    def from_data(cls, data: Mapping[str, str]) -> AdminPolicy:
        """From the ConfigMap's data (lists comma-separated, booleans "true"/"false"); an unknown
        key or a bad value is an error, so that a misspelt setting never leaves a rule open."""
        by_key = {setting_name(f.name): f for f in fields(cls)}
        unknown = sorted(set(data) - set(by_key))
        if unknown:
            raise UsageError(f"admin policy: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(by_key))}")
        values: dict[str, Any] = {}
        for key, text in data.items():
            attribute = by_key[key].name
            if key in SWITCHES:
                if text not in ("true", "false"):
                    raise UsageError(f"admin policy: {key} must be true or false, got {text!r}")
                values[attribute] = text == "true"
            else:
                values[attribute] = tuple(item.strip() for item in text.split(",") if item.strip())
        return cls(**values)

    def to_data(self) -> dict[str, str]:
        """The ConfigMap's data: the inverse of from_data."""
        data = {}
        for f in fields(self):
            value = getattr(self, f.name)
            data[setting_name(f.name)] = ("true" if value else "false") if isinstance(value, bool) else ",".join(value)
        return data

    def variables(self) -> list[dict[str, str]]:
        """The admission policies' `variables`: each setting as a CEL literal (a bool, or a list of
        strings), which the rules' CEL reads as `variables.<setting>`. The chart renders the same
        literals from its values (templates/_helpers.tpl, "tandem.adminPolicyVariables")."""
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            literal = ("true" if value else "false") if isinstance(value, bool) else \
                "[" + ", ".join(f"'{item}'" for item in value) + "]"
            out.append({"name": setting_name(f.name), "expression": literal})
        return out


def setting_name(attribute: str) -> str:
    """allow_host_path -> allowHostPath: the chart value and ConfigMap key of a setting."""
    head, *rest = attribute.split("_")
    return head + "".join(word.capitalize() for word in rest)


#: The on/off settings (the rest are lists).
SWITCHES = frozenset(setting_name(f.name) for f in fields(AdminPolicy) if isinstance(f.default, bool))

# ------------------------------------------------------------------------------ the rules

#: The podTemplate as CEL sees it in a TrainingJob under admission (`object`).
TEMPLATE = "object.spec.podTemplate"
#: The whole spec, for the few rules on fields outside the podTemplate (spec.priorityClassName).
SPEC = "object.spec"


def _dict(value: Optional[Mapping[str, Any]]) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class Rule:
    """One refusal: the setting that opens it, the field it names, and the test in Python and CEL."""

    #: The chart value and ConfigMap key (camelCase) the rule reads.
    setting: str
    #: The spec field a refused spec is told to change.
    field: str
    #: What is refused, for the one-line message.
    refusal: str
    #: Python: does this podTemplate (the spec, for a rule whose root is SPEC) break the rule?
    refuses: Callable[[AdminPolicy, Any], bool]
    #: CEL over `object` (the TrainingJob) and `variables` (the settings): true when the rule holds.
    #: `$` stands for the field's value; the expression is reached only when the field is set.
    holds: str
    #: What `field` lies under and `refuses` is given: the podTemplate (TEMPLATE) or the spec (SPEC).
    root: str = TEMPLATE

    @property
    def message(self) -> str:
        return f"{self.field}: {self.refusal} (adminPolicy.{self.setting})"

    @property
    def cel(self) -> str:
        """The full expression: podTemplate or the field unset, the setting open, or `holds`."""
        leaf = self.field.removeprefix("spec.podTemplate." if self.root == TEMPLATE else "spec.")
        parts = leaf.split(".")
        guards = [f"!has({self.root})"] + [f"!has({self.root}.{'.'.join(parts[:i + 1])})" for i in range(len(parts))]
        opened = [f"variables.{self.setting}"] if self.setting in SWITCHES else []
        return " || ".join([*guards, *opened, "(" + self.holds.replace("$", f"{self.root}.{leaf}") + ")"])


def _listed(setting: str) -> str:
    return f"variables.{setting}"


def _root_user(context: Optional[Mapping[str, Any]]) -> bool:
    return _dict(context).get("runAsUser") == 0


def _volume_has_secret(volume: Mapping[str, Any]) -> bool:
    sources = _dict(volume.get("projected")).get("sources") or []
    return "secret" in volume or any("secret" in s or "serviceAccountToken" in s for s in sources if isinstance(s, Mapping))


def _at(mapping: Any, *path: str) -> Any:
    """The value at `path` in nested mappings, or None where any step is missing."""
    for key in path:
        mapping = _dict(mapping).get(key)
    return mapping


#: Seccomp and AppArmor profile types the restricted Pod Security Standard allows (Unconfined is not).
CONFINED_PROFILES = ("RuntimeDefault", "Localhost")
#: SELinux types the baseline Pod Security Standard allows ("" is the runtime's default).
SELINUX_TYPES = ("", "container_t", "container_init_t", "container_kvm_t", "container_engine_t")
#: The beta AppArmor annotation on pods, still honoured by the kubelet: an annotation of the
#: tenant's (podTemplate.annotations) could unconfine the worker without any securityContext.
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def _cel_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{item}'" for item in items) + "]"


def _confinement_rules(context: str, attribute: str) -> tuple[Rule, ...]:
    """What the restricted (and baseline) Pod Security Standard asks of a security context that a
    tenant may replace (pod or container): a confined seccomp and AppArmor profile, an SELinux
    type of the container runtime's and no SELinux user or role. Omitted fields keep Tandem's
    restricted defaults (render/context.py); these refuse the explicit opposite."""
    def read(*path: str) -> Callable[[Any], Any]:
        return lambda t: _at(getattr(t, attribute), *path)

    seccomp, apparmor = read("seccompProfile", "type"), read("appArmorProfile", "type")
    selinux_type, selinux_user, selinux_role = (read("seLinuxOptions", k) for k in ("type", "user", "role"))
    field = f"spec.podTemplate.{context}"
    return (
        Rule("allowPrivileged", f"{field}.seccompProfile.type",
             "a seccomp profile other than RuntimeDefault or Localhost is refused by the admin policy",
             lambda p, t: not p.allow_privileged and seccomp(t) is not None and seccomp(t) not in CONFINED_PROFILES,
             f"$ in {_cel_list(CONFINED_PROFILES)}"),
        Rule("allowPrivileged", f"{field}.appArmorProfile.type",
             "an AppArmor profile other than RuntimeDefault or Localhost is refused by the admin policy",
             lambda p, t: not p.allow_privileged and apparmor(t) is not None and apparmor(t) not in CONFINED_PROFILES,
             f"$ in {_cel_list(CONFINED_PROFILES)}"),
        Rule("allowPrivileged", f"{field}.seLinuxOptions.type",
             "an SELinux type other than the container runtime's is refused by the admin policy",
             lambda p, t: not p.allow_privileged and selinux_type(t) is not None
             and selinux_type(t) not in SELINUX_TYPES,
             f"$ in {_cel_list(SELINUX_TYPES)}"),
        Rule("allowPrivileged", f"{field}.seLinuxOptions.user",
             "an SELinux user is refused by the admin policy",
             lambda p, t: not p.allow_privileged and bool(selinux_user(t)), "$ == ''"),
        Rule("allowPrivileged", f"{field}.seLinuxOptions.role",
             "an SELinux role is refused by the admin policy",
             lambda p, t: not p.allow_privileged and bool(selinux_role(t)), "$ == ''"),
    )


def _tolerates_all(toleration: Mapping[str, Any]) -> bool:
    return not toleration.get("key") and toleration.get("operator") == "Exists"


RULES: tuple[Rule, ...] = (
    Rule("allowedServiceAccounts", "spec.podTemplate.serviceAccountName",
         "this ServiceAccount is not one the admin policy allows (its token would reach the workers)",
         lambda p, t: t.service_account_name is not None and t.service_account_name not in p.allowed_service_accounts,
         f"$ in {_listed('allowedServiceAccounts')}"),
    Rule("allowedPriorityClasses", "spec.podTemplate.priorityClassName",
         "this PriorityClass is not one the admin policy allows",
         lambda p, t: t.priority_class_name is not None and t.priority_class_name not in p.allowed_priority_classes,
         f"$ in {_listed('allowedPriorityClasses')}"),
    # Kueue's WorkloadPriorityClass orders the queue and picks whom to preempt: the same power over
    # other tenants as a pod PriorityClass, so the same list opens it (docs/queues.md).
    Rule("allowedPriorityClasses", "spec.priorityClassName",
         "this WorkloadPriorityClass is not one the admin policy allows",
         lambda p, s: s.priority_class_name is not None and s.priority_class_name not in p.allowed_priority_classes,
         f"$ in {_listed('allowedPriorityClasses')}", root=SPEC),
    Rule("reservedNodeKeys", "spec.podTemplate.nodeSelector",
         "selects a node label the admin policy reserves (control-plane nodes)",
         lambda p, t: bool(set(t.node_selector) & set(p.reserved_node_keys)),
         f"$.all(key, !(key in {_listed('reservedNodeKeys')}))"),
    Rule("reservedNodeKeys", "spec.podTemplate.tolerations",
         "tolerates a taint the admin policy reserves (control-plane nodes)",
         lambda p, t: any(tol.get("key") in p.reserved_node_keys for tol in t.tolerations),
         f"$.all(t, !has(t.key) || !(t.key in {_listed('reservedNodeKeys')}))"),
    Rule("allowTolerateAll", "spec.podTemplate.tolerations",
         "a toleration with operator Exists and no key tolerates every taint; the admin policy refuses it",
         lambda p, t: not p.allow_tolerate_all and any(_tolerates_all(tol) for tol in t.tolerations),
         "$.all(t, (has(t.key) && t.key != '') || !has(t.operator) || t.operator != 'Exists')"),
    Rule("allowHostPath", "spec.podTemplate.volumes",
         "hostPath volumes are refused by the admin policy",
         lambda p, t: not p.allow_host_path and any("hostPath" in v for v in t.volumes),
         "$.all(v, !has(v.hostPath))"),
    Rule("allowSecretVolumes", "spec.podTemplate.volumes",
         "secret volumes (and projected secrets or ServiceAccount tokens) are refused by the admin policy",
         lambda p, t: not p.allow_secret_volumes and any(_volume_has_secret(v) for v in t.volumes),
         "$.all(v, !has(v.secret) && (!has(v.projected) || !has(v.projected.sources) || "
         "v.projected.sources.all(s, !has(s.secret) && !has(s.serviceAccountToken))))"),
    Rule("allowPrivileged", "spec.podTemplate.containerSecurityContext.privileged",
         "privileged containers are refused by the admin policy",
         lambda p, t: not p.allow_privileged and _dict(t.container_security_context).get("privileged") is True,
         "$ != true"),
    Rule("allowPrivileged", "spec.podTemplate.containerSecurityContext.allowPrivilegeEscalation",
         "privilege escalation is refused by the admin policy",
         lambda p, t: not p.allow_privileged
         and _dict(t.container_security_context).get("allowPrivilegeEscalation") is True,
         "$ != true"),
    Rule("allowPrivileged", "spec.podTemplate.containerSecurityContext.capabilities.add",
         "added capabilities are refused by the admin policy",
         lambda p, t: not p.allow_privileged
         and bool(_dict(_dict(t.container_security_context).get("capabilities")).get("add")),
         "size($) == 0"),
    # Omitted, drop is ALL (render/context.py); a list without ALL keeps the runtime's defaults.
    Rule("allowPrivileged", "spec.podTemplate.containerSecurityContext.capabilities.drop",
         "a capabilities.drop without ALL is refused by the admin policy",
         lambda p, t: not p.allow_privileged and _at(t.container_security_context, "capabilities", "drop") is not None
         and "ALL" not in (_at(t.container_security_context, "capabilities", "drop") or ()),
         "'ALL' in $"),
    Rule("allowPrivileged", "spec.podTemplate.containerSecurityContext.procMount",
         "procMount Unmasked is refused by the admin policy",
         lambda p, t: not p.allow_privileged and _at(t.container_security_context, "procMount") not in (None, "Default"),
         "$ == 'Default'"),
    *_confinement_rules("securityContext", "security_context"),
    *_confinement_rules("containerSecurityContext", "container_security_context"),
    Rule("allowPrivileged", "spec.podTemplate.annotations",
         f"the AppArmor annotation {APPARMOR_ANNOTATION}* is refused by the admin policy (use appArmorProfile)",
         lambda p, t: not p.allow_privileged and any(k.startswith(APPARMOR_ANNOTATION) for k in t.annotations),
         f"$.all(k, !k.startsWith('{APPARMOR_ANNOTATION}'))"),
    Rule("allowRunAsRoot", "spec.podTemplate.securityContext.runAsUser",
         "runAsUser 0 (root) is refused by the admin policy",
         lambda p, t: not p.allow_run_as_root and _root_user(t.security_context),
         "$ != 0"),
    Rule("allowRunAsRoot", "spec.podTemplate.containerSecurityContext.runAsUser",
         "runAsUser 0 (root) is refused by the admin policy",
         lambda p, t: not p.allow_run_as_root and _root_user(t.container_security_context),
         "$ != 0"),
    Rule("allowRunAsRoot", "spec.podTemplate.securityContext.runAsNonRoot",
         "runAsNonRoot false is refused by the admin policy",
         lambda p, t: not p.allow_run_as_root and _dict(t.security_context).get("runAsNonRoot") is False,
         "$ != false"),
    Rule("allowRunAsRoot", "spec.podTemplate.containerSecurityContext.runAsNonRoot",
         "runAsNonRoot false is refused by the admin policy",
         lambda p, t: not p.allow_run_as_root and _dict(t.container_security_context).get("runAsNonRoot") is False,
         "$ != false"),
    # Each context replaces Tandem's restricted default (render/context.py), which sets runAsNonRoot;
    # with both replaced and neither setting it, the image's user runs, root perhaps.
    Rule("allowRunAsRoot", "spec.podTemplate.containerSecurityContext",
         "with securityContext also replaced, one of the two must set runAsNonRoot: true (the admin policy refuses root)",
         lambda p, t: not p.allow_run_as_root and t.security_context is not None and t.container_security_context
         is not None and not (_dict(t.security_context).get("runAsNonRoot") is True
                              or _dict(t.container_security_context).get("runAsNonRoot") is True),
         f"!has({TEMPLATE}.securityContext) || (has($.runAsNonRoot) && $.runAsNonRoot == true) || "
         f"(has({TEMPLATE}.securityContext.runAsNonRoot) && {TEMPLATE}.securityContext.runAsNonRoot == true)"),
)


def violations(policy: AdminPolicy, job: TrainingJob) -> list[str]:
    """Every rule the job's spec breaks, as one line each (Rule.message), in RULES order."""
    template = job.spec.pod_template
    return [rule.message for rule in RULES if rule.refuses(policy, template if rule.root == TEMPLATE else job.spec)]
