"""The TrainingJob API: model, validation, loading, and the CRD generated from the model."""

from ..errors import SpecError
from .load import apply_overrides
from .model import TrainingJob, TrainingJobSpec, load_job, load_jobs
from .tpu import SliceShape, slice_shape

__all__ = [
    "SliceShape", "SpecError", "TrainingJob", "TrainingJobSpec", "apply_overrides", "load_job", "load_jobs",
    "slice_shape",
]
