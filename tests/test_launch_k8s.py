"""launch/k8s/: the JobSet and its RBAC hold what JAX's Kubernetes bootstrap needs, and the pods' command is a
valid invocation of the training CLI for the devices the manifest asks for.

JAX's bootstrap (jax[k8s]) lists the namespace's pods and services and reads the pod's Job through the API; it
takes the process count from the Job's ``parallelism`` and the rank from ``JOB_COMPLETION_INDEX`` (an Indexed
Job). The command is parsed by the CLI's own flag parser and the config it loads is validated for hosts x GPUs
devices, in a child process (the CLI's absl flags are global).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "launch" / "k8s"


def _documents(name: str) -> dict[str, dict]:
  with open(K8S / name) as f:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(f) if doc}


def _job():
  [replicated] = _documents("jobset.yaml")["JobSet"]["spec"]["replicatedJobs"]
  return replicated, replicated["template"]["spec"]


def _container(job_spec) -> dict:
  [container] = job_spec["template"]["spec"]["containers"]
  return container


def test_the_pods_run_as_the_service_account_whose_role_allows_the_bootstrap_reads():
  rbac = _documents("rbac.yaml")
  _, job_spec = _job()
  account = rbac["ServiceAccount"]["metadata"]["name"]
  assert job_spec["template"]["spec"]["serviceAccountName"] == account
  binding = rbac["RoleBinding"]
  assert [s["name"] for s in binding["subjects"]] == [account]
  assert binding["roleRef"] == {
    "apiGroup": "rbac.authorization.k8s.io",
    "kind": "Role",
    "name": rbac["Role"]["metadata"]["name"],
  }
  granted = {
    (group, resource, verb)
    for rule in rbac["Role"]["rules"]
    for group in rule["apiGroups"]
    for resource in rule["resources"]
    for verb in rule["verbs"]
  }
  needed = {("", "pods", "list"), ("", "services", "list"), ("batch", "jobs", "get")}
  assert needed <= granted, needed - granted


def test_one_indexed_job_of_one_pod_per_host_each_with_its_gpus():
  replicated, job_spec = _job()
  assert replicated["replicas"] == 1  # one Job: JAX reads the process count from its parallelism
  assert job_spec["completionMode"] == "Indexed"
  assert job_spec["parallelism"] == job_spec["completions"] >= 1
  assert int(_container(job_spec)["resources"]["limits"]["nvidia.com/gpu"]) >= 1


def _flag(command: list[str], name: str) -> str:
  [value] = [arg.split("=", 1)[1] for arg in command if arg.startswith(f"--{name}=")]
  return value


def test_the_workdir_and_the_data_are_on_mounted_claims_and_the_workdir_is_writable():
  _, job_spec = _job()
  container = _container(job_spec)
  claims = {v["name"] for v in job_spec["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v}
  mounts = {m["mountPath"]: m for m in container["volumeMounts"] if m["name"] in claims}

  def mount_of(path):
    [mount] = [m for root, m in mounts.items() if os.path.commonpath([root, path]) == root]
    return mount

  assert not mount_of(_flag(container["command"], "workdir")).get("readOnly", False)
  mount_of(_flag(container["command"], "config.data_dir"))


@pytest.mark.slow
def test_the_command_is_a_valid_invocation_of_the_cli_for_the_devices_it_asks_for():
  _, job_spec = _job()
  container = _container(job_spec)
  command = container["command"]
  assert command[:3] == ["python", "-m", "alexnet_jax.main"]
  devices = job_spec["parallelism"] * int(container["resources"]["limits"]["nvidia.com/gpu"])
  check = (
    "import os, sys; from alexnet_jax import flag_errors, main; from alexnet_jax.train import validation\n"
    "flag_errors.parse_flags(sys.argv)\n"
    "validation.validate(main.FLAGS.config, device_count=int(os.environ['DEVICES']))\n"
    "print('valid', main.FLAGS.workdir)\n"
  )
  done = subprocess.run(
    [sys.executable, "-c", check, *command[3:]],
    cwd=REPO,
    env={**os.environ, "DEVICES": str(devices)},
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.split() == ["valid", _flag(command, "workdir")], json.dumps(done.stdout)
