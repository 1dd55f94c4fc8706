"""Tests of dltk2.launcher: ``dltk2 <application> <stage> [flags]``, help without TensorFlow."""

import subprocess
import sys

import pytest

from helpers import REPO
from dltk2.launcher import APPLICATIONS, applications_folder


def _dltk2(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "dltk2", *args], capture_output=True, text=True, timeout=120,
                            cwd=str(REPO))
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_every_stage_names_an_existing_script():
    for folder, stages in APPLICATIONS.values():
        for script in stages.values():
            assert (applications_folder() / folder / script).is_file(), (folder, script)


def test_listing_and_unknown_names():
    listed = _dltk2("--help").stdout
    assert all(name in listed for name in APPLICATIONS)
    bare = _dltk2("synapse", check=False)
    assert bare.returncode == 2 and "preprocess" in bare.stdout
    stages = _dltk2("synapse", "--help").stdout
    assert "preprocess" in stages and "Trains a 3D segmentation network" in stages
    unknown = _dltk2("lungs", check=False)
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: no application 'lungs'")
    wrong = _dltk2("ixi_sex", "serve", check=False)
    assert wrong.returncode == 2 and "no stage 'serve'" in wrong.stderr


@pytest.mark.parametrize("app, stage, own_flag", [("ixi_sex", "train", "--example_size"),
                                                  ("ixi_age", "deploy", "--num_crops"),
                                                  ("synapse", "train", "--patch_size"),
                                                  ("mrnet", "train", "--stage_sizes")])
def test_stage_help_lists_its_own_and_the_shared_flags_without_tensorflow(app, stage, own_flag):
    code = ("import sys, dltk2.launcher as launcher\n"
            f"sys.argv = ['dltk2', '{app}', '{stage}', '--help']\n"
            "try:\n    launcher.main(sys.argv[1:])\nexcept SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
            "print('TENSORFLOW', 'tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=str(REPO))
    assert result.returncode == 0, result.stderr[-3000:]
    assert own_flag in result.stdout and "--model_path" in result.stdout
    if stage == "train":
        assert "--[no]restart:" in result.stdout and "--precision:" in result.stdout
    assert "TENSORFLOW False" in result.stdout


@pytest.mark.slow  # fresh processes, each importing TensorFlow
def test_the_scripts_take_the_same_flags_through_either_command(tmp_path):
    """A stage's one-line errors and exit status are the script's, whichever command ran it."""
    missing = tmp_path / "missing.csv"
    through_launcher = _dltk2("ixi_sex", "train", f"--model_path={tmp_path / 'm'}", f"--data_csv={missing}",
                              check=False)
    direct = subprocess.run([sys.executable, str(REPO / "applications/IXI_HH_sex/train.py"),
                             f"--model_path={tmp_path / 'm'}", f"--data_csv={missing}"],
                            capture_output=True, text=True, timeout=120)
    assert through_launcher.returncode == direct.returncode == 2
    assert through_launcher.stderr.strip().splitlines()[-1] == direct.stderr.strip().splitlines()[-1]
    assert str(missing) in direct.stderr
