"""Which QAT library can produce segedge's INT8 artifacts exactly? (docs/qat.md, "Library choice")

Run in an environment with the libraries installed beside segedge (they are not segedge
dependencies), e.g. a venv made with --system-site-packages over segedge's:

    python -m venv --system-site-packages qatlibs    # from segedge's venv interpreter
    qatlibs/bin/pip install torchao==0.18.0 nncf==3.4.0 nvidia-modelopt==0.47.0 huggingface_hub
    echo "$VIRTUAL_ENV/lib/python3.11/site-packages" > qatlibs/lib/python3.11/site-packages/segedge-venv.pth
    qatlibs/bin/python benchmarks/qat_libraries.py [--checkpoint segnet-dsc]

For PyTorch PT2E (``torchao.quantization.pt2e``; ``torch.ao.quantization`` no longer has it
in PyTorch 2.13), NNCF and NVIDIA Model Optimizer it prepares the model for QAT the way the
library documents, calibrates on the same 8 Pet trainval images segedge calibrates on here,
and prints:

- where and how it quantizes (quantizers, their integer range, symmetry, granularity), next to
  what segedge's two artifacts hold;
- ``agree``: argmax agreement, on 8 Pet test images, of the library's fake-quantized model with
  the segedge INT8 artifact of the nearest form run in ONNX Runtime (PT2E's x86 scheme and
  NNCF: the onnxruntime form; Model Optimizer: the tensorrt form with an FP32 base), and the
  same for segedge's own fake quantization (:mod:`segedge.calibration.torch_graph`). This is
  the quantity QAT trains: a model that differs from the artifact trains the wrong rounding;
- ``step ms``: one training step (forward, distillation-free cross-entropy, backward) at batch 8,
  median of 3 after one warm-up.

It does not train: placement and arithmetic decide whether the exported model can be the artifact.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import onnx
import torch

from segedge.calibration.dataset import load_calibration_set
from segedge.calibration.fakequant import plan_from_artifact
from segedge.calibration.quantize import quantize_int8
from segedge.calibration.torch_graph import OnnxGraphModule
from segedge.data.samples import DataSpec, load_arrays
from segedge.models.checkpoint import load_checkpoint
from segedge.onnx.export import export_onnx

PET = Path(__file__).resolve().parents[2] / "shared/data/oxford-iiit-pet-sample"


class Setup:
    """The model, 8 calibration and 8 test images, and segedge's FP32 and INT8 artifacts."""

    def __init__(self, checkpoint: str, work: Path):
        self.ckpt = load_checkpoint(checkpoint)
        self.calibration = load_calibration_set(PET, self.ckpt.preprocess, num_images=8)
        self.x = torch.from_numpy(self.calibration.images)
        self.test = load_arrays(DataSpec(PET, "test", limit=8), self.ckpt.preprocess)[0]
        self.onnx, self.int8 = {}, {}
        for form in ("tensorrt", "onnxruntime"):
            self.onnx[form] = export_onnx(self.ckpt, work / f"{form}.onnx", target=form).path
            self.int8[form] = quantize_int8(self.onnx[form], work / f"{form}-int8.onnx", self.calibration, target=form,
                                            fp16_base=False).path

    def model(self):
        return load_checkpoint(self.ckpt.path).model.eval()

    def artifact_argmax(self, form: str) -> np.ndarray:
        import onnxruntime as ort

        session = ort.InferenceSession(str(self.int8[form]), providers=["CPUExecutionProvider"])
        return session.run(None, {"input": self.test})[0].argmax(1)

    def agreement(self, model, form: str) -> float:
        with torch.no_grad():
            mine = model(torch.from_numpy(self.test)).argmax(1).numpy()
        return float(np.mean(mine == self.artifact_argmax(form)))

    def step_ms(self, model) -> float:
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(params, lr=0.0)  # timing only: the weights stay
        labels = torch.zeros(self.x.shape[0], *self.x.shape[2:], dtype=torch.long)
        times = []
        for _ in range(4):
            start = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(self.x), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            times.append(1000 * (time.perf_counter() - start))
        return statistics.median(times[1:])


def probe_segedge(s: Setup) -> None:
    for form in ("onnxruntime", "tensorrt"):
        fp32 = onnx.load(str(s.onnx[form]))
        plan = plan_from_artifact(onnx.load(str(s.int8[form])), OnnxGraphModule(fp32).tensor_names())
        graph = OnnxGraphModule(fp32, plan)
        print(f"  {form} form: {plan.summary()}")
        print(f"    agree with the segedge {form} artifact: {100 * s.agreement(graph.eval(), form):.3f}%; "
              f"step ms: {s.step_ms(graph.train()):.0f}")


def probe_pt2e(s: Setup) -> None:
    import torchao
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer, get_default_x86_inductor_quantization_config)

    print(f"  torchao {torchao.__version__}")
    exported = torch.export.export(s.model().train(), (s.x,)).module()  # batch 8, as every call below
    quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config(is_qat=True))
    prepared = prepare_qat_pt2e(exported, quantizer)
    with torch.no_grad():
        prepared(s.x)  # observers see the calibration images
    fq = [m for m in prepared.modules() if type(m).__name__.endswith("FakeQuantize")]
    kinds = collections.Counter((str(m.dtype), m.quant_min, m.quant_max, str(m.qscheme)) for m in fq)
    print(f"  fake quantizers: {len(fq)}: {dict(kinds)}")
    step = s.step_ms(prepared)
    move_exported_model_to_eval(prepared)
    print(f"  agree with the segedge onnxruntime artifact: {100 * s.agreement(prepared, 'onnxruntime'):.3f}%; step ms: {step:.0f}")
    converted = convert_pt2e(prepared)
    ops = collections.Counter(str(n.target) for n in converted.graph.nodes if "quantize" in str(n.target))
    print(f"  converted graph Q/DQ ops: {dict(ops)}")


def probe_nncf(s: Setup) -> None:
    import nncf

    print(f"  nncf {nncf.__version__}")
    quantized = nncf.quantize(s.model(), nncf.Dataset([s.x[i:i + 1] for i in range(len(s.x))]), subset_size=8)
    fq = [(n, m) for n, m in quantized.named_modules() if "Quantizer" in type(m).__name__]
    kinds = collections.Counter((type(m).__name__, getattr(m, "num_bits", None), "signed" if getattr(m, "signed", None) else "unsigned",
                                 "per-channel" if getattr(m, "per_channel", None) else "per-tensor",
                                 "narrow" if getattr(m, "narrow_range", None) else "full") for _, m in fq)
    print(f"  quantizers: {len(fq)}: {dict(kinds)}")
    step = s.step_ms(quantized.train())
    print(f"  agree with the segedge onnxruntime artifact: {100 * s.agreement(quantized.eval(), 'onnxruntime'):.3f}%; step ms: {step:.0f}")


def probe_modelopt(s: Setup) -> None:
    import modelopt
    import modelopt.torch.quantization as mtq

    print(f"  modelopt {modelopt.__version__}")
    quantized = mtq.quantize(s.model(), mtq.INT8_DEFAULT_CFG, lambda m: m(s.x))
    tq = [(n, m) for n, m in quantized.named_modules() if type(m).__name__ == "TensorQuantizer" and m.is_enabled]
    kinds = collections.Counter((n.rsplit(".", 1)[-1], m.num_bits, "unsigned" if m.unsigned else "signed",
                                 f"axis {m.axis}", "narrow" if m.narrow_range else "full") for n, m in tq)
    print(f"  enabled quantizers: {len(tq)}: {dict(kinds)}")
    step = s.step_ms(quantized.train())
    print(f"  agree with the segedge tensorrt artifact (FP32 base): {100 * s.agreement(quantized.eval(), 'tensorrt'):.3f}%; step ms: {step:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="segnet-dsc", help="checkpoint path or embedded model name")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as work:
        s = Setup(args.checkpoint, Path(work))
        print(f"{args.checkpoint}; torch {torch.__version__}, {torch.get_num_threads()} threads")
        for probe in (probe_segedge, probe_pt2e, probe_nncf, probe_modelopt):
            print(f"== {probe.__name__.removeprefix('probe_')}")
            try:
                probe(s)
            except Exception:
                print("  FAILED: " + traceback.format_exc().strip().splitlines()[-1][:300])


if __name__ == "__main__":
    main()
