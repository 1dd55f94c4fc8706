"""Makes radiograph-like PA chest images, normal or with small round nodules, in the chest X-ray layout.

Each image is drawn as attenuation on a (size, size) grid, then exposed: a soft-tissue trunk with
shoulders, two dark lung fields with domed bases, the spine and mediastinum, a heart shadow to the
patient's left, clavicles, vascular markings (smooth random texture), nine posterior ribs per side, then per-image position (shift, rotation,
scale), exposure (gain, offset, gamma), blur and quantum-like noise. A nodule is a round opacity inside
a lung field, 2.5-9 mm across at the default scale and 4-30 % of the lung-tissue contrast, often
over a rib, so some are faint. About ``nodule_fraction`` of patients have one to three nodules;
a third of patients have a second image (another exposure and position of the same chest and
nodules), so splits must keep patients together.

Layout (the same as ``download_openi_chest.py`` writes)::

    OUT/normal/<name>.png, OUT/nodule/<name>.png   8-bit grey PNG
    OUT/metadata.json                              {"images": [{"name", "class", "patient", "nodules"}]}

Each nodule's record has its place on the patient's chest (``y``, ``x``, ``radius``: fractions of the
image) and in this image (``row``, ``column``, ``radius_px``: pixels, after the exposure's shift,
rotation and scale), where a saliency map should point.

Example:
    python data_scripts/make_synthetic_chest_xray.py --output_dir data/chest_synthetic --num_images 400 --seed 0
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from absl import app, flags
from scipy import ndimage

from dltk2.io.atomic import write_bytes_atomically, write_text_atomically

FLAGS = flags.FLAGS


def _ellipse(y, x, cy, cx, ry, rx):
    """Soft-edged ellipse in [0, 1] (edge about 1 % of the image wide)."""
    distance = np.sqrt(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2)
    return np.clip((1.0 - distance) * min(ry, rx) / 0.01 + 0.5, 0.0, 1.0)


def placed_in_image(nodule: dict, angle: float, scale: float, dy: float, dx: float, size: int) -> dict:
    """Where an exposure put a nodule: its centre's ``row`` and ``column`` and its ``radius_px`` (pixels).

    The inverse of :func:`draw_chest`'s sampling grid (rotate by ``angle``, scale by ``scale`` about
    the centre, shift by ``dy``, ``dx`` of the image): the ground truth of a pointing game.
    """
    c, s = np.cos(angle), np.sin(angle)
    y, x = (nodule["y"] - 0.5) * scale, (nodule["x"] - 0.5) * scale
    return {"row": float((c * y + s * x + 0.5 + dy) * size), "column": float((c * x - s * y + 0.5 + dx) * size),
            "radius_px": float(nodule["radius"] * scale * size)}


def draw_chest(size: int, anatomy: dict, nodules: list[dict], rng: np.random.Generator
               ) -> tuple[np.ndarray, list[dict]]:
    """One exposure of a chest.

    Returns:
        The (size, size) uint8 image (brighter = more attenuation, bone white) and each nodule as this
        exposure placed it in the image (:func:`placed_in_image`: row, column, radius in pixels).
    """
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    # This exposure's position: rotate, scale and shift the sampling grid about the centre.
    angle = np.deg2rad(rng.uniform(-5, 5))
    scale = rng.uniform(0.92, 1.08)
    dy, dx = rng.uniform(-0.04, 0.04, 2)
    placed = [placed_in_image(nodule, angle, scale, dy, dx, size) for nodule in nodules]
    c, s = np.cos(angle), np.sin(angle)
    yc, xc = y - 0.5 - dy, x - 0.5 - dx
    y, x = (c * yc - s * xc) / scale + 0.5, (s * yc + c * xc) / scale + 0.5

    a = anatomy
    trunk = np.maximum(_ellipse(y, x, 0.62, 0.5, 0.55, a["trunk_width"]),
                       _ellipse(y, x, 0.16, 0.5, 0.1, a["trunk_width"] + 0.05))  # shoulders
    lung_centre = [0.5 - a["lung_gap"], 0.5 + a["lung_gap"]]
    lungs = [_ellipse(y, x, a["lung_y"], cx, a["lung_height"], a["lung_width"] * (1.0 if i == 0 else 0.92))
             for i, cx in enumerate(lung_centre)]
    lung = np.maximum(*lungs)
    attenuation = 0.55 * trunk - 0.38 * lung
    spine = np.clip(1.0 - np.abs(x - 0.5) / 0.045, 0, 1) * (y > 0.12)
    attenuation += 0.28 * spine
    heart = _ellipse(y, x, a["lung_y"] + 0.12, 0.5 + a["heart_shift"], a["heart_size"] * 0.9, a["heart_size"])
    attenuation += 0.33 * heart * (0.4 + 0.6 * lung)
    diaphragm = np.clip((y - (a["lung_y"] + a["lung_height"] * 0.85)) / 0.03, 0, 1) * trunk
    attenuation = np.maximum(attenuation, 0.5 * diaphragm)
    clavicle = np.clip(1.0 - np.abs(y - (0.235 - 0.12 * np.abs(x - 0.5))) / 0.014, 0, 1)
    attenuation += 0.12 * clavicle * (np.abs(x - 0.5) < 0.28) * (np.abs(x - 0.5) > 0.03)
    # Vascular markings: smooth random texture, strongest towards the hila.
    texture = ndimage.gaussian_filter(rng.normal(0.0, 1.0, y.shape), sigma=size / 100)
    texture *= 0.05 / (texture.std() + 1e-6)
    attenuation += texture * lung * (1.2 - np.clip(np.abs(x - 0.5) / 0.3, 0, 1))
    for k in range(9):  # posterior ribs: arcs that rise towards the spine
        top = a["lung_y"] - a["lung_height"] + 0.04 + k * a["rib_spacing"]
        arc = top + 0.08 * ((x - 0.5) / 0.35) ** 2 - 0.02
        rib = np.clip(1.0 - np.abs(y - arc) / a["rib_width"], 0, 1) * (np.abs(x - 0.5) > 0.05) * trunk
        attenuation += 0.14 * rib
    for nodule in nodules:
        radius = nodule["radius"]
        disk = np.clip(1.0 - np.sqrt((y - nodule["y"]) ** 2 + (x - nodule["x"]) ** 2) / radius, 0, 1) ** 0.5
        attenuation += nodule["contrast"] * 0.38 * disk * lung

    image = ndimage.gaussian_filter(attenuation, sigma=size / 256)
    gain, offset, gamma = rng.uniform(0.8, 1.2), rng.uniform(-0.05, 0.08), rng.uniform(0.75, 1.35)
    image = np.clip(gain * image + offset, 0.0, 1.0) ** gamma
    image = image + rng.normal(0.0, 0.025, image.shape) * np.sqrt(image + 0.05)
    return np.clip(image * 255.0, 0, 255).astype(np.uint8), placed


def random_anatomy(rng: np.random.Generator) -> dict:
    """One patient's body habitus: trunk and lung size, heart size and position, rib spacing."""
    return {"trunk_width": rng.uniform(0.38, 0.46), "lung_gap": rng.uniform(0.15, 0.19),
            "lung_y": rng.uniform(0.44, 0.5), "lung_height": rng.uniform(0.25, 0.3),
            "lung_width": rng.uniform(0.11, 0.14), "heart_shift": rng.uniform(0.03, 0.07),
            "heart_size": rng.uniform(0.11, 0.15), "rib_spacing": rng.uniform(0.052, 0.062),
            "rib_width": rng.uniform(0.008, 0.012)}


def random_nodules(anatomy: dict, rng: np.random.Generator, radii: tuple[float, float] = (0.01, 0.035),
                   contrasts: tuple[float, float] = (0.1, 0.8)) -> list[dict]:
    """One to three nodules inside the lung fields (centres in normalised image coordinates).

    Args:
        anatomy: The patient's :func:`random_anatomy`.
        rng: The generator (the same number of draws whatever the ranges).
        radii: Range of nodule radii, as fractions of the image width.
        contrasts: Range of nodule opacities, as fractions of the lung-tissue contrast.
    """
    nodules = []
    for _ in range(int(rng.choice([1, 1, 1, 2, 3]))):
        side = rng.choice([-1, 1])
        angle, radius = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0, 0.55))
        nodules.append({
            "y": float(anatomy["lung_y"] + radius * anatomy["lung_height"] * np.sin(angle)),
            "x": float(0.5 + side * anatomy["lung_gap"] + radius * anatomy["lung_width"] * np.cos(angle)),
            "radius": float(rng.uniform(*radii)), "contrast": float(rng.uniform(*contrasts)),
        })
    return nodules


def make_dataset(output_dir: str | Path, num_images: int, seed: int = 0, size: int = 256,
                 nodule_fraction: float = 0.3, nodule_radius: tuple[float, float] = (0.01, 0.035),
                 nodule_contrast: tuple[float, float] = (0.1, 0.8)) -> Path:
    """Writes ``num_images`` PNGs and ``metadata.json``; the same seed gives the same files.

    ``nodule_radius`` and ``nodule_contrast`` (:func:`random_nodules`) make an easier or harder set:
    the defaults are small and often faint, as the task is; (0.04, 0.06) and (1.0, 1.0) are
    conspicuous nodules, learnable from random weights in a minute on a CPU.
    """
    output_dir = Path(output_dir)
    rng = np.random.default_rng(seed)
    records = []
    patient_number = 0
    while len(records) < num_images:
        patient_number += 1
        patient = f"P{seed:02d}{patient_number:05d}"
        anatomy = random_anatomy(rng)
        nodules = random_nodules(anatomy, rng, nodule_radius, nodule_contrast) if rng.uniform() < nodule_fraction else []
        label = "nodule" if nodules else "normal"
        for view in range(min(1 if rng.uniform() < 2 / 3 else 2, num_images - len(records))):
            name = f"{patient}_{view + 1}"
            path = output_dir / label / f"{name}.png"
            image, placed = draw_chest(size, anatomy, nodules, rng)
            ok, encoded = cv2.imencode(".png", image)
            if not ok:
                raise OSError(f"{path}: could not encode")
            write_bytes_atomically(path, encoded.tobytes())
            records.append({"name": name, "class": label, "patient": patient,
                            "nodules": [{**n, **where} for n, where in zip(nodules, placed)]})
    write_text_atomically(output_dir / "metadata.json", json.dumps({"images": records}, indent=1))
    return output_dir


def define_flags() -> None:
    flags.DEFINE_string("output_dir", None, "Folder to write normal/, nodule/ and metadata.json into.")
    flags.DEFINE_integer("num_images", 400, "Number of images.")
    flags.DEFINE_integer("seed", 0, "Random seed; the same seed gives the same images.")
    flags.DEFINE_integer("size", 256, "Rows and columns of each image (pixels).")
    flags.DEFINE_float("nodule_fraction", 0.3, "Fraction of patients with nodules (the rare class).")
    flags.mark_flag_as_required("output_dir")


def main(argv):
    del argv
    make_dataset(FLAGS.output_dir, FLAGS.num_images, FLAGS.seed, FLAGS.size, FLAGS.nodule_fraction)
    print(f"wrote {FLAGS.num_images} chest images to {FLAGS.output_dir}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
