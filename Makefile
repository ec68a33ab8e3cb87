# Developer shortcuts.
.PHONY: chaos

# The long reliability run (docs/reliability.md): TANDEM_CHAOS_JOBS=50 by default; pass
# TANDEM_CHAOS_SEED=<seed> to replay a failure, e.g. `make chaos TANDEM_CHAOS_SEED=42`.
chaos:
	bash hack/chaos.sh
