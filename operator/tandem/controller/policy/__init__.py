"""The reconcile's policy steps, one module each, applied by controller.reconcile in this order:

  validity      an invalid spec -> Invalid; a fixed one leaves Invalid
  suspend       runPolicy.suspend -> the workers removed, Suspended
  deadline      activeDeadlineSeconds passed -> Failed (DeadlineExceeded)
  group         the children of the current group created; the previous group waited out
  queueing      a Job Kueue holds suspended -> Queued, naming the queue and Kueue's reason
  unstartable   a worker the kubelet cannot start (image, command) -> Failed without restarts
  failure       a worker failed -> whole-group restart, or Failed at backoffLimit
  queueing      a worker unschedulable -> Pending quoting the scheduler; Failed at schedulingTimeoutSeconds
  progress      Succeeded, Running (with a metrics read when due) or Pending
  after_finish  ttlSecondsAfterFinished passed -> the TrainingJob deleted

Each step is pure: it reads the validated TrainingJob, what was observed and the clock, and
writes only to the pass's Decision. A step that decides the pass returns True.
"""
