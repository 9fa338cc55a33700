/**
 * Z85 (ZeroMQ RFC 32), the text form of CURVE keys: 4 bytes become 5
 * printable characters. zeromq.js produces and accepts keys only in this
 * form; the registration proof and the allow-list need their raw bytes.
 */

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
const VALUE = new Map([...ALPHABET].map((c, i) => [c, i]));

/** The Z85 text of `bytes`, whose length must be a multiple of 4. */
export function z85Encode(bytes: Uint8Array): string {
  if (bytes.length % 4 !== 0) throw new RangeError("Z85 encodes whole 4-byte groups");
  let out = "";
  for (let i = 0; i < bytes.length; i += 4) {
    let v = ((bytes[i]! << 24) | (bytes[i + 1]! << 16) | (bytes[i + 2]! << 8) | bytes[i + 3]!) >>> 0;
    const group: string[] = [];
    for (let j = 0; j < 5; j++) {
      group.push(ALPHABET[v % 85]!);
      v = Math.floor(v / 85);
    }
    out += group.reverse().join("");
  }
  return out;
}

/** The bytes of Z85 `text`, or null when it is not Z85 (wrong length, foreign character, group overflow). */
export function z85Decode(text: string): Buffer | null {
  if (text.length % 5 !== 0) return null;
  const out = Buffer.alloc((text.length / 5) * 4);
  for (let i = 0; i < text.length; i += 5) {
    let v = 0;
    for (let j = 0; j < 5; j++) {
      const d = VALUE.get(text[i + j]!);
      if (d === undefined) return null;
      v = v * 85 + d;
    }
    if (v > 0xffffffff) return null;
    out.writeUInt32BE(v, (i / 5) * 4);
  }
  return out;
}
