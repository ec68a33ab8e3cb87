"""The operator: a pure reconcile function and the runtime (kopf) that feeds and applies it."""
