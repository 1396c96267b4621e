"""Standard base64 (RFC 4648, padded) decoding, for the BPF programs a plan carries.

Not binascii: on the exec path it is the one user of libz, which it maps with it (~120 KiB of every mrunc
process for ~3 KiB of text decoded once)."""

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BITS = [format(value, "06b") for value in range(64)]
_VALUES = bytes.maketrans(ALPHABET, bytes(range(64)))


def decode(text: str) -> bytes:
    data = text.encode("ascii")
    body = data.rstrip(b"=")
    if len(data) % 4 or len(data) - len(body) > 2 or body.translate(None, ALPHABET):
        raise ValueError(f"not base64: {text[:20]!r}...")
    size = len(body) * 6 // 8
    bits = "".join(_BITS[value] for value in body.translate(_VALUES))[:size * 8]
    return int(bits, 2).to_bytes(size, "big") if size else b""
