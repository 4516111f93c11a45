"""`run-now` through a real Lambda Invoke: a retried Invoke is the same run; a reused token says so.

moto stores Lambda functions but cannot run their code, so a small fake of the Lambda service stands in
front of it: Invoke runs the launcher's handler in this process, against the same moto, and answers with
its result, as Lambda does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError
from click.testing import CliRunner

from ec2batch.aws import Clients
from ec2batch.cli import main
from ec2batch.invoke import LAUNCHER_TIMEOUT_SECONDS, invoke_client
from ec2batch.launcher import Launcher
from ec2batch.launcher.events import TOKEN_REUSED
from ec2batch.ledger import Ledger
from tests.conftest import Job, MotoAsAws


class FakeLambda:
    """Invoke of the job's launcher function: runs the handler; `lose` responses are applied, then lost."""

    def __init__(self, clients: Clients, lose: int = 0) -> None:
        self.clients = clients
        self.lose = lose
        self.payloads: list[dict[str, Any]] = []

    def __call__(self, request: Any, send: Callable[[], Any]) -> Any:
        if "/functions/" not in request.url or not request.url.endswith("/invocations"):
            return send()
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        event = json.loads(body)
        self.payloads.append(event)
        try:
            status, headers, payload = 200, {}, Launcher(self.clients).handle(event)
        except Exception as exc:
            status, headers, payload = 200, {"X-Amz-Function-Error": "Unhandled"}, {"errorMessage": str(exc)}
        if self.lose:
            self.lose -= 1  # the launcher did its work; the answer never reaches the CLI
            raise ReadTimeoutError(endpoint_url=request.url)
        return status, headers, json.dumps(payload).encode()


@pytest.fixture
def fake_lambda(aws: Clients, moto_as_aws: MotoAsAws, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLambda]:
    monkeypatch.delenv("EC2BATCH_LAUNCHER", raising=False)  # the real Invoke path
    fake = FakeLambda(aws)
    moto_as_aws.interceptor = fake
    yield fake
    moto_as_aws.interceptor = None


def runs(job: Job) -> list[Any]:
    return Ledger(job.clients.dynamodb, job.config.names.ledger_table).list_runs(job.name)


def test_the_invoke_client_outwaits_the_launcher_and_the_rest_keep_their_timeout(aws: Clients) -> None:
    assert invoke_client(aws).meta.config.read_timeout > LAUNCHER_TIMEOUT_SECONDS
    assert aws.lambda_.meta.config.read_timeout == aws.dynamodb.meta.config.read_timeout < LAUNCHER_TIMEOUT_SECONDS


def test_an_invoke_applied_whose_response_was_lost_is_retried_and_makes_one_run(
    job: Job, fake_lambda: FakeLambda
) -> None:
    fake_lambda.lose = 1

    result = CliRunner().invoke(main, ["run-now", job.name, "--env", "DAY=2026-11-23"], catch_exceptions=False)

    assert len(fake_lambda.payloads) == 2  # botocore retried the Invoke...
    assert fake_lambda.payloads[0] == fake_lambda.payloads[1]  # ...with the same token
    assert fake_lambda.payloads[0]["token"].startswith("run-now-")
    [run] = runs(job)
    assert len(job.instances()) == 1
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"run {run.run_id}: started on ")  # what the first attempt did


def test_each_run_now_without_a_token_is_its_own_run(job: Job, fake_lambda: FakeLambda) -> None:
    answers = [json.loads(CliRunner().invoke(main, ["run-now", job.name, "--json"]).output) for _ in range(2)]
    assert len({p["token"] for p in fake_lambda.payloads}) == 2
    assert [a["outcome"] for a in answers] == ["started", "skipped"]  # the job's `forbid`: a second trigger
    assert {r.run_id for r in runs(job)} == {a["run_id"] for a in answers}


def test_the_same_token_with_other_overrides_is_said_and_exits_1(job: Job, fake_lambda: FakeLambda) -> None:
    first = CliRunner().invoke(main, ["run-now", job.name, "--token", "nightly-7", "--env", "DAY=1"])
    again = CliRunner().invoke(main, ["run-now", job.name, "--token", "nightly-7", "--env", "DAY=1"])
    other = CliRunner().invoke(main, ["run-now", job.name, "--token", "nightly-7", "--env", "DAY=2"])

    [run] = runs(job)
    assert first.exit_code == 0 and again.exit_code == 0
    assert again.output.startswith(f"run {run.run_id}: duplicate")
    assert other.exit_code == 1
    assert other.output == f"run {run.run_id}: duplicate on {run.instance_id} (STARTING): {TOKEN_REUSED}\n"
    assert dict(run.env) == {"DAY": "1"}
