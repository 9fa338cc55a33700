"""Predicts against a running clipper-ts stack over gRPC, from Python.

Uses the stubs that `npm run gen` generates from proto/ into gen/python/
(protoc + grpc_python_plugin) and Debian's grpcio runtime:

    sudo apt-get install -y python3-grpcio python3-protobuf
    /usr/bin/python3 clients/python/predict_example.py demo 1 2 3    # prints 6

The gateway address comes from CLIPPER_GATEWAY_ADDR (default 127.0.0.1:50051).
A token, when the gateway requires one, comes from CLIPPER_TOKEN and is sent
as `authorization: Bearer <token>`. CLIPPER_CLIENT_TLS_CA turns TLS on,
trusting that PEM CA; CLIPPER_CLIENT_TLS_CERT and CLIPPER_CLIENT_TLS_KEY add
a client certificate for mutual TLS (the same variables as the clipper CLI).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "gen", "python"))

import grpc  # noqa: E402  (python3-grpcio)
from clipper.v1 import input_pb2, predict_pb2, predict_pb2_grpc  # noqa: E402


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def channel(address: str) -> grpc.Channel:
    """A TLS channel when CLIPPER_CLIENT_TLS_CA is set, else plaintext."""
    ca = os.environ.get("CLIPPER_CLIENT_TLS_CA", "")
    if ca == "":
        return grpc.insecure_channel(address)
    cert = os.environ.get("CLIPPER_CLIENT_TLS_CERT", "")
    key = os.environ.get("CLIPPER_CLIENT_TLS_KEY", "")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read(ca),
        private_key=read(key) if key else None,
        certificate_chain=read(cert) if cert else None,
    )
    return grpc.secure_channel(address, credentials)


def main() -> int:
    address = os.environ.get("CLIPPER_GATEWAY_ADDR", "127.0.0.1:50051")
    token = os.environ.get("CLIPPER_TOKEN", "")
    metadata = [("authorization", f"Bearer {token}")] if token else []
    app = sys.argv[1] if len(sys.argv) > 1 else "demo"
    values = [float(v) for v in sys.argv[2:]] or [1.0, 2.0, 3.0]
    with channel(address) as ch:
        predict = predict_pb2_grpc.PredictStub(ch)
        try:
            reply = predict.Predict(
                predict_pb2.PredictRequest(app=app, input=input_pb2.Input(doubles=values)),
                timeout=10,
                metadata=metadata,
            )
        except grpc.RpcError as err:
            print(f"predict failed: {err.code().name}: {err.details()}", file=sys.stderr)
            return 1
    print(reply.output)
    if reply.default:
        print(f"(default output: {reply.default_explanation})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
