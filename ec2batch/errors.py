"""Domain exceptions. Each message is one line a person can act on."""

from __future__ import annotations


class Ec2BatchError(Exception):
    """Base class: the CLI prints these as one line, never as a traceback."""


class ConfigError(Ec2BatchError):
    """A job config that does not match the schema; lists every bad field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid job config: " + "; ".join(problems))


class EventError(Ec2BatchError):
    """A launcher event of an unknown or malformed shape."""


class ScheduleError(Ec2BatchError):
    """A schedule expression or time zone AWS would reject."""


class UnknownJob(Ec2BatchError):
    """No config for the job in SSM."""


class TransitionRejected(Ec2BatchError):
    """A ledger write that would move a run backwards, or a run that does not exist.

    `current` is the run as it was read back after the refusal (None if it does not exist), so the caller can
    decide without another read.
    """

    def __init__(self, message: str, current: object | None = None) -> None:
        super().__init__(message)
        self.current = current


def describe_error(exc: BaseException) -> str:
    """One line naming the error: `ErrorCode: message` for an AWS error, Docker's own explanation for an engine
    error, `Type: message` otherwise."""
    response = getattr(exc, "response", None)
    error = response.get("Error", {}) if isinstance(response, dict) else {}
    if error.get("Code"):
        return f"{error['Code']}: {error.get('Message', '')}".strip()
    # docker.errors.APIError: its `explanation` is the engine's message (told apart without importing docker,
    # which the agent imports in the background at boot).
    explanation = getattr(exc, "explanation", None)
    if explanation and isinstance(explanation, str):
        return f"{type(exc).__name__}: {explanation}"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
