"""Tests of data_scripts/download_IXI_HH.py against small IXI-like archives served on 127.0.0.1."""

import http.server
import io
import re
import tarfile
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import xlwt

import download_IXI_HH as downloader
from dltk2.io.image import read_image

SUBJECTS = {  # id -> (site, modalities present)
    "IXI012": ("HH", ("T1", "T2", "PD", "MRA")),
    "IXI013": ("HH", ("T1", "T2", "PD", "MRA")),
    "IXI014": ("HH", ("T1", "T2", "PD")),  # no MRA: left out
    "IXI002": ("Guys", ("T1", "T2", "PD", "MRA")),  # another hospital: left out
    "IXI099": ("HH", ("T1", "T2", "PD", "MRA")),  # no demographics: left out
}


def _nifti_bytes(seed: int) -> bytes:
    image = sitk.GetImageFromArray(np.random.default_rng(seed).integers(0, 900, (12, 16, 14)).astype(np.int16))
    image.SetSpacing((0.9375, 0.9375, 1.2))
    image.SetOrigin((10.0, -20.0, 30.0))
    path = Path(f"/tmp/ixi_test_{seed}.nii.gz")
    sitk.WriteImage(image, str(path))
    data = path.read_bytes()
    path.unlink()
    return data


def _archives(tmp_path: Path) -> Path:
    served = tmp_path / "served"
    served.mkdir()
    for modality in downloader.MODALITIES:
        with tarfile.open(served / f"IXI-{modality}.tar", "w") as tar:
            for index, (subject, (site, present)) in enumerate(SUBJECTS.items()):
                if modality in present:
                    data = _nifti_bytes(index)
                    info = tarfile.TarInfo(f"{subject}-{site}-{1000 + index}-{modality}.nii.gz")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    book = xlwt.Workbook()
    sheet = book.add_sheet("Table")
    for column, name in enumerate(downloader.CSV_COLUMNS):
        sheet.write(0, column, name)
    rows = [(12, 1, 35.5), (13, 2, 61.2), (13, 2, 61.2), (14, 1, 44.0), (2, 2, 30.1)]  # IXI013 twice, as in IXI.xls
    for row, (number, sex, age) in enumerate(rows, start=1):
        values = [number, sex, 170, 70, 1, 2, 1, 5, "1970-01-01", 1, "2005-06-01", age]
        for column, value in enumerate(values):
            sheet.write(row, column, value)
    book.save(str(served / "IXI.xls"))
    return served


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP Range support and records the Range headers it saw."""

    seen_ranges: list = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        header = self.headers.get("Range")
        type(self).seen_ranges.append((path.name, header))
        if header:
            start = int(re.fullmatch(r"bytes=(\d+)-", header).group(1))
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            data = data[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server(tmp_path):
    served = _archives(tmp_path)
    handler = lambda *args, **kwargs: RangeHandler(*args, directory=str(served), **kwargs)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    RangeHandler.seen_ranges = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", served
    httpd.shutdown()


def test_download_prepares_hh_subjects_with_all_modalities(server, tmp_path):
    url, served = server
    output = tmp_path / "IXI_HH"
    csv_path = downloader.prepare(output, url, [1.0, 2.0])
    table = pd.read_csv(csv_path)
    assert list(table.columns) == downloader.CSV_COLUMNS
    assert table["IXI_ID"].tolist() == ["IXI012", "IXI013"]
    assert table["AGE"].tolist() == [35.5, 61.2]
    for subject in ["IXI012", "IXI013"]:
        for spacing in (1, 2):
            image = read_image(output / f"{spacing}mm" / subject / f"T1_{spacing}mm.nii.gz")
            assert image.GetSpacing() == pytest.approx((spacing,) * 3)
            assert image.GetOrigin() == pytest.approx((10.0, -20.0, 30.0))
    two_mm = read_image(output / "2mm" / "IXI012" / "T1_2mm.nii.gz")
    assert two_mm.GetSize() == (round(14 * 0.9375 / 2), round(16 * 0.9375 / 2), round(12 * 1.2 / 2))
    assert not (output / "downloads").exists()


def test_broken_download_resumes_with_a_range_request(server, tmp_path):
    url, served = server
    destination = tmp_path / "IXI-T1.tar"
    whole = (served / "IXI-T1.tar").read_bytes()
    Path(str(destination) + ".part").write_bytes(whole[:1000])
    downloader.download(url + "IXI-T1.tar", destination)
    assert destination.read_bytes() == whole
    assert ("IXI-T1.tar", "bytes=1000-") in RangeHandler.seen_ranges
    assert not Path(str(destination) + ".part").exists()


def test_missing_file_is_a_clear_error(server, tmp_path):
    url, _ = server
    with pytest.raises(downloader.DownloadError, match=r"IXI-DTI\.tar: HTTP 404"):
        downloader.download(url + "IXI-DTI.tar", tmp_path / "IXI-DTI.tar")
    assert not (tmp_path / "IXI-DTI.tar").exists()
