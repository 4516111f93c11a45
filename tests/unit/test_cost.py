"""Cost arithmetic, checked against hand-computed figures."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from ec2batch.cli import main
from ec2batch.cost import (
    DEFAULT_PRICES,
    DEFAULT_SPOT_PRICES,
    PriceError,
    PriceTable,
    Scenario,
    billed_seconds,
    compare,
    run_cost,
    total,
)
from ec2batch.ledger import Run

T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def test_billing_is_per_second_with_a_sixty_second_minimum() -> None:
    assert billed_seconds(T0, T0 + timedelta(seconds=12)) == 60
    assert billed_seconds(T0, T0 + timedelta(seconds=61.2)) == 62
    assert billed_seconds(T0, T0 + timedelta(hours=2)) == 7200


def test_a_runs_cost_is_its_billed_seconds_at_the_hourly_price() -> None:
    run = Run(
        job="j",
        run_id="r",
        status="RUNNING",
        trigger="manual",
        triggered_at="2026-11-24T02:00:00Z",
        start_requested_at="2026-11-24T02:00:00.000Z",
        instance_type="m7i.2xlarge",
    )
    assert run_cost(run, T0 + timedelta(minutes=30), "eu-central-1") == {
        "billed_seconds": 1800,
        "cost_usd": round(0.4637 / 2, 6),
    }


def test_a_price_file_overrides_and_extends_the_defaults(tmp_path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"eu-central-1": {"m7i.2xlarge": 0.5, "x9.huge": 10}}))
    table = PriceTable.load(path)
    assert (table.hourly("eu-central-1", "m7i.2xlarge"), table.hourly("eu-central-1", "x9.huge")) == (0.5, 10.0)
    with pytest.raises(PriceError, match=r"no price for z1\.tiny in eu-central-1"):
        table.hourly("eu-central-1", "z1.tiny")


def running(instance_type: str = "m7i.2xlarge") -> Run:
    return Run(
        job="j",
        run_id="r",
        status="RUNNING",
        trigger="manual",
        triggered_at="2026-11-24T02:00:00Z",
        start_requested_at="2026-11-24T02:00:00.000Z",
        instance_type=instance_type,
    )


def test_a_spot_run_is_priced_at_the_spot_price_and_an_unnamed_market_at_on_demand() -> None:
    ended = T0 + timedelta(minutes=30)
    table = PriceTable.load()
    on_demand = run_cost(running(), ended, "eu-central-1", table)
    assert run_cost(running(), ended, "eu-central-1", table, market="on-demand") == on_demand
    assert on_demand == {"billed_seconds": 1800, "cost_usd": round(0.4637 / 2, 6)}
    assert run_cost(running(), ended, "eu-central-1", table, market="spot") == {
        "billed_seconds": 1800,
        "cost_usd": round(0.1855 / 2, 6),
    }


def test_every_built_in_type_has_a_spot_price_below_its_on_demand_price_in_every_region() -> None:
    table = PriceTable()
    assert set(DEFAULT_SPOT_PRICES) == {"us-east-1", "eu-central-1"}
    for region, prices in DEFAULT_PRICES.items():
        types = {name for name in prices if "." in name and "/" not in name}
        assert types == set(DEFAULT_SPOT_PRICES[region]), region
        for instance_type in types:
            spot, on_demand = table.hourly(region, instance_type, "spot"), table.hourly(region, instance_type)
            assert 0.25 * on_demand < spot < 0.5 * on_demand, (region, instance_type, spot, on_demand)


def test_a_price_file_overrides_and_extends_spot_prices_as_it_does_on_demand_ones(tmp_path) -> None:
    path = tmp_path / "prices.json"
    prices = {"eu-central-1": {"m7i.2xlarge/spot": 0.2, "x9.huge/spot": 3}, "ap-south-1": {"m7i.large/spot": 0.03}}
    path.write_text(json.dumps(prices))
    table = PriceTable.load(path)
    assert table.hourly("eu-central-1", "m7i.2xlarge", "spot") == 0.2
    assert table.hourly("eu-central-1", "m7i.2xlarge") == 0.4637  # the on-demand price is kept
    assert table.hourly("eu-central-1", "x9.huge", "spot") == 3.0
    assert table.hourly("eu-central-1", "r7i.2xlarge", "spot") == 0.2426  # the defaults stay
    assert table.hourly("ap-south-1", "m7i.large", "spot") == 0.03
    ended = T0 + timedelta(hours=1)
    assert run_cost(running(), ended, "eu-central-1", table, market="spot")["cost_usd"] == 0.2


def test_a_missing_spot_price_names_the_key_to_add(tmp_path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"eu-central-1": {"x9.huge": 10}}))
    table = PriceTable.load(path)
    with pytest.raises(PriceError) as raised:
        table.hourly("eu-central-1", "x9.huge", "spot")
    assert str(raised.value) == (
        'no Spot price for x9.huge in eu-central-1: add it to a price file (--prices FILE, {"eu-central-1": '
        '{"x9.huge/spot": 0.123}})'
    )
    # A run on it still records what it was billed, as for a type without an on-demand price.
    ended = T0 + timedelta(minutes=2)
    assert run_cost(running("x9.huge"), ended, "eu-central-1", table, market="spot") == {"billed_seconds": 120}
    with pytest.raises(ValueError, match="market must be one of on-demand, spot, not 'spot-then-on-demand'"):
        table.hourly("eu-central-1", "x9.huge", "spot-then-on-demand")


@pytest.mark.parametrize("name", ["m7i.large/Spot", "m7i.large/reserved", "/spot"])
def test_a_price_file_refuses_a_market_suffix_other_than_spot(tmp_path, name: str) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"eu-central-1": {name: 0.04}}))
    with pytest.raises(
        PriceError, match=rf"eu-central-1\.{re.escape(name)}: a name with '/' must be <instance type>/spot"
    ):
        PriceTable.load(path)


def usd(strategy: str, assumptions: str, **scenario: int) -> float:
    return total(compare(Scenario(**scenario), assumptions)[strategy])


S = {"events_per_hour": 120, "work_ms": 150, "memory_mb": 256, "due_second": 30}


def test_published_cron_sixty_rule_events_requests_and_two_100ms_steps_at_256mb() -> None:
    # 60 x $1/M + 60 x $0.20/M + 60 x 2 steps x $0.0000002083 x 2 = 0.00006 + 0.000012 + 0.000049992
    assert usd("cron", "published", **S) == pytest.approx(0.000121992, rel=1e-9)


def test_published_lambda_wait_bills_the_wait_in_100ms_steps() -> None:
    # 60 rule events + 120 requests + 120 x ceil(30150/100)=302 steps x 0.0000002083 x 2
    expected = 60 * 1e-6 + 120 * 0.2e-6 + 120 * 302 * 0.0000002083 * 2
    assert usd("lambda-wait", "published", **S) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(0.01518158, rel=1e-6)


def test_published_step_functions_is_one_transition_per_event() -> None:
    assert usd("step-functions", "published", **S) == pytest.approx(120 * 0.000025, rel=1e-9)  # 0.003


def test_published_cron_sqs_counts_planner_events_only_plus_one_request_per_message() -> None:
    expected = 4 * 1e-6 + 120 * 0.4e-6 + 120 * 0.2e-6 + 120 * 2 * 0.0000002083 * 2
    assert usd("cron-sqs", "published", **S) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(0.000175984, rel=1e-6)


def test_current_rules_bill_per_ms_and_count_three_sqs_requests_and_sfn_tasks() -> None:
    gb_s = 0.0000166667
    ms = lambda m: m / 1000 * 256 / 1024 * gb_s  # noqa: E731 - a formula, named for the reader
    assert usd("cron", "current", **S) == pytest.approx(60e-6 + 60 * 0.2e-6 + 60 * ms(150), rel=1e-9)
    assert usd("lambda-wait", "current", **S) == pytest.approx(60e-6 + 120 * 0.2e-6 + 120 * ms(30150), rel=1e-9)
    assert usd("step-functions", "current", **S) == pytest.approx(
        240 * 0.000025 + 120 * 0.2e-6 + 120 * ms(150), rel=1e-9
    )
    assert usd("cron-sqs", "current", **S) == pytest.approx(
        4e-6 + 4 * 0.2e-6 + 4 * ms(150) + 360 * 0.4e-6 + 120 * 0.2e-6 + 120 * ms(150), rel=1e-9
    )


def test_cron_sqs_beats_waiting_and_step_functions_for_exact_second_events() -> None:
    for assumptions in ("published", "current"):
        costs = {name: total(items) for name, items in compare(Scenario(**S), assumptions).items()}
        assert costs["cron-sqs"] < costs["step-functions"] < costs["lambda-wait"]


def test_cost_compare_json_lists_each_strategy_with_items() -> None:
    result = CliRunner().invoke(
        main,
        [
            "cost",
            "compare",
            "--events-per-hour",
            "120",
            "--work-ms",
            "150",
            "--memory-mb",
            "256",
            "--due-second",
            "30",
            "--json",
        ],
    )
    data = json.loads(result.output)
    assert set(data["strategies"]) == {"cron", "lambda-wait", "step-functions", "cron-sqs"}
    assert data["strategies"]["step-functions"]["usd_per_hour"] == pytest.approx(0.003)
    assert data["strategies"]["cron"]["items"][0] == {
        "item": "schedule events (every minute)",
        "quantity_per_hour": 60,
        "unit": "event",
        "unit_usd": 1e-06,
        "usd_per_hour": pytest.approx(6e-05),
    }
    assert data["assumed"][0].startswith("a scheduled rule costs its events only")


def test_cost_compare_text_is_an_itemized_table() -> None:
    result = CliRunner().invoke(
        main, ["cost", "compare", "--events-per-hour", "60", "--work-ms", "100", "--assumptions", "current"]
    )
    assert "cron-sqs\n  planner schedule events (every 15 minutes)" in result.output
    assert re.search(r"SQS requests \(send, receive, delete per message\) +180/h x \$0.0000004000", result.output)
