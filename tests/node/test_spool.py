"""The spool: UIDs as names only, no temporary left, and files a kill left unrecorded recovered at start."""

from __future__ import annotations

import pydicom
import pytest
from pacs import write_node_config

from dltk2.node.config import load_config
from dltk2.node.server import Node
from dltk2.node.spool import Spool, is_uid
from dltk2.node.state import RECEIVING


def test_names_are_uids_and_writes_leave_no_temporary(tmp_path):
    spool = Spool(tmp_path)
    assert is_uid("1.2.840.10008.5.1.4.1.1.2") and not is_uid("../1.2") and not is_uid("1." + "2" * 70)
    with pytest.raises(ValueError, match="not UIDs"):
        spool.store("1.2", "../../etc/passwd", b"x")
    relative = spool.store("1.2.3", "1.2.3.4", b"DICM")
    assert (tmp_path / relative).read_bytes() == b"DICM" and relative == "instances/1.2.3/1.2.3.4.dcm"
    assert not list(tmp_path.rglob("*.tmp"))
    (tmp_path / "instances" / "1.2.3" / ".1.2.3.5.dcm.abc.tmp").write_bytes(b"half")
    assert spool.remove_temporaries() == 1 and spool.instance_files() == [tmp_path / relative]


def test_a_file_spooled_but_not_recorded_is_recovered_once(tmp_path, ct_series, segmentation_model):
    node = Node(load_config(write_node_config(tmp_path, segmentation_model, 'url = "http://127.0.0.1:9"')))
    path = next(ct_series.iterdir())
    dataset = pydicom.dcmread(path)
    # Killed after the rename, before the row's commit: the file is there, the database does not know it.
    node.spool.store(str(dataset.SeriesInstanceUID), str(dataset.SOPInstanceUID), path.read_bytes())
    assert node.state.instance_count() == 0
    assert node.recover() == 1 and node.recover() == 0
    assert node.state.has_instance(str(dataset.SOPInstanceUID))
    assert node.state.status_of(str(dataset.SeriesInstanceUID)) == RECEIVING  # complete after the quiet period
