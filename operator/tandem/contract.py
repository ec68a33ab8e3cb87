"""The facts every part of Tandem shares, each written once: names on the wire and their rules.

The renderer, the launcher in every worker, the local executor, the operator, the SDK and the
CRD all have to agree on these strings; a copy that drifts fails only at run time, on a cluster.
So they live here and everything imports them; the CRD's CEL rules are generated from them too.
Standard library only: the launcher imports this module inside every worker.
"""

from __future__ import annotations

import hashlib
from typing import Literal, get_args

# --- The TrainingJob API -------------------------------------------------------------------

# As typing Literals, so that the pydantic model accepts exactly these values (and mypy sees them).
ApiVersion = Literal["tandem.dev/v1alpha1"]
Kind = Literal["TrainingJob"]
#: apiVersion of a TrainingJob object.
API_VERSION: ApiVersion = get_args(ApiVersion)[0]
#: Kind of the resource.
KIND: Kind = get_args(Kind)[0]
#: API group of the TrainingJob resource, and its one served and stored version.
API_GROUP, _, VERSION = API_VERSION.partition("/")
#: The prefix of Tandem's own annotations (tandem.dev/restart, tandem.dev/function).
ANNOTATION_PREFIX = f"{API_GROUP}/"
#: Plural resource name, as in the REST path and `kubectl get trainingjobs`.
PLURAL = "trainingjobs"
#: Singular resource name, as in `trainingjob.tandem.dev/<name>`.
SINGULAR = "trainingjob"
#: Name of the CustomResourceDefinition object.
CRD_NAME = f"{PLURAL}.{API_GROUP}"
#: Field manager (server-side apply) and event source of the operator's writes.
FIELD_MANAGER = "tandem-operator"

# Frameworks and their strategies are not listed here: each is a module of tandem.frameworks,
# whose registry the model, the CRD and the launcher read.

# --- Phases and conditions -----------------------------------------------------------------

Phase = Literal["Queued", "Pending", "Running", "Restarting", "Succeeded", "Failed", "Suspended", "Invalid"]
#: Every phase of a TrainingJob; each is also a condition type of the same name.
PHASES: tuple[str, ...] = get_args(Phase)
#: Phases a job never leaves.
FINISHED_PHASES = ("Succeeded", "Failed")
#: Condition saying whether status.metrics holds fresh figures.
METRICS_AVAILABLE = "MetricsAvailable"
#: Condition saying that a name the job's children need is held by an object this TrainingJob
#: does not own (another job's, a user's, or an earlier TrainingJob's of the same name); the
#: operator never takes such an object over, and creates nothing under that name meanwhile.
NAME_CONFLICT = "NameConflict"
#: Condition saying that the API server refused to create one of the job's children (an invalid
#: object, Pod Security, a ResourceQuota...), with the server's own message; retried with backoff.
CHILD_REJECTED = "ChildRejected"
#: Condition saying why the job's TensorBoard is not served in the cluster (its event files are
#: not on shared storage); absent when it is served or TensorBoard is off.
TENSORBOARD_SERVED = "TensorBoardServed"
#: Every condition type the operator writes: controller.decision.set_condition, the one writer
#: of conditions, refuses any other, so this list (and the CRD's description of it) cannot fall
#: behind the code.
CONDITION_TYPES = (*PHASES, METRICS_AVAILABLE, NAME_CONFLICT, CHILD_REJECTED, TENSORBOARD_SERVED)
#: Reason of the Failed condition when a worker's image cannot be had (never pulled, an invalid
#: reference, or a pull that kept failing): no restart is spent, a new group meets the same image.
REASON_IMAGE_PULL_FAILED = "ImagePullFailed"
#: Reason of the Failed condition when the container runtime cannot start the worker's command
#: because the image lacks it; no restart is spent either.
REASON_COMMAND_NOT_FOUND = "CommandNotFound"
#: Reason of the Pending condition while a failing image pull is retried within its grace period.
REASON_IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
#: Reason of the Invalid condition when the podTemplate breaks the cluster's admin policy
#: (api/admin_policy.py); its message is the rule's one line, nothing is created.
REASON_REFUSED_BY_ADMIN_POLICY = "RefusedByAdminPolicy"

# --- Queues and scheduling (Kueue; docs/queues.md) ----------------------------------------

#: Label that puts a batch/v1 Job under Kueue: the LocalQueue (in the Job's namespace) it waits in.
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
#: Label naming the Job's WorkloadPriorityClass: Kueue's priority for ordering and preemption.
KUEUE_PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
#: Label Kueue puts on each Workload: the uid of the Job it admits.
KUEUE_JOB_UID_LABEL = "kueue.x-k8s.io/job-uid"
#: Kueue's Workload API, which the operator reads (never writes) to say why a job waits.
KUEUE_GROUP = "kueue.x-k8s.io"
KUEUE_VERSION = "v1beta1"
KUEUE_WORKLOADS = "workloads"
#: runPolicy.schedulingTimeoutAction: what happens once workers stayed unschedulable that long.
SchedulingTimeoutAction = Literal["Fail", "Wait"]
SCHEDULING_TIMEOUT_ACTIONS: tuple[str, ...] = get_args(SchedulingTimeoutAction)
#: Reason of the Pending condition while some worker cannot be placed (the scheduler's message).
REASON_UNSCHEDULABLE = "Unschedulable"
#: Reason of the Failed condition when workers stayed unschedulable past schedulingTimeoutSeconds.
REASON_SCHEDULING_TIMEOUT = "SchedulingTimeout"
# --- Failure rules and hang detection (docs/failure-rules.md) ------------------------------------
#: What a failure rule does with the failure it matches (batch/v1 podFailurePolicy's words).
FailureAction = Literal["FailJob", "Ignore", "Count"]
FAILURE_ACTIONS: tuple[str, ...] = get_args(FailureAction)
#: The action of a failure no rule matches: today's behaviour, a restart counted against backoffLimit.
DEFAULT_FAILURE_ACTION = "Count"
ExitCodeOperator = Literal["In", "NotIn"]
ConditionStatus = Literal["True", "False", "Unknown"]
#: Rules per failurePolicy, and matchers per rule (podFailurePolicy allows 20 rules).
MAX_FAILURE_RULES = 20
#: Exit codes one onExitCodes lists (each of 0..255 at most once).
MAX_EXIT_CODES = 255
#: The pod condition Kubernetes sets on a pod it disrupts: preemption (Kueue, the scheduler),
#: eviction (API-initiated, taint manager), a node lost (the pod GC).
DISRUPTION_TARGET = "DisruptionTarget"
#: Reason of a group stopped because no worker reported a step within the progress or startup
#: deadline; failure rules match it with onReasons: [Hung].
REASON_HUNG = "Hung"
#: The kubelet's reason for a container that exited non-zero; a local worker's failure has it too.
REASON_ERROR = "Error"
#: Reason of the Failed condition when a failure rule with action FailJob matched.
REASON_FAILED_BY_RULE = "FailedByRule"
#: Reason of the Failed condition when a counted failure comes after backoffLimit counted restarts.
REASON_BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
#: Reason of the Failed condition when the job ran past runPolicy.activeDeadlineSeconds.
REASON_DEADLINE_EXCEEDED = "DeadlineExceeded"
#: Reason of the event the operator posts for each in-place restart it learns of (the cluster
#: tests and `kubectl get events` select it).
REASON_RECOVERED_IN_PLACE = "RecoveredInPlace"
#: Event reason: a lost worker pod (deleted, evicted, its node lost) was recreated for its index and
#: rejoined the rendezvous; the group was not restarted (api/rejoin.py).
REASON_REJOINED = "Rejoined"
#: Event of an elastic job whose Job was resized in place after spec.workers changed (kubectl scale).
REASON_SCALED = "Scaled"
#: A failure reason, as the kubelet and Tandem write them: one CamelCase word.
FAILURE_REASON_PATTERN = r"^[A-Za-z][A-Za-z0-9]*$"
MAX_FAILURE_REASON = 128
#: A pod condition type: a name or a prefixed name (example.com/Cordoned).
CONDITION_TYPE_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$"
#: A failure rule's name: a DNS-1123 label, so that events and status can cite it as is.
RULE_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
#: The shortest progress or startup deadline. On Kubernetes the operator reads the figures every
#: 15 s and the workers ship them every second: a shorter deadline would call a hang on the
#: granularity of the reads rather than on the training.
MIN_PROGRESS_DEADLINE_SECONDS = 30

# --- Names -----------------------------------------------------------------------------------

#: A DNS-1035 label: what a job name must be, as it also names the job's headless Service.
DNS1035_LABEL_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
#: The longest label Kubernetes accepts (a pod hostname, a Service name).
MAX_LABEL = 63
#: A job name also names each pod's hostname `<name>-<index>` (at most MAX_LABEL characters),
#: so it is kept to 52, leaving room for an index of up to ten digits.
MAX_JOB_NAME = 52
#: The most workers a job may have: the largest the tests render (tests/unit/test_render.py).
MAX_WORKERS = 10000

# --- Syntax of spec fields: each pattern is checked by the model (re.fullmatch) and copied into
# the CRD's schema, so that the API server and the model accept the same strings. Explicit ASCII
# classes only (no \w, \s, \d): Python's are Unicode-aware, the API server's (Go RE2) are not.

#: An environment variable name, as Kubernetes accepts in a container's env.
ENV_VAR_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"

_QUANTITY_SUFFIX = r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?"
#: A Kubernetes resource.Quantity, as the pattern in Kubernetes' own OpenAPI states it.
QUANTITY_PATTERN = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))" + _QUANTITY_SUFFIX + "$"
#: A quantity above zero (cpu, memory): no minus sign, and a digit 1-9 in its number part.
POSITIVE_QUANTITY_PATTERN = r"^\+?(([0-9]*[1-9][0-9]*(\.[0-9]*)?)|([0-9]*\.[0-9]*[1-9][0-9]*))" + _QUANTITY_SUFFIX + "$"

_PATH_COMPONENT = r"[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"({_DOMAIN_COMPONENT}(\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(:[0-9]+)?"
#: A container image reference ([registry[:port]/]path[:tag][@digest]), the grammar of
#: github.com/distribution/reference that the kubelet parses it with; anything else fails to pull.
IMAGE_REFERENCE_PATTERN = (
    rf"^({_DOMAIN}/)?{_PATH_COMPONENT}(/{_PATH_COMPONENT})*(:[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
    r"(@[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)


def worker_host(job: str, namespace: str, index: int) -> str:
    """Stable DNS name of a worker pod: hostname <job>-<i> under the headless Service <job>.

    The renderer names the coordinator with it and the launcher derives every worker's host
    from it, so that no pod carries the whole list."""
    return f"{job}-{index}.{job}.{namespace}.svc"


#: Between a job's name and the hex digest in its TensorBoard's name.
TENSORBOARD_INFIX = "-tb-"


def tensorboard_name(job: str) -> str:
    """Name of a job's TensorBoard Deployment and Service: <job>-tb-<sha256 hex>, cut to MAX_LABEL.

    Always MAX_LABEL characters, longer than any job name (MAX_JOB_NAME), so it can never be
    another job's headless Service (job `x` and job `x-tensorboard` once fought over one
    Service). And hex has no '-', so the job is what comes before the last infix: no two jobs'
    TensorBoards share a name either."""
    return f"{job}{TENSORBOARD_INFIX}{hashlib.sha256(job.encode()).hexdigest()}"[:MAX_LABEL]

# --- Labels, annotations and resources on the objects Tandem creates ------------------------

#: Label on every object of a job (Service, Job, pods, TensorBoard): the TrainingJob's name.
JOB_NAME_LABEL = "tandem.dev/job-name"
#: Label on every object Tandem creates, valued MANAGED_BY: with JOB_NAME_LABEL and a TrainingJob
#: owner it is what the admission policy (api/admission.py) lets the operator's account create.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "tandem"
#: Label telling a job's worker pods (COMPONENT_WORKER) from its TensorBoard pod
#: (COMPONENT_TENSORBOARD); with JOB_NAME_LABEL it selects the workers (headless Service,
#: NetworkPolicy).
COMPONENT_LABEL = "app.kubernetes.io/component"
COMPONENT_WORKER = "worker"
COMPONENT_TENSORBOARD = "tensorboard"
#: Annotation on the Indexed Job and its pods: the whole-group restart the group belongs to.
RESTART_ANNOTATION = "tandem.dev/restart"
#: Upstream Indexed Job annotation (and label) holding the pod's completion index.
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
#: Extended resource of an NVIDIA GPU (device plugin).
GPU_RESOURCE = "nvidia.com/gpu"
#: Extended resource of a Cloud TPU chip on GKE.
TPU_RESOURCE = "google.com/tpu"
#: GKE node labels that select a TPU slice's accelerator type and topology.
TPU_ACCELERATOR_LABEL = "cloud.google.com/gke-tpu-accelerator"
TPU_TOPOLOGY_LABEL = "cloud.google.com/gke-tpu-topology"

#: The User-Agent of the operator's writes (its watches are kopf's, "kopf/<version>"): what the
#: apiserver's audit log shows as the client, instead of the Kubernetes client's generator name.
OPERATOR_USER_AGENT = "tandem-operator"

# --- The figures gateway (gateway/server.py) -------------------------------------------------

#: Port the gateway serves on, beside the Ray head (the only port of the head's pod workers reach).
METRICS_GATEWAY_PORT = 8070
#: Key in the job's token Secret that holds the token.
METRICS_TOKEN_KEY = "token"
#: File (in the operator and the gateway) holding the gateway key every token derives from.
ENV_METRICS_KEY_FILE = "TANDEM_METRICS_KEY_FILE"


def metrics_token_secret(job: str, tag: str) -> str:
    """Name of the Secret, in the job's namespace and owned by it, that holds the job's token.

    `tag` is figures.token.secret_tag: a MAC of the job's namespace, name and uid under the gateway
    key. The operator cannot read Secrets, so a create answered "already exists" is taken as its
    own; a name anyone could compute (the job's name and uid alone: the uid is readable the moment
    the TrainingJob exists) let a tenant create the Secret first, with a token of its choosing, and
    have the job's pods read it. Nobody without the key knows the name before the operator uses it,
    and a job deleted and created again under its name gets a new uid, hence a new Secret."""
    return f"{job}-metrics-token-{tag}"


# --- Ports -----------------------------------------------------------------------------------

#: The port worker 0 listens on for torch's rendezvous store and TF's gRPC server (in a pod).
COORDINATOR_PORT = 29500
#: The port a job's TensorBoard serves on.
TENSORBOARD_PORT = 6006

# --- The worker env contract: what the renderer / local executor set and the launcher reads --

#: Name of the TrainingJob.
ENV_JOB = "TANDEM_JOB"
#: Its namespace ("default" when run locally).
ENV_NAMESPACE = "TANDEM_NAMESPACE"
#: The framework's name, as registered in tandem.frameworks (pytorch, tensorflow).
ENV_FRAMEWORK = "TANDEM_FRAMEWORK"
#: One of the framework's strategies.
ENV_STRATEGY = "TANDEM_STRATEGY"
#: Number of workers (pods, or local worker processes).
ENV_WORKERS = "TANDEM_WORKERS"
#: An elastic job's fewest workers (spec.minWorkers): torchrun gets --nnodes=MIN:WORKERS, where
#: TANDEM_WORKERS is then spec.maxWorkers, so that a scale within the range changes no pod's
#: environment. Unset (or equal to TANDEM_WORKERS): a fixed-size job.
ENV_MIN_WORKERS = "TANDEM_MIN_WORKERS"
#: This worker's index, 0..workers-1 (the pod's completion index).
ENV_WORKER_INDEX = "TANDEM_WORKER_INDEX"
#: Processes per worker (torchrun --nproc-per-node).
ENV_PROCS_PER_WORKER = "TANDEM_PROCS_PER_WORKER"
#: OpenMP threads per worker process (and torch's intra-op threads, which follow it); Tandem sets a
#: default unless the spec's env does (render.context.omp_threads, local.threads).
ENV_OMP_THREADS = "OMP_NUM_THREADS"
#: Host of worker 0, where torch's rendezvous store listens.
ENV_COORDINATOR = "TANDEM_COORDINATOR"
#: Port of worker 0's rendezvous store / gRPC server.
ENV_PORT = "TANDEM_PORT"
#: Every worker's host:port, comma-separated in index order (TF_CONFIG, TPU_WORKER_HOSTNAMES).
#: Set by the local executor only (loopback ports); a pod leaves it out, so that its size does not
#: grow with the worker count, and the launcher derives the hosts with `worker_host`.
ENV_WORKER_HOSTS = "TANDEM_WORKER_HOSTS"
#: The whole-group restart this worker belongs to, 0 at first.
ENV_RESTART = "TANDEM_RESTART"
#: runPolicy.inPlaceRestarts: how often torchrun's agents may restart the training processes in
#: place (torchrun --max-restarts) before the whole group is restarted; 0 when unset.
ENV_IN_PLACE_RESTARTS = "TANDEM_IN_PLACE_RESTARTS"
#: The unix socket of a worker's warm interpreter (launch/warm.py), in a directory only its user
#: can enter: a torchrun agent with in-place restarts starts one and sets this for the training
#: processes it starts after its first ones, whose guards ask it to fork them instead of starting Python.
ENV_WARM_SOCKET = "TANDEM_WARM_SOCKET"
#: "0" keeps a worker from starting its warm interpreter (every restart then starts a new Python):
#: runPolicy.warmRestarts false.
ENV_WARM = "TANDEM_WARM"
#: The warm interpreter's niceness, so that the first start's own processes get the CPU first.
WARM_NICE = 10
#: The exit codes (comma-separated) a runPolicy.failurePolicy FailJob rule fails the job on: the
#: launcher does not restart in place a training process that exited with one of them, so that
#: the rule stays immediate. Set only with in-place restarts.
ENV_FAIL_JOB_EXIT_CODES = "TANDEM_FAIL_JOB_EXIT_CODES"
#: What starts the one line a launcher prints each time its torchrun agent restarts the training
#: processes in place; a JSON object follows (launch/recovery.py writes it, the local executor reads it).
RECOVERY_LINE = "tandem.recovery: "
#: What starts the one line an elastic job's launcher prints after each rendezvous round of its torchrun agent:
#: a JSON object {"round", "nodes", "worldSize", "restart"} follows, the world the training processes run in
#: (launch/recovery.py writes it; the local executor reads it for an elastic run's world size).
WORLD_LINE = "tandem.world: "
#: The figures gateway's path a launcher posts the same object to after each rendezvous round (the
#: job's write token), so that the operator can show the world size on a cluster (status.worldSize),
#: where the line is only in the pod's log (figures/wire.py checks the body; the collector keeps the
#: newest round's).
WORLD_PATH = "/v1/jobs/{namespace}/{name}/world"
#: The figures gateway's path a launcher posts each of those records to (the same JSON object,
#: with the job's write token), so that the operator can count them on a cluster, where the line
#: is only in the pod's log (figures/wire.py checks the body; the collector keeps the latest).
RECOVERIES_PATH = "/v1/jobs/{namespace}/{name}/recoveries"
#: "1" when the workers report step timings.
ENV_METRICS = "TANDEM_METRICS"
#: URL of the figures gateway (gateway/server.py) the workers post their step records to, and
#: the operator reads a job's figures from: http://host:port, never Ray itself (the operator
#: reads it too, as the default of `tandem operator run --metrics-address`, and passes it on).
ENV_METRICS_ADDRESS = "TANDEM_METRICS_ADDRESS"
#: The job's write token for the gateway (from the job's token Secret in a pod): it lets the
#: workers post this job's figures and nothing else.
ENV_METRICS_TOKEN = "TANDEM_METRICS_TOKEN"
#: "1" when the workers write TensorBoard event files.
ENV_TENSORBOARD = "TANDEM_TENSORBOARD"
#: The job's TensorBoard directory; each worker writes under worker-<i>[-rank-<r>] in it.
ENV_TENSORBOARD_DIR = "TANDEM_TENSORBOARD_DIR"
#: "1" with `tandem run --debug`: the launcher runs the command in place, without torchrun.
ENV_DEBUG = "TANDEM_DEBUG"
#: runPolicy.terminationGracePeriodSeconds: the seconds between SIGTERM and SIGKILL that a
#: worker has to save a checkpoint; torchrun's agent waits for its ranks within it.
ENV_TERMINATION_GRACE = "TANDEM_TERMINATION_GRACE_SECONDS"
#: Default of runPolicy.terminationGracePeriodSeconds: the pod default of Kubernetes.
DEFAULT_TERMINATION_GRACE_SECONDS = 30
#: Largest runPolicy.terminationGracePeriodSeconds: one hour, as long as a big checkpoint might take.
MAX_TERMINATION_GRACE_SECONDS = 3600

# --- Set by the local executor only (`tandem run`) -------------------------------------------

#: The local run's id; every worker and its children carry it, which is how orphans are found.
ENV_RUN_ID = "TANDEM_RUN_ID"
#: The local run's directory (logs, metrics spool, Ray's logs).
ENV_RUN_DIR = "TANDEM_RUN_DIR"
#: Where the training script may keep checkpoints during a local run.
ENV_CHECKPOINT_DIR = "TANDEM_CHECKPOINT_DIR"
#: Carried by every process of a run's private Ray, which is how they are found and stopped.
ENV_RAY_SESSION = "TANDEM_RAY_SESSION"
#: Prefixes of the variables that belong to one local run and must not leak into another's.
RUN_ENV_PREFIXES = ("TANDEM_RUN_", ENV_JOB)

# --- Read by the metrics shipper in each training process --------------------------------------

#: Pid of the training process that started the shipper; the shipper dies with it.
ENV_METRICS_PARENT = "TANDEM_METRICS_PARENT"
#: Seconds to wait for the figures gateway to accept step records (default 120).
ENV_METRICS_CONNECT_TIMEOUT = "TANDEM_METRICS_CONNECT_TIMEOUT"
#: Niceness of the shipper (default 10), so that training gets the CPU first.
ENV_METRICS_NICE = "TANDEM_METRICS_NICE"

# --- Reserved variables: a user value in spec.env would be overwritten -----------------------

#: Prefixes Tandem owns: its own TANDEM_* contract. Each framework adds the variables its launch
#: sets (tandem.frameworks.reserved_env, which the model and the CRD read).
RESERVED_ENV_PREFIXES = ("TANDEM_",)


# --- Function-based training (docs/functions.md): what the SDK ships and the worker reads ---

#: The module every worker of a function job runs, after `python -m tandem.launch --`: it loads
#: the function's source from a JSON file and calls it with the JSON keyword arguments.
FUNCTION_MODULE = "tandem.launch.function"
#: The JSON file's keys: the function's name, its source (a single `def`), its keyword arguments.
FUNCTION_KEYS = ("name", "source", "kwargs")
#: On a cluster the file comes from a ConfigMap the SDK creates, owned by the TrainingJob.
FUNCTION_CONFIGMAP_SUFFIX = "-function"
FUNCTION_FILE = "function.json"
FUNCTION_VOLUME = "tandem-function"
FUNCTION_MOUNT_PATH = "/var/run/tandem/function"
#: A ConfigMap holds at most 1 MiB (etcd's object limit); this leaves room for its metadata.
MAX_FUNCTION_BYTES = 1000 * 1024
#: On a function job: the function's name, for `kubectl get tj -o yaml` readers and `tandem get`.
FUNCTION_ANNOTATION = "tandem.dev/function"
