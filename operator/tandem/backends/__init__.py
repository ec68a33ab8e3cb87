"""The backend interface (`base`): where a TrainingJob runs, this machine or a Kubernetes cluster.

The two implementations live with the rest of their side: `tandem.local.backend` and
`tandem.kube.backend`.
"""
