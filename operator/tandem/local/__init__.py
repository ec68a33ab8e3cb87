"""Everything `tandem run` does on this machine.

`executor` runs a TrainingJob's workers as processes (the rendered pod template's command and
env, see `plan`), `gpus` gives each worker its own GPUs or refuses a run that needs more than
there are, `logs` reads their log files back, `tensorboard` serves their event files,
`figures_service` runs the figures service of the run (its private Ray and the figures
gateway in front of it), `baseline` the recorded one-worker
throughput, `run` ties those together for one run, `table` prints its end, `sweep` runs a job
at several worker counts (`tandem bench`), `console` draws worker lines for `tandem run` and
`tandem logs`, and `backend` is this machine behind the backend interface the Kubernetes
client also implements.
"""
