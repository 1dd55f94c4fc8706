"""``dltk2 <application> <stage> [flags]``: every application's stages behind one command.

``dltk2`` lists the applications, ``dltk2 <application>`` its stages, ``dltk2 <application> <stage>
--help`` the stage's flags. A stage is the application's own script (``applications/<folder>/<stage>.py``),
run as ``python applications/<folder>/<stage>.py [flags]`` would run it, so both command lines take
the same flags and print the same lines. Nothing here imports TensorFlow: listing and ``--help``
answer at once.

The scripts live in the source tree's ``applications/`` (``pip install -e .`` from a checkout), or
wherever ``DLTK2_APPLICATIONS`` points.
"""

from __future__ import annotations

import ast
import os
import runpy
import sys
from pathlib import Path

APPLICATIONS: dict[str, tuple[str, dict[str, str]]] = {
    "ixi_sex": ("IXI_HH_sex", {"train": "train.py", "deploy": "deploy.py", "cross_validate": "cross_validate.py"}),
    "ixi_age": ("IXI_HH_age", {"train": "train.py", "deploy": "deploy.py", "cross_validate": "cross_validate.py"}),
    "synapse": ("synapse_ct_seg", {"preprocess": "preprocessing.py", "train": "train.py", "deploy": "deploy.py",
                                   "cross_validate": "cross_validate.py"}),
    "bodypart": ("dicom_bodypart", {"create_database": "create_database.py", "fetch": "fetch_image.py",
                                    "preprocess": "preprocess_image.py", "convert": "tf_convert_data.py",
                                    "train": "train.py", "classify": "classify_image.py",
                                    "cross_validate": "cross_validate.py"}),
    "chest": ("chest_xray_nodule", {"prepare": "prepare.py", "train": "train.py", "deploy": "deploy.py",
                                    "cross_validate": "cross_validate.py"}),
    "mrnet": ("mrnet_knee", {"train": "train.py", "deploy": "deploy.py", "cross_validate": "cross_validate.py"}),
    "brain_tissue": ("MRBrainS13_tissue_segmentation", {"train": "train.py", "deploy": "deploy.py"}),
    "super_resolution": ("IXI_HH_superresolution", {"train": "train.py", "deploy": "deploy.py"}),
    "cae": ("IXI_HH_representation_learning_cae", {"train": "train.py", "deploy": "deploy.py"}),
    "dcgan": ("IXI_HH_DCGAN", {"train": "train.py", "deploy": "deploy.py"}),
}
"""Command name -> (folder under ``applications/``, stage -> script)."""
COMMANDS = {"node": "the DICOM node: serve (C-STORE SCP) or pull (QIDO-RS/WADO-RS); dltk2 node --help"}
"""Commands of the library itself (not an application's scripts)."""


def applications_folder() -> Path:
    """``$DLTK2_APPLICATIONS``, else ``applications/`` beside the installed ``dltk2`` package."""
    chosen = os.environ.get("DLTK2_APPLICATIONS")
    return Path(chosen) if chosen else Path(__file__).resolve().parent.parent / "applications"


def summary(script: Path) -> str:
    """The first line of a script's docstring, read without running it."""
    try:
        doc = ast.get_docstring(ast.parse(script.read_text()))
    except (OSError, SyntaxError):
        return ""
    return (doc or "").strip().splitlines()[0] if doc else ""


def usage() -> str:
    lines = ["usage: dltk2 <application> <stage> [flags]   (dltk2 <application> <stage> --help: its flags)", ""]
    for name, (folder, stages) in APPLICATIONS.items():
        lines.append(f"  {name:<10} {folder}: {', '.join(stages)}")
    for name, summary_line in COMMANDS.items():
        lines.append(f"  {name:<10} {summary_line}")
    return "\n".join(lines)


def stage_usage(name: str) -> str:
    folder, stages = APPLICATIONS[name]
    lines = [f"usage: dltk2 {name} <stage> [flags]   ({folder})", ""]
    for stage, script in stages.items():
        lines.append(f"  {stage:<16} {summary(applications_folder() / folder / script)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The console entry point; returns the exit status of listing (a stage exits by itself)."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    name = argv[0]
    if name == "node":
        from dltk2.node.cli import main as node_main

        return node_main(argv[1:])
    if name not in APPLICATIONS:
        sys.stderr.write(f"error: no application {name!r}; choose one of {', '.join(APPLICATIONS)}\n")
        return 2
    folder, stages = APPLICATIONS[name]
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(stage_usage(name))
        return 0 if len(argv) >= 2 else 2
    stage = argv[1]
    if stage not in stages:
        sys.stderr.write(f"error: {name} has no stage {stage!r}; choose one of {', '.join(stages)}\n")
        return 2
    script = applications_folder() / folder / stages[stage]
    if not script.is_file():
        sys.stderr.write(f"error: {script}: missing; the applications come with a source checkout "
                         "(pip install -e .), or set DLTK2_APPLICATIONS to its applications folder\n")
        return 2
    sys.argv = [str(script), *argv[2:]]
    runpy.run_path(str(script), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
