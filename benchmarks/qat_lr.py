"""How does QAT's step size move INT8-FP32 agreement? (docs/benchmarks.md, "QAT")

Trains the fake-quantized graph of a CPU-form INT8 artifact (bit-exact with ONNX Runtime, so
its argmax is the artifact's) with distillation from the FP32 ONNX, as
:func:`segedge.calibration.qat.quantization_aware_training` does, for each configuration given,
and prints the argmax agreement with the FP32 ONNX on the first 24 Pet test images before
training and after each epoch. Configurations are JSON: ``lr`` (Adam), ``hard`` (weight of a
cross-entropy on the FP32 argmax), ``qstep`` (1: Adam steps scaled per output channel by the
weight's quantization step, ``lr`` then in steps; biases by ``bstep``).

    python benchmarks/qat_lr.py FP32.onnx PTQ.onnx IMAGES EPOCHS '{"lr": 1e-5}' '{"lr": 1e-4}' ...
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F

from segedge.calibration.dataset import load_calibration_set
from segedge.calibration.fakequant import plan_from_artifact, weight_scales
from segedge.calibration.torch_graph import OnnxGraphModule
from segedge.data.samples import DataSpec, load_arrays
from segedge.onnx.artifact import open_onnx

PET = "../shared/data/oxford-iiit-pet-sample"


class QuantStepAdam:
    """Adam whose step per element is ``lr x`` its quantization step (per output channel)."""

    def __init__(self, params, steps, lr, betas=(0.9, 0.999), eps=1e-12):
        self.params, self.steps, self.lr, self.betas, self.eps, self.t = params, steps, lr, betas, eps, 0
        self.state = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        self.t += 1
        b1, b2 = self.betas
        for p, step, (m, v) in zip(self.params, self.steps, self.state):
            if p.grad is not None:
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                p.sub_(self.lr * step * (m / (1 - b1**self.t)) / ((v / (1 - b2**self.t)).sqrt() + self.eps))


def main() -> None:
    fp32_path, ptq_path, n_train, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    fp32 = onnx.load(fp32_path)
    teacher = ort.InferenceSession(fp32_path, providers=["CPUExecutionProvider"])
    preprocess = open_onnx(fp32_path).contract.preprocess
    train = load_calibration_set(PET, preprocess, num_images=n_train, seed=0).images
    test = load_arrays(DataSpec(PET, "test", limit=24), preprocess)[0]
    reference = teacher.run(None, {"input": test})[0].argmax(1)
    plan = plan_from_artifact(onnx.load(ptq_path), OnnxGraphModule(fp32).tensor_names())

    def agreement(graph) -> float:
        graph.eval()
        with torch.no_grad():
            out = np.concatenate([graph(torch.from_numpy(test[i:i + 8])).numpy().argmax(1) for i in range(0, len(test), 8)])
        graph.train()
        return 100 * float(np.mean(out == reference))

    for config in map(json.loads, sys.argv[5:]):
        graph = OnnxGraphModule(fp32, plan)
        print(config, f"before: {agreement(graph):.3f}%", flush=True)
        params = list(graph.parameters())
        if config.get("qstep"):
            steps = [weight_scales(p.detach()).view(-1, 1, 1, 1) if p.ndim == 4 else torch.full_like(p, config.get("bstep", 1e-3))
                     for p in params]
            optimizer = QuantStepAdam(params, steps, config["lr"])
        else:
            optimizer = torch.optim.Adam(params, lr=config["lr"])
        generator = torch.Generator().manual_seed(0)
        started = time.perf_counter()
        for epoch in range(epochs):
            order = torch.randperm(len(train), generator=generator).numpy()
            for start in range(0, len(train), 8):
                x = train[np.sort(order[start:start + 8])].copy()
                if torch.rand(1, generator=generator).item() < 0.5:
                    x = x[:, :, :, ::-1].copy()
                with torch.no_grad():
                    target = torch.from_numpy(teacher.run(None, {"input": x})[0])
                logits = graph(torch.from_numpy(x))
                loss = F.kl_div(F.log_softmax(logits, 1), F.log_softmax(target, 1), log_target=True, reduction="none").sum(1).mean()
                if config.get("hard"):
                    loss = loss + config["hard"] * F.cross_entropy(logits, target.argmax(1))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            print(config, f"epoch {epoch + 1}: {agreement(graph):.3f}% ({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
