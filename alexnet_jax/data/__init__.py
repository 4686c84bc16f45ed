"""The data: dataset names and pixel statistics (``options``), preparing TFDS datasets as ArrayRecord
(``datasets``, ``fashion_mnist_offline``, ImageNet's ``store`` / ``prepare_store``), what a run's input
is (``input_spec``), the grain loader (``loader``), the host's pixel work (``images``) and the paper's
augmentation in JAX (``augment``). No TensorFlow."""
