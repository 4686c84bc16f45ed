#!/bin/bash
# Train on a Cloud TPU VM slice: one JAX process per TPU host, started on every worker at once.
#
#   launch/tpu_vm.sh TPU_NAME ZONE experiments/imagenet2012.py gs://BUCKET/runs/in1k [flags...]
#
# Copies this checkout (git HEAD) to every worker, installs the pinned requirements with JAX's TPU
# runtime, and runs alexnet_jax.main on all workers (gcloud ... --worker=all). No coordinator flags:
# on Cloud TPU, jax.distributed.initialize() finds the other hosts by itself. The workdir should be a
# GCS path (or another filesystem every host sees) so that orbax can write checkpoints from all hosts.
set -euo pipefail

TPU=${1:?usage: launch/tpu_vm.sh TPU_NAME ZONE CONFIG WORKDIR [flags...]}
ZONE=${2:?usage: launch/tpu_vm.sh TPU_NAME ZONE CONFIG WORKDIR [flags...]}
CONFIG=${3:?usage: launch/tpu_vm.sh TPU_NAME ZONE CONFIG WORKDIR [flags...]}
WORKDIR=${4:?usage: launch/tpu_vm.sh TPU_NAME ZONE CONFIG WORKDIR [flags...]}
shift 4
REMOTE_DIR=alexnet_jax
JAX_VERSION=$(sed -n 's/^jax==//p' "$(dirname "$0")/../requirements.txt")

ARCHIVE=$(mktemp --suffix=.tar.gz)
trap 'rm -f "$ARCHIVE"' EXIT
git -C "$(dirname "$0")/.." archive --format=tar.gz -o "$ARCHIVE" HEAD
gcloud compute tpus tpu-vm scp "$ARCHIVE" "$TPU":code.tar.gz --zone="$ZONE" --worker=all

RUN=$(printf '%q ' python3 -m alexnet_jax.main --config="$CONFIG" --workdir="$WORKDIR" "$@")
gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" --worker=all --command="
  set -e
  mkdir -p $REMOTE_DIR && tar -xzf code.tar.gz -C $REMOTE_DIR && cd $REMOTE_DIR
  python3 -m pip install -q -r requirements.txt 'jax[tpu]==$JAX_VERSION'
  $RUN"
