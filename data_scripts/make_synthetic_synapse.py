"""Makes Synapse (BTCV)-like abdominal CT phantoms with the 13 organ labels.

Writes Synapse's layout::

    OUTPUT_DIR/img/img0001.nii.gz      int16 HU, spacing e.g. 0.7 x 0.7 x 3 mm, non-zero origin
    OUTPUT_DIR/label/label0001.nii.gz  uint8, 0 background and the 13 BTCV organs below

Each case is an elliptical abdomen (skin, subcutaneous fat, muscle wall, a spine and ribs of bone) in
which the organs lie where they lie in a supine patient, as ellipsoids and tubes in millimetres,
with per-case size, position, contrast phase, noise and field of view. Coordinates are ITK's LPS
(+x the patient's left, +y posterior, +z superior). Organs with similar HU (pancreas, bowel,
adrenals) must be told apart by position and shape, as in real CT.

Example:
    python data_scripts/make_synthetic_synapse.py --output_dir data/synapse_synthetic --num_cases 20 --seed 0
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from absl import app, flags
from scipy import ndimage

from dltk2.io.image import write_image

FLAGS = flags.FLAGS

ORGANS = {  # BTCV label: name
    1: "spleen", 2: "right kidney", 3: "left kidney", 4: "gallbladder", 5: "esophagus", 6: "liver",
    7: "stomach", 8: "aorta", 9: "inferior vena cava", 10: "portal and splenic veins", 11: "pancreas",
    12: "right adrenal gland", 13: "left adrenal gland",
}
# Mean HU in the portal-venous phase (before the per-case contrast shift).
ORGAN_HU = {1: 110, 2: 170, 3: 170, 4: 15, 5: 45, 6: 100, 7: 35, 8: 190, 9: 140, 10: 160, 11: 80, 12: 55, 13: 55}

# Ellipsoids: label -> (centre (x, y, z) mm relative to the abdomen centre, semi-axes (x, y, z) mm,
# rotation about z in degrees). Tubes are drawn separately.
ELLIPSOIDS = {
    6: ((-55, 0, 55), (85, 75, 75), 10),     # liver, right upper quadrant
    1: ((85, 35, 60), (35, 50, 55), -25),    # spleen, left, posterior
    7: ((55, -35, 55), (50, 35, 45), 20),    # stomach, left, anterior
    4: ((-55, -45, 25), (18, 15, 30), 0),    # gallbladder under the liver
    2: ((-65, 45, 0), (28, 25, 55), 15),     # right kidney (lower than the left)
    3: ((65, 45, 12), (28, 25, 55), -15),    # left kidney
    11: ((15, 5, 20), (65, 12, 14), -15),    # pancreas, across the midline
    12: ((-40, 35, 60), (12, 6, 18), 30),    # right adrenal above the kidney
    13: ((38, 38, 68), (12, 6, 18), -30),    # left adrenal
}
# Tubes: label -> (start (x, y, z), end (x, y, z), radius mm).
TUBES = {
    8: ((12, 45, -110), (12, 45, 130), 11),          # aorta, left of the spine's front
    9: ((-20, 40, -110), (-20, 40, 100), 12),        # IVC, right of the aorta
    5: ((5, 40, 95), (10, 30, 200), 7),              # esophagus, above the stomach
    10: ((-35, 0, 35), (70, 25, 40), 7),             # portal and splenic veins
}


def define_flags() -> None:
    """Command-line flags (defined only when run as a script, so tests can import the module)."""
    flags.DEFINE_string("output_dir", None, "Folder to write img/ and label/ into.")
    flags.DEFINE_integer("num_cases", 20, "Number of cases.")
    flags.DEFINE_integer("seed", 0, "Random seed; the same seed gives the same data set.")
    flags.DEFINE_integer("in_plane_size", 512, "Voxels along x and y (Synapse: 512).")
    flags.DEFINE_integer("workers", max(1, min(4, os.cpu_count() or 1)), "Processes generating cases.")


def case_parameters(rng: np.random.Generator, index: int, in_plane_size: int) -> dict:
    """Geometry, anatomy and acquisition of one case."""
    fov = rng.uniform(340.0, 420.0)
    spacing_z = float(rng.choice([2.5, 3.0, 4.0, 5.0]))
    extent_z = rng.uniform(220.0, 300.0)
    return {
        "name": f"{index + 1:04d}",
        "spacing": (fov / in_plane_size, fov / in_plane_size, spacing_z),
        "size": (in_plane_size, in_plane_size, int(round(extent_z / spacing_z))),
        "origin": (-fov / 2 + rng.uniform(-20, 20), -fov / 2 + rng.uniform(-20, 20), rng.uniform(-600, -200)),
        "centre_shift": rng.uniform([-15, -15, -20], [15, 15, 20]),
        "body_axes": (rng.uniform(135, 170), rng.uniform(100, 125)),
        "organ_scale": rng.uniform(0.85, 1.15, size=14),
        "organ_shift": rng.normal(0.0, 6.0, size=(14, 3)),
        "contrast_shift": rng.uniform(-25, 25),
        "noise_hu": rng.uniform(12, 25),
        "seed": int(rng.integers(2**31)),
    }


def _grid(params: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Physical (x, y, z) mm of every voxel relative to the abdomen centre, each (z, y, x)-shaped."""
    size, spacing, origin = params["size"], params["spacing"], params["origin"]
    centre = [origin[i] + (size[i] - 1) * spacing[i] / 2 + params["centre_shift"][i] for i in range(3)]
    axes = [origin[i] + np.arange(size[i], dtype=np.float32) * spacing[i] - centre[i] for i in range(3)]
    z, y, x = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    return x, y, z


def render_case(params: dict) -> tuple[sitk.Image, sitk.Image]:
    """The CT image (int16 HU) and its label map (uint8) of one case."""
    rng = np.random.default_rng(params["seed"])
    x, y, z = _grid(params)
    a, b = params["body_axes"]
    radius = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    hu = np.full(x.shape, -1000.0, np.float32)                    # air
    hu[radius < 1.0] = -100.0                                       # subcutaneous fat
    hu[radius < 0.92] = 50.0                                        # muscle wall
    cavity = radius < 0.85
    bowel = ndimage.gaussian_filter(rng.normal(0, 1, x.shape).astype(np.float32), sigma=(1, 4, 4))
    hu[cavity] = np.where(bowel[cavity] > 0.25, 30.0, -80.0)        # bowel loops in mesenteric fat
    spine = ((x / 22) ** 2 + ((y - 75) / 22) ** 2) < 1.0
    hu[spine] = 600.0
    ribs = (radius > 0.86) & (radius < 0.9) & (np.cos(z / 12.0) > 0.6) & (z > 20)
    hu[ribs] = 500.0
    label = np.zeros(x.shape, np.uint8)

    def paint(mask: np.ndarray, organ: int) -> None:
        mask &= cavity
        label[mask] = organ
        hu[mask] = ORGAN_HU[organ] + (params["contrast_shift"] if ORGAN_HU[organ] > 90 else 0.0)

    for organ, (centre, axes, angle) in ELLIPSOIDS.items():
        scale = params["organ_scale"][organ]
        cx, cy, cz = np.array(centre) + params["organ_shift"][organ]
        theta = np.deg2rad(angle)
        u = (x - cx) * np.cos(theta) + (y - cy) * np.sin(theta)
        v = -(x - cx) * np.sin(theta) + (y - cy) * np.cos(theta)
        paint(((u / (axes[0] * scale)) ** 2 + (v / (axes[1] * scale)) ** 2 + ((z - cz) / (axes[2] * scale)) ** 2) < 1.0,
              organ)
    for organ, (start, end, tube_radius) in TUBES.items():
        start = np.array(start, np.float32) + params["organ_shift"][organ]
        end = np.array(end, np.float32) + params["organ_shift"][organ]
        direction = end - start
        length2 = float(direction @ direction)
        t = np.clip(((x - start[0]) * direction[0] + (y - start[1]) * direction[1]
                     + (z - start[2]) * direction[2]) / length2, 0.0, 1.0)
        distance2 = ((x - start[0] - t * direction[0]) ** 2 + (y - start[1] - t * direction[1]) ** 2
                     + (z - start[2] - t * direction[2]) ** 2)
        paint(distance2 < (tube_radius * params["organ_scale"][organ]) ** 2, organ)

    hu += rng.normal(0.0, params["noise_hu"], size=hu.shape).astype(np.float32)
    hu = np.clip(hu, -1024, 3071)
    image = sitk.GetImageFromArray(np.round(hu).astype(np.int16))
    labels = sitk.GetImageFromArray(label)
    for item in (image, labels):
        item.SetSpacing([float(s) for s in params["spacing"]])
        item.SetOrigin([float(o) for o in params["origin"]])
    return image, labels


def make_case(args: tuple[dict, str]) -> str:
    params, output_dir = args
    image, labels = render_case(params)
    write_image(image, Path(output_dir) / "img" / f"img{params['name']}.nii.gz")
    write_image(labels, Path(output_dir) / "label" / f"label{params['name']}.nii.gz")
    return params["name"]


def make_dataset(output_dir: str | Path, num_cases: int, seed: int, in_plane_size: int = 512,
                 workers: int = 1) -> Path:
    """Writes the data set; returns ``output_dir``."""
    output_dir = Path(output_dir)
    rng = np.random.default_rng(seed)
    jobs = [(case_parameters(rng, i, in_plane_size), str(output_dir)) for i in range(num_cases)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            names = list(pool.map(make_case, jobs))
    else:
        names = [make_case(job) for job in jobs]
    print(f"wrote {len(names)} cases to {output_dir}")
    return output_dir


def main(argv: list[str]) -> None:
    del argv
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required")
    make_dataset(FLAGS.output_dir, FLAGS.num_cases, FLAGS.seed, FLAGS.in_plane_size, FLAGS.workers)


if __name__ == "__main__":
    define_flags()
    app.run(main)
