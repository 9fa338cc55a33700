"""Calls a running clipper-ts gateway through the Open Inference Protocol (KServe V2) gRPC API.

Uses the stubs that `npm run gen` generates from proto/inference/ into
gen/python/inference/ (protoc + grpc_python_plugin) and Debian's grpcio
runtime; no numpy needed:

    sudo apt-get install -y python3-grpcio python3-protobuf
    /usr/bin/python3 clients/python/oip_example.py demo 1,2,3 4,5,6    # one line per row: 6, then 15

Each argument after the application is one row (a query) of comma-separated
numbers; all rows go in one ModelInfer call as an FP64 tensor of shape
[rows, k], sent raw (little-endian), as tritonclient sends it. The
application must take doubles (ModelMetadata says so: input datatype FP64).

The gateway address comes from CLIPPER_GATEWAY_ADDR (default 127.0.0.1:50051).
A token, when the gateway requires one, comes from CLIPPER_TOKEN and is sent
as `authorization: Bearer <token>`. CLIPPER_CLIENT_TLS_CA turns TLS on,
trusting that PEM CA (CLIPPER_CLIENT_TLS_CERT and CLIPPER_CLIENT_TLS_KEY add
a client certificate), as for predict_example.py.
"""
import os
import struct
import sys
from array import array

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "gen", "python"))

import grpc  # noqa: E402  (python3-grpcio)
from inference import open_inference_pb2 as pb  # noqa: E402
from inference import open_inference_pb2_grpc as pb_grpc  # noqa: E402


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


def bytes_elements(raw: bytes) -> list:
    """A raw BYTES tensor: each element a little-endian uint32 length, then its bytes."""
    items, at = [], 0
    while at < len(raw):
        (n,) = struct.unpack_from("<I", raw, at)
        items.append(raw[at + 4 : at + 4 + n].decode("utf-8"))
        at += 4 + n
    return items


def main() -> int:
    address = os.environ.get("CLIPPER_GATEWAY_ADDR", "127.0.0.1:50051")
    token = os.environ.get("CLIPPER_TOKEN", "")
    metadata = [("authorization", f"Bearer {token}")] if token else []
    app = sys.argv[1] if len(sys.argv) > 1 else "demo"
    rows = [[float(v) for v in arg.split(",")] for arg in sys.argv[2:]] or [[1.0, 2.0, 3.0]]
    if len({len(r) for r in rows}) != 1:
        print("every row needs the same number of values", file=sys.stderr)
        return 2
    values = array("d", [v for row in rows for v in row])
    if sys.byteorder != "little":
        values.byteswap()
    with channel(address) as ch:
        oip = pb_grpc.GRPCInferenceServiceStub(ch)
        try:
            if not oip.ModelReady(pb.ModelReadyRequest(name=app), timeout=10, metadata=metadata).ready:
                print(f"{app}: not ready (no such application, or no live replica of its model)", file=sys.stderr)
                return 1
            request = pb.ModelInferRequest(
                model_name=app,
                inputs=[pb.ModelInferRequest.InferInputTensor(name="input", datatype="FP64", shape=[len(rows), len(rows[0])])],
                raw_input_contents=[values.tobytes()],
            )
            reply = oip.ModelInfer(request, timeout=10, metadata=metadata)
        except grpc.RpcError as err:
            print(f"infer failed: {err.code().name}: {err.details()}", file=sys.stderr)
            return 1
    # Raw in, raw out: outputs[i]'s elements are in raw_output_contents[i].
    tensors = {t.name: reply.raw_output_contents[i] for i, t in enumerate(reply.outputs)}
    outputs = bytes_elements(tensors["output"])
    defaults = [b != 0 for b in tensors["default"]]
    for output, is_default in zip(outputs, defaults):
        print(output + ("  (default output)" if is_default else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
