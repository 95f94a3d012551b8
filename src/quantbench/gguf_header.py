"""A GGUF file's header, read without the GGUF library's full parse: the magic and version, and
one metadata value. Cheap enough for the config check that runs while the DAG is built (a
leaf: it imports no other quantbench module but the errors)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from quantbench.errors import ConversionError

GGUF_MAGIC = b"GGUF"



GGUF_VERSIONS = (2, 3)



def metadata_value(path: str | Path, key: str):
    """One scalar or string of a GGUF file's metadata, or None where the file lacks the key.

    The header is read only up to that key: GGUFReader parses every tensor and vocabulary
    entry, some seconds for a 100 MB file, too slow for building the DAG."""
    import numpy as np
    from gguf import GGUFReader, GGUFValueType

    sizes = {t: np.dtype(d).itemsize for t, d in GGUFReader.gguf_scalar_to_np.items()}
    with Path(path).open("rb") as fh:
        magic, version, _, n_kv = struct.unpack("<4sIQQ", fh.read(24))
        if magic != GGUF_MAGIC or version not in GGUF_VERSIONS:
            raise ConversionError(f"{path} is not a GGUF file of version {GGUF_VERSIONS}")
        for _ in range(n_kv):
            name = read_bytes(fh).decode()
            vtype = GGUFValueType(struct.unpack("<I", fh.read(4))[0])
            if name == key and vtype == GGUFValueType.STRING:
                return read_bytes(fh).decode()
            if name == key and vtype in sizes:
                dtype = np.dtype(GGUFReader.gguf_scalar_to_np[vtype]).newbyteorder("<")
                return np.frombuffer(fh.read(sizes[vtype]), dtype=dtype)[0].item()
            if name == key:
                raise ConversionError(f"{path}: metadata {key} is a {vtype.name}, not a scalar")
            skip_value(fh, vtype, sizes)
    return None



def read_bytes(fh) -> bytes:
    (n,) = struct.unpack("<Q", fh.read(8))
    return fh.read(n)



def skip_value(fh, vtype, sizes: dict) -> None:
    from gguf import GGUFValueType

    if vtype == GGUFValueType.STRING:
        read_bytes(fh)
    elif vtype == GGUFValueType.ARRAY:
        item, count = struct.unpack("<IQ", fh.read(12))
        item = GGUFValueType(item)
        if item in sizes:
            fh.seek(count * sizes[item], os.SEEK_CUR)
        else:
            for _ in range(count):
                skip_value(fh, item, sizes)
    else:
        fh.seek(sizes[vtype], os.SEEK_CUR)



def file_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be a GGUF model source (from its first 8 bytes: cheap enough for
    building the DAG), or None."""
    path = Path(path)
    if not path.is_file():
        return f"GGUF file {str(path)!r} does not exist" if not path.exists() else \
            f"{str(path)!r} is not a file"
    with path.open("rb") as fh:
        head = fh.read(8)
    if head[:4] != GGUF_MAGIC:
        return f"{str(path)!r} is not a GGUF file (it does not start with the bytes 'GGUF')"
    version = struct.unpack("<I", head[4:8])[0] if len(head) == 8 else None
    if version not in GGUF_VERSIONS:
        return f"{str(path)!r} has GGUF version {version}; readable: {GGUF_VERSIONS}"
    return None
