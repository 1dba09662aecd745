"""Training with the article's recipe."""

from segedge.training.loop import TrainConfig, train

__all__ = ["TrainConfig", "train"]
