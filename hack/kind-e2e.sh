#!/usr/bin/env bash
# End to end on a real (kind) cluster, for machines with a container engine (Docker or Podman):
#
#   1. creates a kind cluster (or reuses one of that name),
#   2. builds the operator and PyTorch worker images from images/ and `kind load`s them,
#   3. installs the chart (charts/tandem) with its Ray head into tandem-system,
#   4. applies jobs/mnist-ddp.yaml (2 workers, DDP over gloo on CPU) in a namespace enforcing the
#      restricted Pod Security Standard,
#   5. waits for Succeeded with `kubectl get tj`, and prints the throughput / scaling-efficiency
#      figures, the events and worker 0's log.
#
# What it covers that the tests on the built-in control plane cannot: real containers (the
# images build and start as uid 1000 with a read-only root for the operator), real pod networking
# and DNS between workers (torchrun rendezvous on <job>-0.<job>), the operator running in-cluster
# on its ServiceAccount, and metrics through a real Ray head. See docs/install.md.
#
#   bash hack/kind-e2e.sh                      # cluster `tandem-e2e`, kept afterwards
#   KIND_E2E_DELETE=1 bash hack/kind-e2e.sh    # delete the cluster at the end
#   KIND_E2E_TENSORFLOW=1 bash hack/kind-e2e.sh  # also build the TF worker and run jobs/keras-mwms.yaml
#
# Needs: docker (or KIND_EXPERIMENTAL_PROVIDER=podman), kind, kubectl; helm (else built with Go by
# hack/install-helm.sh). About 4 CPUs and 6 GiB free for the two workers and the operator.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

CLUSTER="${KIND_CLUSTER:-tandem-e2e}"
NAMESPACE="${KIND_E2E_NAMESPACE:-tandem-e2e}"
VERSION="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/tandem/Chart.yaml)"
TIMEOUT="${KIND_E2E_TIMEOUT:-900}"   # seconds for each job to finish
TORCH_INDEX_URL="${TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}"  # CPU wheels: a far smaller image

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
need() { command -v "$1" >/dev/null 2>&1 || { echo "kind-e2e: $1 is required ($2)" >&2; exit 2; }; }
need docker "https://docs.docker.com/engine/install/ (or set KIND_EXPERIMENTAL_PROVIDER=podman)"
need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
HELM="$(command -v helm || bash hack/install-helm.sh)"

say "kind cluster $CLUSTER"
if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --wait 120s
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null
cleanup() {
  if [[ "${KIND_E2E_DELETE:-0}" == 1 ]]; then kind delete cluster --name "$CLUSTER"; else
    echo "kind-e2e: cluster kept; delete it with: kind delete cluster --name $CLUSTER"; fi
}
trap cleanup EXIT

say "images tandem/*:$VERSION"
docker build -f images/operator.Dockerfile -t "tandem/operator:$VERSION" .
docker build -f images/pytorch-worker.Dockerfile --build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL" \
  -t "tandem/pytorch-worker:$VERSION" .
images=("tandem/operator:$VERSION" "tandem/pytorch-worker:$VERSION")
jobs=(jobs/mnist-ddp.yaml)
if [[ "${KIND_E2E_TENSORFLOW:-0}" == 1 ]]; then
  docker build -f images/tensorflow-worker.Dockerfile -t "tandem/tensorflow-worker:$VERSION" .
  images+=("tandem/tensorflow-worker:$VERSION")
  jobs+=(jobs/keras-mwms.yaml)
fi
kind load docker-image --name "$CLUSTER" "${images[@]}"

say "helm install tandem (Ray head on)"
kubectl create namespace tandem-system --dry-run=client -o yaml | kubectl apply -f -
kubectl label namespace tandem-system pod-security.kubernetes.io/enforce=restricted --overwrite
"$HELM" upgrade --install tandem charts/tandem -n tandem-system \
  --set ray.enabled=true --set image.pullPolicy=Never --set ray.image.pullPolicy=Never \
  --wait --timeout 5m
kubectl -n tandem-system get deploy,svc,pods

say "jobs in namespace $NAMESPACE"
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
kubectl label namespace "$NAMESPACE" pod-security.kubernetes.io/enforce=restricted --overwrite
status=0
for job in "${jobs[@]}"; do
  name="$(sed -n 's/^  name: *//p' "$job" | head -n1)"
  kubectl delete tj "$name" -n "$NAMESPACE" --ignore-not-found --wait=true
  kubectl apply -n "$NAMESPACE" -f "$job"
  deadline=$(( $(date +%s) + TIMEOUT ))
  phase=""
  while (( $(date +%s) < deadline )); do
    phase="$(kubectl get tj "$name" -n "$NAMESPACE" -o jsonpath='{.status.phase}')"
    kubectl get tj "$name" -n "$NAMESPACE" --no-headers
    [[ "$phase" == Succeeded || "$phase" == Failed ]] && break
    sleep 10
  done
  say "$name: ${phase:-no phase}"
  kubectl get tj "$name" -n "$NAMESPACE"
  kubectl get tj "$name" -n "$NAMESPACE" -o jsonpath='{.status.metrics}' | python3 -m json.tool || true
  kubectl get events -n "$NAMESPACE" --field-selector "involvedObject.name=$name" \
    --sort-by=.lastTimestamp -o custom-columns=REASON:.reason,MESSAGE:.message
  kubectl logs -n "$NAMESPACE" -l "tandem.dev/job-name=$name,batch.kubernetes.io/job-completion-index=0" --tail=20 || true
  [[ "$phase" == Succeeded ]] || status=1
done
if [[ $status != 0 ]]; then
  say "operator log"
  kubectl logs -n tandem-system deploy/tandem-operator --tail=100 || true
fi
exit $status
