"""node.toml: what it says, and one line naming the file and the key for each mistake."""

from __future__ import annotations

import pytest

from dltk2.errors import DataError
from dltk2.node.config import load_config

VALID = """
ae_title = "DLTK2"
port = 11112
allowed_ae_titles = ["CT01", "orthanc"]
spool = "spool"
quiet_period_s = 5

[destination]
host = "127.0.0.1"
port = 4242
ae_title = "ORTHANC"

[pull]
url = "http://127.0.0.1:8042/dicom-web/"

[[rule]]
model_path = "models/seg"
modality = ["ct"]
series_description = "(?i)abd"

[[rule]]
model_path = "./models/seg"
"""


def write(tmp_path, text):
    (tmp_path / "models" / "seg").mkdir(parents=True, exist_ok=True)
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def test_a_configuration_reads_with_paths_beside_it(tmp_path):
    config = load_config(write(tmp_path, VALID))
    assert config.spool == tmp_path / "spool" and config.state_database == f"sqlite:///{tmp_path / 'spool' / 'state.db'}"
    assert config.allowed_ae_titles == ("CT01", "orthanc")  # AE titles are case-sensitive
    assert config.destination.kind == "c-store" and config.destination.describe() == "ORTHANC@127.0.0.1:4242"
    assert config.pull_url == "http://127.0.0.1:8042/dicom-web"
    first, second = config.rules
    assert first.model_path == tmp_path / "models" / "seg" and first.modality == ("CT",)
    assert first.matches("CT", "ABDOMEN", "Abdomen 5mm") and not first.matches("CT", "", "Head")
    assert not first.matches("MR", "", "Abdomen") and second.matches("MR", "", "anything")
    assert config.tls is None and config.quiet_period_s == 5


@pytest.mark.parametrize("change, message", [
    (("spool = \"spool\"\n", ""), "spool (the folder of received instances) is required"),
    (('model_path = "./models/seg"', 'model_path = "models/none"'), "rule 2: model_path"),
    (('series_description = "(?i)abd"', 'series_description = "(abd"'), "rule 1: series_description '(abd'"),
    (('ae_title = "DLTK2"', 'ae_title = "A_VERY_LONG_AE_TITLE"'), "ae_title: 'A_VERY_LONG_AE_TITLE' is not an AE title"),
    (("port = 4242\n", ""), "[destination] needs url (STOW-RS) or port and ae_title"),
    (("quiet_period_s = 5", "quiet_period_s = -1"), "quiet_period_s must be a number >= 0"),
    (('modality = ["ct"]', "modality = [1]"), "rule 1: modality must be a list of strings"),
    (("[pull]", "[pull"), "not a TOML file"),
    (('allowed_ae_titles = ["CT01", "orthanc"]', "allowed_ae_titles = []"), "allowed_ae_titles (the calling AE"),
])
def test_each_mistake_is_one_line_naming_the_file(tmp_path, change, message):
    path = write(tmp_path, VALID.replace(*change))
    with pytest.raises(DataError) as error:
        load_config(path)
    assert str(error.value).startswith(str(path)) and message in str(error.value)
    assert "\n" not in str(error.value)


def test_tls_files_must_exist(tmp_path):
    path = write(tmp_path, VALID + '\n[tls]\ncertificate = "node.crt"\nkey = "node.key"\n')
    with pytest.raises(DataError, match=r"\[tls\] certificate .*node.crt' is not a file"):
        load_config(path)
    (tmp_path / "node.crt").write_text("x")
    (tmp_path / "node.key").write_text("x")
    tls = load_config(path).tls
    assert tls.certificate == tmp_path / "node.crt" and tls.ca is None


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(DataError, match="cannot read the node configuration"):
        load_config(tmp_path / "absent.toml")
