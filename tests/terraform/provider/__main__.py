"""Run the provider double as Terraform starts a plugin: go-plugin's handshake over a Unix socket with TLS.

Terraform runs the launcher `terraform-provider-aws` (beside this file), which runs `python -m
tests.terraform.provider`. We print `1|6|unix|<socket>|grpc|<server cert>` and serve until Terraform asks the
plugin to stop. The generated protocol bindings are those of the PyPI package `tf`; the handshake is ours because
`tf`'s runner caches its key pair in the user's home directory.
"""

from __future__ import annotations

import base64
import datetime
import os
import sys
import tempfile
import threading
from concurrent import futures
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tf.gen import grpc_controller_pb2 as controller_pb
from tf.gen import grpc_controller_pb2_grpc as controller_rpc
from tf.gen import grpc_stdio_pb2_grpc as stdio_rpc

from tests.terraform.provider.server import serve

# go-plugin's magic cookie for Terraform providers: without it the binary was not started by Terraform.
MAGIC_COOKIE = ("TF_PLUGIN_MAGIC_COOKIE", "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2")


def _certificate() -> tuple[bytes, bytes, bytes]:
    """A throwaway self-signed server certificate (key PEM, cert PEM, cert DER); Terraform pins it per run."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM), cert.public_bytes(serialization.Encoding.DER)


class _Controller(controller_rpc.GRPCControllerServicer):
    def __init__(self, stopped: threading.Event) -> None:
        self.stopped = stopped

    def Shutdown(self, request: object, context: object) -> controller_pb.Empty:
        self.stopped.set()
        return controller_pb.Empty()


class _Stdio(stdio_rpc.GRPCStdioServicer):
    def StreamStdio(self, request: object, context: object) -> object:
        return iter(())


def main() -> int:
    if os.environ.get(MAGIC_COOKIE[0]) != MAGIC_COOKIE[1]:
        print("This is the test double of the hashicorp/aws Terraform provider; Terraform starts it.", file=sys.stderr)
        return 1
    stopped = threading.Event()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    serve(server)
    controller_rpc.add_GRPCControllerServicer_to_server(_Controller(stopped), server)
    stdio_rpc.add_GRPCStdioServicer_to_server(_Stdio(), server)
    key_pem, cert_pem, cert_der = _certificate()
    with tempfile.TemporaryDirectory(prefix="tf-aws-double-") as tmp:
        socket = Path(tmp) / "plugin.sock"
        server.add_secure_port(f"unix://{socket}", grpc.ssl_server_credentials([(key_pem, cert_pem)]))
        server.start()
        cert = base64.b64encode(cert_der).decode().rstrip("=")
        print(f"1|6|unix|{socket}|grpc|{cert}", flush=True)
        stopped.wait()
        server.stop(grace=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
