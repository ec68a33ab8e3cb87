"""A kubeconfig for a local HTTP listener standing in for an API server (the operator's client
tests): plain http, one user with a bearer token."""

from __future__ import annotations

from pathlib import Path

#: The bearer token the kubeconfig gives; a test reads it back from the requests' headers.
TOKEN = "the-token"


def local_kubeconfig(directory: Path, port: int) -> str:
    """The path of a kubeconfig for http://127.0.0.1:`port`, written in `directory`."""
    path = directory / "kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: local, cluster: {{server: "http://127.0.0.1:{port}"}}}}]
users: [{{name: someone, user: {{token: {TOKEN}}}}}]
contexts: [{{name: local, context: {{cluster: local, user: someone}}}}]
current-context: local
""")
    return str(path)
