"""The TrainingJob API: model, validation, loading, and the CRD generated from the model."""

from .errors import SpecError
from .load import apply_overrides, load_job, load_jobs
from .model import API_GROUP, API_VERSION, KIND, TrainingJob, TrainingJobSpec
from .tpu import SliceShape, slice_shape

__all__ = [
    "API_GROUP", "API_VERSION", "KIND", "SliceShape", "SpecError", "TrainingJob",
    "TrainingJobSpec", "apply_overrides", "load_job", "load_jobs", "slice_shape",
]
