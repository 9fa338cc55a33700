"""A worker's CURVE identity (worker/worker-credentials.ts,
core/curve/registration-proof.ts): its key pair and the gateway's public
key, a fresh random routing id per connection, and the registration proof,
an HMAC-SHA256 keyed by the X25519 secret the worker's and the gateway's
keys share, over the length-prefixed (u32 big-endian) parts
"clipper-ts worker registration v1", the routing id, the model name and the
model version. X25519 comes from Debian's python3-cryptography; Z85 from
pyzmq."""
import base64
import hashlib
import hmac
import os
import re
import struct
from dataclasses import dataclass
from typing import List, Tuple, Union

from zmq.utils import z85

DOMAIN = b"clipper-ts worker registration v1"
#: Random bytes in a routing id (sent as their base64url text): nobody can guess it and speak under it.
ROUTING_ID_BYTES = 16
_Z85_KEY = re.compile(r"^[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")


def _x25519():
    try:
        from cryptography.hazmat.primitives.asymmetric import x25519
    except ImportError as err:
        raise ImportError(f"CURVE keys need python3-cryptography (apt-get install python3-cryptography): {err}") from err
    return x25519


def raw_key(text: str) -> Union[bytes, None]:
    if not _Z85_KEY.match(text):
        return None
    try:
        raw = z85.decode(text.encode("ascii"))
    except Exception:
        return None
    return raw if len(raw) == 32 else None


def _key_lines(text: str) -> List[str]:
    return [l.strip() for l in text.splitlines() if l.strip() != "" and not l.strip().startswith("#")]


@dataclass(frozen=True)
class Credentials:
    secret_z85: bytes
    public_z85: bytes
    raw_secret: bytes
    raw_public: bytes
    gateway_z85: bytes
    raw_gateway: bytes

    def routing_id(self) -> bytes:
        """A fresh routing id, as the gateway's ROUTER sees it: base64url text of random bytes, no padding."""
        return base64.urlsafe_b64encode(os.urandom(ROUTING_ID_BYTES)).rstrip(b"=")

    def registration(self, routing_id: bytes, model: str, version: str) -> Tuple[bytes, bytes]:
        """(curve_public_key, registration_proof) for one connection and model version."""
        x25519 = _x25519()
        shared = x25519.X25519PrivateKey.from_private_bytes(self.raw_secret).exchange(x25519.X25519PublicKey.from_public_bytes(self.raw_gateway))
        h = hmac.new(shared, digestmod=hashlib.sha256)
        for part in (DOMAIN, routing_id, model.encode("utf-8"), version.encode("utf-8")):
            h.update(struct.pack(">I", len(part)))
            h.update(part)
        return self.raw_public, h.digest()


def load_credentials(secret_key_file: str, gateway_public_key: str) -> Union[Credentials, str]:
    """Reads --curve-secret-key FILE and --gateway-public-key KEY_OR_FILE; an error names the flag."""
    try:
        with open(secret_key_file, encoding="utf-8") as f:
            lines = _key_lines(f.read())
    except OSError as err:
        return f"--curve-secret-key: cannot read CURVE secret key {secret_key_file}: {err.strerror}"
    secret = raw_key(lines[0]) if len(lines) == 1 else None
    if secret is None:
        return f"--curve-secret-key: {secret_key_file} is not a CURVE secret key: expected one line of 40 Z85 characters (clipper keys generate makes one)"
    x25519 = _x25519()
    from cryptography.hazmat.primitives import serialization

    public = x25519.X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    # A file first: a 40-character path is valid Z85 too.
    try:
        with open(gateway_public_key, encoding="utf-8") as f:
            glines = _key_lines(f.read())
        gateway = raw_key(glines[0]) if len(glines) == 1 else None
        if gateway is None:
            return f"--gateway-public-key: {gateway_public_key} is not a CURVE public key: expected one line of 40 Z85 characters"
        gateway_text = glines[0]
    except OSError as err:
        gateway = raw_key(gateway_public_key.strip())
        if gateway is None:
            return f"--gateway-public-key: '{gateway_public_key}' is neither a 40-character Z85 public key nor a readable file: {err.strerror}"
        gateway_text = gateway_public_key.strip()
    return Credentials(
        secret_z85=lines[0].encode("ascii"),
        public_z85=z85.encode(public),
        raw_secret=secret,
        raw_public=public,
        gateway_z85=gateway_text.encode("ascii"),
        raw_gateway=gateway,
    )
