"""The reconcile's policy steps, one module each. controller.reconcile.STEPS puts them in order
(docs/architecture.md, "Reconcile steps", says what each decides, in the same order).

Each step is pure: it reads the validated TrainingJob, what was observed and the clock, and
writes only to the pass's Decision. A step that decides the pass returns True.
"""
