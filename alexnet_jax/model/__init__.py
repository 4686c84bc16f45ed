"""The network: LRN and max-pooling (``layers``), the tower split (``towers``), AlexNet (``alexnet``).

Imports neither TensorFlow nor PyTorch.
"""
