"""Using a trained run: read it back from its work directory (``trained_run``), evaluate a checkpoint
(``evaluation``), classify image files (``prediction``), draw the paper's figures (``figures``) and
export the weights (``export``). The commands ``alexnet_jax.evaluate``, ``predict``, ``figures`` and
``export`` are thin shells over these modules."""
