"""Raw payload frames -> what a model receives. Frames are an item's
elements as little-endian bytes, exactly as the gateway got them, so a
numeric input is a read-only numpy view of the received bytes (no copy;
``.copy()`` it to change it in place)."""
from typing import Tuple, Union

import numpy as np

ModelInput = Union[np.ndarray, bytes, str]

# Little-endian on the wire whatever the host's order: numpy reads them right either way.
_DTYPES = {"doubles": np.dtype("<f8"), "floats": np.dtype("<f4"), "integers": np.dtype("<i4")}


def decode_input(input_type: str, frame: bytes) -> Tuple[bool, Union[ModelInput, str]]:
    """(True, input) or (False, why): a per-item INVALID_ARGUMENT, never an exception."""
    if input_type == "bytes":
        return True, frame
    if input_type == "strings":
        try:
            return True, frame.decode("utf-8")
        except UnicodeDecodeError:
            # Strict: replacing bad bytes would hand the model text the caller never sent.
            return False, "string input is not valid UTF-8"
    dtype = _DTYPES[input_type]
    if len(frame) % dtype.itemsize != 0:
        return False, f"{input_type} input is {len(frame)} bytes, not a multiple of {dtype.itemsize} bytes per element"
    return True, np.frombuffer(frame, dtype=dtype)
