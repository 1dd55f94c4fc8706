"""Tests of dltk2.inference.SlidingWindowSegmenter: the graph equals the SimpleITK pipeline, on the input grid.

The model is an exact nearest-intensity classifier (a 1x1x1 convolution whose logits are
``2 c_k x - c_k^2``, which orders the classes as ``-(x - c_k)^2`` does), so every label the segmenter
returns can be reproduced with SimpleITK and numpy alone.
"""

import keras
import numpy as np
import pytest
import SimpleITK as sitk

from dltk2.apps.segmentation import segment_case, segment_cases, summary_table
from dltk2.datasets.synapse import HU_WINDOW, preprocess_image
from dltk2.errors import DataError
from dltk2.export import call_signature, export_predictor, read_warmup_requests
from dltk2.inference import SlidingWindowSegmenter
from dltk2.io.image import read_image
from dltk2.preprocessing import resample_to_reference

CLASS_HU = np.array([-1000.0, -100.0, 60.0, 250.0, 700.0])  # background and four "organs"


def scaled(hu):
    low, high = HU_WINDOW
    return (np.clip(hu, low, high) - low) / (high - low) * 2.0 - 1.0


def nearest_intensity_model() -> keras.Model:
    centres = scaled(CLASS_HU)
    inputs = keras.Input((None, None, None, 1))
    conv = keras.layers.Conv3D(len(centres), 1, name="nearest_centre")
    outputs = conv(inputs)
    conv.set_weights([(2.0 * centres).reshape(1, 1, 1, 1, -1).astype(np.float32),
                      (-(centres ** 2)).astype(np.float32)])
    return keras.Model(inputs, outputs)


def nearest_centre(values):
    centres = scaled(CLASS_HU)
    return np.argmin(np.abs(values[..., None] - centres), axis=-1)


@pytest.fixture
def phantom(rng):
    """An oblique, anisotropic CT-like volume (HU) with four blocks of classes 1-4 and its labels."""
    labels = np.zeros((9, 40, 36), np.uint8)  # (z, y, x) at 0.77 x 0.71 x 2.9 mm
    labels[2:7, 5:20, 4:16] = 1
    labels[2:8, 22:35, 4:16] = 2
    labels[1:5, 5:35, 20:32] = 3
    labels[5:8, 10:30, 22:30] = 4
    image = sitk.GetImageFromArray((CLASS_HU[labels] + rng.normal(0, 5, labels.shape)).astype(np.float32))
    # No input voxel lies exactly half-way between two 2 mm voxels: with an oblique direction ITK's
    # own rounding decides such ties either way (3 mm gives 1.5 exactly), the graph's up.
    image.SetSpacing((0.77, 0.71, 2.9))
    image.SetOrigin((-180.5, 22.25, -310.0))
    angle = np.deg2rad(25.0)
    direction = np.array([[np.cos(angle), 0, -np.sin(angle)], [0, 1, 0], [np.sin(angle), 0, np.cos(angle)]])
    image.SetDirection(direction.flatten().tolist())
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(image)
    return image, label_image


def simpleitk_reference(image: sitk.Image) -> np.ndarray:
    """The same pipeline with SimpleITK: preprocess to 2 mm, classify, labels back by nearest neighbour."""
    preprocessed = preprocess_image(image, (2.0, 2.0, 2.0))
    coarse = sitk.GetImageFromArray(nearest_centre(sitk.GetArrayFromImage(preprocessed)).astype(np.uint8))
    coarse.CopyInformation(preprocessed)
    return sitk.GetArrayFromImage(resample_to_reference(coarse, image, is_label=True))


def make_segmenter(**kwargs):
    return SlidingWindowSegmenter(nearest_intensity_model(), window=(8, 8, 8), spacing_mm=(2.0, 2.0, 2.0),
                                  intensity_window=HU_WINDOW, **kwargs)


def test_preprocessing_in_the_graph_equals_the_training_preprocessing(phantom):
    image, _ = phantom
    expected = sitk.GetArrayFromImage(preprocess_image(image, (2.0, 2.0, 2.0)))
    ours = make_segmenter().preprocess(sitk.GetArrayFromImage(image), np.asarray(image.GetSpacing()))[0]
    assert ours.shape[:3] == expected.shape
    np.testing.assert_allclose(ours[..., 0].numpy(), expected, atol=1e-4)
    # The far edge lies partly outside the input: air there, as SimpleITK's fill, not 0 HU.
    assert expected.min() == pytest.approx(-1.0)


@pytest.mark.parametrize("blend", ["gaussian", "constant"])
def test_labels_on_the_input_grid_equal_the_simpleitk_pipeline(phantom, blend):
    image, truth = phantom
    labels = make_segmenter(blend=blend, overlap=0.5, batch_size=3).segment(
        sitk.GetArrayFromImage(image), image.GetSpacing())
    assert labels.shape == sitk.GetArrayFromImage(image).shape and labels.dtype == np.int32
    np.testing.assert_array_equal(labels, simpleitk_reference(image))
    # And they are a segmentation: most voxels right (the 3 mm -> 2 mm -> 3 mm trip blurs edges).
    assert (labels == sitk.GetArrayFromImage(truth)).mean() > 0.9


def test_written_label_map_keeps_the_oblique_geometry(phantom, tmp_path):
    image, _ = phantom
    path = tmp_path / "image.nii.gz"
    sitk.WriteImage(image, str(path))
    labels, _ = segment_case(make_segmenter(), path, tmp_path / "out" / "case_seg.nii.gz")
    written = read_image(tmp_path / "out" / "case_seg.nii.gz")
    original = read_image(path)
    assert written.GetSize() == original.GetSize()
    np.testing.assert_allclose(written.GetSpacing(), original.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(written.GetOrigin(), original.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(written.GetDirection(), original.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), labels)


def test_volume_smaller_than_the_window_and_odd_sizes(rng):
    array = rng.normal(0, 300, size=(3, 5, 7)).astype(np.float32)
    labels = make_segmenter().segment(array, (1.3, 0.9, 2.5))
    assert labels.shape == array.shape
    assert set(np.unique(labels)) <= set(range(len(CLASS_HU)))


def test_segment_cases_scores_and_summarises(phantom, tmp_path, capsys):
    image, truth = phantom
    sitk.WriteImage(image, str(tmp_path / "img.nii.gz"))
    sitk.WriteImage(truth, str(tmp_path / "lbl.nii.gz"))
    names = {1: "a", 2: "b", 3: "c", 4: "d", 5: "never_there"}
    results = segment_cases(make_segmenter(), [{"id": "img9", "image": str(tmp_path / "img.nii.gz"),
                                               "label": str(tmp_path / "lbl.nii.gz")}], tmp_path / "out", names)
    announced, line = capsys.readouterr().out.strip().splitlines()
    assert announced == f"case 1/1: img9, 9x40x36 voxels of 0.77x0.71x2.9 mm, {make_segmenter().window_count((9, 40, 36), image.GetSpacing())} windows"
    assert line.startswith("Id=img9; Dice=") and "output_path=" in line and line.endswith(";")
    assert np.isnan(results.loc[0, "dice/never_there"])  # absent from both: not scored as 0 or 1
    overlap = sitk.LabelOverlapMeasuresImageFilter()
    overlap.Execute(sitk.ReadImage(results.loc[0, "output_path"]), sitk.Cast(truth, sitk.sitkUInt8))
    for label, name in list(names.items())[:4]:
        assert results.loc[0, f"dice/{name}"] == pytest.approx(overlap.GetDiceCoefficient(label), abs=1e-6)
    summary = summary_table(results, names)
    assert list(summary["class"]) == ["a", "b", "c", "d", "never_there", "mean"]
    assert summary.iloc[-1]["dice"] == pytest.approx(results.loc[0, [f"dice/{n}" for n in "abcd"]].mean())


def test_a_volume_that_is_not_3d_or_a_reference_off_its_grid_is_one_line_before_segmenting(phantom, tmp_path):

    image, truth = phantom
    sitk.WriteImage(image[:, :, 0], str(tmp_path / "flat.nii.gz"))
    sitk.WriteImage(sitk.JoinSeries([image, image]), str(tmp_path / "4d.nii.gz"))
    for name, dimension in (("flat", "2D"), ("4d", "4D")):
        with pytest.raises(DataError, match=f"{name}.nii.gz: a volume to segment must be 3D .* is {dimension}"):
            segment_cases(make_segmenter(), [{"id": name, "image": str(tmp_path / f"{name}.nii.gz")}], tmp_path / "o",
                          {1: "a"}, predict_only=True)
    sitk.WriteImage(image, str(tmp_path / "img.nii.gz"))
    sitk.WriteImage(truth[:, :, 1:], str(tmp_path / "short.nii.gz"))
    with pytest.raises(DataError, match="short.nii.gz: not on the grid of its image"):
        segment_cases(make_segmenter(), [{"id": "x", "image": str(tmp_path / "img.nii.gz"),
                                          "label": str(tmp_path / "short.nii.gz")}], tmp_path / "o", {1: "a"})


def test_exported_serving_default_agrees_with_the_segmenter(phantom, tmp_path):
    image, _ = phantom
    segmenter = make_segmenter()
    array, spacing = sitk.GetArrayFromImage(image), np.asarray(image.GetSpacing(), np.float64)
    warmup = {"image": np.full((8, 8, 8), -1000.0, np.float32), "spacing": np.full(3, 2.0)}
    keras_file, saved_model = export_predictor(tmp_path / "model", segmenter, warmup)
    assert keras_file.exists() and saved_model.name == "1"
    served = call_signature(saved_model, {"image": array, "spacing": spacing})
    np.testing.assert_array_equal(served["labels"], segmenter.segment(array, spacing))
    assert sorted(read_warmup_requests(saved_model)[0].inputs) == ["image", "spacing"]


def test_bad_intensity_window():
    with pytest.raises(ValueError, match="high > low"):
        SlidingWindowSegmenter(nearest_intensity_model(), (8, 8, 8), intensity_window=(800, -1000))



@pytest.mark.parametrize("size, spacing, overlap", [((20, 30, 9), (1.0, 0.7, 3.0), 0.25), ((5, 5, 5), (2.0, 2.0, 2.0), 0.5),
                                                    ((40, 17, 33), (1.3, 2.6, 0.9), 0.0)])
def test_the_window_count_deploy_announces_is_the_graphs(size, spacing, overlap):
    import tensorflow as tf

    from dltk2.inference.sliding_window import pad_to_at_least, window_starts

    segmenter = SlidingWindowSegmenter(nearest_intensity_model(), window=(8, 6, 8), spacing_mm=(2.0, 2.0, 2.0),
                                       overlap=overlap)
    volume = pad_to_at_least(segmenter.preprocess(tf.zeros(size), tf.constant(spacing, tf.float64))[0], [8, 6, 8])
    steps = [max(1, int(round(w * (1 - overlap)))) for w in (8, 6, 8)]
    graph = np.prod([int(tf.size(window_starts(tf.shape(volume)[i], (8, 6, 8)[i], steps[i]))) for i in range(3)])
    assert segmenter.window_count(size, spacing) == graph


def x_gradient_model() -> keras.Model:
    """Labels by the sign of the intensity gradient along the model's x axis: 1 rising, 2 falling, 0 flat.

    A model that depends on the voxel order as a trained network does: a flipped or transposed input
    swaps or moves its classes.
    """
    inputs = keras.Input((None, None, None, 1))
    conv = keras.layers.Conv3D(3, (1, 1, 3), padding="same", name="x_gradient")
    outputs = conv(inputs)
    kernel = np.zeros((1, 1, 3, 1, 3), np.float32)
    kernel[0, 0, :, 0, 1] = [-50.0, 0.0, 50.0]
    kernel[0, 0, :, 0, 2] = [50.0, 0.0, -50.0]
    conv.set_weights([kernel, np.array([0.05, 0.0, 0.0], np.float32)])
    return keras.Model(inputs, outputs)


BLOB_CENTRE = np.array([-2.0, 3.0, -1.0])  # mm, LPS


def blob_image(size_zyx=(14, 18, 22), spacing=(1.5, 1.2, 2.5), direction=None, origin=(-20.0, -15.0, -25.0)):
    """A CT-like blob (HU) off the centre, on an LPS grid (or ``direction``), in world coordinates."""
    image = sitk.Image(list(size_zyx[::-1]), sitk.sitkFloat32)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    points = np.stack(np.meshgrid(*[np.arange(n) for n in size_zyx], indexing="ij"), -1)[..., ::-1]  # (x, y, z)
    world = (points * spacing) @ np.reshape(image.GetDirection(), (3, 3)).T + origin
    radius2 = np.sum((world - BLOB_CENTRE) ** 2 / np.array([9.0, 7.0, 8.0]) ** 2, axis=-1)
    hu = -1000.0 + 1600.0 * np.exp(-radius2)
    result = sitk.GetImageFromArray(hu.astype(np.float32))
    result.CopyInformation(image)
    return result


def test_one_volume_in_all_48_orientations_is_segmented_alike_in_world_coordinates():
    from dltk2.io.orientation import Reorientation, all_axis_codes, reorient_image

    reference = blob_image()
    segmenter = SlidingWindowSegmenter(x_gradient_model(), (8, 8, 8), (2.0, 2.0, 2.0), HU_WINDOW, orientation="LPS")
    expected = segmenter.segment(sitk.GetArrayFromImage(reference), reference.GetSpacing(), reference.GetDirection())
    assert {1, 2} <= set(np.unique(expected))
    blind = make_segmenter_for(x_gradient_model())
    for codes in all_axis_codes():
        image = reorient_image(reference, codes)
        array = sitk.GetArrayFromImage(image)
        labels = segmenter.segment(array, image.GetSpacing(), image.GetDirection())
        assert labels.shape == array.shape
        back = Reorientation.between(image.GetDirection(), "LPS").apply(labels)
        np.testing.assert_array_equal(back, expected, err_msg=codes)
        if codes == "RPS":  # without the orientation, the mirrored volume's gradient classes swap
            unaware = Reorientation.between(image.GetDirection(), "LPS").apply(blind.segment(array, image.GetSpacing()))
            assert (unaware[expected > 0] == expected[expected > 0]).mean() < 0.25  # 0.15 measured


def make_segmenter_for(model, **kwargs):
    return SlidingWindowSegmenter(model, (8, 8, 8), (2.0, 2.0, 2.0), HU_WINDOW, **kwargs)


def test_an_oblique_volume_is_segmented_as_its_world_says_and_written_on_its_own_grid(tmp_path):
    """A 30 degree tilted acquisition of the blob: the labels follow the world's x axis, not the tilted one."""
    angle = np.deg2rad(30.0)
    tilt = [np.cos(angle), -np.sin(angle), 0.0, np.sin(angle), np.cos(angle), 0.0, 0.0, 0.0, 1.0]
    oblique = blob_image(size_zyx=(14, 20, 22), spacing=(1.4, 1.2, 2.0), direction=tilt, origin=(-12.0, -14.0, -12.0))
    path = tmp_path / "oblique.nii.gz"
    sitk.WriteImage(oblique, str(path))
    aware = make_segmenter_for(x_gradient_model(), orientation="LPS")
    # The truth in world terms: the blob rises towards its centre along the world x axis (LPS).
    world_x = np.asarray([oblique.TransformIndexToPhysicalPoint(index)[0] for index in np.ndindex(*oblique.GetSize())])
    world_x = world_x.reshape(oblique.GetSize()).transpose(2, 1, 0)
    truth = np.where(world_x < BLOB_CENTRE[0], 1, 2)
    inside = (sitk.GetArrayFromImage(oblique) > -600.0) & (np.abs(world_x - BLOB_CENTRE[0]) > 3.0)
    labels, _ = segment_case(aware, path, tmp_path / "out" / "oblique_seg.nii.gz")
    written = read_image(tmp_path / "out" / "oblique_seg.nii.gz")
    assert written.GetSize() == oblique.GetSize()
    np.testing.assert_allclose(written.GetDirection(), tilt, atol=1e-6)
    np.testing.assert_allclose(written.GetOrigin(), oblique.GetOrigin(), atol=1e-4)
    blind = make_segmenter_for(x_gradient_model()).segment(sitk.GetArrayFromImage(oblique), oblique.GetSpacing())
    agreement, blind_agreement = (labels[inside] == truth[inside]).mean(), (blind[inside] == truth[inside]).mean()
    # Measured: 1.0 with the orientation, 0.89 without (the tilted axis's gradient).
    assert agreement > 0.98 and blind_agreement < agreement - 0.05, (agreement, blind_agreement)


def test_an_oriented_segmenter_takes_and_exports_the_direction(tmp_path):
    image = blob_image()
    segmenter = make_segmenter_for(x_gradient_model(), orientation="LPS")
    with pytest.raises(ValueError, match="trained in LPS: give the image's direction"):
        segmenter.segment(sitk.GetArrayFromImage(image), image.GetSpacing())
    _, saved_model = export_predictor(tmp_path / "model", segmenter, segmenter.warmup_inputs())
    flipped = image[::-1, :, :]
    request = {"image": sitk.GetArrayFromImage(flipped), "spacing": np.asarray(flipped.GetSpacing()),
               "direction": np.asarray(flipped.GetDirection())}
    served = call_signature(saved_model, request)
    np.testing.assert_array_equal(served["labels"], segmenter.segment(**request))
    assert sorted(read_warmup_requests(saved_model)[0].inputs) == ["direction", "image", "spacing"]
    assert segmenter.window_count((14, 18, 22), (1.5, 1.2, 2.5), flipped.GetDirection()) == \
        segmenter.window_count((14, 18, 22), (1.5, 1.2, 2.5))
    transposed = sitk.DICOMOrient(image, "SPL")
    assert segmenter.window_count(sitk.GetArrayFromImage(transposed).shape, transposed.GetSpacing(),
                                  transposed.GetDirection()) == segmenter.window_count((14, 18, 22), (1.5, 1.2, 2.5))


def test_a_segmenter_with_uncertainty_writes_its_entropy_beside_the_labels(phantom, tmp_path):
    image, _ = phantom
    sitk.WriteImage(image, str(tmp_path / "img.nii.gz"))
    segmenter = make_segmenter(mirror_axes=[0, 2], uncertainty=True)
    labels, _ = segment_case(segmenter, tmp_path / "img.nii.gz", tmp_path / "out" / "img_seg.nii.gz")
    uncertainty = read_image(tmp_path / "out" / "img_entropy.nii.gz")
    assert uncertainty.GetSize() == image.GetSize()
    np.testing.assert_allclose(uncertainty.GetDirection(), image.GetDirection(), atol=1e-6)
    values = sitk.GetArrayFromImage(uncertainty)
    assert values.min() >= -1e-6 and values.max() <= np.log(len(CLASS_HU)) + 1e-5
    # The nearest-intensity model sees no neighbours: mirroring leaves its labels as they were.
    np.testing.assert_array_equal(labels, make_segmenter().segment(sitk.GetArrayFromImage(image), image.GetSpacing()))


def channel_argmax_model(channels: int = 3) -> keras.Model:
    """A 1x1x1 convolution whose logits are the input's channels: the label is the brightest channel."""
    inputs = keras.Input((None, None, None, channels))
    conv = keras.layers.Conv3D(channels, 1)
    outputs = conv(inputs)
    conv.set_weights([np.eye(channels, dtype=np.float32).reshape(1, 1, 1, channels, channels),
                      np.zeros(channels, np.float32)])
    return keras.Model(inputs, outputs)


def test_several_whitened_channels_are_one_input_and_are_served_so(rng, tmp_path):
    # Three "sequences" of different scales and offsets: only whitening each on its own makes them comparable.
    shape = (12, 20, 18)
    raw = np.stack([rng.normal(0, 1, shape) * scale + offset for scale, offset in ((5, 100), (50, 20), (0.5, -3))],
                   axis=-1).astype(np.float32)
    segmenter = SlidingWindowSegmenter(channel_argmax_model(), window=(8, 8, 8), spacing_mm=(2.0, 2.0, 3.0),
                                       channels=3, normalisation="whiten", orientation="LPS")
    direction = np.diag([-1.0, -1.0, 1.0]).ravel()
    labels = segmenter.segment(raw, (2.0, 2.0, 3.0), direction)
    whitened = (raw - raw.mean(axis=(0, 1, 2))) / raw.std(axis=(0, 1, 2))
    np.testing.assert_array_equal(labels, np.argmax(whitened, axis=-1))
    assert segmenter.warmup_inputs()["image"].shape == (8, 8, 8, 3)
    _, saved_model = export_predictor(tmp_path / "model", segmenter)
    served = call_signature(saved_model, {"image": raw, "spacing": np.array([2.0, 2.0, 3.0]), "direction": direction})
    np.testing.assert_array_equal(served["labels"], labels)
    with pytest.raises(ValueError, match="normalisation must be 'window' or 'whiten'"):
        SlidingWindowSegmenter(channel_argmax_model(), (8, 8, 8), normalisation="zscore")


def test_segment_cases_takes_a_case_of_several_channel_files(rng, tmp_path):
    shape = (6, 10, 8)
    paths = []
    for number in range(3):
        image = sitk.GetImageFromArray(rng.normal(10 * number, 1 + number, shape).astype(np.float32))
        image.SetSpacing((2.0, 2.0, 3.0))
        paths.append(str(tmp_path / f"c{number}.nii.gz"))
        sitk.WriteImage(image, paths[-1])
    segmenter = SlidingWindowSegmenter(channel_argmax_model(), window=(4, 4, 4), spacing_mm=(2.0, 2.0, 3.0),
                                       channels=3, normalisation="whiten")
    results = segment_cases(segmenter, [{"id": "s", "image": paths}], tmp_path / "out", {1: "one", 2: "two"},
                            predict_only=True, overlays=False)
    written = read_image(results["output_path"][0])
    assert written.GetSize() == (8, 10, 6) and written.GetSpacing() == pytest.approx((2.0, 2.0, 3.0))
    short = sitk.GetImageFromArray(np.zeros((5, 10, 8), np.float32))
    sitk.WriteImage(short, str(tmp_path / "short.nii.gz"))
    with pytest.raises(DataError, match="short.nii.gz: not on the grid of its image .*c0.nii.gz"):
        segment_cases(segmenter, [{"id": "s", "image": [paths[0], str(tmp_path / "short.nii.gz"), paths[2]]}],
                      tmp_path / "out", {1: "one"}, predict_only=True)
