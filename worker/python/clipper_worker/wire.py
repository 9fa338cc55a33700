"""The native worker dialect's framing (proto/clipper/v1/heartbeat.proto,
core/wire/native.ts): the empty delimiter, the marker "CLPRTS01", one
protobuf message, then raw payload frames, one per batch item.

The message classes are generated from proto/ into gen/python/ by
``npm run gen`` (protoc's Python output); they are never committed."""
import os
import sys
from typing import List, Sequence, Tuple, Union

_GEN = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "gen", "python"))


def _import_stubs():
    try:
        from clipper.v1 import heartbeat_pb2  # type: ignore
        return heartbeat_pb2
    except ImportError:
        pass
    if os.path.isdir(_GEN) and _GEN not in sys.path:
        sys.path.append(_GEN)
    try:
        from clipper.v1 import heartbeat_pb2  # type: ignore
        return heartbeat_pb2
    except ImportError as err:
        raise ImportError(
            f"clipper_worker needs the Python stubs generated from proto/ ({_GEN}): run `npm run gen` in the clipper-ts checkout "
            f"(it needs protoc: apt-get install protobuf-compiler) and python3-protobuf ({err})"
        ) from err


pb = _import_stubs()

MARKER = b"CLPRTS01"
#: Largest protobuf message frame accepted, in bytes (the payloads travel beside it).
MAX_MESSAGE_BYTES = 1 << 20
EMPTY = b""


def encode_worker_message(message, payloads: Sequence[bytes] = ()) -> List[bytes]:
    """Frames of a worker -> gateway message, as the DEALER sends them."""
    return [EMPTY, MARKER, message.SerializeToString(), *payloads]


def decode_gateway_message(frames: Sequence[bytes]) -> Tuple[bool, Union[Tuple[object, List[bytes]], str]]:
    """(True, (GatewayMessage, payloads)) or (False, why)."""
    if len(frames) < 3 or len(frames[0]) != 0 or frames[1] != MARKER:
        return False, "not a native message: expected delimiter, marker and message frames"
    body = frames[2]
    if len(body) > MAX_MESSAGE_BYTES:
        return False, f"native message frame is {len(body)} bytes, over {MAX_MESSAGE_BYTES}"
    message = pb.GatewayMessage()
    try:
        message.ParseFromString(body)
    except Exception as err:  # protobuf's DecodeError, or anything a bad frame raises
        return False, f"native message frame is not valid protobuf: {err}"
    if message.WhichOneof("kind") is None:
        return False, "native message has no kind set"
    return True, (message, list(frames[3:]))
