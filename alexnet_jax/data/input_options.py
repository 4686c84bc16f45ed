"""The data fields of a run's config, declared once: the dataset and its splits (``config.*``) and
how images become the model's input (``config.input``), each an :class:`Option` (rule, the paper's
value, meaning, since when).

The validator checks them (with the data's own check between fields, :data:`CROSS_CHECKS`;
``prepare_store`` runs only these, :func:`check`), the configs start from their defaults,
docs/configuration.md lists them, and :class:`~alexnet_jax.data.input_spec.InputSpec` carries every
input option except those in :data:`RESOLVED` (``input_spec.build`` copies them by iterating
:data:`SPEC_OPTIONS`). Pure Python.
"""

from __future__ import annotations

from alexnet_jax import option_tables, rules
from alexnet_jax.data import options
from alexnet_jax.option_tables import Option

IMAGE_FOLDER_SINCE = "2026-12-07 5cf6e56"  # image_folder and holdout_fraction
IMAGE_FOLDER = "image_folder"  # the dataset made from config.image_folder

# The top-level fields that say which data a run reads.
DATA_OPTIONS = (
  Option(
    rules.one_of("dataset", options.DATASETS),
    "imagenet2012",
    'the TFDS name (`"cifar10"`, `"fashion_mnist"`), or `"image_folder"`: the pictures of `image_folder`',
  ),
  Option(
    rules.string("data_dir", empty_ok=True), "", 'TFDS data_dir; `""` = `TFDS_DATA_DIR` or `~/tensorflow_datasets`'
  ),
  Option(
    rules.string("manual_dir", empty_ok=True),
    "",
    'where `ILSVRC2012_img_train.tar` and `ILSVRC2012_img_val.tar` are (`""`: `<data_dir>/downloads/manual`)',
  ),
  Option(rules.string("train_split", empty_ok=False), "train", "any TFDS split, sliced ones too (`'train[:2000]'`)"),
  Option(rules.string("eval_split", empty_ok=False), "validation", "the split evaluations read"),
  Option(
    rules.string("image_folder", empty_ok=True),
    "",
    'with dataset `"image_folder"`: a folder with one sub-folder of pictures per class (class names: the'
    " sub-folders' sorted), prepared once into a store recorded with it ([pretrained.md](pretrained.md))",
    since=IMAGE_FOLDER_SINCE,
  ),
  Option(
    rules.number("holdout_fraction", 0.0, 1.0, high_open=True),
    0.1,
    "the part of `image_folder` held out as its `validation` split: a picture is held out when the sha256 of"
    " `class/file name` falls below it (no seed; a picture keeps its split when others are added)",
    since=IMAGE_FOLDER_SINCE,
  ),
  Option(
    rules.Rule("eval_max_examples", lambda v: rules.is_int(v) and (v == -1 or v >= 1), "-1 (all) or an integer >= 1"),
    -1,
    "-1 = the whole eval split",
  ),
)

# config.input: what the host and the steps' augmentation do with the images (docs/data.md).
INPUT_OPTIONS = (
  Option(rules.integer("resize_size", 1), 256, "side of the central squares the host sends"),
  Option(
    rules.one_of("resize", options.RESIZES),
    "shorter_side",
    "how an image becomes that square: the shorter side to `resize_size` and the central square kept (the paper,"
    ' cuda-convnet2), or `"warp"` (Caffe: the whole image resized, its aspect ratio lost); a store records its own'
    " and a run refuses a store made the other way ([imagenet.md](imagenet.md#shorter-side-or-warp-configinputresize))",
    since="2026-12-06 bc63217",
  ),
  Option(rules.integer("crop_size", 1), 227, "random crops of this side (the model's `input_size` follows it)"),
  Option(rules.boolean("random_crop"), True, "False: the centre crop in training too"),
  Option(rules.boolean("random_flip"), True, "horizontal flips with probability 1/2"),
  Option(rules.number("pca_noise_std", 0.0), 0.1, "the std of the paper's colour noise alpha; 0 = off"),
  Option(
    rules.one_of("pca_noise_form", options.PCA_NOISE_FORMS),
    "cuda_convnet",
    "`alpha_i * sigma_i` (the authors' code; sigma: each component's std) or `\"fb_resnet\"`"
    " (`alpha_i * eigenvalue_i`, 2.2x / 7.7x / 17x weaker)",
    since="2026-12-01 3ea67c3",
    before="fb_resnet",
  ),
  Option(
    rules.number("train_scale", 0.0, low_open=True),
    1.0,
    "multiplies the centred training views after the colour noise; test views are not scaled (cuda-convnet2:"
    " 1/1.1, `:cuda_convnet2`)",
    since="2026-12-06 55b4487",
  ),
  Option(
    rules.one_of("normalization", options.NORMALIZATIONS),
    "subtract_mean",
    'the paper\'s mean-centred raw RGB, or `"standardize"`: divided by the std too',
    since="2026-11-27 d5ec7c1",
    before="standardize",
  ),
  Option(
    rules.one_of("mean", options.MEANS),
    "image",
    "the prepared store's 256x256x3 mean image, as cuda-convnet2 and Caffe subtract (the per-channel mean where"
    ' no store supplies one), or `"channel"`: one mean per channel',
    since="2026-12-01 3ea67c3",
    before="channel",  # no store, so no mean image
  ),
  Option(
    rules.Rule(
      "mean_pixel",
      lambda v: (
        isinstance(v, (tuple, list)) and len(v) in (0, 1, 3) and all(rules.is_number(x) and 0 <= x <= 255 for x in v)
      ),
      "() for the dataset's mean, or one number in [0, 255] per channel (RGB)",
    ),
    (),
    "one mean per channel on 0-255 RGB pixels in place of the dataset's (Caffe's mean pixel: (123, 117, 104));"
    " `()` = the dataset's ([pretrained.md](pretrained.md))",
    since="2026-12-07 a2fba51",
  ),
  Option(
    rules.string("mean_image_file", empty_ok=True),
    "",
    'with `mean` `"image"`: an imported run\'s own mean image (0-255 RGB `.npy`, relative to its workdir) in place'
    ' of a store\'s; `""` = none ([pretrained.md](pretrained.md))',
    since="2026-12-07 a2fba51",
  ),
  Option(
    rules.one_of("mean_crop", options.MEAN_CROPS),
    "at_view",
    "which crop of the mean image each view loses: the crop at the view's own offset, mirrored with it (Caffe),"
    ' or `"center"`, its central crop whatever the view (cuda-convnet2, `:cuda_convnet2`); the same with a'
    " channel mean",
    since="2026-12-06 44e54bf",
  ),
  Option(
    rules.boolean("use_store"),
    True,
    "ImageNet: read the prepared store (`python -m alexnet_jax.data.prepare_store`) when it is complete"
    " ([imagenet.md](imagenet.md))",
    since="2026-12-01 3ea67c3",
    before=False,  # TFDS's own records
  ),
  Option(
    rules.integer("read_threads", 0),
    0,
    "streamed route: batches read and decoded at once, by threads of the process; 0 = the cores it may use"
    " (`os.sched_getaffinity`: one under `taskset -c 0`); the batches are the same whatever the number"
    " ([data.md](data.md#read-threads))",
    since="2026-12-07 5ec2803",
    before=2,  # loader.READ_THREADS on any host
  ),
  Option(
    rules.one_of("eval_crops", options.EVAL_CROPS),
    "ten_crop",
    'test views: `"center"`, `"center_flip"` (centre and mirror) or `"ten_crop"` (4 corners + centre, flipped)',
  ),
)

# The input options InputSpec does not carry as set: build resolves them into the dataset directory,
# the mean (a store's mean image or one per channel), the std, the colour noise's basis and the number
# of read threads.
RESOLVED = frozenset(
  {"normalization", "pca_noise_form", "mean", "mean_pixel", "mean_image_file", "use_store", "read_threads"}
)
SPEC_OPTIONS = tuple(option for option in INPUT_OPTIONS if option.name not in RESOLVED)


def _crop_fits_resize(config, device_count):
  if config.input.crop_size > config.input.resize_size:
    return (
      f"config.input.crop_size={config.input.crop_size} must be <= config.input.resize_size={config.input.resize_size}"
    )
  return None


def _image_folder_goes_with_its_dataset(config, device_count):
  """The folder is the image_folder dataset's and only its; that dataset is read from its store alone."""
  if config.dataset == IMAGE_FOLDER and not config.image_folder:
    return f"config.image_folder is empty but config.dataset={IMAGE_FOLDER!r} reads its pictures: name the folder"
  if config.dataset != IMAGE_FOLDER and config.image_folder:
    return (
      f"config.image_folder={config.image_folder!r} is read only with config.dataset={IMAGE_FOLDER!r},"
      f" not config.dataset={config.dataset!r}"
    )
  if config.dataset == IMAGE_FOLDER and not config.input.use_store:
    return f"config.input.use_store=False but config.dataset={IMAGE_FOLDER!r} is read from its store alone"
  return None


FIELD_RULES = option_tables.field_rules(DATA_OPTIONS) + option_tables.field_rules(INPUT_OPTIONS, "input.")
CROSS_CHECKS: tuple[rules.CrossCheck, ...] = (_crop_fits_resize, _image_folder_goes_with_its_dataset)


def check(config) -> None:
  """Raises ``rules.ConfigError`` listing every problem of ``config``'s data fields (devices play no part)."""
  rules.check_config(config, FIELD_RULES, CROSS_CHECKS)
