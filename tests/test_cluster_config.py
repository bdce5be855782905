"""cluster.yaml (AWS) and cluster.local.yaml (machines you have) pass Ray's own cluster-config
validation, the steps `ray up` runs before it talks to a provider, and keep the security defaults:
token authentication, dashboard and MLflow on 127.0.0.1, no credentials in the YAML."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parents[1]
FILES = ("cluster.yaml", "cluster.local.yaml")


def load(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


def ray_up_checks(config: dict) -> dict:
    """What ``ray up`` does to a config before the provider (``commands._bootstrap_config``)."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


@pytest.mark.parametrize("name", FILES)
def test_cluster_config_passes_rays_validation(name):
    prepared = ray_up_checks(load(name))
    assert prepared["cluster_name"].startswith("xlt-sweep")
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_the_validation_rejects_a_broken_config():
    """Not a vacuous check: a misspelled field and a wrong type fail it."""
    config = load("cluster.yaml")
    config["max_worker"] = config.pop("max_workers")
    with pytest.raises(Exception, match="max_worker"):
        ray_up_checks(config)
    config = load("cluster.yaml")
    config["available_node_types"]["gpu_worker"]["min_workers"] = "one"
    with pytest.raises(Exception, match="one"):
        ray_up_checks(config)


def test_aws_cluster_has_a_cpu_head_and_autoscaling_gpu_workers():
    config = load("cluster.yaml")
    assert config["provider"]["type"] == "aws"
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}  # trials never land on the head
    workers = config["available_node_types"]["gpu_worker"]
    assert workers["min_workers"] < workers["max_workers"] and workers["node_config"]["InstanceType"].startswith("g")
    setup = " ".join(config["setup_commands"])
    assert "scripts/install.sh" in setup and "/mnt/xlt-sweep" in setup  # pinned install; shared storage
    assert config["file_mounts"]["/home/ubuntu/xlt-sweep"] == "."


@pytest.mark.parametrize("name", FILES)
def test_security_defaults(name):
    config = load(name)
    head = [" ".join(c.split()) for c in config["head_start_ray_commands"]]
    workers = [" ".join(c.split()) for c in config["worker_start_ray_commands"]]
    ray_starts = [c for c in head + workers if "ray start" in c]
    assert ray_starts and all("RAY_AUTH_MODE=token" in c for c in ray_starts)
    assert any("--dashboard-host=127.0.0.1" in c for c in head)
    mlflow = [c for c in head if "mlflow" in c]
    assert len(mlflow) == 1 and "scripts/mlflow_server.sh" in mlflow[0]  # which binds 127.0.0.1:
    assert "mlflow server --host 127.0.0.1 " in (REPO / "scripts" / "mlflow_server.sh").read_text()
    assert not any("0.0.0.0" in c for c in head + workers)
    text = (REPO / name).read_text()
    secrets = re.compile(r"aws_access_key|aws_secret|secret_access|password|RAY_AUTH_TOKEN\s*=|BEGIN [A-Z ]*PRIVATE KEY|AKIA[0-9A-Z]{16}",
                         re.IGNORECASE)
    assert not secrets.search(text), secrets.search(text)


@pytest.mark.parametrize("name", FILES)
def test_nodes_install_the_cluster_extra(name):
    """Every node gets the pinned install plus the cluster extra: Ray's dashboard and job server (`ray job
    submit` goes through it) and, on AWS, boto3 for the head's autoscaler."""
    setup = " ".join(load(name)["setup_commands"])
    assert "bash scripts/install.sh ~/xlt-sweep/.venv cluster" in setup
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    ray_pin = next(d for d in project["dependencies"] if d.startswith("ray["))
    cluster = project["optional-dependencies"]["cluster"]
    assert f"ray[default]=={ray_pin.split('==')[1]}" in cluster and any(d.startswith("boto3") for d in cluster)
