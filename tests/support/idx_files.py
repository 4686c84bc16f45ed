"""Fashion-MNIST's file format (gzipped IDX), as Debian and the upstream ship it."""

import gzip

import numpy as np


def write_idx(path, array):
  """Writes ``array`` (uint8) as a gzipped IDX file, the format of the upstream and Debian files."""
  header = np.array([0x0800 + array.ndim, *array.shape], ">u4").tobytes()
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())
