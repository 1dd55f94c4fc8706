"""Makes knee-MRI-like exams in Stanford MRNet's layout: series per plane and ``{train,valid}-abnormal.csv``.

Each exam is one analytic knee, a sum of soft-edged ellipsoids in patient coordinates, sampled on the
grid of each plane, so the sagittal, coronal and axial series of an exam show the same knee. The
contrast is fluid-sensitive (fat-suppressed T2-like): bone marrow dark, cartilage intermediate, fluid
bright. Anatomy: the limb's soft tissue, the femoral shaft and two condyles, the tibial plateau and
shaft, cartilage over both joint surfaces, the patella, and the popliteal vessels (bright, in every
exam). Normal exams may hold a little physiological joint fluid (a small bright spot) too.

Abnormal exams (about ``abnormal_fraction``, as MRNet's 81 % abnormal) carry one or both of:

* bone-marrow-oedema-like regions: bright soft blobs inside a femoral condyle or the tibial plateau,
  3-9 mm at MRNet's scale, 20-60 % of the way from marrow to fluid brightness (some are faint);
* an effusion: bright fluid filling the suprapatellar pouch above the patella, of varying volume.

Per exam: knee size and position, slice count (MRNet: 17-61; here ``--min_slices`` to ``--max_slices``),
gain, a smooth bias field and Rician-like noise. Series are uint8 (slices, 256, 256).

Layout::

    OUT/train/sagittal/0000.npy ...   (and coronal/, axial/ with --planes)
    OUT/valid/sagittal/<id>.npy ...   ids continue after the training ids, as in MRNet
    OUT/train-abnormal.csv, OUT/valid-abnormal.csv   "id,label" rows without a header, as MRNet's
    OUT/findings.json                 what each abnormal exam holds, and the knee's scale and shift
                                      that place it (finding_mask: where, in a series)

Example:
    python data_scripts/make_synthetic_mrnet.py --output_dir data/mrnet_synthetic --num_exams 200 --seed 0
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from absl import app, flags

from dltk2.io.atomic import atomic_destination, write_text_atomically

FLAGS = flags.FLAGS

# Grey levels (of 255 before gain) of the tissues in a fat-suppressed fluid-sensitive sequence.
BACKGROUND, SOFT_TISSUE, MARROW, CORTEX, CARTILAGE, FLUID, VESSEL = 8.0, 62.0, 38.0, 16.0, 96.0, 215.0, 175.0
# Edge widths of the findings' soft ellipsoids (normalised units): draw_knee draws, finding_mask finds them.
OEDEMA_EDGE, FLUID_EDGE = 0.03, 0.02


def _ellipsoid(u, v, w, centre, radii, softness: float = 0.015):
    """Soft ellipsoid membership in [0, 1] on coordinate arrays (edge about ``softness`` wide)."""
    distance = np.sqrt(((u - centre[0]) / radii[0]) ** 2 + ((v - centre[1]) / radii[1]) ** 2
                       + ((w - centre[2]) / radii[2]) ** 2)
    return np.clip((1.0 - distance) * min(radii) / softness + 0.5, 0.0, 1.0)


def draw_knee(u: np.ndarray, v: np.ndarray, w: np.ndarray, knee: dict) -> np.ndarray:
    """Intensities of one knee at patient coordinates u (medial-lateral), v (superior-inferior, down
    positive), w (anterior positive), all about [-1, 1]; float32 of the coordinates' shape."""
    u = (u - knee["shift"][0]) / knee["scale"]
    v = (v - knee["shift"][1]) / knee["scale"]
    w = (w - knee["shift"][2]) / knee["scale"]
    limb = _ellipsoid(u, 0 * v, w, (0, 0, 0.02), (0.82, 1, 0.78))
    image = BACKGROUND + (SOFT_TISSUE - BACKGROUND) * limb
    femur = np.maximum(_ellipsoid(u, v, w, (0, -0.75, -0.02), (0.3, 0.72, 0.27)),
                       np.maximum(_ellipsoid(u, v, w, (-0.2, -0.05, -0.06), (0.21, 0.2, 0.32)),
                                  _ellipsoid(u, v, w, (0.2, -0.05, -0.06), (0.21, 0.2, 0.32))))
    tibia = np.maximum(_ellipsoid(u, v, w, (0, 0.3, -0.04), (0.45, 0.12, 0.36)),
                       _ellipsoid(u, v, w, (0, 0.95, -0.04), (0.3, 0.68, 0.25)))
    patella = _ellipsoid(u, v, w, (0, -0.22, 0.6), (0.24, 0.17, 0.09))
    bone = np.maximum(np.maximum(femur, tibia), patella)
    cartilage = np.clip(np.maximum(np.maximum(_ellipsoid(u, v, w, (-0.2, -0.05, -0.06), (0.24, 0.23, 0.35)),
                                              _ellipsoid(u, v, w, (0.2, -0.05, -0.06), (0.24, 0.23, 0.35))),
                                   _ellipsoid(u, v, w, (0, 0.28, -0.04), (0.47, 0.16, 0.38))) - bone, 0, 1)
    image = image * (1 - cartilage) + CARTILAGE * cartilage
    shell = np.clip(bone - np.maximum(np.maximum(_ellipsoid(u, v, w, (0, -0.75, -0.02), (0.26, 0.7, 0.23)),
                                                 _ellipsoid(u, v, w, (0, 0.95, -0.04), (0.26, 0.66, 0.21))), 0), 0, 1)
    image = image * (1 - bone) + MARROW * bone
    image = image * (1 - shell) + CORTEX * shell
    vessel = _ellipsoid(u, 0 * v, w, (0.06, 0, -0.56), (0.05, 1, 0.05))
    image = image * (1 - vessel) + VESSEL * vessel
    for blob in knee["oedema"]:
        inside = _ellipsoid(u, v, w, blob["centre"], blob["radii"], softness=OEDEMA_EDGE) * bone
        image += blob["strength"] * (FLUID - MARROW) * inside
    for pocket in knee["fluid"]:
        inside = _ellipsoid(u, v, w, pocket["centre"], pocket["radii"], softness=FLUID_EDGE) * (1 - bone)
        image = image * (1 - inside) + FLUID * inside
    return image.astype(np.float32)


def random_knee(abnormal: bool, rng: np.random.Generator) -> dict:
    """Position, size and findings of one knee (normalised coordinates)."""
    knee = {"scale": float(rng.uniform(0.85, 1.1)), "shift": rng.uniform(-0.07, 0.07, 3).tolist(),
            "oedema": [], "fluid": []}
    if rng.uniform() < 0.5:  # a little physiological fluid behind the joint, in either class
        knee["fluid"].append({"centre": [float(rng.uniform(-0.3, 0.3)), 0.12, -0.42],
                              "radii": rng.uniform(0.03, 0.06, 3).tolist()})
    if abnormal:
        kinds = [["oedema"], ["effusion"], ["oedema", "effusion"]][int(rng.choice(3, p=[0.45, 0.3, 0.25]))]
        if "oedema" in kinds:
            for _ in range(int(rng.integers(1, 3))):
                if rng.uniform() < 0.65:  # a femoral condyle
                    centre = [float(rng.choice([-0.2, 0.2]) + rng.uniform(-0.08, 0.08)), float(rng.uniform(-0.12, 0.02)),
                              float(rng.uniform(-0.25, 0.12))]
                else:  # the tibial plateau
                    centre = [float(rng.uniform(-0.3, 0.3)), float(rng.uniform(0.27, 0.38)), float(rng.uniform(-0.2, 0.12))]
                knee["oedema"].append({"centre": centre, "radii": rng.uniform(0.05, 0.13, 3).tolist(),
                                       "strength": float(rng.uniform(0.2, 0.6))})
        if "effusion" in kinds:
            knee["fluid"].append({"centre": [0.0, float(rng.uniform(-0.5, -0.4)), float(rng.uniform(0.42, 0.5))],
                                  "radii": [float(rng.uniform(0.25, 0.5)), float(rng.uniform(0.08, 0.2)),
                                            float(rng.uniform(0.04, 0.1))]})
    return knee


def plane_grid(plane: str, slices: int, size: int, extent: float = 1.0):
    """Patient coordinates (u, v, w) of every voxel of a (slices, size, size) series of ``plane``.

    Sagittal: slices run medial-lateral, rows superior-inferior, columns posterior-anterior.
    Coronal: slices posterior-anterior, rows superior-inferior, columns medial-lateral.
    Axial: slices superior-inferior, rows anterior-posterior, columns medial-lateral.
    Slices span the middle 80 % of the knee; rows and columns the whole field of view.
    """
    through = np.linspace(-0.8 * extent, 0.8 * extent, slices, dtype=np.float32)
    inplane = np.linspace(-extent, extent, size, dtype=np.float32)
    s, r, c = np.meshgrid(through, inplane, inplane, indexing="ij")
    if plane == "sagittal":
        return s, r, c
    if plane == "coronal":
        return c, r, s
    if plane == "axial":
        return c, s, -r
    raise ValueError(f"unknown plane {plane!r}")


def finding_mask(finding: dict, plane: str, slices: int, size: int) -> np.ndarray:
    """Where an abnormal exam's findings lie in its (slices, size, size) series of ``plane``: bool.

    Args:
        finding: The exam's record in ``findings.json`` (its oedema blobs, its effusion, and the
            knee's scale and shift that placed them).
        plane, slices, size: The series' plane and shape (a series' slice count is its own).

    Returns:
        True wherever an oedema blob or the effusion is drawn (its soft ellipsoid's support, edge
        included): where a saliency map of "abnormal" should point.
    """
    u, v, w = plane_grid(plane, slices, size)
    u = (u - finding["shift"][0]) / finding["scale"]
    v = (v - finding["shift"][1]) / finding["scale"]
    w = (w - finding["shift"][2]) / finding["scale"]
    mask = np.zeros(u.shape, bool)
    for regions, softness in ((finding["oedema"], OEDEMA_EDGE), (finding["effusion"], FLUID_EDGE)):
        for region in regions:
            mask |= _ellipsoid(u, v, w, region["centre"], region["radii"], softness) > 0
    return mask


def draw_series(knee: dict, plane: str, slices: int, rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """One series (slices, size, size) uint8 of ``knee`` with gain, bias field and Rician-like noise."""
    u, v, w = plane_grid(plane, slices, size)
    image = draw_knee(u, v, w, knee)
    bias = 1.0 + 0.15 * (rng.uniform(-1, 1) * u + rng.uniform(-1, 1) * v + rng.uniform(-1, 1) * w)
    image *= rng.uniform(0.85, 1.15) * bias
    sigma = rng.uniform(4.0, 9.0)
    noisy = np.hypot(image + rng.normal(0, sigma, image.shape), rng.normal(0, sigma, image.shape))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def make_dataset(output_dir: str | Path, num_exams: int, seed: int = 0, num_valid: int | None = None,
                 planes=("sagittal",), abnormal_fraction: float = 0.8, min_slices: int = 20,
                 max_slices: int = 32, size: int = 256) -> Path:
    """Writes ``num_exams`` training and ``num_valid`` validation exams; the same seed, the same files."""
    output_dir = Path(output_dir)
    rng = np.random.default_rng(seed)
    num_valid = max(2, round(0.15 * num_exams)) if num_valid is None else num_valid
    findings = {}
    for split, first, count in (("train", 0, num_exams), ("valid", num_exams, num_valid)):
        labels = (rng.uniform(size=count) < abnormal_fraction).astype(int)
        if count >= 2:  # both classes in every split
            labels[0], labels[1] = 0, 1
        rows = []
        for number, label in zip(range(first, first + count), labels):
            exam = f"{number:04d}"
            knee = random_knee(bool(label), rng)
            for plane in planes:
                path = output_dir / split / plane / f"{exam}.npy"
                series = draw_series(knee, plane, int(rng.integers(min_slices, max_slices + 1)), rng, size)
                with atomic_destination(path, suffix=".npy") as temporary:
                    np.save(temporary, series)
            rows.append(f"{exam},{label}\n")
            if label:
                findings[exam] = {"oedema": knee["oedema"], "effusion": knee["fluid"][-1:] if len(knee["fluid"]) and
                                  knee["fluid"][-1]["centre"][1] < 0 else [],
                                  "scale": knee["scale"], "shift": knee["shift"]}
        write_text_atomically(output_dir / f"{split}-abnormal.csv", "".join(rows))
    write_text_atomically(output_dir / "findings.json", json.dumps(findings, indent=1))
    return output_dir


def define_flags() -> None:
    flags.DEFINE_string("output_dir", None, "Folder to write train/, valid/ and the CSVs into.")
    flags.DEFINE_integer("num_exams", 200, "Training exams.")
    flags.DEFINE_integer("num_valid", None, "Validation exams (default 15 % of --num_exams, at least 2).")
    flags.DEFINE_integer("seed", 0, "Random seed; the same seed gives the same files.")
    flags.DEFINE_list("planes", ["sagittal"], "Planes to write: sagittal, coronal, axial.")
    flags.DEFINE_float("abnormal_fraction", 0.8, "Fraction of abnormal exams (MRNet: 0.81).")
    flags.DEFINE_integer("min_slices", 20, "Fewest slices per series.")
    flags.DEFINE_integer("max_slices", 32, "Most slices per series.")
    flags.DEFINE_integer("size", 256, "Rows and columns of each slice (MRNet: 256).")
    flags.mark_flag_as_required("output_dir")


def main(argv):
    del argv
    make_dataset(FLAGS.output_dir, FLAGS.num_exams, FLAGS.seed, FLAGS.num_valid, FLAGS.planes,
                 FLAGS.abnormal_fraction, FLAGS.min_slices, FLAGS.max_slices, FLAGS.size)
    print(f"wrote {FLAGS.num_exams} training exams and their validation set to {FLAGS.output_dir}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
