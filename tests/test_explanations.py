import numpy as np
import SimpleITK as sitk

from dltk2.explanations import PositiveCases, add_explanations, write_explanation
from dltk2.io.image import ImageGeometry
from dltk2.report import HtmlReport


def test_a_3d_map_is_written_as_nifti_on_the_scans_own_grid(tmp_path):
    volume = np.random.default_rng(0).normal(size=(5, 6, 7)).astype(np.float32)
    saliency = np.zeros_like(volume)
    saliency[2, 3, 4] = 1.0
    geometry = ImageGeometry(size=(7, 6, 5), spacing=(0.9, 1.1, 3.0), origin=(10.0, -20.0, 5.0),
                             direction=(0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    explanation = write_explanation(tmp_path, "IXI 012/a", volume, saliency, geometry, "IXI012: predicted F")
    assert explanation.saliency_map == tmp_path / "saliency" / "IXI_012_a_saliency.nii.gz"
    written = sitk.ReadImage(str(explanation.saliency_map))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), saliency)
    np.testing.assert_allclose(written.GetSpacing(), geometry.spacing, rtol=1e-6)  # NIfTI keeps float32
    np.testing.assert_allclose(written.GetOrigin(), geometry.origin, atol=1e-5)
    np.testing.assert_allclose(written.GetDirection(), geometry.direction, atol=1e-6)
    assert explanation.overlay.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "saliency").glob("*.tmp"))


def test_only_the_first_positive_cases_are_explained_and_reported(tmp_path):
    class Classifier:
        def serving_functions(self):
            return {"serving_default": None, "explain": None}

        def explain(self, image):
            return {"saliency": image / image.max()}

    cases = PositiveCases(tmp_path, 2, ["normal", "nodule"])
    image = np.arange(1.0, 13.0, dtype=np.float32).reshape(3, 4)
    taken = [cases.offer(Classifier(), f"case{i}", image, {"class_id": cls, "probabilities": [0.3, 0.7]}, label=1)
             for i, cls in enumerate([0, 1, 1, 1])]
    assert [t is not None for t in taken] == [False, True, True, False]
    assert cases.explanations[0].caption == "case1: predicted nodule (0.70), true nodule"
    np.testing.assert_allclose(np.load(cases.explanations[0].saliency_map), image / 12.0)
    report = HtmlReport("deploy")
    add_explanations(report, cases.explanations)
    page = report.to_html()
    assert "Where the model looked" in page and page.count("data:image/png;base64,") == 2
    assert "case2_saliency.npy" in page

    class Ensemble(Classifier):
        def serving_functions(self):
            return {"serving_default": None}

    assert PositiveCases(tmp_path, 2, ["normal", "nodule"]).offer(Ensemble(), "c", image, {"class_id": 1}) is None
