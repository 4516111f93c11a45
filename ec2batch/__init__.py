"""ec2batch: scheduled container jobs on a dedicated EC2 instance that exists only while the job runs."""

__version__ = "0.1.0"
