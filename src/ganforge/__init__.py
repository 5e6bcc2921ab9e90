"""ganforge: generative adversarial networks from one command.

Tensor conventions at module boundaries:
- images between data and networks: ``float32`` NCHW in [-1, 1];
- images at the file boundary (PNG, .npz): ``uint8`` NHWC in [0, 255].
"""

__version__ = "0.1.0"
