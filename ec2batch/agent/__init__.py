"""The agent that runs the job on its machine (started at boot by ec2batch-agent.service)."""
