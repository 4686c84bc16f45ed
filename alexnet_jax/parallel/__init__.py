"""Where the computation runs: the device mesh and placement (``sharding``), multi-process start
(``distributed``). Imports no TensorFlow."""
