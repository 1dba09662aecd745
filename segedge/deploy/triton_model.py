"""The Triton Python-backend model that ``segedge serve`` writes as ``1/model.py``.

It runs inside Triton's Python-backend stub process, not in segedge's: it loads the
artifact beside it with segedge's own runner (ONNX Runtime, PyTorch or TensorRT, by suffix)
and answers each batch the dynamic batcher forms with ``logits`` (``(n, C, H, W)`` float32)
and/or ``classmap`` (``(n, H, W)`` uint8), whichever each request asks for. Interface: Triton
python_backend README ("Usage": ``initialize`` / ``execute`` / ``finalize``).
"""

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils  # provided by the stub


def _tensor(name, array):
    """An output tensor built through DLPack: the stub's pybind11 reads numpy 1's dtype layout,
    so a numpy 2 array handed to ``pb_utils.Tensor`` arrives with zero bytes (Triton 2.51)."""
    return pb_utils.Tensor.from_dlpack(name, np.ascontiguousarray(array))


class TritonPythonModel:
    """One model instance: a segedge runner over the artifact in this version directory."""

    def initialize(self, args):
        from segedge.runtime.factory import load_runner

        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        version = Path(args["model_repository"]) / args["model_version"]
        artifact = next(p for p in sorted(version.iterdir()) if p.stem == "model" and p.suffix in (".onnx", ".pt", ".engine", ".plan"))
        threads = int(params.get("serve_threads", "0"))  # see segedge.deploy.triton SERVE_THREADS
        self.runner = load_runner(artifact, threads=threads)
        self.logits_name = params["logits_output"]  # LOGITS_OUTPUT
        self.input_name = config["input"][0]["name"]

    def execute(self, requests):
        # through DLPack too: Tensor.as_numpy() misreads the data under numpy 2 (see _tensor)
        arrays = [np.from_dlpack(pb_utils.get_input_tensor_by_name(r, self.input_name)) for r in requests]
        logits = self.runner.infer(np.ascontiguousarray(np.concatenate(arrays)))
        responses, start = [], 0
        for request, array in zip(requests, arrays):
            part = logits[start : start + len(array)]
            start += len(array)
            wanted = set(request.requested_output_names()) or {self.logits_name, "classmap"}
            outputs = []
            if self.logits_name in wanted:
                outputs.append(_tensor(self.logits_name, part))
            if "classmap" in wanted:
                outputs.append(_tensor("classmap", part.argmax(1).astype(np.uint8)))
            responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
        return responses

    def finalize(self):
        self.runner.close()
