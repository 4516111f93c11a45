"""Asks STS who it is, every few seconds for JOB_SECONDS, with a fresh boto3 session each time.

Each line: the identity, the access key in use and how many seconds the credentials have left, so the
test sees whose role the job has and that refreshed credentials arrive before the old ones expire.
"""

import json
import os
import time
from datetime import UTC, datetime

import boto3

end = time.monotonic() + float(os.environ.get("JOB_SECONDS", "0"))
while True:
    session = boto3.Session()
    credentials = session.get_credentials()
    frozen = credentials.get_frozen_credentials()
    arn = session.client("sts").get_caller_identity()["Arn"]
    expiry = getattr(credentials, "_expiry_time", None)  # RefreshableCredentials: when the SDK must ask again
    left = (expiry - datetime.now(UTC)).total_seconds() if expiry else None
    print(json.dumps({"arn": arn, "key": frozen.access_key, "method": credentials.method, "left": left}), flush=True)
    if time.monotonic() >= end:
        break
    time.sleep(3)
