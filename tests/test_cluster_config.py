"""ray_cluster.yaml passes the validation `ray up` runs, offline, and says what we rely on.

`ray up` (ray.autoscaler._private.commands._bootstrap_config in ray 2.60) does, in order:
  1. util.prepare_config(config)       merge the provider's defaults.yaml, fill min/max workers
  2. provider.fillout_available_node_types_resources(config)
                                        AWS: boto3 DescribeInstanceTypes (network + credentials)
  3. util.validate_config(config)       ray-schema.json (unknown keys rejected) + cross checks
  4. provider.bootstrap_config(config)  AWS: IAM role, key pair, subnets, security group (network)
For AWS we run 1 and 3 only. Skipping 2 changes nothing here: it merges autodetected
CPU/GPU/memory *under* the resources we declare, which take precedence, and the schema
requires `resources` for every node type anyway. For the local provider steps 2 and 4 are
offline no-ops, so the on-premise variant goes through the whole _bootstrap_config.
"""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from ray.autoscaler._private import commands as ray_commands
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "ray_cluster.yaml"
AWS_CONFIG_SRC = Path(ray_commands.__file__).parent / "aws" / "config.py"
VARIANT_MARKER = "# --- on-premise variant (local provider) ---"


def load(path: Path) -> dict:
    # As `ray up` reads it (commands.create_or_update_cluster).
    return yaml.safe_load(path.read_text())


def validated(raw: dict) -> dict:
    config = prepare_config(raw)
    validate_config(config)
    return config


def onprem_variant() -> dict:
    """The commented local-provider block at the bottom of ray_cluster.yaml, uncommented."""
    text = CONFIG.read_text()
    assert VARIANT_MARKER in text
    lines = []
    for line in text.split(VARIANT_MARKER, 1)[1].splitlines():
        assert line == "" or line.startswith("#"), f"non-comment line in the variant: {line!r}"
        lines.append(line[2:] if line.startswith("# ") else "")
    variant = yaml.safe_load("\n".join(lines))
    assert isinstance(variant, dict) and variant["provider"]["type"] == "local"
    return variant


def ray_default_inbound_rules(extended_rules: list) -> list:
    """The inbound rules Ray's AWS bootstrap gives a security group it creates.

    Taken from ray/autoscaler/_private/aws/config.py itself; that module imports boto3 at
    import time (not installed here), so the three pure functions are compiled from its source.
    """
    names = {"_create_default_inbound_rules", "_create_default_intracluster_inbound_rules",
             "_create_default_ssh_inbound_rules"}
    tree = ast.parse(AWS_CONFIG_SRC.read_text())
    funcs = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in names]
    assert {f.name for f in funcs} == names, "Ray renamed its security-group rule helpers"
    namespace = {"itertools": itertools}
    exec(compile(ast.Module(body=funcs, type_ignores=[]), str(AWS_CONFIG_SRC), "exec"), namespace)
    return namespace["_create_default_inbound_rules"]({"sg-cluster"}, extended_rules)


@pytest.fixture(scope="module")
def raw() -> dict:
    return load(CONFIG)


@pytest.fixture(scope="module")
def config(raw) -> dict:
    return validated(raw)


def test_passes_ray_up_validation(config):
    assert config["provider"]["type"] == "aws"
    assert config["cluster_synced_files"] == []  # filled from Ray's defaults.yaml by prepare_config


def test_head_runs_no_trials(config):
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"]["CPU"] == 0
    assert head["resources"].get("GPU", 0) == 0
    assert head["max_workers"] == 0
    assert not head["node_config"]["InstanceType"].startswith(("g", "p"))
    start = " ".join(config["head_start_ray_commands"])
    assert "--num-cpus=0" in start
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in start


def test_autoscaling_spot_gpu_workers(config):
    workers = {name: t for name, t in config["available_node_types"].items() if name != config["head_node_type"]}
    assert len(workers) == 1
    (worker,) = workers.values()
    assert worker["resources"]["GPU"] >= 1
    assert worker["resources"]["CPU"] >= 1
    assert worker["min_workers"] == 0
    assert worker["max_workers"] == 4
    assert config["max_workers"] >= worker["max_workers"]
    assert worker["node_config"]["InstanceType"] == "g5.xlarge"
    assert worker["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
    head = config["available_node_types"][config["head_node_type"]]
    assert worker["node_config"]["ImageId"] == head["node_config"]["ImageId"]


def test_project_installed_from_the_uploaded_checkout(config):
    assert config["file_mounts"]["~/cchsweep"] == "."
    assert ".venv" in config["rsync_exclude"]
    assert not any("duckdb" in pattern for pattern in config["rsync_exclude"])  # rsync-down needs them
    # merge_setup_commands put the common setup_commands in front of both roles' commands.
    for role in ("head_setup_commands", "worker_setup_commands"):
        commands = config[role]
        install = next(i for i, c in enumerate(commands) if "pip install -e ~/cchsweep" in c)
        assert any(re.search(r"pip install .*\btorch\b", c) for c in commands[:install])
        assert any("ray[default" in c for c in commands[:install])


def test_token_auth_on_every_node(config):
    # The token file is mounted, never written into the config.
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    everything = yaml.safe_dump(config)
    assert "RAY_AUTH_TOKEN=" not in everything
    for role in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = [c for c in config[role] if "ray start" in c]
        assert len(start) == 1 and "RAY_AUTH_MODE=token ray start" in start[0], role
    # so that `ray exec` / `ray attach` shells (ray status, cchsweep) also use the token
    assert any("export RAY_AUTH_MODE=token" in c for c in config["worker_setup_commands"])


def test_only_ssh_is_open_to_the_outside(config):
    provider = config["provider"]
    for node_type in config["available_node_types"].values():
        # Ray creates and configures the group only for node types without their own groups.
        assert "SecurityGroupIds" not in node_type["node_config"]
        assert "NetworkInterfaces" not in node_type["node_config"]
    rules = ray_default_inbound_rules(provider["security_group"]["IpPermissions"])
    external = [r for r in rules if "UserIdGroupPairs" not in r]
    intracluster = [r for r in rules if "UserIdGroupPairs" in r]
    assert intracluster and all(set(r) == {"FromPort", "ToPort", "IpProtocol", "UserIdGroupPairs"}
                                for r in intracluster)
    assert external and all((r["IpProtocol"], r["FromPort"], r["ToPort"]) == ("tcp", 22, 22) for r in external)
    # and the dashboard binds to loopback on the head (reach it via `ray dashboard` tunnel)
    start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start and "0.0.0.0" not in start


@pytest.mark.parametrize("good, typo", [
    ("\nmax_workers: 4\n", "\nmax_wrokers: 4\n"),  # top level
    ("\n    max_workers: 4\n", "\n    max_wrokers: 4\n"),  # in the GPU worker type
    ("\navailable_node_types:", "\navailable_node_typez:"),
])
def test_misspelled_copy_fails_validation(tmp_path, good, typo):
    text = CONFIG.read_text()
    assert good in text
    broken = tmp_path / "ray_cluster.yaml"
    broken.write_text(text.replace(good, typo, 1))
    with pytest.raises(jsonschema.ValidationError, match=f"'{typo.split(':')[0].strip()}' was unexpected"):
        validated(load(broken))


def test_onprem_variant_passes_the_whole_ray_up_bootstrap():
    variant = onprem_variant()
    assert "available_node_types" not in variant and "head_node_type" not in variant
    config = ray_commands._bootstrap_config(variant, no_config_cache=True)
    (node_type,) = config["available_node_types"].values()
    assert node_type["max_workers"] == len(variant["provider"]["worker_ips"]) == config["max_workers"]
    start = " ".join(config["head_start_ray_commands"])
    assert "RAY_AUTH_MODE=token ray start --head" in start and "--num-cpus=0" in start
    assert "RAY_AUTH_MODE=token ray start --address" in " ".join(config["worker_start_ray_commands"])
    assert any("pip install -e ~/cchsweep" in c for c in config["head_setup_commands"])


def test_onprem_variant_rejects_node_types():
    variant = onprem_variant()
    variant["available_node_types"] = {"gpu": {"resources": {"GPU": 1}, "node_config": {}}}
    with pytest.raises(Exception, match="not supported for on-premise"):
        prepare_config(variant)
