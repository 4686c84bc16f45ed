"""The data: dataset names and pixel statistics (``options``), preparing TFDS datasets
(``datasets``, ``fashion_mnist_offline``), the augmentation (``augment``) and the tf.data pipeline
(``pipeline``). The only sub-package that imports TensorFlow (``options`` does not)."""
