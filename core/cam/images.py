"""Untrusted image uploads → model-ready tensors: PNG/JPEG only, size-capped, any mode → RGB, resized."""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from core.errors import OptiscopeError, check_int

MAX_BYTES = 10 * 2**20  # 10 MB
MAX_PIXELS = 25_000_000  # decompression-bomb guard, checked from the header before decoding
MAX_SIZE = 1024  # side of the decoded square: 12 MB as float32
_MAGIC = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}


def decode_image(
    data: bytes, *, size: int = 64, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS
) -> torch.Tensor:
    """Decode an uploaded PNG or JPEG into a (1, 3, size, size) float tensor in [0, 1].

    Grey-scale, palette and RGBA images become RGB (alpha composited on white); the image is centre-cropped
    to a square and resized bilinearly. Anything else raises ``OptiscopeError`` saying what is wrong.

    >>> buf = io.BytesIO(); Image.new("LA", (40, 30)).save(buf, "PNG")
    >>> decode_image(buf.getvalue(), size=32).shape
    torch.Size([1, 3, 32, 32])
    """
    size = check_int("size", size, 1, MAX_SIZE)
    if not isinstance(data, bytes | bytearray) or len(data) == 0:
        raise OptiscopeError("The upload is empty.")
    if len(data) > max_bytes:
        raise OptiscopeError(f"The file is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB.")
    kind = next((k for magic, k in _MAGIC.items() if bytes(data[: len(magic)]) == magic), None)
    if kind is None:
        raise OptiscopeError("This is not a PNG or JPEG image; upload a .png or .jpg file.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format != kind:
                raise OptiscopeError(f"The file looks like {kind} but decodes as {img.format}.")
            w, h = img.size
            if w * h > max_pixels:
                raise OptiscopeError(f"The image is {w}×{h} pixels; the limit is {max_pixels / 1e6:.0f} megapixels.")
            img.load()
    except OptiscopeError:
        raise
    except (
        ValueError,
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as err:
        raise OptiscopeError(f"Could not decode the image ({type(err).__name__}: {err}).") from None
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    img = img.convert("RGB")
    side = min(img.size)
    left, top = (img.size[0] - side) // 2, (img.size[1] - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 255.0  # (size, size, 3)
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()
