"""The TensorRT Python API segedge may use, class by class, with signatures.

Written from NVIDIA's TensorRT Python API reference (docs.nvidia.com/deeplearning/tensorrt/
latest/_static/python-api/: ``infer/Core/Builder.html``, ``BuilderConfig.html``,
``Runtime.html``, ``Engine.html``, ``ExecutionContext.html``, ``OptimizationProfile.html``,
``TimingCache.html``, ``Logger.html``, ``parsers/Onnx/pyOnnx.html``) for the releases segedge
supports (10.3, the JetPack 6 release, and 11.4). Argument names are the keyword names of
the bindings' signatures (``execute_async_v3(self, stream_handle: int) -> bool``).

`tests/engine/conformance.py` checks every use in segedge's source against this table
(class-qualified: ``IExecutionContext.execute_async`` is not ``IPluginV2.execute_async``) and
``tests/engine/test_tensorrt_api_conformance.py`` checks the table against the compiled
bindings: every member and argument name exists in the release's module, and where the
binary names the owner (``tensorrt::IExecutionContextDoc::...``, ``tensorrt::lambdas::f(
nvinfer1::IExecutionContext&, ...)``) the owner agrees.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Member:
    """One member of a TensorRT class (or of the module, class ``tensorrt``)."""

    kind: str  # "method", "property", "enum" (a member of an enum), "class", "function", "constant"
    args: tuple[str, ...] = ()  # keyword names of a method's / constructor's / function's arguments, self excluded
    required: int = 0  # how many of ``args`` have no default
    returns: str | None = None  # the class of the result, for following values (``create_builder_config`` -> IBuilderConfig)
    paths: tuple[str, ...] = ("10", "11")  # releases that have it ("10" = 10.x, "11" = 11.x)


def _m(*args: str, required: int | None = None, returns: str | None = None, paths: tuple[str, ...] = ("10", "11")) -> Member:
    return Member("method", args, len(args) if required is None else required, returns, paths)


def _p(returns: str | None = None, paths: tuple[str, ...] = ("10", "11")) -> Member:
    return Member("property", returns=returns, paths=paths)


def _enum(*members: str, paths: tuple[str, ...] = ("10", "11")) -> dict[str, Member]:
    return {m: Member("enum", paths=paths) for m in members}


MODULE = "tensorrt"

REFERENCE: dict[str, dict[str, Member]] = {
    MODULE: {
        "__version__": Member("constant"),
        "nptype": Member("function", ("trt_type",), 1),
        "Logger": Member("class", ("min_severity",), 0, "Logger"),
        "Builder": Member("class", ("logger",), 1, "Builder"),
        "Runtime": Member("class", ("logger",), 1, "Runtime"),
        "OnnxParser": Member("class", ("network", "logger"), 2, "OnnxParser"),
        # classes and enums named as values or annotations (IBuilderConfig: probed by has_weak_typing)
        **{name: Member("class", returns=name) for name in (
            "IBuilderConfig", "INetworkDefinition", "ICudaEngine", "IExecutionContext", "IOptimizationProfile", "ITimingCache",
            "ILogger", "BuilderFlag", "MemoryPoolType", "HardwareCompatibilityLevel", "DeviceType", "TensorIOMode",
            "NetworkDefinitionCreationFlag",
        )},
    },
    "Logger": {"WARNING": Member("enum"), "ERROR": Member("enum"), "INFO": Member("enum")},
    "Builder": {
        "create_network": _m("flags", required=0, returns="INetworkDefinition"),
        "create_builder_config": _m(returns="IBuilderConfig"),
        "create_optimization_profile": _m(returns="IOptimizationProfile"),
        "build_serialized_network": _m("network", "config", returns="IHostMemory"),
        "num_DLA_cores": _p(),
        "platform_has_tf32": _p(paths=("10",)),
    },
    "INetworkDefinition": {"get_input": _m("index", returns="ITensor"), "num_inputs": _p()},
    "ITensor": {"name": _p(), "dtype": _p(), "shape": _p()},
    "OnnxParser": {
        "parse_from_file": _m("model"),
        "num_errors": _p(),
        "get_error": _m("index", returns="ParserError"),
    },
    "ParserError": {"node_name": _m(), "node": _m(), "desc": _m()},
    "IBuilderConfig": {
        "set_memory_pool_limit": _m("pool", "pool_size"),
        "builder_optimization_level": _p(),
        "set_flag": _m("flag"),
        "clear_flag": _m("flag"),
        "get_flag": _m("flag"),
        "hardware_compatibility_level": _p(),
        "default_device_type": _p(),
        "DLA_core": _p(),
        "create_timing_cache": _m("serialized_timing_cache", returns="ITimingCache"),
        "set_timing_cache": _m("cache", "ignore_mismatch"),
        "get_timing_cache": _m(returns="ITimingCache"),
        "add_optimization_profile": _m("profile"),
        "int8_calibrator": _p(paths=("10",)),
    },
    "ITimingCache": {"serialize": _m(returns="IHostMemory")},
    "IOptimizationProfile": {"set_shape": _m("input", "min", "opt", "max")},
    "Runtime": {
        "deserialize_cuda_engine": _m("serialized_engine", returns="ICudaEngine"),
        "engine_host_code_allowed": _p(),
        "DLA_core": _p(),
    },
    "ICudaEngine": {
        "num_io_tensors": _p(),
        "get_tensor_name": _m("index"),
        "get_tensor_mode": _m("name"),
        "get_tensor_dtype": _m("name"),
        "get_tensor_shape": _m("name"),
        "get_tensor_profile_shape": _m("name", "profile_index"),
        "num_optimization_profiles": _p(),
        "create_execution_context": _m("strategy", required=0, returns="IExecutionContext"),
    },
    "IExecutionContext": {
        "set_input_shape": _m("name", "shape"),
        "set_tensor_address": _m("name", "memory"),
        "get_tensor_shape": _m("name"),
        "execute_async_v3": _m("stream_handle"),
        "set_optimization_profile_async": _m("profile_index", "stream_handle"),
    },
    "BuilderFlag": _enum("TF32", "VERSION_COMPATIBLE", "GPU_FALLBACK"),
    "MemoryPoolType": _enum("WORKSPACE"),
    "HardwareCompatibilityLevel": _enum("NONE", "AMPERE_PLUS"),
    "DeviceType": _enum("GPU", "DLA"),
    "TensorIOMode": _enum("INPUT", "OUTPUT"),
    "NetworkDefinitionCreationFlag": _enum("STRONGLY_TYPED"),
}
