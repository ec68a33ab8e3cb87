"""The TrainingJob API: one source of truth for validation, the CRD schema and rendering.

Field names are camelCase on the wire (as in every Kubernetes API) and snake_case in Python.
Cross-field rules are field validators reading the fields declared before them, so that every
error carries the path of the field to fix.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Iterable, Optional

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from .. import frameworks
from ..contract import (
    API_VERSION,
    CONDITION_TYPE_PATTERN,
    COORDINATOR_PORT,
    DEFAULT_TERMINATION_GRACE_SECONDS,
    ENV_VAR_NAME_PATTERN,
    FAILURE_REASON_PATTERN,
    IMAGE_REFERENCE_PATTERN,
    KIND,
    MAX_EXIT_CODES,
    MAX_FAILURE_REASON,
    MAX_FAILURE_RULES,
    MAX_JOB_NAME,
    MAX_LABEL,
    MAX_TERMINATION_GRACE_SECONDS,
    MAX_WORKERS,
    MIN_PROGRESS_DEADLINE_SECONDS,
    POSITIVE_QUANTITY_PATTERN,
    RULE_NAME_PATTERN,
    ApiVersion,
    ConditionStatus,
    ExitCodeOperator,
    FailureAction,
    Kind,
    SchedulingTimeoutAction,
)
from ..errors import SpecError
from ..frameworks import rules as framework_rules
from ..frameworks.base import MAX_ENV_STRING, Contract, cluster_hosts, oversized_env, split_host_port
from . import elastic, names
from .errors import FieldError, from_validation_error
from .load import apply_overrides, load_documents
from .tpu import SliceShape, slice_shape

# Bounds on every list and string of the spec, so that the CRD (generated from this model) gives
# each a maxItems or maxLength: the API server then refuses an oversized object before storing it,
# and no watcher (the operator's cache) ever holds one. Generous for real jobs; a whole
# TrainingJob must still fit etcd's 1.5 MB.
#: A DNS-1123 subdomain (a service account, a claim, a priority class).
MAX_NAME = 253
#: One argument, variable value or annotation value.
MAX_TEXT = 65536
#: A quantity, a topology: short by nature.
MAX_SHORT = 64
#: A path or URL (logDir), an image reference.
MAX_PATH = 1024
#: Command arguments, env entries, extra tolerations, volumes and mounts, labels and annotations.
MAX_ITEMS = 256
#: All of an object's annotations, keys and values, as Kubernetes' ObjectMeta validation counts them.
MAX_ANNOTATIONS_BYTES = 256 * 1024

Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
#: A label value: check_labels tests the pattern (naming the label); the schema carries it for the CRD.
LabelValue = Annotated[
    str, StringConstraints(max_length=MAX_LABEL),
    WithJsonSchema({"type": "string", "maxLength": MAX_LABEL, "pattern": names.LABEL_VALUE_PATTERN}),
]
#: A DNS-1123 subdomain (a service account, a priority class, a claim), checked by _subdomain.
SUBDOMAIN_SCHEMA: JsonDict = {"pattern": names.DNS1123_SUBDOMAIN_PATTERN}


#: The API server reads a JSON integer into an int64; a larger one is a float to it, not an integer.
INT64 = range(-(2**63), 2**63)
#: A float it takes for an integer (go-openapi's IsFloat64AJSONInteger): integral, below 2**53.
FLOAT_INTEGERS = 2**53


def _json_integer(value: Any) -> Any:
    """What the API server takes for an integer: a JSON integer within int64, or a float with no
    fraction below 2**53 (2.0, which it stores as 2); no boolean. Strict mode refuses the rest."""
    if isinstance(value, float) and value.is_integer() and abs(value) < FLOAT_INTEGERS:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value not in INT64:
        raise ValueError(f"{value} is beyond a 64-bit integer")
    return value


#: An integer field, as the API server's `type: integer` accepts it (OptionalInt: or null; the
#: Optional goes inside, or pydantic leaves ge/le out of the JSON Schema and the CRD).
Int = Annotated[int, BeforeValidator(_json_integer)]
OptionalInt = Annotated[Optional[int], BeforeValidator(_json_integer)]


def _drop_nulls(data: Any, fields: Optional[Iterable[str]] = None) -> Any:
    """A null field is an absent one, as the API server reads it: it drops the null values of a
    structural schema's fields and map entries (none of the CRD's is nullable) before it validates.
    An unknown field stays, null or not: the server refuses it (fieldValidation=Strict)."""
    if not isinstance(data, dict):
        return data
    known = set(data) if fields is None else set(fields)
    return {key: value for key, value in data.items() if value is not None or key not in known}


def _wire_names(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


class _Model(BaseModel):
    """Strict: the API server takes no "3" for 3 nor "true" for true, so neither does the model."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", validate_assignment=False, strict=True
    )

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_absent(cls, data: Any) -> Any:
        return _drop_nulls(data, _wire_names(cls))


def _quantity(value: Any, what: str) -> str:
    """A positive quantity, as the CRD's int-or-string with POSITIVE_QUANTITY_PATTERN and minimum 1
    accepts it: an integer of at least 1 (2.0 included) or a string in the pattern, untrimmed."""
    value = _json_integer(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError(f"must be positive (got {value})")
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f"must be a Kubernetes quantity as a string or an integer (e.g. {what})")
    if not re.fullmatch(POSITIVE_QUANTITY_PATTERN, value):
        raise ValueError(f"{value!r} is not a positive Kubernetes quantity (e.g. {what})")
    return value


class Resources(_Model):
    """What each worker pod asks for. Requests equal limits, so workers are not throttled unevenly."""

    cpu: str = Field("1", max_length=MAX_SHORT, description="CPU per worker pod as a Kubernetes quantity, e.g. '2' or '500m'.")
    memory: str = Field("2Gi", max_length=MAX_SHORT, description="Memory per worker pod as a Kubernetes quantity, e.g. '4Gi'.")
    gpus: Int = Field(0, ge=0, description="NVIDIA GPUs per worker pod (limits nvidia.com/gpu). 0 runs on CPU.")

    @field_validator("cpu", mode="before")
    @classmethod
    def _cpu(cls, value: Any) -> str:
        return _quantity(value, "'2' or '500m'")

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> str:
        return _quantity(value, "'4Gi' or '512Mi'")


class TPU(_Model):
    """A Cloud TPU slice on GKE; one worker pod runs on each host of the slice."""

    accelerator: str = Field(
        max_length=MAX_SHORT, description="GKE TPU accelerator (node label cloud.google.com/gke-tpu-accelerator): "
        "tpu-v4-podslice, tpu-v5p-slice, tpu-v5-lite-podslice (v5e) or tpu-v6e-slice."
    )
    topology: str = Field(
        max_length=MAX_SHORT, pattern=r"^[0-9]+x[0-9]+(x[0-9]+)?$",
        description="Slice topology (node label cloud.google.com/gke-tpu-topology), e.g. 2x4 for v5e or 2x2x2 for v4.",
    )
    chips_per_host: OptionalInt = Field(
        None, ge=1, description="Chips per TPU VM host, only where GKE offers a choice (v5e/v6e 2x4: 4 or 8). Default: 4."
    )

    def shape(self) -> SliceShape:
        return slice_shape(self.accelerator, self.topology, self.chips_per_host)


class EnvVar(_Model):
    """A plain environment variable for every worker."""

    name: str = Field(
        max_length=MAX_NAME, json_schema_extra={"pattern": ENV_VAR_NAME_PATTERN},
        description="Variable name. TANDEM_* and the variables the launcher derives are reserved.",
    )
    value: str = Field("", max_length=MAX_TEXT, description="Value, as a string.")

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not re.fullmatch(ENV_VAR_NAME_PATTERN, name):
            raise ValueError(f"{name!r} is not a valid environment variable name")
        if frameworks.is_reserved_env(name):
            raise ValueError(f"{name!r} is set by Tandem's launcher; choose another name")
        return name


# --- runPolicy.failurePolicy: in the spirit of batch/v1 podFailurePolicy (docs/failure-rules.md) --
#: An exit code a rule matches; the API server's integer, 0..255.
ExitCode = Annotated[int, Field(ge=0, le=255), BeforeValidator(_json_integer)]
#: A failure's reason: Hung, or a kubelet reason (OOMKilled, Error, Evicted).
FailureReason = Annotated[str, StringConstraints(max_length=MAX_FAILURE_REASON, pattern=FAILURE_REASON_PATTERN)]


class ExitCodesMatcher(_Model):
    """Matches the failing worker's exit code, as batch/v1 podFailurePolicy's onExitCodes does."""

    operator: ExitCodeOperator = Field(
        description="In: the exit code is one of values. NotIn: it is none of them (a worker with no exit code, "
                    "one stopped as Hung or lost with its node, matches neither)."
    )
    values: list[ExitCode] = Field(
        min_length=1, max_length=MAX_EXIT_CODES, json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Exit codes, 0..255, each once; 0 is refused with In (a worker that exits 0 did not fail).",
    )

    @field_validator("values")
    @classmethod
    def _unique(cls, values: list[int]) -> list[int]:
        if len(set(values)) != len(values):
            raise ValueError("lists an exit code twice; list each once")
        return values

    @model_validator(mode="after")
    def _no_zero_in(self) -> ExitCodesMatcher:
        if self.operator == "In" and 0 in self.values:
            raise ValueError("values must not contain 0 with operator In: a worker that exits 0 did not fail")
        return self


class PodConditionMatcher(_Model):
    """Matches a condition of the failing worker's pod (Kubernetes only), as podFailurePolicy's onPodConditions."""

    type: str = Field(
        max_length=MAX_NAME, pattern=CONDITION_TYPE_PATTERN,
        description="Pod condition type, e.g. DisruptionTarget: the pod was preempted, evicted, or lost with its node.",
    )
    status: ConditionStatus = Field("True", description="The condition's status to match: True (default), False or Unknown.")


class FailureRule(_Model):
    """One failure rule: the first rule whose matcher matches the failure decides its action."""

    name: Optional[str] = Field(
        None, max_length=MAX_LABEL, pattern=RULE_NAME_PATTERN,
        description="A name for status and events to cite (a DNS-1123 label); rules without one are cited by index.",
    )
    action: FailureAction = Field(
        description="FailJob: fail the job now, no restart. Ignore: restart the group without counting it against "
                    "backoffLimit. Count: restart and count it (what an unmatched failure gets)."
    )
    on_exit_codes: Optional[ExitCodesMatcher] = Field(None, description="Match the failing worker's exit code.")
    on_pod_conditions: Optional[list[PodConditionMatcher]] = Field(
        None, min_length=1, max_length=MAX_FAILURE_RULES,
        description="Match if the failing worker's pod has any of these conditions (Kubernetes only).",
    )
    on_reasons: Optional[list[FailureReason]] = Field(
        None, min_length=1, max_length=MAX_FAILURE_RULES,
        description="Match the failure's reason: Hung (no step within progressDeadlineSeconds or "
                    "startupDeadlineSeconds), the worker container's terminated reason (OOMKilled, Error), its "
                    "pod's (Evicted), or its DisruptionTarget condition's (PreemptionByScheduler, DeletionByPodGC).",
    )

    @model_validator(mode="after")
    def _one_matcher(self) -> FailureRule:
        if sum(m is not None for m in (self.on_exit_codes, self.on_pod_conditions, self.on_reasons)) != 1:
            raise ValueError("set exactly one of onExitCodes, onPodConditions and onReasons")
        return self


class FailurePolicy(_Model):
    """What a worker failure or a hang does to the job, decided by the first rule that matches."""

    rules: list[FailureRule] = Field(
        default_factory=list, max_length=MAX_FAILURE_RULES,
        description=f"Ordered rules, at most {MAX_FAILURE_RULES}; the first that matches decides. No rule matches: "
                    "a worker whose pod was disrupted (DisruptionTarget condition, or exit 143/137 while the pod "
                    "was being deleted) gets Ignore (the built-in rule disrupted-pod), any other failure Count.",
    )

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[FailureRule]) -> list[FailureRule]:
        named = [rule.name for rule in rules if rule.name is not None]
        twice = sorted({name for name in named if named.count(name) > 1})
        if twice:
            raise ValueError(f"rule name {twice[0]!r} is used twice; give each rule its own name")
        return rules


class RunPolicy(_Model):
    """How failures, deadlines and clean-up are handled for the whole worker group."""

    backoff_limit: Int = Field(
        3, ge=0,
        description="Counted whole-group restarts (after a worker failure or a hang) before the next counted failure "
                    "fails the job (BackoffLimitExceeded); restarts a failure rule Ignores do not count.",
    )
    in_place_restarts: Int = Field(
        0, ge=0,
        description="PyTorch: times torchrun's agents may restart a failed worker's training processes in place "
                    "(same pods and launchers, all workers re-rendezvous and resume from their checkpoint) before "
                    "the failure goes to failurePolicy and backoffLimit as a whole-group restart; a failure whose "
                    "exit code a FailJob rule names is never restarted in place. A worker pod other than worker 0 "
                    "that is deleted, evicted or on a lost node is recreated for its index and rejoins, without a "
                    "group restart. 0 (the default): every failure is a whole-group restart. Per worker and per "
                    "group; other frameworks ignore it (docs/reliability.md).",
    )
    warm_restarts: bool = Field(
        True,
        description="PyTorch with inPlaceRestarts >= 1: each worker keeps a warm interpreter (a Python that has "
                    "imported torch, at low priority, about 0.4 GB of memory of its own beside torch's shared "
                    "libraries) which forks the training processes of every in-place restart, so that a restart "
                    "skips importing torch again. false: every restart starts a new Python (docs/reliability.md).",
    )
    active_deadline_seconds: OptionalInt = Field(
        None, ge=1,
        description="Seconds after the job's start (status.startTime: the first reconcile that runs it, not "
                    "suspended; in `tandem run`, its first group) after which it is stopped and Failed "
                    "(DeadlineExceeded). Its clock never starts again: restarts and time Queued or Suspended count.",
    )
    ttl_seconds_after_finished: OptionalInt = Field(
        None, ge=0, description="Seconds after Succeeded or Failed before the TrainingJob is deleted."
    )
    suspend: bool = Field(False, description="True removes the workers and keeps the job Suspended until set back to false.")
    # Queues and scheduling (docs/queues.md).
    scheduling_timeout_seconds: OptionalInt = Field(
        None, ge=1, description="Seconds a worker may stay unschedulable (PodScheduled False) before "
        "schedulingTimeoutAction; the Pending condition quotes the scheduler's message meanwhile.",
    )
    scheduling_timeout_action: SchedulingTimeoutAction = Field(
        "Fail", description="After schedulingTimeoutSeconds: Fail (the workers are removed, the job Failed with "
        "reason SchedulingTimeout) or Wait (the job stays Pending, saying why).",
    )
    # Failure rules and hang detection (docs/failure-rules.md).
    failure_policy: FailurePolicy = Field(
        default_factory=FailurePolicy,
        description="Rules matched on a failed worker's exit code, pod conditions or reason (Hung): fail the job, "
                    "restart without counting, or count (docs/failure-rules.md).",
    )
    termination_grace_period_seconds: Int = Field(
        DEFAULT_TERMINATION_GRACE_SECONDS, ge=0, le=MAX_TERMINATION_GRACE_SECONDS,
        description="Seconds a worker has between SIGTERM (pod deleted, preempted or drained; Ctrl-C of `tandem run`) "
                    "and SIGKILL, to save a checkpoint: the workers' pod terminationGracePeriodSeconds, and how long "
                    "torchrun's agent waits for its ranks. Training code learns of the SIGTERM from "
                    "tandem.preemption (docs/reliability.md).",
    )
    progress_deadline_seconds: OptionalInt = Field(
        None, ge=MIN_PROGRESS_DEADLINE_SECONDS,
        description="Once the first step is reported: restart the group as Hung (under failurePolicy) when no worker "
                    f"reports a step for this long. At least {MIN_PROGRESS_DEADLINE_SECONDS}; needs metrics.enabled.",
    )
    startup_deadline_seconds: OptionalInt = Field(
        None, ge=MIN_PROGRESS_DEADLINE_SECONDS,
        description="From the time all workers run: restart the group as Hung when no step is reported for this "
                    f"long. Unset: startup may take any time. At least {MIN_PROGRESS_DEADLINE_SECONDS}; needs "
                    "metrics.enabled.",
    )

    @property
    def watches_progress(self) -> bool:
        """Whether the workers' reported steps decide anything (a hang)."""
        return self.progress_deadline_seconds is not None or self.startup_deadline_seconds is not None


class MetricsSpec(_Model):
    """Throughput and scaling-efficiency reporting, through the figures gateway beside the job's Ray head."""

    enabled: bool = Field(True, description="Workers report step timings; status.metrics shows throughput and efficiency.")
    baseline_throughput: Optional[float] = Field(
        None, gt=0, description="Samples/s of one worker, for scaling efficiency. Unset: taken from a recorded one-worker run."
    )
    straggler_threshold: float = Field(
        0.8, gt=0, lt=1,
        description="A worker is named a straggler when its compute capacity (samples/s of compute alone: step time "
                    "less the wait for peers) stays below this fraction of the median capacity of the other workers "
                    "across the metrics window.",
    )


class TensorBoardSpec(_Model):
    """TensorBoard event files written by every worker, served by a TensorBoard per job."""

    enabled: bool = Field(False, description="Write TensorBoard event files (throughput, step time, loss if reported).")
    log_dir: str = Field(
        "/tandem/tensorboard", min_length=1, max_length=MAX_PATH,
        description="Where workers write event files: a path in the pod (on claimName's volume) or a remote URL (gs://, s3://).",
    )
    claim_name: Optional[str] = Field(
        None, max_length=MAX_NAME, json_schema_extra=SUBDOMAIN_SCHEMA,
        description="A ReadWriteMany PersistentVolumeClaim mounted at logDir in the workers and in the job's TensorBoard.",
    )

    @field_validator("claim_name")
    @classmethod
    def _claim(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and (len(value) > 253 or not names.DNS1123_SUBDOMAIN.fullmatch(value)):
            raise ValueError(f"{value!r} is not a valid PersistentVolumeClaim name")
        return value

    @property
    def remote(self) -> bool:
        return "://" in self.log_dir

    @property
    def servable(self) -> bool:
        """A TensorBoard in the cluster can read the files only from a shared volume or a URL."""
        return self.enabled and (self.remote or self.claim_name is not None)


class PodTemplate(_Model):
    """Optional overrides merged into every worker pod."""

    labels: dict[str, LabelValue] = Field(default_factory=dict, max_length=MAX_ITEMS, description="Extra labels on worker pods.")
    annotations: dict[str, Text] = Field(
        default_factory=dict, max_length=MAX_ITEMS, description="Extra annotations on worker pods."
    )
    node_selector: dict[str, LabelValue] = Field(
        default_factory=dict, max_length=MAX_ITEMS, description="Extra node selector terms."
    )
    tolerations: list[dict[str, Any]] = Field(
        default_factory=list, max_length=MAX_ITEMS, description="Extra tolerations (core/v1 Toleration objects)."
    )
    service_account_name: Optional[str] = Field(
        None, max_length=MAX_NAME, json_schema_extra=SUBDOMAIN_SCHEMA, description="Service account of the worker pods."
    )
    priority_class_name: Optional[str] = Field(
        None, max_length=MAX_NAME, json_schema_extra=SUBDOMAIN_SCHEMA, description="PriorityClass of the worker pods."
    )
    volumes: list[dict[str, Any]] = Field(
        default_factory=list, max_length=MAX_ITEMS, description="Extra pod volumes (core/v1 Volume objects)."
    )
    volume_mounts: list[dict[str, Any]] = Field(
        default_factory=list, max_length=MAX_ITEMS,
        description="Extra mounts in the worker container (core/v1 VolumeMount objects)."
    )
    security_context: Optional[dict[str, Any]] = Field(
        None, description="Replaces the pod security context (default: the restricted Pod Security Standard); "
        "without a seccompProfile it keeps RuntimeDefault."
    )
    container_security_context: Optional[dict[str, Any]] = Field(
        None, description="Replaces the worker container's security context (default: restricted); "
        "what it leaves out of allowPrivilegeEscalation and capabilities.drop stays false and [ALL]."
    )

    @field_validator("labels", "annotations", "node_selector", mode="before")
    @classmethod
    def _null_entries_are_absent(cls, mapping: Any) -> Any:
        return _drop_nulls(mapping)

    @field_validator("labels", "node_selector")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        return names.check_labels(labels)

    @field_validator("annotations")
    @classmethod
    def _keys(cls, mapping: dict[str, str]) -> dict[str, str]:
        for key in mapping:
            names.check_qualified_key(key)
        return mapping

    @field_validator("service_account_name", "priority_class_name")
    @classmethod
    def _subdomain(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and (len(value) > 253 or not names.DNS1123_SUBDOMAIN.fullmatch(value)):
            raise ValueError(f"{value!r} is not a valid DNS-1123 subdomain name")
        return value


class TrainingJobSpec(_Model):
    """What to train, with which framework and strategy, on how many workers."""

    framework: str = Field(description=f"Training framework: {' or '.join(frameworks.names())}.")
    strategy: str = Field(
        description="Distribution strategy: "
        + "; ".join(f"{' or '.join(frameworks.get(name).strategy_names)} ({name})" for name in frameworks.names()) + "."
    )
    image: Optional[str] = Field(
        None, min_length=1, max_length=MAX_PATH, json_schema_extra={"pattern": IMAGE_REFERENCE_PATTERN},
        description="Worker container image ([registry/]path[:tag][@digest]). Default: Tandem's worker image for the framework."
    )
    command: list[Text] = Field(
        min_length=1, max_length=MAX_ITEMS,
        description="The training command run in every worker, e.g. [python, train.py]. Tandem's launcher wraps it."
    )
    tpu: Optional[TPU] = Field(None, validate_default=True, description="Cloud TPU slice (strategy tpu only).")
    min_workers: OptionalInt = Field(
        None, ge=1, le=MAX_WORKERS,
        description="Elastic PyTorch (with maxWorkers): the fewest workers training runs with. It starts once this "
                    "many have joined the rendezvous, goes on when workers are lost while at least this many remain, "
                    "and grows back as they return; fewer is a whole-group restart. Needs "
                    "runPolicy.inPlaceRestarts >= 1 (docs/reliability.md, Elastic workers).",
    )
    max_workers: OptionalInt = Field(
        None, ge=1, le=MAX_WORKERS,
        description="Elastic PyTorch (with minWorkers): the most workers; `kubectl scale` sets workers within "
                    "minWorkers..maxWorkers.",
    )
    workers: OptionalInt = Field(
        None, validate_default=True, ge=1, le=MAX_WORKERS,
        description=f"Worker pods (nodes), at most {MAX_WORKERS}: for an elastic job (minWorkers, maxWorkers) the "
                    "desired count, which `kubectl scale` sets (default maxWorkers). With tpu: the slice's host "
                    "count, derived when unset.",
    )
    procs_per_worker: Int = Field(
        1, ge=1, description="Processes per worker pod (torchrun --nproc-per-node; usually the GPUs per pod). TensorFlow: 1."
    )
    resources: Resources = Field(default_factory=Resources, description="Resources of each worker pod.")
    env: list[EnvVar] = Field(
        default_factory=list, max_length=MAX_ITEMS, description="Extra environment variables for every worker."
    )
    run_policy: RunPolicy = Field(default_factory=RunPolicy, description="Restarts, deadline, clean-up and suspension.")
    metrics: MetricsSpec = Field(default_factory=MetricsSpec, description="Throughput and scaling-efficiency reporting.")
    tensorboard: TensorBoardSpec = Field(default_factory=TensorBoardSpec, description="TensorBoard event files and server.")
    pod_template: PodTemplate = Field(default_factory=PodTemplate, description="Overrides merged into worker pods.")
    # Kueue (docs/queues.md): the Job is created suspended in this queue; Kueue admits all workers or none.
    queue_name: Optional[str] = Field(
        None, max_length=MAX_LABEL, json_schema_extra=SUBDOMAIN_SCHEMA,
        description="Kueue LocalQueue (in the job's namespace) the job waits in; Kueue admits all workers at "
        "once or none, and status.phase is Queued meanwhile. Unset: no queue, the workers are created at once.",
    )
    priority_class_name: Optional[str] = Field(
        None, max_length=MAX_LABEL, json_schema_extra=SUBDOMAIN_SCHEMA,
        description="Kueue WorkloadPriorityClass: the job's priority in its queue and for preemption (needs "
        "queueName). Not the pods' PriorityClass, which is podTemplate.priorityClassName.",
    )

    @field_validator("framework")
    @classmethod
    def _framework(cls, framework: str) -> str:
        if frameworks.find(framework) is None:
            raise ValueError(f"{framework!r} is not a framework Tandem launches; use {' or '.join(frameworks.names())}")
        return framework

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, strategy: str, info: ValidationInfo) -> str:
        framework = frameworks.find(info.data.get("framework"))
        if framework is not None and framework.strategy(strategy) is None:
            raise ValueError(f"{strategy!r} is not a {framework.name} strategy; use {' or '.join(framework.strategy_names)}")
        return strategy

    @field_validator("image")
    @classmethod
    def _image(cls, image: Optional[str]) -> Optional[str]:
        if image is not None and not re.fullmatch(IMAGE_REFERENCE_PATTERN, image):
            raise ValueError(f"{image!r} is not an image reference ([registry[:port]/]path[:tag][@digest], "
                             "lower-case path, no whitespace)")
        return image

    @field_validator("tpu")
    @classmethod
    def _tpu(cls, tpu: Optional[TPU]) -> Optional[TPU]:
        if tpu is not None:
            tpu.shape()  # raises ValueError naming the accepted values
        return tpu

    @field_validator("workers")
    @classmethod
    def _workers(cls, workers: Optional[int], info: ValidationInfo) -> Optional[int]:
        tpu: Optional[TPU] = info.data.get("tpu")
        low, high = info.data.get("min_workers"), info.data.get("max_workers")
        if low is not None or high is not None:
            return elastic.desired_workers(workers, low, high, info.data.get("framework"), tpu is not None)
        if tpu is None:
            return 1 if workers is None else workers
        hosts = tpu.shape().hosts
        if workers is not None and workers != hosts:
            raise ValueError(f"must be {hosts}, the host count of a {tpu.topology} slice (or left unset)")
        return hosts

    @field_validator("*")
    @classmethod
    def _framework_rules(cls, value: Any, info: ValidationInfo) -> Any:
        """The rules the framework and its strategy put on this field (tandem.frameworks: the
        same data the CRD's CEL rules are written from). A field with a default is checked unset
        only with validate_default, as tpu is: what a strategy Requires must have it."""
        # The wire name pydantic made at class creation (to_camel, whose regular expressions
        # would otherwise run for every field of every validation).
        field = (cls.model_fields[info.field_name].alias or "") if info.field_name else ""
        if field not in framework_rules.fields():
            return value
        framework = frameworks.find(info.data.get("framework"))
        if framework is None:
            return value
        wire = value.model_dump(by_alias=True) if isinstance(value, BaseModel) else value
        problem = framework_rules.check(framework.name, info.data.get("strategy"), field, wire)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("metrics")
    @classmethod
    def _metrics_for_deadlines(cls, metrics: MetricsSpec, info: ValidationInfo) -> MetricsSpec:
        """A hang is known only from the steps the workers report: without figures, none."""
        policy: Optional[RunPolicy] = info.data.get("run_policy")
        if policy is not None and policy.watches_progress and not metrics.enabled:
            raise ValueError("enabled must be true with runPolicy.progressDeadlineSeconds or startupDeadlineSeconds: "
                             "a hang is told from the steps the workers report; set enabled: true or drop the deadlines")
        return metrics

    @field_validator("env")
    @classmethod
    def _unique_env(cls, env: list[EnvVar]) -> list[EnvVar]:
        seen: set[str] = set()
        for var in env:
            if var.name in seen:
                raise ValueError(f"{var.name!r} is set twice")
            seen.add(var.name)
        return env

    @field_validator("queue_name", "priority_class_name")
    @classmethod
    def _label_name(cls, value: Optional[str]) -> Optional[str]:
        # Kueue reads it from a label: a DNS-1123 subdomain that is also a label value (max_length).
        if value is not None and not names.DNS1123_SUBDOMAIN.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid name (lower-case letters, digits, '-' and '.')")
        return value

    @field_validator("priority_class_name")
    @classmethod
    def _priority_needs_queue(cls, value: Optional[str], info: ValidationInfo) -> Optional[str]:
        if value is not None and info.data.get("queue_name") is None:
            raise ValueError("needs queueName: it is Kueue's workload priority (for the pods' PriorityClass, "
                             "use podTemplate.priorityClassName)")
        return value

    @model_validator(mode="after")
    def _elastic_rendezvous(self) -> TrainingJobSpec:
        if self.elastic and self.run_policy.in_place_restarts < 1:
            raise FieldError(("spec", "runPolicy", "inPlaceRestarts"), elastic.NEEDS_IN_PLACE)
        return self

    @property
    def elastic(self) -> bool:
        """Whether the worker count is a range (minWorkers..maxWorkers) rather than fixed."""
        return self.min_workers is not None

    @property
    def worker_count(self) -> int:
        """The desired number of workers: the pods to run (an elastic job's current target)."""
        assert self.workers is not None  # resolved by the validator
        return self.workers

    @property
    def resizes_in_place(self) -> bool:
        """Whether a change of spec.workers resizes the running group (`kubectl scale`): an elastic
        job's, unless a queue holds it at the size Kueue admitted (docs/queues.md)."""
        return self.elastic and self.queue_name is None

    @property
    def min_worker_count(self) -> int:
        """The fewest live workers the job trains with; below it a lost worker is a group restart.
        A fixed-size job needs all of them: worker_count."""
        return self.min_workers if self.min_workers is not None else self.worker_count

    @property
    def max_worker_count(self) -> int:
        """The most workers the job may ever have: the host names, ports and rendezvous size are
        laid out for this many, so that a scale within the range changes no pod's environment."""
        return self.max_workers if self.max_workers is not None else self.worker_count

    @property
    def worker_image(self) -> str:
        return self.image or frameworks.get(self.framework).default_image


class ObjectMeta(BaseModel):
    """The part of metadata Tandem reads; server-set fields are kept but not checked."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_absent(cls, data: Any) -> Any:
        return _drop_nulls(data, _wire_names(cls))

    name: str = Field(description=f"Job name: a DNS-1035 label of at most {MAX_JOB_NAME} characters.")
    namespace: str = Field("default", description="Namespace of the job and its workers.")
    uid: Optional[str] = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return names.check_job_name(name)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, namespace: str) -> str:
        return names.check_dns_label(namespace)

    @field_validator("labels", "annotations", mode="before")
    @classmethod
    def _null_values_are_empty(cls, mapping: Any) -> Any:
        """Metadata is Kubernetes' own ObjectMeta: Go reads a null map value as ""."""
        if isinstance(mapping, dict):
            return {key: "" if value is None else value for key, value in mapping.items()}
        return mapping

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        return names.check_labels(labels)

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, annotations: dict[str, str]) -> dict[str, str]:
        for key in annotations:
            names.check_qualified_key(key)
        size = sum(len(key.encode()) + len(value.encode()) for key, value in annotations.items())
        if size > MAX_ANNOTATIONS_BYTES:
            raise ValueError(f"are {size} bytes in all, more than Kubernetes' {MAX_ANNOTATIONS_BYTES}")
        return annotations


class TrainingJob(BaseModel):
    """A distributed training job: the object users apply and Tandem reconciles."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, strict=True)

    api_version: ApiVersion = Field(API_VERSION, alias="apiVersion")
    kind: Kind = KIND
    metadata: ObjectMeta
    spec: TrainingJobSpec
    status: Optional[dict[str, Any]] = None

    @model_validator(mode="after")
    def _launch_fits_exec(self) -> TrainingJob:
        """A strategy that lists every worker's host in one variable (TF_CONFIG, TPU hostnames)
        can hold only so many workers of this name before exec refuses the variable (E2BIG):
        refuse such a spec here, in the launcher's own arithmetic, not in every worker at start."""
        spec = self.spec
        strategy = frameworks.get(spec.framework).strategy(spec.strategy)
        if strategy is None or not strategy.needs_hosts:
            return self
        hosts = cluster_hosts(self.metadata.name, self.metadata.namespace, spec.worker_count, COORDINATOR_PORT)
        contract = Contract(
            job=self.metadata.name, namespace=self.metadata.namespace, framework=spec.framework,
            strategy=spec.strategy, workers=spec.worker_count, worker_index=0,
            procs_per_worker=spec.procs_per_worker, coordinator=split_host_port(hosts[0])[0],
            port=COORDINATOR_PORT, worker_hosts=hosts, metrics_address="", restart=0,
        )
        oversized = oversized_env(strategy.launch(contract, ("python",), "python").env)
        if oversized is not None:
            name, size = oversized
            raise FieldError(("spec", "workers"), f"{spec.worker_count} workers make {name} {size} bytes, past "
                             f"Linux's limit of {MAX_ENV_STRING} for one variable: run fewer workers or a shorter name")
        return self

    @classmethod
    def from_dict(cls, data: Any) -> TrainingJob:
        """Validate a parsed document; raises SpecError naming each bad field."""
        if not isinstance(data, dict):
            raise SpecError([("(document)", f"must be a mapping, got {type(data).__name__}")])
        try:
            # Wire names only: the CRD knows procsPerWorker, not procs_per_worker.
            return cls.model_validate(data, by_alias=True, by_name=False)
        except ValidationError as exc:
            raise from_validation_error(exc) from None

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Iterable[str] = ()) -> TrainingJob:
        """The single TrainingJob of a YAML file, `--set`-style overrides applied."""
        return load_job(path, overrides)

    def to_dict(self) -> dict[str, Any]:
        """The object as the API server stores it (camelCase, defaults filled in)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def load_jobs(path: str | Path, overrides: Iterable[str] = ()) -> list[TrainingJob]:
    """Every TrainingJob of a YAML file, each with the overrides applied, validated."""
    overrides = list(overrides)
    return [TrainingJob.from_dict(apply_overrides(doc, overrides) if isinstance(doc, dict) else doc)
            for doc in load_documents(path)]


def load_job(path: str | Path, overrides: Iterable[str] = ()) -> TrainingJob:
    """The single TrainingJob of a file; most commands run one job."""
    jobs = load_jobs(path, overrides)
    if len(jobs) != 1:
        raise SpecError([("(document)", f"expected one TrainingJob, the file holds {len(jobs)}")])
    return jobs[0]
