"""The paper's recipe, and the base every other config derives from: AlexNet on ILSVRC-2012.

Krizhevsky, Sutskever & Hinton (2012), §3-§6. tfds ``imagenet2012`` is built from the user's own
download: put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in ``manual_dir`` (default:
<data_dir>/downloads/manual).

* Data (§2, §4.1): shorter side 256, the central 256x256, random 227x227 crops and horizontal flips,
  the mean subtracted, PCA colour noise alpha ~ N(0, 0.1); evaluation averages the softmax over ten
  crops (four corners and the centre, and their flips). Where the paper is silent, the authors'
  code (cuda-convnet2, Caffe): noise alpha_i * sigma_i, a 256x256x3 mean image, no bias decay.
* Model (§3): two towers, LRN (k=2, n=5, alpha=1e-4, beta=0.75) after the ReLU of conv1 and conv2,
  overlapping 3/2 pooling, dropout 0.5 in fc6/fc7, weights N(0, 0.01), biases 1 in conv2, conv4,
  conv5, fc6, fc7.
* Training (§5): batch 128, the paper's momentum rule (``paper_sgd``: m=0.9, wd=5e-4, eps=0.01),
  eps divided by 10 whenever the validation error stops improving (three times), 90 epochs.

The authors' own code and Caffe's replication trained it differently; each is a variant after the
colon (what differs, field by field: ``python -m alexnet_jax.config.recipes``, docs/paper_and_references.md):

* ``:cuda_convnet2`` -- :func:`cuda_convnet2_config`, cuda-convnet2's two-tower ImageNet files;
* ``:caffe`` -- :func:`caffe_config`, Caffe's ``models/bvlc_alexnet``.

Variants compose with ``:smoke`` (``imagenet2012.py:caffe:smoke``).

Prepare the store of 256x256 squares once (all cores; docs/imagenet.md), then train:

  python -m alexnet_jax.data.prepare_store --config=experiments/imagenet2012.py --config.manual_dir=/data/imagenet
  python -m alexnet_jax.main --workdir=runs/in1k --config=experiments/imagenet2012.py \
      --config.manual_dir=/data/imagenet
"""

import ml_collections

from alexnet_jax.train import run_config
from experiments import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The paper's recipe, or with a name of :data:`RECIPES` among the colon-separated variants that
  reference's; the other variants (``smoke``) apply after it."""
  variants = [name for name in (arg or "").split(":") if name]
  recipes = [name for name in variants if name in RECIPES]
  if len(recipes) > 1:
    raise ValueError(f"config variants {recipes} are recipes of their own: name at most one of {sorted(RECIPES)}")
  config = RECIPES[recipes[0]]() if recipes else paper_config()
  try:
    return common.apply_variant(config, ":".join(name for name in variants if name not in RECIPES) or None)
  except ValueError as error:
    raise ValueError(f"{error}; or one recipe of {sorted(RECIPES)}") from None


def paper_config() -> ml_collections.ConfigDict:
  """Every field at the paper's value: each section starts from the option table of the package that
  implements it (``alexnet_jax/train/run_config.py``; the tables give each value's source), and
  ``model.input_size`` follows ``input.crop_size``. The other configs change only what differs."""
  return run_config.default_config()


def cuda_convnet2_config() -> ml_collections.ConfigDict:
  """The paper's recipe with what cuda-convnet2's two-tower ImageNet files set otherwise.

  Sources (github.com/akrizhevsky/cuda-convnet2): ``layers/layers-imagenet-2gpu-model.cfg`` (the paper's
  network: conv1a/b 48+48, conv2 128+128, conv3 192+192 reading both towers, conv4 192+192, conv5
  128+128, fc 2x2048 twice, fc 1000 -- the model's layer table as it is), ``layers/layer-params-imagenet-
  2gpu-model.cfg`` (rates, decay, LRN, init), ``MultiGPU.md`` (the run line), ``cudaconvnet/src/lr.cu``
  (the ``dexp`` schedule), ``python_util``/``layer.py`` (LRN scales), ``convdata.py`` (colour noise,
  rescale, the mean's central crop). Every layer has the same epsW, epsB, momW, momB and wc.
  """
  config = paper_config()
  config.batch_size = 128  # MultiGPU.md: --mini 128
  config.num_epochs = 90.0  # MultiGPU.md: --epochs 90
  # layer-params-imagenet-2gpu-model.cfg, every layer: epsW=dexp[base=0.02;tgtFactor=250;numSteps=4], the
  # paper's 0.01 twice (cuda-convnet2 scales the gradient by eps / numCases, layer.cu getGradScale: a mean
  # over the batch, as the paper's rate is); lr.cu DiscreteExpParameterSchedule: 0.02, 0.02/250**(1/3),
  # 0.02/250**(2/3), 0.02/250 in the four quarters of training.
  config.optimizer.learning_rate = 0.02
  config.schedule.name = "dexp"
  config.schedule.dexp_target_factor = 250.0
  config.schedule.dexp_steps = 4
  # epsB=dexp[base=0.04;tgtFactor=25;numSteps=2]: the biases' own schedule, 0.04 (2 x epsW's base) for the
  # first half, 0.04/25 for the second.
  config.optimizer.bias_lr_multiplier = 2.0
  config.schedule.bias_dexp_steps = 2
  config.schedule.bias_dexp_target_factor = 25.0
  # momW=0.9 momB=0.9, wc=0.0005 on weights only: the paper's momentum, weight decay and decay_biases=False;
  # weights.cu's update inc = mom * inc - eps * (wc * w + grad) is paper_sgd's.
  # [rnorm1a/b], [rnorm2a/b]: size=5 scale=0.0001 pow=0.75 minDiv=2 per tower; layer.py divides scale by size.
  config.model.lrn_alpha = 2e-5
  # layers-imagenet-2gpu-model.cfg: conv1a/b have no neuron, rnorm1 reads conv1 and pool1 carries
  # neuron=relu (LRN before the ReLU; max-pooling commutes with it); conv2a/b have neuron=relu, rnorm2
  # reads them (LRN after the ReLU).
  config.model.lrn_position = "before_relu,after_relu"
  # [cnorm2a/b] type=rnorm after rnorm2: within-channel, size=5 scale=0.001 pow=0.75 (model/options.py CNORM2).
  config.model.cnorm2 = True
  # conv3-5 initW=0.03; the other layers the paper's 0.01.
  config.model.init = "cuda_convnet2"
  # convdata.py ImageDataProvider.add_color_noise: training data *= 1 / (1 + color_noise), noise 0.1.
  config.input.train_scale = 1 / 1.1
  # convdata.py ImageDataProvider: data_mean_crop, the mean image's central inner_size crop (border_size
  # = (img_size - inner_size) / 2 on each side), is subtracted from every view, whatever its offset.
  config.input.mean_crop = "center"
  return config


def caffe_config() -> ml_collections.ConfigDict:
  """The paper's recipe with what Caffe's ``bvlc_alexnet`` replication sets otherwise.

  Sources (github.com/BVLC/caffe): ``models/bvlc_alexnet/train_val.prototxt``, ``solver.prototxt``
  and ``readme.md``; ``examples/imagenet/create_imagenet.sh`` (the 256x256 warp).
  """
  config = paper_config()
  config.batch_size = 256  # train_val.prototxt: data_param batch_size 256 (TRAIN)
  # train_val.prototxt norm1, norm2: alpha 0.0001 divided by local_size 5 (Caffe's LRN) -> 2e-5; k unset: 1.
  config.model.lrn_alpha = 2e-5
  config.model.lrn_k = 1.0
  # train_val.prototxt: norm2 normalises all 256 maps of the grouped conv2, across the group boundary.
  config.model.lrn_per_tower = False
  # train_val.prototxt: fc6/fc7 weight_filler std 0.005, bias_filler 0.1 where the paper has 1 (readme.md).
  config.model.init = "caffe"
  config.optimizer.bias_lr_multiplier = 2.0  # train_val.prototxt: every bias param { lr_mult: 2 decay_mult: 0 }
  # solver.prototxt: lr_policy "step", gamma 0.1, stepsize 100000, max_iter 450000 (four drops).
  config.schedule.name = "step"
  config.schedule.step_every = 100_000
  config.schedule.max_drops = 4
  config.num_train_steps = 450_000
  config.input.pca_noise_std = 0.0  # readme.md: "not training with the relighting data-augmentation"
  config.input.eval_crops = "center"  # readme.md: 57.1 % top-1 "using just the center crop"
  config.input.resize = "warp"  # create_imagenet.sh: RESIZE_HEIGHT=256 RESIZE_WIDTH=256
  return config


# The references' recipes, by the variant name that selects them (``imagenet2012.py:caffe``).
RECIPES = {"cuda_convnet2": cuda_convnet2_config, "caffe": caffe_config}
