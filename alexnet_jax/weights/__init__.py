"""Trained weights from elsewhere: BVLC's caffemodel and torchvision's state dict, read without Caffe
or PyTorch (``caffemodel``, ``torch_file``) and laid out as this AlexNet's parameters (``layouts``).

Pure numpy; ``python -m alexnet_jax.import_weights`` writes them as a run.
"""
