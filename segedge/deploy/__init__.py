"""Deployment descriptions for servers: Triton model repositories, DeepStream ``nvinfer``
configs, and a local Triton server for any artifact (``segedge serve``)."""
