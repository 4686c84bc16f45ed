"""The data: one entry per dataset (``registry``), the options' names (``options``), preparing TFDS
datasets as ArrayRecord (``data_dirs``, ``datasets``, ``fashion_mnist_offline``, ImageNet's ``store`` /
``prepare_store``), what a run's input is (``input_spec``), the grain loader (``loader``), the host's
pixel work (``images``) and the paper's augmentation in JAX (``augment``). No TensorFlow."""
