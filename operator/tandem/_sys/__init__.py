"""System helpers: processes, parent-death signals, ports and exit codes on Linux.

These utilities depend on nothing in the framework and on nothing outside the standard
library, so that every layer may use them: `tandem.launch` (which starts in every worker and
must stay cheap), the local executor, metrics' private Ray, and the tests. Model: kopf's
``_cogs/helpers``.
"""
