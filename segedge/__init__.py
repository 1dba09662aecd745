"""segedge: take a SegNet-family segmentation network from PyTorch to an edge device and
prove that nothing was lost on the way."""

__version__ = "0.1.0"
