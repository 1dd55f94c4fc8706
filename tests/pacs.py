"""The node tests' peers and inputs: a real Orthanc, a CT phantom, a node configuration."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ORTHANC = shutil.which("Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
NODE_AE, SENDER_AE, PACS_AE = "DLTK2", "CT01", "ORTHANC"
CLASS_NAMES = ["background", "soft_tissue", "bone"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ct_image(slices: int = 6, size: int = 16) -> sitk.Image:
    """Air around a soft-tissue block (0 HU) holding a bone block (700 HU); 2 mm voxels."""
    array = np.full((slices, size, size), -1000.0, np.float32)
    array[1:-1, 3:-3, 3:-3] = 0.0
    array[2:-2, 6:-6, 6:-6] = 700.0
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0, 2.0, 2.0))
    return image


class Orthanc:
    """A running Orthanc (its REST API at ``url``, DICOMweb at ``dicomweb``, DICOM at ``port``)."""

    def __init__(self, folder: Path, modalities: dict | None = None) -> None:
        self.http_port, self.port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.dicomweb = f"{self.url}/dicom-web"
        config = {"Name": "dltk2-test", "StorageDirectory": str(folder / "storage"),
                  "IndexDirectory": str(folder / "storage"), "HttpPort": self.http_port, "DicomPort": self.port,
                  "DicomAet": PACS_AE, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
                  "Plugins": [str(DICOMWEB_PLUGIN)], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
                  "DicomCheckCalledAet": False, "DicomModalities": modalities or {}, "StableAge": 1}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "orthanc.json").write_text(json.dumps(config))
        self.log = open(folder / "orthanc.log", "w")
        self.process = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=self.log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.get("/system")
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Orthanc did not start: {(folder / 'orthanc.log').read_text()[-2000:]}")
                time.sleep(0.1)

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            body = response.read()
        return json.loads(body) if response.headers.get_content_type() == "application/json" else body

    def upload(self, folder: Path) -> None:
        """Stores every file of ``folder`` through the REST API (as a PACS' own import would)."""
        for path in sorted(folder.iterdir()):
            request = urllib.request.Request(f"{self.url}/instances", data=path.read_bytes(), method="POST",
                                             headers={"Content-Type": "application/dicom"})
            urllib.request.urlopen(request, timeout=30).close()

    def series_of_modality(self, modality: str) -> list[dict]:
        return [series for series in self.get("/series?expand") if series["MainDicomTags"].get("Modality") == modality]

    def wait_for_modality(self, modality: str, timeout_s: float = 120.0) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while not (found := self.series_of_modality(modality)):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {modality} series reached Orthanc in {timeout_s:.0f} s")
            time.sleep(0.2)
        return found

    def stop(self) -> None:
        # Killed, not terminated: its storage is thrown away, and a clean stop takes 3.5 s.
        self.process.kill()
        self.process.wait(timeout=20)
        self.log.close()


def write_node_config(folder: Path, model_path: Path, destination: str, **settings) -> Path:
    """A ``node.toml`` in ``folder``: one CT rule reading ``model_path``; ``destination`` is TOML."""
    lines = [f'ae_title = "{NODE_AE}"', f"port = {settings.pop('port', free_port())}",
             f'allowed_ae_titles = ["{SENDER_AE}", "{PACS_AE}"]', f'spool = "{folder / "spool"}"',
             f"quiet_period_s = {settings.pop('quiet_period_s', 2)}"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    lines += ["", "[destination]", destination, "", "[[rule]]", f'model_path = "{model_path}"', 'modality = ["CT"]']
    path = folder / "node.toml"
    path.write_text("\n".join(lines) + "\n")
    return path
