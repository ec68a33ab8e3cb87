"""Shared test support: every helper the test modules need, written once.

- `processes`: a run's processes, found from outside through /proc (built on tandem._sys);
- `commands`: ``python -m tandem ...`` as the tests run it (`run_tandem`, `start_tandem`);
- `waiting`: `wait_for`, polling with a deadline and a message that says what was awaited;
- `specs`: TrainingJob documents and hypothesis strategies for the unit tests, the examples;
- `kwok`: pods that kwok plays (run time and exit code by annotation), kwok nodes;
- `controlplane`: the one factory of started test control planes, for every cluster module;
- `helm`: the helm binary built for the chart tests;
- `columns`: `kubectl get tj` and `tandem list` read by column name, never by position;
- `figures`: a real figures path (the private Ray and its gateway) on loopback.

Model: jobset's ``test/util/util.go`` and kueue's ``pkg/util/testingjobs``.
"""
