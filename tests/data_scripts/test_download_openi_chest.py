"""Tests of data_scripts/download_openi_chest.py against an Open-i-like API served on 127.0.0.1."""

import http.server
import json
import threading
import urllib.parse

import cv2
import numpy as np
import pytest

import download_openi_chest as downloader

ITEMS = [  # uid, major MeSH terms -> expected class
    ("CXR1_IM-0001-1001", ["normal"], "normal"),
    ("CXR1_IM-0001-2001", ["normal"], "normal"),  # the lateral of the same report: same patient
    ("CXR2_IM-0002-1001", ["Nodule/lung/upper lobe/left"], "nodule"),
    ("CXR3_IM-0003-1001", ["Cardiomegaly/mild"], None),
    ("CXR4_IM-0004-1001", ["Multiple Pulmonary Nodules", "Granuloma"], "nodule"),
    ("CXR5_IM-0005-1001", ["normal"], "normal"),
    ("CXR6_IM-0006-1001", ["Nodule/lung/base/right"], "nodule"),
    ("CXR7_IM-0007-1001", ["normal", "Opacity"], None),
]


class OpenI(http.server.BaseHTTPRequestHandler):
    requests: list = []
    fail_once: set = set()

    def log_message(self, *args):
        pass

    def do_GET(self):
        OpenI.requests.append(self.path)
        url = urllib.parse.urlparse(self.path)
        if url.path == "/api/search":
            query = urllib.parse.parse_qs(url.query)
            assert query["coll"] == ["cxr"]
            first, last = int(query["m"][0]), int(query["n"][0])
            items = [{"uid": uid, "imgLarge": f"/imgs/512/{uid}.png?keywords=x", "MeSH": {"major": major, "minor": []}}
                     for uid, major, _ in ITEMS[first - 1:last]]
            return self._send(json.dumps({"total": len(ITEMS), "list": items}).encode(), "application/json")
        uid = url.path.rsplit("/", 1)[-1][:-4]
        if url.path in OpenI.fail_once:
            OpenI.fail_once.discard(url.path)
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.end_headers()
            return
        if uid == "CXR6_IM-0006-1001":
            return self._send(b"<html>maintenance</html>", "text/html")  # not an image
        image = np.full((24, 20), 10 * (1 + [u for u, _, _ in ITEMS].index(uid)), np.uint8)
        return self._send(cv2.imencode(".png", image)[1].tobytes(), "image/png")

    def _send(self, body, content_type):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    OpenI.requests = []
    OpenI.fail_once = {"/imgs/512/CXR2_IM-0002-1001.png"}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OpenI)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_classification_by_major_mesh_terms():
    for uid, major, expected in ITEMS:
        assert downloader.classify({"uid": uid, "MeSH": {"major": major}}) == expected
    assert downloader.classify({"uid": "x"}) is None
    assert downloader.patient_of("CXR1_IM-0001-2001") == "CXR1"


def test_download_writes_the_layout_resumes_and_retries(server, tmp_path):
    report = downloader.download(tmp_path, server, queries=("chest",), max_per_class=2, page_size=3, delay=0.0)
    assert (report["normal"], report["nodule"]) == (2, 2)
    assert report["failed"] == []
    metadata = {r["name"]: r for r in json.loads((tmp_path / "metadata.json").read_text())["images"]}
    assert sorted(metadata) == ["CXR1_IM-0001-1001", "CXR1_IM-0001-2001", "CXR2_IM-0002-1001", "CXR4_IM-0004-1001"]
    assert metadata["CXR1_IM-0001-2001"]["patient"] == "CXR1" and metadata["CXR2_IM-0002-1001"]["class"] == "nodule"
    assert metadata["CXR4_IM-0004-1001"]["mesh_major"] == ["Multiple Pulmonary Nodules", "Granuloma"]
    image = cv2.imread(str(tmp_path / "nodule" / "CXR2_IM-0002-1001.png"), cv2.IMREAD_UNCHANGED)
    assert image.shape == (24, 20) and int(image[0, 0]) == 30
    assert OpenI.requests.count("/imgs/512/CXR2_IM-0002-1001.png") == 2  # a 503, then the retry
    assert not any(path.startswith("/imgs/512/CXR3") for path in OpenI.requests)  # other findings: not fetched

    # A second run with a larger limit fetches only what is new; the HTML page is a failure, not a file.
    OpenI.requests = []
    report = downloader.download(tmp_path, server, queries=("chest",), max_per_class=5, page_size=3, delay=0.0)
    fetched = [path for path in OpenI.requests if path.startswith("/imgs/")]
    assert sorted(fetched) == ["/imgs/512/CXR5_IM-0005-1001.png", "/imgs/512/CXR6_IM-0006-1001.png"]
    assert (report["normal"], report["nodule"]) == (1, 0)
    assert [uid for uid, _ in report["failed"]] == ["CXR6_IM-0006-1001"] and "not an image" in report["failed"][0][1]
    assert not (tmp_path / "nodule" / "CXR6_IM-0006-1001.png").exists()
    assert len(json.loads((tmp_path / "metadata.json").read_text())["images"]) == 5
    assert not list(tmp_path.rglob("*.tmp"))


def test_requests_are_spaced_by_the_delay(server, tmp_path):
    import time

    started = time.monotonic()
    downloader.download(tmp_path, server, queries=("chest",), max_per_class=1, page_size=2, delay=0.2)
    requests = len(OpenI.requests)
    assert requests >= 3 and time.monotonic() - started >= 0.2 * (requests - 1)


def test_an_unreachable_server_is_one_clear_error(tmp_path):
    with pytest.raises(downloader.DownloadError, match="127.0.0.1:9/api/search"):
        downloader.download(tmp_path, "http://127.0.0.1:9", queries=("chest",), delay=0.0, retries=1)
