"""Predicts against a running clipper-ts stack over gRPC, from Python.

Uses the stubs that `npm run gen` generates from proto/ into gen/python/
(protoc + grpc_python_plugin) and Debian's grpcio runtime:

    sudo apt-get install -y python3-grpcio python3-protobuf
    /usr/bin/python3 clients/python/predict_example.py demo 1 2 3    # prints 6

The gateway address comes from CLIPPER_GATEWAY_ADDR (default 127.0.0.1:50051).
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "gen", "python"))

import grpc  # noqa: E402  (python3-grpcio)
from clipper.v1 import input_pb2, predict_pb2, predict_pb2_grpc  # noqa: E402


def main() -> int:
    address = os.environ.get("CLIPPER_GATEWAY_ADDR", "127.0.0.1:50051")
    app = sys.argv[1] if len(sys.argv) > 1 else "demo"
    values = [float(v) for v in sys.argv[2:]] or [1.0, 2.0, 3.0]
    with grpc.insecure_channel(address) as channel:
        predict = predict_pb2_grpc.PredictStub(channel)
        try:
            reply = predict.Predict(
                predict_pb2.PredictRequest(app=app, input=input_pb2.Input(doubles=values)),
                timeout=10,
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
