"""Tests of dltk2.report: one self-contained page, and (where Chromium is installed) what a browser shows."""

import base64
import re

import cv2
import numpy as np
import pandas as pd
import pytest

from dltk2.report import HtmlReport, add_run_configuration
from helpers import CHROMIUM, NO_CHROMIUM, screenshot


def red_square(path):
    picture = np.zeros((120, 160, 3), np.uint8)
    picture[..., 2] = 255  # BGR: pure red
    cv2.imwrite(str(path), picture)
    return path


def test_the_page_embeds_its_pictures_and_escapes_its_text(tmp_path):
    report = HtmlReport("Deploy <test>", "model /m")
    report.add_table(pd.DataFrame({"organ": ["liver", "spleen"], "dice": [0.91234, np.nan]}), "Per organ")
    report.add_image(red_square(tmp_path / "red.png"), "a red square")
    report.add_image(tmp_path / "absent.png", "never drawn")
    report.add_json({"spacing_mm": [2.0, 2.0, 2.0], "note": "<b>"}, "Run configuration")
    page = report.write(tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "Deploy &lt;test&gt;" in page and "&quot;&lt;b&gt;&quot;" in page
    assert "<td>0.9123</td>" in page and "(absent.png was not written)" in page
    (data,) = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert base64.b64decode(data) == (tmp_path / "red.png").read_bytes()  # nothing outside the page is needed
    assert not re.search(r'(src|href)="(?!data:)', page)


def test_a_folder_without_a_run_configuration_says_so(tmp_path):
    report = HtmlReport("x")
    add_run_configuration(report, tmp_path)
    assert "run_config.json" in report.to_html()


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_headless_chromium_shows_the_page_with_its_pictures(tmp_path):
    report = HtmlReport("Synapse multi-organ CT segmentation: deploy")
    report.add_table(pd.DataFrame({"class": ["liver"], "dice": [0.9]}), "Per organ")
    report.add_image(red_square(tmp_path / "red.png"), "overlay")
    page = report.write(tmp_path / "report.html")
    picture = screenshot(page, tmp_path / "shot.png", 1000, 800)
    assert picture.shape[:2] == (800, 1000)
    red = (picture[..., 2] > 200) & (picture[..., 1] < 60) & (picture[..., 0] < 60)
    assert red.sum() >= 0.9 * 120 * 160  # the embedded picture, drawn at its size
    dark = picture.mean(axis=-1) < 100
    assert dark[:150].sum() > 200  # the heading's and the table's text above it
