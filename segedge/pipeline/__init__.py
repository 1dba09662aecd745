"""What combines stages: build, inspect, sensitivity, doctor, demo. Each returns a dataclass.

The floor above runtime/report: a stage (export, calibration, engine, runtime, report)
never imports a module here; ``pipeline`` imports any stage below it (checked by
import-linter's layers contract, ``[tool.importlinter]`` in pyproject.toml).
"""
