"""The node with real peers: DCMTK's storescu sends, Orthanc receives the SEG; refusals, duplicates, a kill."""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pacs import NODE_AE, PACS_AE, SENDER_AE, Orthanc, ct_image, write_node_config
from helpers import assert_valid_dicom

from dltk2.node.config import load_config
from dltk2.node.server import CANNOT_UNDERSTAND, DOES_NOT_MATCH, Node
from dltk2.node.state import DONE

STORESCU = shutil.which("storescu")
REPO = Path(__file__).resolve().parents[2]
PATIENT = ("Phantom", "PHANTOM01")  # make_dicom_series' patient: must never reach a log


def needs_storescu():
    if STORESCU is None:
        pytest.skip("DCMTK's storescu (Debian package dcmtk) is not installed; .ci/run installs it where it is root")


def storescu(port: int, *paths: Path, calling: str = SENDER_AE) -> subprocess.CompletedProcess:
    return subprocess.run([STORESCU, "-aet", calling, "-aec", NODE_AE, "+sd", "+r", "127.0.0.1", str(port),
                           *map(str, paths)], capture_output=True, text=True, timeout=120)


@pytest.fixture
def running_nodes():
    nodes = []

    def start(config_path: Path) -> Node:
        node = Node(load_config(config_path))
        node.start()
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()


def wait_until(condition, timeout_s: float = 60.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen in {timeout_s:.0f} s")
        time.sleep(0.1)
    return value


def c_store_destination(orthanc: Orthanc) -> str:
    return f'host = "127.0.0.1"\nport = {orthanc.port}\nae_title = "{PACS_AE}"'


def assert_seg_of(orthanc: Orthanc, source: Path, tmp_path: Path) -> pydicom.Dataset:
    """The one SEG in Orthanc references every slice of ``source``, labels both classes, and validates."""
    [series] = orthanc.wait_for_modality("SEG")
    [instance] = series["Instances"]
    path = tmp_path / "seg.dcm"
    path.write_bytes(orthanc.get(f"/instances/{instance}/file"))
    seg = pydicom.dcmread(path)
    sources = {pydicom.dcmread(file).SOPInstanceUID for file in source.iterdir()}
    [referenced] = seg.ReferencedSeriesSequence
    assert referenced.SeriesInstanceUID == pydicom.dcmread(next(source.iterdir())).SeriesInstanceUID
    assert {item.ReferencedSOPInstanceUID for item in referenced.ReferencedInstanceSequence} == sources
    assert [item.SegmentLabel for item in seg.SegmentSequence] == ["soft tissue", "bone"]
    assert_valid_dicom(path, inherited=("Study ID",))
    return seg


@pytest.mark.parametrize("kind", ["c-store", "stow-rs"])
def test_storescu_series_becomes_a_seg_in_orthanc(tmp_path, orthanc, ct_series, segmentation_model, running_nodes,
                                                  caplog, kind):
    needs_storescu()
    caplog.set_level(logging.INFO, logger="dltk2.node")
    destination = c_store_destination(orthanc) if kind == "c-store" else f'url = "{orthanc.dicomweb}"'
    node = running_nodes(write_node_config(tmp_path, segmentation_model, destination))
    sent = storescu(node.config.port, ct_series)
    assert sent.returncode == 0, sent.stderr
    seg = assert_seg_of(orthanc, ct_series, tmp_path)
    # The labels are the tissue the phantom holds (same 2 mm grid, a 1x1x1 model): soft tissue on 4 slices
    # of 10x10 less the 2 slices of 4x4 bone, which is segment 2.
    segments = [frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber
                for frame in seg.PerFrameFunctionalGroupsSequence]
    pixels = seg.pixel_array.reshape(len(segments), -1).sum(axis=1)
    assert {number: int(pixels[np.asarray(segments) == number].sum()) for number in (1, 2)} == {1: 368, 2: 32}
    assert [row.status for row in node.state.series_rows()] == [DONE]
    # The SEG can reach Orthanc a moment before the node has logged its send.
    wait_until(lambda: "released" in caplog.text and "sent to" in caplog.text, 30, "the release's and send's lines")
    log = caplog.text
    assert not any(identifier in log for identifier in PATIENT), "a patient identifier reached the log"


def test_unknown_ae_and_malformed_datasets_are_refused_and_the_node_serves_on(tmp_path, orthanc, ct_series,
                                                                             segmentation_model, running_nodes,
                                                                             caplog):
    from pynetdicom import AE, _config
    from pynetdicom.sop_class import CTImageStorage

    caplog.set_level(logging.INFO, logger="dltk2.node")
    node = running_nodes(write_node_config(tmp_path, segmentation_model, c_store_destination(orthanc)))
    port = node.config.port

    intruder = AE(ae_title="INTRUDER")
    intruder.add_requested_context(CTImageStorage)
    association = intruder.associate("127.0.0.1", port, ae_title=NODE_AE)
    assert association.is_rejected and not association.is_established
    wait_until(lambda: "refused an association from AE 'INTRUDER'" in caplog.text, 30, "the refusal's log line")

    sender = AE(ae_title=SENDER_AE)
    sender.add_requested_context(CTImageStorage, pydicom.uid.ExplicitVRLittleEndian)
    good = pydicom.dcmread(next(ct_series.iterdir()))
    without_series = pydicom.dcmread(next(ct_series.iterdir()))
    without_series.SOPInstanceUID = without_series.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    del without_series.SeriesInstanceUID
    # A file whose meta header is right and whose dataset does not decode (Rows, US, of 3 bytes).
    undecodable = tmp_path / "undecodable.dcm"
    meta = pydicom.dcmread(next(ct_series.iterdir())).file_meta
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    header = pydicom.Dataset()
    header.file_meta, header.SOPClassUID, header.SOPInstanceUID = meta, meta.MediaStorageSOPClassUID, \
        meta.MediaStorageSOPInstanceUID
    stream = io.BytesIO()
    header.save_as(stream, enforce_file_format=True)
    undecodable.write_bytes(stream.getvalue() + b"\x28\x00\x10\x00US\x03\x00abc")

    association = sender.associate("127.0.0.1", port, ae_title=NODE_AE)
    assert association.is_established
    assert association.send_c_store(without_series).Status == DOES_NOT_MATCH
    _config.STORE_SEND_CHUNKED_DATASET = True  # send the file's bytes as they are, undecoded
    try:
        assert association.send_c_store(undecodable).Status == CANNOT_UNDERSTAND
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False
    assert association.send_c_store(good).Status == 0x0000
    assert association.send_c_store(good).Status == 0x0000  # a duplicate: success, stored once
    association.release()
    assert "status 0xA900" in caplog.text and "status 0xC210" in caplog.text
    assert "already stored, kept once" in caplog.text
    assert node.state.instance_count() == 1
    assert len(list(node.spool.series_folder(str(good.SeriesInstanceUID)).glob("*.dcm"))) == 1

    if STORESCU is not None:  # the node still serves: a C-ECHO, the whole series, the one slice again among it
        echo = subprocess.run(["echoscu", "-aet", SENDER_AE, "-aec", NODE_AE, "127.0.0.1", str(port)],
                              capture_output=True, text=True, timeout=60)
        assert echo.returncode == 0, echo.stderr
        assert storescu(port, ct_series).returncode == 0
        assert_seg_of(orthanc, ct_series, tmp_path)
        assert node.state.instance_count() == len(list(ct_series.iterdir()))


def _node_process(config: Path, log: Path) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "dltk2.node", "serve", "--config", str(config), "--log_file",
                             str(log)], env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def _wait_listening(log: Path, process: subprocess.Popen, starts: int = 1) -> None:
    """Until the log says the ``starts``-th start listens (or the process ended)."""
    wait_until(lambda: process.poll() is not None or (log.exists() and log.read_text().count("listening on") >= starts),
               120, "the node's start")
    assert process.poll() is None, log.read_text()


def seg_references(orthanc: Orthanc) -> list[set[str]]:
    """The source SOP Instance UIDs each SEG in Orthanc references."""
    found = []
    for series in orthanc.series_of_modality("SEG"):
        for instance in series["Instances"]:
            seg = pydicom.dcmread(io.BytesIO(orthanc.get(f"/instances/{instance}/file")), stop_before_pixels=True)
            found.append({item.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence[0]
                          .ReferencedInstanceSequence})
    return found


def test_a_node_killed_mid_association_loses_no_acknowledged_instance(tmp_path, orthanc, segmentation_model):
    """SIGKILL with half a series acknowledged and the association still open: the restarted node
    has that half and processes it after the quiet period (no release ever came); the sender then
    resends the whole series, the first half is kept once, and the grown series gets a second SEG."""
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    import make_dicom_series

    series = tmp_path / "ct"
    make_dicom_series.write_series(ct_image(slices=8), series)
    files = sorted(series.iterdir(), key=lambda path: pydicom.dcmread(path).InstanceNumber)  # slice order
    uids = [str(pydicom.dcmread(path).SOPInstanceUID) for path in files]
    config = write_node_config(tmp_path, segmentation_model, c_store_destination(orthanc), quiet_period_s=2)
    port = load_config(config).port
    log = tmp_path / "node.log"
    process = _node_process(config, log)
    try:
        _wait_listening(log, process)
        sender = AE(ae_title=SENDER_AE)
        sender.add_requested_context(CTImageStorage, pydicom.uid.ExplicitVRLittleEndian)
        association = sender.associate("127.0.0.1", port, ae_title=NODE_AE)
        assert association.is_established
        for path in files[:4]:
            assert association.send_c_store(pydicom.dcmread(path)).Status == 0x0000
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        association.abort()
        process = _node_process(config, log)
        _wait_listening(log, process, starts=2)
        state = Node(load_config(config)).state  # a second reader of the restarted node's database
        assert all(state.has_instance(uid) for uid in uids[:4]) and state.instance_count() == 4
        wait_until(lambda: seg_references(orthanc) == [set(uids[:4])], 120, "the SEG of the acknowledged half")
        association = sender.associate("127.0.0.1", port, ae_title=NODE_AE)
        for path in files:  # the sender resends what it cannot know arrived
            assert association.send_c_store(pydicom.dcmread(path)).Status == 0x0000
        association.release()
        wait_until(lambda: sorted(map(len, seg_references(orthanc))) == [4, 8], 120, "the grown series' SEG")
        assert state.instance_count() == len(files)
        wait_until(lambda: [row.status for row in state.series_rows()] == [DONE], 60, "the series' processing")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert process.returncode == 0
    text = log.read_text()
    assert text.count("already stored, kept once") == 4
    assert not any(identifier in text for identifier in PATIENT), "a patient identifier reached the log"


def test_several_storescu_at_once_store_every_instance_exactly_once(tmp_path, orthanc, segmentation_model,
                                                                   running_nodes):
    """Four series from four storescu processes at once, and two more sending one of them again."""
    import make_dicom_series

    needs_storescu()
    folders = []
    for number in range(4):
        folder = tmp_path / f"ct{number}"
        make_dicom_series.write_series(ct_image(slices=5 + number), folder, seed=number)
        folders.append(folder)
    node = running_nodes(write_node_config(tmp_path, segmentation_model, c_store_destination(orthanc)))
    senders = [subprocess.Popen([STORESCU, "-aet", SENDER_AE, "-aec", NODE_AE, "+sd", "127.0.0.1",
                                 str(node.config.port), str(folder)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
               for folder in [*folders, folders[0], folders[0]]]
    for sender in senders:
        assert sender.wait(timeout=120) == 0, sender.stdout.read()
    expected = {str(pydicom.dcmread(path).SOPInstanceUID) for folder in folders for path in folder.iterdir()}
    assert node.state.instance_count() == len(expected)
    spooled = {path.stem for path in (node.spool.root / "instances").glob("*/*.dcm")}
    assert spooled == expected
    wait_until(lambda: len(orthanc.series_of_modality("SEG")) == 4 and
               all(row.status == DONE for row in node.state.series_rows()), 120, "four SEGs")
    assert len(node.state.series_rows()) == 4


def test_orthanc_moves_a_series_to_the_node_and_findscu_finds_its_seg(tmp_path, ct_series, segmentation_model,
                                                                      running_nodes):
    """The PACS workflow with DCMTK's other clients: movescu asks Orthanc to C-MOVE the CT to the
    node, the node C-STOREs the SEG back, and findscu's C-FIND on Orthanc lists it in the study."""
    from pacs import DICOMWEB_PLUGIN, ORTHANC, free_port

    needs_storescu()
    if ORTHANC is None or not DICOMWEB_PLUGIN.is_file() or not shutil.which("movescu"):
        pytest.skip("Orthanc and DCMTK's movescu/findscu (Debian packages orthanc, orthanc-dicomweb, dcmtk) are "
                    "not installed; .ci/run installs them where it is root")
    node_port = free_port()
    orthanc = Orthanc(tmp_path / "orthanc", modalities={"dltk2": [NODE_AE, "127.0.0.1", node_port],
                                                        "ct01": [SENDER_AE, "127.0.0.1", 104]})
    try:
        orthanc.upload(ct_series)
        source = pydicom.dcmread(next(ct_series.iterdir()))
        running_nodes(write_node_config(tmp_path, segmentation_model, c_store_destination(orthanc), port=node_port))
        query = ["-S", "-aet", SENDER_AE, "-aec", PACS_AE, "-k", "QueryRetrieveLevel=SERIES",
                 "-k", f"StudyInstanceUID={source.StudyInstanceUID}"]
        moved = subprocess.run(["movescu", *query, "-aem", NODE_AE, "-k", f"SeriesInstanceUID={source.SeriesInstanceUID}",
                                "127.0.0.1", str(orthanc.port)], capture_output=True, text=True, timeout=120)
        assert moved.returncode == 0, moved.stderr
        assert_seg_of(orthanc, ct_series, tmp_path)
        found = subprocess.run(["findscu", *query, "-k", "Modality", "-k", "SeriesInstanceUID", "127.0.0.1",
                                str(orthanc.port)], capture_output=True, text=True, timeout=120)
        assert found.returncode == 0, found.stderr
        modalities = re.findall(r"\(0008,0060\) CS \[(\w+) ?\]", found.stdout + found.stderr)
        assert sorted(modalities) == ["CT", "SEG"], found.stderr
    finally:
        orthanc.stop()
