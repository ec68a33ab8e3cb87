"""A job's figures as both sides agree on them, and their reading and maths; no Ray, no I/O on import.

What the workers and the operator share: `wire` (the figures gateway's HTTP interface, checked)
and `token` (its credentials). The operator's side (and `tandem run`'s): `reader` (the gateway's
HTTP reader), `snapshot` (a collector snapshot, checked against the spec), `summary` (the maths:
throughput, efficiency, straggler), and `progress` and `eta` (steps, percent, ETA and hangs).
Training code imports `tandem.metrics` (the worker side), never this package directly; the
figures service (`tandem.gateway`) imports `wire` and `token` from here.
"""
