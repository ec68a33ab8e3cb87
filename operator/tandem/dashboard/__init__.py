"""`tandem dashboard`: a read-only web page of every job, local and on the cluster.

Both places give the same document, a TrainingJob with its status (a local run keeps one in its
run directory: local/record.py), so one set of pure functions turns either into what a page
shows: `rows` (the jobs page), `series` (the charts, from a run's figures history or from the
status samples the server keeps) and `timeline` (each attempt and failure). `sources` reads the
documents (the runs directory; the cluster with the user's own kubeconfig: nothing runs in the
cluster for it, so it grants nobody anything new) and `server` serves the pages: HTML first,
readable without JavaScript by curl and a screen reader, then kept live by a small script.
"""
