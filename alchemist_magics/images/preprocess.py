"""Batched image decoding and preprocessing, equal to PIL + open_clip's eval transform.

open_clip's eval transform runs per image: resize, centre crop, RGB, ``ToTensor`` and
``Normalize``. On a small model the last two (a float tensor allocated, divided, shifted and
scaled per image) cost as much as the forward pass. :class:`BatchPreprocess` keeps the PIL steps
per image (PIL's resize and crop are fast C paths) and writes the ``uint8`` pixels straight into
one batch array; the float conversion and normalisation are then a single batched torch op over
the whole batch. The arithmetic is the same as ``ToTensor`` + ``Normalize`` (divide by 255, subtract
the mean, divide by the std, in float32), so the pixels are identical.

:meth:`BatchPreprocess.load` reads a batch of files. JPEGs are decoded in one torchvision
``decode_jpeg`` call per batch: libjpeg-turbo, like PIL, so the pixels are the same (tested for
4:2:0 / 4:2:2 / 4:4:4, progressive, grayscale and CMYK files), at about half PIL's cost per small
image, and without holding the GIL, so decoding overlaps the model. Anything else, and any
JPEG torchvision rejects, goes through PIL, whose error message is the one reported.

:meth:`BatchPreprocess.of` recognises the transform; anything it does not recognise (a custom
transform) returns None, and the caller keeps the per-image transform.
"""
from __future__ import annotations

import io

import numpy as np

JPEG_MAGIC = b"\xff\xd8\xff"


class BatchPreprocess:
    """PIL steps per image, then ``ToTensor`` + ``Normalize`` once per batch.

    Args:
        pil_steps: callables PIL image -> PIL image (resize, centre crop), applied in order.
        size: ``(height, width)`` every image has after ``pil_steps``.
        mean, std: per channel, as in ``Normalize``.
    """

    def __init__(self, pil_steps: list, size: tuple[int, int], mean, std):
        import torch

        self.pil_steps = list(pil_steps)
        self.size = size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    @classmethod
    def of(cls, preprocess) -> "BatchPreprocess | None":
        """The batched equivalent of an open_clip / torchvision eval ``Compose``, or None.

        Recognised: ``Resize`` / ``CenterCrop`` / RGB conversion steps, then ``ToTensor``, then
        ``Normalize``, with a ``CenterCrop`` (or a two-sided ``Resize``) fixing the output size.
        """
        from torchvision import transforms as T

        steps = getattr(preprocess, "transforms", None)
        if not steps or len(steps) < 2 or not isinstance(steps[-1], T.Normalize) \
                or not isinstance(steps[-2], T.ToTensor):
            return None
        pil_steps, size = [], None
        for step in steps[:-2]:
            if isinstance(step, T.CenterCrop):
                size = tuple(step.size)
            elif isinstance(step, T.Resize):
                if isinstance(step.size, (list, tuple)) and len(step.size) == 2:
                    size = tuple(step.size)
                elif size is not None:  # a one-sided resize after the crop changes the size again
                    size = None
            elif _is_rgb_conversion(step):
                continue  # the batch path converts every image to RGB itself
            else:
                return None
            pil_steps.append(step)
        if size is None or steps[-1].inplace:
            return None
        return cls(pil_steps, (int(size[0]), int(size[1])), steps[-1].mean, steps[-1].std)

    def empty(self, n: int) -> np.ndarray:
        """An uninitialised ``(n, height, width, 3)`` uint8 batch to :meth:`fill`."""
        return np.empty((n, *self.size, 3), dtype=np.uint8)

    def fill(self, batch: np.ndarray, row: int, image) -> None:
        """Resize and crop one image (PIL, or ``(H, W, 3)`` uint8 RGB pixels) and write its RGB
        pixels into ``batch[row]``."""
        from PIL import Image

        if isinstance(image, np.ndarray):
            if image.shape[:2] == self.size:
                batch[row] = image
                return
            image = Image.fromarray(np.ascontiguousarray(image))
        image = image.convert("RGB") if image.mode != "RGB" else image
        if image.size != (self.size[1], self.size[0]):
            # already the output size: resize and crop would only copy it (pixel for pixel)
            for step in self.pil_steps:
                image = step(image)
        batch[row] = np.asarray(image)  # raises ValueError if a step left another size

    def load(self, paths: list[str]):
        """Read, decode and preprocess image files into one batch.

        Returns:
            ``(pixels, ok, errors)``: the normalised batch tensor of the images that decoded
            (None if none did), their positions in ``paths``, and ``{position: reason}`` for the
            others.
        """
        from PIL import Image

        contents, errors = {}, {}
        for i, path in enumerate(paths):
            try:
                with open(path, "rb") as handle:
                    contents[i] = handle.read()
            except OSError as err:
                errors[i] = f"{type(err).__name__}: {err}"
        jpegs = _decode_jpegs({i: data for i, data in contents.items() if data.startswith(JPEG_MAGIC)})
        buffer, ok = self.empty(len(contents)), []
        for i, data in contents.items():
            try:
                if i in jpegs:
                    self.fill(buffer, len(ok), jpegs[i])
                else:
                    with Image.open(io.BytesIO(data)) as image:
                        self.fill(buffer, len(ok), image)  # packed: rows of failed images are reused
                ok.append(i)
            except Exception as err:  # any decoder error is a per-image fault, reported by the caller
                errors[i] = f"{type(err).__name__}: {err}"
        return (self.to_tensor(buffer[:len(ok)]) if ok else None), ok, dict(sorted(errors.items()))

    def to_tensor(self, batch: np.ndarray):
        """``(n, H, W, 3)`` uint8 -> ``(n, 3, H, W)`` float32, normalised (one op per stage)."""
        import torch

        pixels = torch.empty((len(batch), 3, *self.size), dtype=torch.float32)
        pixels.copy_(torch.from_numpy(batch).permute(0, 3, 1, 2))  # convert and transpose in one pass
        return pixels.div_(255).sub_(self.mean).div_(self.std)


def _is_rgb_conversion(step) -> bool:
    # open_clip writes it as a MaybeConvertMode("RGB") object or a `_convert_to_rgb` function
    return getattr(step, "mode", None) == "RGB" or getattr(step, "__name__", "") == "_convert_to_rgb"


def _decode_jpegs(contents: dict[int, bytes]) -> dict[int, np.ndarray]:
    """``{position: (H, W, 3) uint8 RGB}`` for the JPEGs torchvision decodes; the others are left
    out (the caller decodes them with PIL)."""
    if not contents:
        return {}
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    data = {i: torch.frombuffer(bytearray(c), dtype=torch.uint8) for i, c in contents.items()}
    try:  # one call for the batch; it raises if any file is bad, then each is tried alone
        decoded = dict(zip(data, decode_jpeg(list(data.values()), mode=ImageReadMode.RGB)))
    except RuntimeError:
        decoded = {}
        for i, tensor in data.items():
            try:
                decoded[i] = decode_jpeg(tensor, mode=ImageReadMode.RGB)
            except RuntimeError:
                continue  # PIL decodes it again and words the error
    return {i: pixels.permute(1, 2, 0).numpy() for i, pixels in decoded.items()}
