"""`ec2batch local remove JOB` (and the stack suite's clean-up): one job goes, as `terraform destroy` would take
it, with its instances; every other job stays as it was."""

from __future__ import annotations

from ec2batch.aws import Clients
from ec2batch.config import parse_config
from ec2batch.jobs import list_jobs
from ec2batch.launcher import Launcher
from ec2batch.local.provision import provision_job, remove_job
from ec2batch.local.scheduler_emulator import put_job_schedule, put_planner_schedule
from tests.conftest import Job


def live_instances(clients: Clients, job: str) -> list[str]:
    reservations = clients.ec2.describe_instances(
        Filters=[
            {"Name": "tag:ec2batch:job", "Values": [job]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
        ]
    )["Reservations"]
    return [i["InstanceId"] for r in reservations for i in r["Instances"]]


def test_removing_a_job_takes_its_resources_and_instances_and_leaves_the_others(aws: Clients, job: Job) -> None:
    config = parse_config(
        {
            "job": "t-other",
            "image": job.config.image,
            "subnet_ids": list(job.config.subnet_ids),
            "command": ["true"],
            "instance_types": ["m7i.large"],
        }
    )
    image_id = aws.ec2.describe_images(Owners=["self"])["Images"][0]["ImageId"]
    provision_job(aws, config, image_id=image_id, subnet_id=job.config.subnet_ids[0])
    aws.sqs.create_queue(QueueName="inbox-t-other")  # what the stack suite subscribes to a job's topic
    aws.ssm.put_parameter(Name="/ec2batch/t-other/api-key", Value="s3cret", Type="SecureString")
    for name in (job.name, "t-other"):
        put_planner_schedule(aws, name)
        put_job_schedule(aws, name, "cron(0 2 * * ? *)", "Europe/Berlin", starting_deadline_seconds=300)
        Launcher(aws).handle({"action": "run", "job": name})

    terminated = remove_job(aws, "t-other")

    assert list_jobs(aws.ssm) == [job.name]
    assert live_instances(aws, "t-other") == [] and len(terminated) == 1
    names = config.names
    assert names.ledger_table not in aws.dynamodb.list_tables()["TableNames"]
    assert not aws.logs.describe_log_groups(logGroupNamePrefix=names.log_group)["logGroups"]
    assert not aws.ssm.get_parameters_by_path(Path="/ec2batch/t-other", Recursive=True)["Parameters"]
    assert names.schedule_group not in [g["Name"] for g in aws.scheduler.list_schedule_groups()["ScheduleGroups"]]
    assert not [q for q in aws.sqs.list_queues().get("QueueUrls", []) if "t-other" in q]
    assert not aws.ec2.describe_launch_templates(
        Filters=[{"Name": "launch-template-name", "Values": [names.launch_template]}]
    )["LaunchTemplates"]
    # The job that stays keeps everything.
    kept = job.config.names
    assert len(live_instances(aws, job.name)) == 1
    assert kept.ledger_table in aws.dynamodb.list_tables()["TableNames"]
    assert aws.scheduler.list_schedules(GroupName=kept.schedule_group)["Schedules"]
    assert remove_job(aws, "t-other") == []  # again: nothing left, no error
