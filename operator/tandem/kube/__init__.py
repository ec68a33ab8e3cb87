"""Tandem on a Kubernetes cluster, from outside it: the SDK's `Client` (`client`), the cluster
behind the backend interface (`backend`) and how its jobs look on a terminal (`table`). The one
seam to the Kubernetes API client (kubeconfig and API errors) is `tandem.kubeapi`, a layer
below, because the operator uses it too."""
