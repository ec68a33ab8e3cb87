"""Tandem on a Kubernetes cluster, from outside it: the SDK's `Client` (`client`), the one seam
to the Kubernetes API client (`connection`: kubeconfig and API errors), the cluster behind the
backend interface (`backend`) and how its jobs look on a terminal (`table`)."""
