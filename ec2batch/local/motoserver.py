"""moto_server, with one request at a time.

moto's backends have no locks: two concurrent conditional writes to DynamoDB can both succeed, which
AWS never allows. The ledger's guarantees (one run per schedule event, one winner among racing
triggers) rest on per-request atomicity, so this server serves requests one at a time. The stack's
request rate is tiny; the lock costs nothing measurable.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple


class Serialized:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self.lock:
            # Drain the body inside the lock: moto may produce it lazily.
            return list(self.app(environ, start_response))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    args = parser.parse_args()
    app = Serialized(DomainDispatcherApplication(create_backend_app))
    run_simple(args.host, args.port, app, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
