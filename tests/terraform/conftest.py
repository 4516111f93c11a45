"""Real Terraform against the provider double: a working copy of examples/daily-job pointed at a moto_server.

Fixtures (session-scoped: one init, one plan, one apply per test session):
- `aws_endpoint`: the AWS API. A moto_server of our own on a free port (serialized like the local stack's), or
  EC2BATCH_TF_ENDPOINT when set (the local stack's, http://127.0.0.1:4566, for the end-to-end run through what
  Terraform created).
- `tf_dir`: a copy of terraform/ (module and example) and dist/launcher.zip in a temporary directory, with
  `terraform.tfvars.json` and a provider override pointing every AWS endpoint at `aws_endpoint`.
- `tf(*args)`: runs `terraform <args>` there and returns the CompletedProcess (raises on failure unless check=False).
- `plan_json`: `terraform show -json` of a plan of the example (the dict). `applied`: the state after
  `terraform apply` (`terraform show -json`'s dict).

Without a `terraform` binary on PATH these fixtures do not pass quietly: a warning and a printed line say the
Terraform suite did not run; with CI=true it is a failure, elsewhere a skip with that reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from ec2batch.local.ec2 import TAG_DOCKER_IMAGE
from tests.terraform.provider.cliconfig import install

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = Path("terraform/examples/daily-job")
REGION = "eu-central-1"
ENDPOINT_ENV = "EC2BATCH_TF_ENDPOINT"
# The services the module calls, by the real provider's `endpoints` names (which are boto3's here).
SERVICES = (
    "batch",
    "cloudwatch",
    "dynamodb",
    "ec2",
    "ecr",
    "events",
    "iam",
    "kms",
    "lambda",
    "logs",
    "scheduler",
    "sns",
    "sqs",
    "ssm",
    "sts",
)
NO_TERRAFORM = (
    "NO `terraform` BINARY ON PATH: the Terraform suite (init, validate, plan, apply, destroy of "
    "examples/daily-job against the provider double) DID NOT RUN"
)
TfRunner = Callable[..., subprocess.CompletedProcess[str]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "destroys: runs `terraform destroy`; moved after every other test")
    config.addinivalue_line(
        "markers", "runs_the_job: runs the job on what Terraform applied; after the tests of the applied state"
    )


def _order(item: pytest.Item) -> int:
    if item.get_closest_marker("destroys") is not None:
        return 2
    return 1 if item.get_closest_marker("runs_the_job") is not None else 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A run changes the applied objects (the instance is started, stopped and tagged), so it comes after every test
    # that reads the state as applied (the second plan's "no changes" included); destroy ends the shared state, so
    # it runs after everything (tfmod's rules included).
    items.sort(key=_order)


_NOT_RUN: list[str] = []  # set when a test needed Terraform and there was none


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _NOT_RUN:
        terminalreporter.write_line(f"!!! {NO_TERRAFORM}", red=True, bold=True)


@pytest.fixture(scope="session")
def terraform_bin() -> str:
    found = shutil.which("terraform")
    if found is None:
        _NOT_RUN.append(NO_TERRAFORM)
        warnings.warn(pytest.PytestWarning(NO_TERRAFORM), stacklevel=1)
        print(f"\n!!! {NO_TERRAFORM}", file=sys.stderr)
        if os.environ.get("CI") == "true":
            pytest.fail(f"{NO_TERRAFORM} (CI=true: Terraform must run on CI)", pytrace=False)
        pytest.skip(NO_TERRAFORM)
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"moto_server exited ({server.returncode}) before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"moto_server did not listen on {port} within 60 s")


@pytest.fixture(scope="session")
def aws_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get(ENDPOINT_ENV)
    if given:
        yield given.rstrip("/")
        return
    # moto_server as the local stack runs it (one request at a time: Terraform applies ten resources at once, and
    # moto's backends have no locks), in a process of its own: moto's state is per process, and other tests in this
    # one use in-process moto.
    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "ec2batch.local.motoserver", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(port, server)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="session")
def aws_session() -> boto3.Session:
    return boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)


@pytest.fixture(scope="session")
def aws(aws_session: boto3.Session, aws_endpoint: str) -> Callable[[str], Any]:
    """aws("sqs") -> a boto3 client of the endpoint Terraform applies to."""
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = aws_session.client(service, endpoint_url=aws_endpoint)
        return clients[service]

    return client


def _subnet(aws: Callable[[str], Any]) -> str:
    """A subnet of the endpoint's default VPC (moto makes one per region), for the job's machine."""
    subnets = aws("ec2").describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    return sorted(s["SubnetId"] for s in subnets)[0]


def _instance_image(aws: Callable[[str], Any]) -> str:
    """The AMI `make ami` would have built (tag ec2batch:image = instance, owned by the account): the example finds
    its image by that tag. On the local stack that is its registered instance image; on a fresh moto_server, an
    image registered for the purpose (no instance is started for it)."""
    ec2 = aws("ec2")
    tagged = ec2.describe_images(Owners=["self"], Filters=[{"Name": "tag:ec2batch:image", "Values": ["instance"]}])
    if tagged["Images"]:
        return str(tagged["Images"][0]["ImageId"])
    local = ec2.describe_images(Owners=["self"], Filters=[{"Name": "tag-key", "Values": [TAG_DOCKER_IMAGE]}])
    if local["Images"]:
        image = max(local["Images"], key=lambda i: i.get("CreationDate", ""))["ImageId"]
    else:
        image = ec2.register_image(
            Name="ec2batch-instance-tests",
            RootDeviceName="/dev/xvda",
            Architecture="x86_64",
            VirtualizationType="hvm",
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 30, "VolumeType": "gp3"}}],
        )["ImageId"]
    ec2.create_tags(Resources=[image], Tags=[{"Key": "ec2batch:image", "Value": "instance"}])
    return str(image)


SHARDED_JOB = """\
variable "sharded_compute" {
  description = "batch.compute of the tests' sharded job: ec2 is applied (-var sharded_compute=fargate plans it)."
  type        = string
  default     = "ec2"
}

module "sharded" {
  source = "../../modules/scheduled-job"

  job_name     = "daily-shards"
  command      = ["python3", "/app/shard.py"]
  environment  = { ROWS = "100" }
  launcher_zip = "${path.root}/../../../dist/launcher.zip"

  schedule_expression = null
  planner_enabled     = false
  strategy            = "ephemeral"
  market              = "spot-then-on-demand"
  retry               = { attempts = 3 }
  instance_types      = ["m7i.large", "m6i.large"]
  subnet_ids          = var.subnet_ids

  shards = 8
  batch  = { compute = var.sharded_compute, max_vcpus = 16, vcpus = 1, memory_mb = 2048 }
}

output "sharded_names" {
  description = "Every AWS name of the sharded job."
  value       = module.sharded.names
}
"""

# A job that runs after the example's (issue 15): its rule, target and permission are planned, applied and destroyed.
DOWNSTREAM_JOB = """\
module "downstream" {
  source = "../../modules/scheduled-job"

  job_name     = "daily-summary"
  launcher_zip = "${path.root}/../../../dist/launcher.zip"

  schedule_expression = null
  planner_enabled     = false
  strategy            = "ephemeral"
  instance_types      = ["m7i.large"]
  subnet_ids          = var.subnet_ids
  after               = [{ job = "daily-report" }]
}

output "downstream_names" {
  description = "Every AWS name of the downstream job."
  value       = module.downstream.names
}
"""


def _provider_override(tmp: Path) -> None:
    example = tmp / EXAMPLE
    (example / "test_endpoint.tf").write_text(
        'variable "aws_endpoint" {\n'
        '  description = "The AWS API the tests apply to (a moto_server)."\n'
        "  type        = string\n"
        "}\n"
    )
    endpoints = "\n".join(f"    {s:<10} = var.aws_endpoint" for s in SERVICES)
    # An override file merges into the example's own provider block: the same settings suit the real provider.
    # A second job with shards (issue 14), so that the AWS Batch resources are planned, applied and destroyed too:
    # EC2 compute, Spot then on-demand (both compute environments), beside the example's own job.
    (example / "test_sharded_job.tf").write_text(SHARDED_JOB)
    (example / "test_downstream_job.tf").write_text(DOWNSTREAM_JOB)
    (example / "provider_override.tf").write_text(
        'provider "aws" {\n'
        '  access_key                  = "test"\n'
        '  secret_key                  = "test"\n'
        "  skip_credentials_validation = true\n"
        "  skip_requesting_account_id  = true\n"
        "  skip_metadata_api_check     = true\n"
        "  endpoints {\n"
        f"{endpoints}\n"
        "  }\n"
        "}\n"
    )


@pytest.fixture(scope="session")
def tf_dir(tmp_path_factory: pytest.TempPathFactory, aws_endpoint: str, aws: Callable[[str], Any]) -> Path:
    tmp = tmp_path_factory.mktemp("tf")
    shutil.copytree(ROOT / "terraform", tmp / "terraform", ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*"))
    # The example takes the launcher from <repo>/dist/launcher.zip; build a fresh one beside the copy.
    subprocess.run(
        [sys.executable, str(ROOT / "launcher_lambda" / "build.py"), "--out", str(tmp / "dist" / "launcher.zip")],
        check=True,
        capture_output=True,
    )
    _provider_override(tmp)
    _instance_image(aws)
    tfvars = {"aws_endpoint": aws_endpoint, "region": REGION, "subnet_ids": [_subnet(aws)]}
    (tmp / EXAMPLE / "terraform.tfvars.json").write_text(json.dumps(tfvars, indent=2))
    return tmp


@pytest.fixture(scope="session")
def tf_env(tf_dir: Path, aws_endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    env.update(install(tf_dir / ".terraform-double"))
    env.update(
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_REGION=REGION,
        # Anything the endpoints block misses still reaches the test's AWS, never a real account.
        AWS_ENDPOINT_URL=aws_endpoint,
        TF_DATA_DIR=str(tf_dir / EXAMPLE / ".terraform"),
    )
    return env


def _command(terraform: str, args: tuple[str, ...]) -> list[str]:
    # -no-color goes right after the subcommand: Terraform stops reading flags at the first positional argument.
    # Two-word subcommands (`providers schema`, `state list`) print no colour and take no such flag.
    if args[0] in ("providers", "state", "workspace"):
        return [terraform, *args]
    return [terraform, args[0], "-no-color", *args[1:]]


@pytest.fixture(scope="session")
def tf(terraform_bin: str, tf_dir: Path, tf_env: dict[str, str]) -> TfRunner:
    def run(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            _command(terraform_bin, args),
            cwd=tf_dir / EXAMPLE,
            env=tf_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            # The errors are at the end of stdout (after the plan) and in stderr; a whole plan would bury them.
            out = proc.stdout[-4000:]
            command = " ".join(args)
            pytest.fail(f"terraform {command} failed ({proc.returncode}):\n...{out}\n{proc.stderr}", pytrace=False)
        return proc

    return run


@pytest.fixture(scope="session")
def initialized(tf: TfRunner) -> subprocess.CompletedProcess[str]:
    return tf("init")


@pytest.fixture(scope="session")
def plan_json(tf: TfRunner, initialized: Any) -> dict[str, Any]:
    tf("plan", "-out=tfplan")
    return json.loads(tf("show", "-json", "tfplan").stdout)


@pytest.fixture(scope="session")
def applied(tf: TfRunner, plan_json: dict[str, Any]) -> dict[str, Any]:
    # Apply the very plan `plan_json` shows, which is therefore always taken before anything is applied.
    tf("apply", "tfplan")
    return json.loads(tf("show", "-json").stdout)
