"""The textbook Flax NNX AlexNet: the benchmark's "before", with none of the CPU speed-ups.

The same network as ``alexnet.AlexNet`` at its defaults (two towers, per-tower LRN after the ReLU of
conv1 and conv2 with k=2, n=5, literal alpha=1e-4, beta=0.75, overlapping 3/2 max-pooling, dropout
0.5 on fc6 and fc7, the paper's init), written the way a Flax user would write it first:
``nnx.Conv(feature_group_count=towers)`` for the within-tower conv2, conv4 and conv5,
``nnx.max_pool`` and a plain ``jnp`` LRN, both differentiated by autodiff. ``alexnet.AlexNet`` instead
runs each tower as its own plain convolution and gives max-pool and LRN custom VJPs (``model/layers.py``).

It is kept only as a yardstick: ``python -m alexnet_jax.benchmark --baseline`` times it in the same
process and loop as the real model and PyTorch, so "what the speed-ups bought" is measured on the
same machine at the same moment. ``copy_params`` loads a ``alexnet.AlexNet``'s parameters into it, and
``tests/test_textbook_model.py`` checks that both compute the same logits and gradients. The XLA
flags of ``alexnet_jax/xla_flags.py`` are process-wide, so this side runs with them too; their share is measured
by running the benchmark twice with different ``XLA_FLAGS``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from alexnet_jax.model import alexnet


class TextbookAlexNet(nnx.Module):
  """The paper's AlexNet (RGB input, dropout 0.5) on NHWC images of side ``input_size``.

  ``towers=2`` is the grouped two-tower net, ``towers=1`` the fully connected one.
  """

  def __init__(
    self,
    num_classes: int = 1000,
    *,
    towers: int = 2,
    input_size: int = 227,
    dtype: str = "float32",
    rngs: nnx.Rngs | None = None,
  ):
    rngs = nnx.Rngs(0) if rngs is None else rngs
    dtype = jnp.dtype(dtype)  # by name, as AlexNet takes it
    self.towers = towers
    weights = nnx.initializers.normal(0.01)

    def conv(cin, cout, kernel, stride=1, pad=0, groups=1, bias=0.0):
      return nnx.Conv(
        cin,
        cout,
        (kernel, kernel),
        strides=stride,
        padding=pad,
        feature_group_count=groups,
        kernel_init=weights,
        bias_init=nnx.initializers.constant(bias),
        dtype=dtype,
        rngs=rngs,
      )

    def dense(cin, cout, bias=0.0):
      return nnx.Linear(
        cin, cout, kernel_init=weights, bias_init=nnx.initializers.constant(bias), dtype=dtype, rngs=rngs
      )

    # The paper's init: weights N(0, 0.01), biases 1 in conv2, conv4, conv5, fc6, fc7.
    ones = ("conv2", "conv4", "conv5", "fc6", "fc7")
    channels = 3  # RGB
    for layer in alexnet.CONV_LAYERS:
      setattr(
        self,
        layer.name,
        conv(
          channels,
          layer.channels,
          layer.kernel,
          layer.stride,
          layer.padding,
          towers if layer.within_tower else 1,
          bias=1.0 if layer.name in ones else 0.0,
        ),
      )
      channels = layer.channels
    side = alexnet.feature_map_sizes(input_size)["pool5"]
    self.fc6 = dense(channels * side * side, alexnet.FC_WIDTH, bias=1.0)
    self.fc7 = dense(alexnet.FC_WIDTH, alexnet.FC_WIDTH, bias=1.0)
    self.fc8 = dense(alexnet.FC_WIDTH, num_classes)
    self.dropout = nnx.Dropout(0.5, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    pool = lambda x: nnx.max_pool(x, (3, 3), strides=(2, 2))
    x = pool(self.lrn(jax.nn.relu(self.conv1(x))))
    x = pool(self.lrn(jax.nn.relu(self.conv2(x))))
    x = jax.nn.relu(self.conv3(x))
    x = jax.nn.relu(self.conv4(x))
    x = pool(jax.nn.relu(self.conv5(x)))
    x = x.reshape(x.shape[0], -1)
    x = self.dropout(jax.nn.relu(self.fc6(x)))
    x = self.dropout(jax.nn.relu(self.fc7(x)))
    return self.fc8(x).astype(jnp.float32)

  def lrn(self, x, size=5, k=2.0, alpha=1e-4, beta=0.75):
    """The paper's LRN, each tower's channels on their own: x / (k + alpha * window sum x^2)^beta."""
    n, h, w, c = x.shape
    squares = jnp.square(x.astype(jnp.float32)).reshape(n, h, w, self.towers, c // self.towers)
    window = jax.lax.reduce_window(
      squares, 0.0, jax.lax.add, (1, 1, 1, 1, size), (1,) * 5, ((0, 0),) * 4 + ((size // 2, size // 2),)
    )
    return (x / (k + alpha * window.reshape(x.shape)) ** beta).astype(x.dtype)


def copy_params(source: alexnet.AlexNet, target: TextbookAlexNet) -> None:
  """Loads the parameters of a default ``alexnet.AlexNet`` (any init, same towers) into ``target``.

  ``alexnet`` stacks each layer's towers on a leading axis: kernels (T, ..., out/T), biases
  (T, out/T), tower t owning outputs t*out/T onwards. Concatenating the towers along the output
  axis gives the full kernel for every layer alike: for the across-tower layers each tower already
  reads all inputs, and for the within-tower ones (T, kh, kw, in/T, out/T) becomes the grouped
  kernel (kh, kw, in/T, out) whose output group t reads input group t. fc6 needs no permutation:
  both models flatten the NHWC pool5 maps with the towers' channels in order.
  """
  for name, layer in zip(alexnet.LAYER_NAMES, (*source.convs, source.fc6, source.fc7, source.fc8)):
    getattr(target, name).kernel[...] = merge_towers(layer.kernel[...])
    getattr(target, name).bias[...] = merge_towers(layer.bias[...])


def merge_towers(stacked: jax.Array) -> jax.Array:
  """A ``alexnet`` kernel or bias, towers stacked on axis 0, as one array with the towers' outputs
  side by side on the last axis: the textbook layer's layout."""
  return jnp.concatenate(list(stacked), axis=-1)
