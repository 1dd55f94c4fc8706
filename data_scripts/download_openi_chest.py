"""Downloads chest X-rays labelled normal or nodule from the Open-i service of the US National Library of Medicine.

Open-i indexes the Indiana University chest X-ray collection (``coll=cxr``: about 7,500 images of
3,900 reports, each report coded with MeSH terms). Its search API is paged::

    GET {base_url}/api/search?query=<q>&coll=cxr&m=<first>&n=<last>
    -> {"total": N, "list": [{"uid": "CXR123_IM-0001-1001", "imgLarge": "/imgs/512/...png",
                              "MeSH": {"major": [...], "minor": [...]}, ...}, ...]}

An image is ``normal`` when its report's major MeSH terms are exactly ``normal``, ``nodule`` when a
major term's heading (the part before the first ``/``) names a nodule ("Nodule/lung/upper lobe/left",
"Multiple Pulmonary Nodules"); any other image is skipped. The patient is the report (``CXR123``:
a report's frontal and lateral images belong to one patient). Writes::

    OUT/normal/<uid>.png, OUT/nodule/<uid>.png, OUT/metadata.json

the layout ``applications/chest_xray_nodule/prepare.py`` reads. Resumable: images already on disk and
in metadata.json are not fetched again, and metadata.json is rewritten (atomically) after every image.
Polite: at most one request every ``--delay`` seconds, a User-Agent that says who is asking, and
HTTP 429/5xx answers retried after their Retry-After (or a growing pause).

Example:
    python data_scripts/download_openi_chest.py --output_dir data/openi_chest --max_per_class 500
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import cv2
import numpy as np
from absl import app, flags

from dltk2.io.atomic import write_bytes_atomically

FLAGS = flags.FLAGS

DEFAULT_BASE_URL = "https://openi.nlm.nih.gov"
USER_AGENT = "dltk2-openi-chest-downloader/1.0 (research use; one request per second)"
CLASSES = ("normal", "nodule")


class DownloadError(RuntimeError):
    """A request failed after its retries, or returned something unusable."""


def classify(item: dict) -> str | None:
    """``normal``, ``nodule`` or None from a search result's major MeSH terms."""
    major = [str(term).strip().lower() for term in (item.get("MeSH") or {}).get("major") or []]
    if any("nodule" in term.split("/")[0] for term in major):
        return "nodule"
    if major and all(term == "normal" for term in major):
        return "normal"
    return None


def patient_of(uid: str) -> str:
    """The report an image belongs to: ``CXR123_IM-0001-1001`` -> ``CXR123``."""
    return uid.split("_")[0]


class OpeniClient:
    """HTTP GETs with a minimum interval between requests and retries of 429 and 5xx answers."""

    def __init__(self, base_url: str, delay: float = 1.0, retries: int = 4, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.delay, self.retries, self.timeout = delay, retries, timeout
        self._last = -float("inf")

    def get(self, path_and_query: str) -> bytes:
        url = self.base_url + path_and_query
        for attempt in range(self.retries + 1):
            time.sleep(max(0.0, self._last + self.delay - time.monotonic()))
            self._last = time.monotonic()
            request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return response.read()
            except urllib.error.HTTPError as error:
                if error.code != 429 and error.code < 500 or attempt == self.retries:
                    raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
                retry_after = error.headers.get("Retry-After")
                pause = float(retry_after) if retry_after and retry_after.isdigit() else self.delay * 2 ** attempt
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                if attempt == self.retries:
                    raise DownloadError(f"{url}: {getattr(error, 'reason', error)}") from None
                pause = self.delay * 2 ** attempt
            time.sleep(pause)
        raise AssertionError("unreachable")

    def search(self, query: str, first: int, last: int, collection: str = "cxr") -> dict:
        parameters = urllib.parse.urlencode({"query": query, "coll": collection, "m": first, "n": last})
        body = self.get(f"/api/search?{parameters}")
        try:
            return json.loads(body)
        except json.JSONDecodeError:
            raise DownloadError(f"{self.base_url}/api/search?{parameters}: not JSON") from None


def _load_metadata(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    return {record["name"]: record for record in json.loads(path.read_text())["images"]}


def _save_metadata(path: Path, records: dict[str, dict]) -> None:
    body = {"source": "Open-i (openi.nlm.nih.gov), Indiana University chest X-ray collection",
            "images": sorted(records.values(), key=lambda r: r["name"])}
    write_bytes_atomically(path, json.dumps(body, indent=1).encode())


def download(output_dir: str | Path, base_url: str = DEFAULT_BASE_URL, queries: tuple[str, ...] = CLASSES,
             max_per_class: int = 500, page_size: int = 30, delay: float = 1.0, retries: int = 4) -> dict:
    """Fetches up to ``max_per_class`` images of each class; returns counts and failures.

    Returns:
        ``{"normal": n, "nodule": n, "skipped": n, "failed": [(uid, reason), ...]}`` for this call
        (images already on disk count towards ``max_per_class`` and are not fetched again).
    """
    output_dir = Path(output_dir)
    metadata_path = output_dir / "metadata.json"
    records = _load_metadata(metadata_path)
    client = OpeniClient(base_url, delay, retries)
    have = {c: sum(1 for r in records.values() if r["class"] == c and (output_dir / c / f"{r['name']}.png").exists())
            for c in CLASSES}
    report = {"normal": 0, "nodule": 0, "skipped": 0, "failed": []}
    seen: set[str] = set()
    for query in queries:
        first = 1
        while min(have.values()) < max_per_class:
            page = client.search(query, first, first + page_size - 1)
            items = page.get("list") or []
            if not items:
                break
            for item in items:
                uid = str(item.get("uid", ""))
                label = classify(item)
                if not uid or uid in seen or label is None or have[label] >= max_per_class:
                    report["skipped"] += uid not in seen
                    seen.add(uid)
                    continue
                seen.add(uid)
                name = uid.replace("/", "_")
                target = output_dir / label / f"{name}.png"
                if target.exists() and name in records:
                    continue
                try:
                    data = client.get(str(item["imgLarge"]).split("?")[0])
                    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
                    if image is None:
                        raise DownloadError(f"{item['imgLarge']}: not an image ({len(data)} bytes)")
                except (DownloadError, KeyError) as error:
                    report["failed"].append((uid, str(error)))
                    continue
                ok, encoded = cv2.imencode(".png", image)  # JPEG or PNG in, lossless PNG out
                write_bytes_atomically(target, encoded.tobytes())
                records[name] = {"name": name, "uid": uid, "class": label, "patient": patient_of(uid),
                                 "mesh_major": (item.get("MeSH") or {}).get("major", []),
                                 "mesh_minor": (item.get("MeSH") or {}).get("minor", []),
                                 "image_url": base_url.rstrip("/") + str(item["imgLarge"])}
                _save_metadata(metadata_path, records)
                have[label] += 1
                report[label] += 1
            first += page_size
            if first > int(page.get("total", 0) or 0):
                break
    if not metadata_path.exists():
        _save_metadata(metadata_path, records)
    return report


def define_flags() -> None:
    flags.DEFINE_string("output_dir", None, "Folder to write normal/, nodule/ and metadata.json into.")
    flags.DEFINE_string("base_url", DEFAULT_BASE_URL, "Open-i's address (a mirror or a test server).")
    flags.DEFINE_list("queries", list(CLASSES), "Search terms; each result is classified by its MeSH terms.")
    flags.DEFINE_integer("max_per_class", 500, "Stop when each class has this many images.")
    flags.DEFINE_integer("page_size", 30, "Results per search request.")
    flags.DEFINE_float("delay", 1.0, "Minimum seconds between two requests.")
    flags.DEFINE_integer("retries", 4, "Retries of a request answered 429 or 5xx, or that failed to connect.")
    flags.mark_flag_as_required("output_dir")


def main(argv):
    del argv
    report = download(FLAGS.output_dir, FLAGS.base_url, tuple(FLAGS.queries), FLAGS.max_per_class,
                      FLAGS.page_size, FLAGS.delay, FLAGS.retries)
    print(f"downloaded {report['normal']} normal and {report['nodule']} nodule images to {FLAGS.output_dir} "
          f"({report['skipped']} results of other findings skipped)")
    for uid, reason in report["failed"]:
        print(f"failed: {uid}: {reason}")
    if report["failed"]:
        raise SystemExit(1)


if __name__ == "__main__":
    define_flags()
    app.run(main)
