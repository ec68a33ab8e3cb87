"""From a validated TrainingJob to the values the templates place: pure, no I/O.

All decisions about what a worker pod gets (labels, the env contract, GPU and TPU scheduling,
security context) are made here in Python, where they can be tested; the templates only give
the objects their shape, and every value reaches them through `tojson`.
"""

from __future__ import annotations

from typing import Any

from .. import contract
from ..api.model import TrainingJob
from ..api.quantity import parse_quantity
from ..api.rejoin import pod_failure_policy
from ..api.restart import fail_job_exit_codes
from ..contract import (
    API_VERSION,
    COMPLETION_INDEX,
    COMPONENT_LABEL,
    COMPONENT_TENSORBOARD,
    COMPONENT_WORKER,
    COORDINATOR_PORT,
    ENV_OMP_THREADS,
    GPU_RESOURCE,
    JOB_NAME_LABEL,
    KIND,
    KUEUE_PRIORITY_LABEL,
    KUEUE_QUEUE_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    RESTART_ANNOTATION,
    TENSORBOARD_PORT,
    TPU_ACCELERATOR_LABEL,
    TPU_RESOURCE,
    TPU_TOPOLOGY_LABEL,
    worker_host,
)
from ..frameworks import TENSORBOARD_SERVER_IMAGE

LAUNCHER = ["python", "-m", "tandem.launch", "--"]
#: The uid of the `tandem` user in Tandem's worker images.
WORKER_UID = 1000

RESTRICTED_POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": WORKER_UID,
    "runAsGroup": WORKER_UID,
    "fsGroup": WORKER_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


#: Capabilities that the API server refuses beside allowPrivilegeEscalation false.
ESCALATING_CAPABILITIES = frozenset({"SYS_ADMIN", "CAP_SYS_ADMIN"})


def pod_security(job: TrainingJob) -> dict[str, Any]:
    """The pod's security context: the tenant's replacement keeps a RuntimeDefault seccomp profile
    unless it names one. A replacement is what its fields say, not what it leaves out: an omitted
    field must not undo a restricted default, so only the admin policy (api/admin_policy.py) can
    open what the restricted Pod Security Standard closes."""
    replaced = job.spec.pod_template.security_context
    if replaced is None:
        return dict(RESTRICTED_POD_SECURITY)
    return {"seccompProfile": RESTRICTED_POD_SECURITY["seccompProfile"], **replaced}


def container_security(job: TrainingJob) -> dict[str, Any]:
    """The worker container's security context: the tenant's replacement keeps
    allowPrivilegeEscalation false and drops ALL capabilities unless it says otherwise (which
    the admin policy refuses unless allowPrivileged). Seccomp comes from the pod (pod_security).
    A privileged container, or one adding SYS_ADMIN, escalates by definition: the API server
    refuses allowPrivilegeEscalation false beside either, so none is added there."""
    replaced = job.spec.pod_template.container_security_context
    if replaced is None:
        return dict(RESTRICTED_CONTAINER_SECURITY)
    context = dict(replaced)
    capabilities = dict(context["capabilities"]) if isinstance(context.get("capabilities"), dict) else {}
    capabilities.setdefault("drop", ["ALL"])
    context["capabilities"] = capabilities
    escalates = context.get("privileged") is True or bool(ESCALATING_CAPABILITIES & set(capabilities.get("add") or ()))
    if not escalates:
        context.setdefault("allowPrivilegeEscalation", False)
    return context


def common_labels(job: TrainingJob) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": f"{job.spec.framework}-worker",
        "app.kubernetes.io/instance": job.metadata.name,
        COMPONENT_LABEL: COMPONENT_WORKER,
        "app.kubernetes.io/part-of": "tandem",
        MANAGED_BY_LABEL: MANAGED_BY,
        JOB_NAME_LABEL: job.metadata.name,
    }


def worker_selector(job: TrainingJob) -> dict[str, str]:
    """The labels that pick this job's worker pods, and nothing else: the headless Service's
    selector and the NetworkPolicy's. The TensorBoard pod carries the job label too, but another
    component. A selector without a namespace selector matches pods of the job's namespace only."""
    return {JOB_NAME_LABEL: job.metadata.name, COMPONENT_LABEL: COMPONENT_WORKER}


def owner_references(job: TrainingJob) -> list[dict[str, Any]]:
    if not job.metadata.uid:
        return []
    return [{
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": job.metadata.name,
        "uid": job.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }]


def kueue_labels(job: TrainingJob) -> dict[str, str]:
    """The labels that put the Indexed Job under Kueue: its LocalQueue and WorkloadPriorityClass.

    On the Job only: Kueue's batch/Job integration reads them there and makes one Workload of all
    the Job's pods, so that the group is admitted whole (docs/queues.md)."""
    labels = {}
    if job.spec.queue_name is not None:
        labels[KUEUE_QUEUE_LABEL] = job.spec.queue_name
        if job.spec.priority_class_name is not None:
            labels[KUEUE_PRIORITY_LABEL] = job.spec.priority_class_name
    return labels


def contract_env(job: TrainingJob, restart: int, metrics_address: str,
                 token_secret: str = "") -> list[dict[str, Any]]:
    """The TANDEM_* env contract (contract.ENV_*) every worker's launcher reads.

    No list of hosts: the launcher derives them from job, namespace, workers and port, so a
    pod's size does not grow with the worker count (a list in every pod made a 10,000-worker Job 1.9 MB).
    With `token_secret` (the name of the job's token Secret, metrics_token_values), the job's gateway
    token comes from that Secret; a local run sets it in the environment itself."""
    name, namespace, spec = job.metadata.name, job.metadata.namespace, job.spec
    plain = {
        contract.ENV_JOB: name,
        contract.ENV_NAMESPACE: namespace,
        contract.ENV_FRAMEWORK: spec.framework,
        contract.ENV_STRATEGY: spec.strategy,
        contract.ENV_WORKERS: str(spec.max_worker_count),
        **({contract.ENV_MIN_WORKERS: str(spec.min_worker_count)} if spec.elastic else {}),
        contract.ENV_PROCS_PER_WORKER: str(spec.procs_per_worker),
        contract.ENV_COORDINATOR: worker_host(name, namespace, 0),
        contract.ENV_PORT: str(COORDINATOR_PORT),
        contract.ENV_RESTART: str(restart),
        contract.ENV_IN_PLACE_RESTARTS: str(spec.run_policy.in_place_restarts),
        **({} if spec.run_policy.warm_restarts else {contract.ENV_WARM: "0"}),
        contract.ENV_METRICS: "1" if spec.metrics.enabled else "0",
        contract.ENV_METRICS_ADDRESS: metrics_address if spec.metrics.enabled else "",
        contract.ENV_TENSORBOARD: "1" if spec.tensorboard.enabled else "0",
        contract.ENV_TERMINATION_GRACE: str(spec.run_policy.termination_grace_period_seconds),
    }
    if spec.tensorboard.enabled:
        plain[contract.ENV_TENSORBOARD_DIR] = tensorboard_dir(job)
    fail_job = fail_job_exit_codes(spec.run_policy) if spec.run_policy.in_place_restarts else ()
    if fail_job:
        plain[contract.ENV_FAIL_JOB_EXIT_CODES] = ",".join(str(code) for code in fail_job)
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in plain.items()]
    env.insert(5, {
        "name": contract.ENV_WORKER_INDEX,
        "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}},
    })
    if token_secret and spec.metrics.enabled and metrics_address:
        env.append({"name": contract.ENV_METRICS_TOKEN, "valueFrom": {"secretKeyRef": {
            "name": token_secret,
            "key": contract.METRICS_TOKEN_KEY}}})
    return env


def metrics_token_values(job: TrainingJob, token: str, secret: str) -> dict[str, Any]:
    """What the job's token Secret template places: the token and the Secret's name `secret` are
    computed by the operator (figures/token.py)."""
    return {
        "token_secret_name": secret,
        "namespace": job.metadata.namespace,
        "token_secret_labels": {**common_labels(job), "app.kubernetes.io/component": "metrics-token"},
        "owner_references": owner_references(job),
        "token_key": contract.METRICS_TOKEN_KEY,
        "token": token,
    }


def resources(job: TrainingJob) -> dict[str, Any]:
    spec = job.spec
    amounts: dict[str, Any] = {"cpu": spec.resources.cpu, "memory": spec.resources.memory}
    if spec.resources.gpus:
        amounts[GPU_RESOURCE] = str(spec.resources.gpus)
    if spec.tpu is not None:
        amounts[TPU_RESOURCE] = str(spec.tpu.shape().chips_per_host)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def scheduling(job: TrainingJob) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Node selector and tolerations: the accelerator's first, then the user's."""
    spec, template = job.spec, job.spec.pod_template
    selector: dict[str, str] = {}
    tolerations: list[dict[str, Any]] = []
    if spec.resources.gpus:
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    if spec.tpu is not None:
        selector[TPU_ACCELERATOR_LABEL] = spec.tpu.accelerator
        selector[TPU_TOPOLOGY_LABEL] = spec.tpu.topology
        tolerations.append({"key": TPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    selector.update(template.node_selector)
    return selector, tolerations + list(template.tolerations)


TENSORBOARD_VOLUME = "tensorboard"


def tensorboard_name(job: TrainingJob) -> str:
    return contract.tensorboard_name(job.metadata.name)


def tensorboard_address(job: TrainingJob) -> str:
    return f"http://{tensorboard_name(job)}.{job.metadata.namespace}.svc:{TENSORBOARD_PORT}"


def tensorboard_dir(job: TrainingJob) -> str:
    """The job's own directory under logDir; each worker writes to worker-<i> inside it."""
    return f"{job.spec.tensorboard.log_dir.rstrip('/')}/{job.metadata.name}"


def tensorboard_volume(job: TrainingJob, read_only: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts) for the claim holding the event files, if the spec names one."""
    board = job.spec.tensorboard
    if not board.enabled or board.remote or board.claim_name is None:
        return [], []
    claim: dict[str, Any] = {"claimName": board.claim_name, **({"readOnly": True} if read_only else {})}
    volume = {"name": TENSORBOARD_VOLUME, "persistentVolumeClaim": claim}
    mount = {"name": TENSORBOARD_VOLUME, "mountPath": board.log_dir, **({"readOnly": True} if read_only else {})}
    return [volume], [mount]


def tensorboard_values(job: TrainingJob) -> dict[str, Any]:
    labels = {**common_labels(job), "app.kubernetes.io/name": "tensorboard", COMPONENT_LABEL: COMPONENT_TENSORBOARD}
    volumes, mounts = tensorboard_volume(job, read_only=True)
    return {
        "tensorboard_name": tensorboard_name(job),
        "tensorboard_labels": labels,
        "tensorboard_selector": {JOB_NAME_LABEL: job.metadata.name, COMPONENT_LABEL: COMPONENT_TENSORBOARD},
        "tensorboard_image": TENSORBOARD_SERVER_IMAGE,
        "tensorboard_args": ["--logdir", tensorboard_dir(job), "--bind_all", "--port", str(TENSORBOARD_PORT)],
        "tensorboard_port": TENSORBOARD_PORT,
        "tensorboard_volumes": volumes,
        "tensorboard_mounts": mounts,
        # The user's placement, not the accelerator's: TensorBoard needs no GPU or TPU, but
        # where workers may only run on tainted or labelled nodes, so may it.
        "tensorboard_node_selector": dict(job.spec.pod_template.node_selector),
        "tensorboard_tolerations": list(job.spec.pod_template.tolerations),
    }


def omp_threads(job: TrainingJob) -> int:
    """OpenMP threads per process of a pod: the cores the worker requests (resources.cpu) shared
    by its processes. Unset, every rank starts one thread per node core and ranks fight over
    them (bench B1: 30x slower on 2 cores). Local runs share one host: local.threads."""
    return max(1, int(float(parse_quantity(job.spec.resources.cpu)) // job.spec.procs_per_worker))


def automount_token(job: TrainingJob) -> bool:
    """A worker gets an API token only from an account its spec names, which the admin policy
    (api/admin_policy.py) must allow. Otherwise it runs as the namespace's default account with
    no token: training needs no API access, and a token would hand tenant code whatever that
    account may do (docs/security.md, "Admin policy")."""
    return job.spec.pod_template.service_account_name is not None


def template_values(job: TrainingJob, restart: int = 0, metrics_address: str = "",
                    token_secret: str = "") -> dict[str, Any]:
    """Every value the Service and Job templates need."""
    spec, template = job.spec, job.spec.pod_template
    labels = common_labels(job)
    node_selector, tolerations = scheduling(job)
    user_env = [{"name": e.name, "value": e.value} for e in spec.env]
    if not any(e.name == ENV_OMP_THREADS for e in spec.env):
        user_env.append({"name": ENV_OMP_THREADS, "value": str(omp_threads(job))})
    board_volumes, board_mounts = tensorboard_volume(job, read_only=False)
    return {
        "name": job.metadata.name,
        "namespace": job.metadata.namespace,
        "labels": labels,
        "job_labels": {**labels, **kueue_labels(job)},
        # Kueue unsuspends the Job when it admits the whole group; until then no pod exists.
        "queued": spec.queue_name is not None,
        "selector": worker_selector(job),
        "owner_references": owner_references(job),
        "port": COORDINATOR_PORT,
        "workers": spec.worker_count,
        # With rejoin a lost worker pod is recreated for its index instead of failing the Job.
        "pod_failure_policy": pod_failure_policy(spec),
        "job_annotations": {RESTART_ANNOTATION: str(restart)},
        "pod_labels": {**template.labels, **labels},
        "pod_annotations": {**template.annotations, RESTART_ANNOTATION: str(restart)},
        "service_account_name": template.service_account_name,
        "automount_token": automount_token(job),
        "priority_class_name": template.priority_class_name,
        "termination_grace_period_seconds": spec.run_policy.termination_grace_period_seconds,
        "node_selector": node_selector,
        "tolerations": tolerations,
        "pod_security_context": pod_security(job),
        "container_security_context": container_security(job),
        "image": spec.worker_image,
        "launcher": LAUNCHER,
        "args": list(spec.command),
        "env": contract_env(job, restart, metrics_address, token_secret) + user_env,
        "resources": resources(job),
        "volume_mounts": [{"name": "dshm", "mountPath": "/dev/shm"}, *board_mounts, *template.volume_mounts],
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory"}}, *board_volumes, *template.volumes],
        **(tensorboard_values(job) if spec.tensorboard.servable else {}),
    }
