"""Pull mode against a real Orthanc: QIDO-RS finds the CT, WADO-RS retrieves it, STOW-RS stores the SEG; twice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pydicom
from pacs import write_node_config

from dltk2.node.config import load_config
from dltk2.node.pull import pull
from dltk2.node.server import Node
from dltk2.node.state import DONE

REPO = Path(__file__).resolve().parents[2]


def test_pull_twice_the_second_does_nothing(tmp_path, orthanc, ct_series, segmentation_model):
    orthanc.upload(ct_series)
    config_path = write_node_config(tmp_path, segmentation_model, f'url = "{orthanc.dicomweb}"')
    with open(config_path, "a") as config:
        config.write(f'\n[pull]\nurl = "{orthanc.dicomweb}"\n')
    node = Node(load_config(config_path))
    # A pull killed half-way: two of the series' instances are spooled, the series not complete.
    files = sorted(ct_series.iterdir())
    for path in files[:2]:
        assert node.store(path.read_bytes(), str(pydicom.dcmread(path).SOPInstanceUID), "WADO-RS") == 0x0000

    first = pull(node)
    assert first.found == 1 and first.retrieved_instances == len(files)
    assert first.processed == {DONE: 1} and first.sent == 1
    assert node.state.instance_count() == len(files)  # the two already spooled kept once
    [seg_series] = orthanc.wait_for_modality("SEG", timeout_s=10)
    assert len(seg_series["Instances"]) == 1

    # The second run, as a user starts it (a new process): the CT is done, its SEG is not an image.
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    second = subprocess.run([sys.executable, "-m", "dltk2.node", "pull", "--config", str(config_path)],
                            capture_output=True, text=True, env=environment, timeout=300)
    assert second.returncode == 0, second.stderr
    # (The rule reads CT: QIDO-RS is asked for CT series only, and the SEG is not among them.)
    assert "found=1; already finished=1; skipped=0; retrieved instances=0; processed=0; sent=0" in second.stdout
    assert [row.status for row in node.state.series_rows()] == [DONE]
    assert [len(series["Instances"]) for series in orthanc.series_of_modality("SEG")] == [1]


def test_pull_from_a_server_that_does_not_answer_is_one_line(tmp_path, ct_series, segmentation_model):
    from pacs import free_port

    config_path = write_node_config(tmp_path, segmentation_model, 'url = "http://127.0.0.1:9/dicom-web"')
    with open(config_path, "a") as config:
        config.write(f'\n[pull]\nurl = "http://127.0.0.1:{free_port()}/dicom-web"\n')
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "dltk2.node", "pull", "--config", str(config_path)],
                            capture_output=True, text=True, env=environment, timeout=300)
    assert result.returncode == 2
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "QIDO-RS search failed" in line and "127.0.0.1" in line
