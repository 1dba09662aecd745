"""``segedge deploy triton`` and ``segedge deploy deepstream``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from segedge.cli.common import console, handle_errors
from segedge.contract import Backend
from segedge.deploy.triton import Device

deploy_app = typer.Typer(help="Write server deployments of artifacts: Triton model repositories, DeepStream nvinfer configs.",
                         no_args_is_help=True)


@deploy_app.command(Backend.TRITON.value)
@handle_errors
def triton_command(
    artifacts: Annotated[list[Path], typer.Argument(help="Artifacts: .onnx (onnxruntime backend) or .engine/.plan with its sidecar (tensorrt_plan).", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Model repository directory (REPO/<name>/config.pbtxt, REPO/<name>/1/model.*).")],
    max_batch: Annotated[int, typer.Option(min=0, help="max_batch_size for a symbolic batch axis (an engine: at most its profile's maximum); 0 disables batching.")] = 8,
    queue_delay_us: Annotated[int, typer.Option(min=0, help="Dynamic batcher's max_queue_delay_microseconds.")] = 2000,
    instances: Annotated[int, typer.Option(min=1, help="instance_group count per device.")] = 1,
    device: Annotated[Device, typer.Option(help="gpu: KIND_GPU instances with the TensorRT accelerator at the artifact's precision; cpu: KIND_CPU.")] = Device.GPU,
    class_map: Annotated[bool, typer.Option("--class-map/--no-class-map", help="Add a uint8 'classmap' output (argmax) to ONNX models, so clients need not fetch logits.")] = True,
) -> None:
    """Write a Triton model repository: config.pbtxt (I/O, batching, instances, accelerators, the contract
    as parameters), labels.txt and the model. Every config is parsed into Triton's ModelConfig and checked
    against its model."""
    from segedge.deploy.triton import TritonOptions, write_repository

    options = TritonOptions(max_batch=max_batch, queue_delay_us=queue_delay_us, instances=instances, device=device, class_map=class_map)
    for model_dir in write_repository(artifacts, output, options):
        console.print(f"wrote {model_dir}/config.pbtxt (checked against {model_dir.name}'s model)")


@deploy_app.command("deepstream")
@handle_errors
def deepstream_command(
    artifact: Annotated[Path, typer.Argument(help="ONNX artifact.", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for the nvinfer config, labels and ONNX.")],
    batch_size: Annotated[int, typer.Option(min=1, help="nvinfer batch-size (number of streams batched).")] = 1,
    gpu_id: Annotated[int, typer.Option(min=0, help="nvinfer gpu-id.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace the files of an earlier deployment in the directory (an output that is the artifact is refused even so).")] = False,
) -> None:
    """Write a DeepStream nvinfer config for semantic segmentation (network-type=2), its labels file and an
    ONNX ending in Softmax (normalisation folded into the first convolution when nvinfer's scalar scale
    cannot express it)."""
    from segedge.deploy.deepstream import write_deepstream

    config = write_deepstream(artifact, output, batch_size=batch_size, gpu_id=gpu_id, force=force)
    console.print(f"wrote {config}, {config.parent / 'labels.txt'} and {artifact.stem}-deepstream.onnx")
