"""Triton's Prometheus metrics, read for one model: how many requests, images and batches.

Counters (Triton docs, "Metrics"): ``nv_inference_request_success`` (requests answered),
``nv_inference_count`` (inferences: images, a batch of 8 counts 8) and
``nv_inference_exec_count`` (model executions: batches the dynamic batcher formed).
``inferences / executions`` is the mean batch size Triton formed.
"""

from __future__ import annotations

import re
import urllib.request
from dataclasses import dataclass


@dataclass(frozen=True)
class Counters:
    """Cumulative counters of one model since the server started."""

    requests: int  # nv_inference_request_success
    inferences: int  # nv_inference_count (images)
    executions: int  # nv_inference_exec_count (batches run)

    def __sub__(self, other: "Counters") -> "Counters":
        return Counters(self.requests - other.requests, self.inferences - other.inferences, self.executions - other.executions)

    @property
    def mean_batch(self) -> float:
        """Images per model execution (``nan`` before any execution)."""
        return self.inferences / self.executions if self.executions else float("nan")


def read_counters(address: str, model: str, timeout_s: float = 5.0) -> Counters:
    """Scrape ``http://ADDRESS/metrics`` and sum the model's counters over its versions.

    Args:
        address: ``HOST:PORT`` of the metrics endpoint (``segedge serve``: the HTTP port + 2).
        model: model name.

    Raises:
        OSError: the endpoint cannot be reached.
    """
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=timeout_s) as response:
        text = response.read().decode()
    values = {}
    for name in ("nv_inference_request_success", "nv_inference_count", "nv_inference_exec_count"):
        pattern = re.compile(rf'^{name}{{[^}}]*model="{re.escape(model)}"[^}}]*}} ([0-9.e+]+)$', re.M)
        values[name] = int(sum(float(v) for v in pattern.findall(text)))
    return Counters(values["nv_inference_request_success"], values["nv_inference_count"], values["nv_inference_exec_count"])
