"""A confusion matrix drawn as an image for MLflow (Pillow, already loaded by image decoding)."""

from __future__ import annotations

import numpy as np

from model.learning.evidence import ConfusionMatrix


def confusion_image(confusion: ConfusionMatrix, title: str) -> np.ndarray:
    """The confusion matrix drawn as an RGB array (for MLflow's ``log_image``): rows true, columns predicted,
    cells shaded by their share of the row. Drawn with Pillow, already loaded: a plotting library would add a
    second to every run's start."""
    from PIL import Image, ImageDraw, ImageFont

    labels, matrix = [str(label)[:18] for label in confusion.labels], np.asarray(confusion.matrix)
    font = ImageFont.load_default(size=14)
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_width = max([int(draw.textlength(label, font=font)) for label in labels] + [40])
    cell, pad = 56, 12
    left, top = pad + label_width + pad + 20, 3 * pad + 20
    width = max(left + cell * len(labels) + pad, int(draw.textlength(title, font=font)) + 2 * pad)
    height = top + cell * len(labels) + pad + label_width + 28
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((pad, pad), title, fill="black", font=font)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    for (i, j), value in np.ndenumerate(matrix):
        x, y, green = left + j * cell, top + i * cell, float(share[i, j])
        fill = (int(247 - 200 * green), int(252 - 110 * green), int(245 - 200 * green))
        draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=fill, outline="grey")
        draw.text((x + cell / 2, y + cell / 2), str(value), fill="white" if green > 0.6 else "black", font=font,
                  anchor="mm")
    for k, label in enumerate(labels):
        draw.text((left - pad, top + k * cell + cell / 2), label, fill="black", font=font, anchor="rm")
        column = Image.new("RGBA", (label_width + 4, 20), (255, 255, 255, 0))
        ImageDraw.Draw(column).text((label_width + 2, 10), label, fill="black", font=font, anchor="rm")
        rotated = column.rotate(90, expand=True)
        image.paste(rotated, (left + k * cell + cell // 2 - 10, top + cell * len(labels) + 4), rotated)
    draw.text((pad, top - 4), "true", fill="grey", font=font, anchor="ld")
    draw.text((left + cell * len(labels), height - 6), "predicted", fill="grey", font=font, anchor="rd")
    return np.asarray(image)
