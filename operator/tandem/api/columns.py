"""The printer columns of `kubectl get tj`, listed once: the CRD carries them (api/crd.py),
`tandem list` prints them, and the cluster tests select them by name.

The figures among them come from the figures' own declaration (api/status.py FIGURES): a figure
with a `column` becomes one here, described by its status field's description, so a figure added
there shows in `kubectl get tj` without a second list to keep in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Optional

from pydantic.alias_generators import to_camel

from .status import FIGURES, MetricsStatus, duration


@dataclass(frozen=True)
class PrinterColumn:
    """One column: its header, its type and JSON path as the CRD declares them, and how `tandem
    list` prints a value (kubectl prints it as it is)."""

    name: str
    type: Literal["string", "integer", "number", "date"]
    json_path: str
    description: str = ""
    #: 1: shown by `kubectl get -o wide` only.
    priority: int = 0
    text: Callable[[Any], str] = str

    def crd(self) -> dict[str, Any]:
        """The column as additionalPrinterColumns lists it."""
        column: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.priority:
            column["priority"] = self.priority
        if self.description:
            column["description"] = self.description
        return column

    def value(self, document: Mapping[str, Any]) -> Optional[Any]:
        """The value at `json_path` (a plain `.a.b.c` path) in an object as the API server stores
        it; None where any step of the path is missing."""
        node: Any = document
        for key in self.json_path.strip(".").split("."):
            if not isinstance(node, Mapping) or key not in node:
                return None
            node = node[key]
        return node


def _figure_columns() -> list[PrinterColumn]:
    return [
        PrinterColumn(f.column, "number", f".status.metrics.{to_camel(f.field)}",
                      (MetricsStatus.model_fields[f.field].description or "").rstrip("."), 1 if f.wide else 0, f.text)
        for f in FIGURES if f.column
    ]


PRINTER_COLUMNS: tuple[PrinterColumn, ...] = (
    PrinterColumn("Framework", "string", ".spec.framework"),
    PrinterColumn("Workers", "integer", ".spec.workers", "desired workers (kubectl scale sets it)"),
    PrinterColumn("Current", "integer", ".status.currentWorkers", "worker pods running", priority=1),
    PrinterColumn("World", "integer", ".status.worldSize", "training processes in the newest rendezvous round "
                  "(elastic jobs)", priority=1),
    PrinterColumn("Phase", "string", ".status.phase"),
    PrinterColumn("Queue", "string", ".spec.queueName", "Kueue LocalQueue", priority=1),
    PrinterColumn("Restarts", "integer", ".status.restarts", "whole-group restarts"),
    PrinterColumn("InPlace", "integer", ".status.inPlaceRestarts", "restarts of the training processes in place"),
    *_figure_columns(),
    PrinterColumn("Progress", "number", ".status.progress.percent", "percent of the steps done",
                  text=lambda percent: f"{percent:.0f}%"),
    PrinterColumn("ETA", "integer", ".status.progress.eta", "seconds left, from the recent step rate", text=duration),
    PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
)
