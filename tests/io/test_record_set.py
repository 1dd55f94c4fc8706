"""Tests of dltk2.io.record_set: a conversion is one complete set, replaced atomically, checked when read."""

import json
import multiprocessing
import os
import signal
import time

import cv2
import numpy as np
import pytest

from dltk2.errors import DataError, ResourceError
from dltk2.io import record_set
from dltk2.io.locks import lock_folder, unlock_folder
from dltk2.io.record_set import check_same_record_set, manifest_path, read_record_set, write_record_set
from dltk2.io.tfrecord import image_dataset, image_example, write_shards


def examples(count, patient_offset=0, label_of=lambda i: i % 2):
    image = cv2.imencode(".png", np.zeros((3, 3), np.uint8))[1].tobytes()
    return [image_example(image, "png", 3, 3, 1, label_of(i), f"c{label_of(i)}", f"im{i}.png",
                          f"p{(i + patient_offset) // 2}") for i in range(count)]


def names_read(files):
    return sorted(f["image/filename"].numpy().decode() for f in image_dataset([str(p) for p in files]))


def test_manifest_describes_every_shard_and_split(tmp_path):
    written = write_record_set(tmp_path, "demo", {"train": examples(6), "test": examples(2, patient_offset=6)},
                               num_shards=4, description={"seed": 3})
    manifest = json.loads(manifest_path(tmp_path, "demo").read_text())
    assert manifest["description"] == {"seed": 3} and manifest["patients_in_two_splits"] == 0
    train = manifest["splits"]["train"]
    assert train["examples"] == 6 and train["label_counts"] == {"0": 3, "1": 3} and train["patients"] == 3
    assert [shard["examples"] for shard in train["shards"]] == [2, 2, 1, 1]
    assert len(manifest["splits"]["test"]["shards"]) == 2  # not more shards than examples
    read = read_record_set(tmp_path, "demo", checksums=True)
    assert read.files("train") == written.files("train") and read.label_counts("train") == {0: 3, 1: 3}
    assert names_read(read.files("test")) == ["im0.png", "im1.png"]
    assert read.files("validation") == [] and read.examples("validation") == 0


def test_converting_again_replaces_the_set_and_leaves_no_shard_of_the_old_one(tmp_path):
    write_record_set(tmp_path, "demo", {"train": examples(8)}, num_shards=4)
    second = write_record_set(tmp_path, "demo", {"train": examples(5)}, num_shards=1)
    assert sorted(p.name for p in tmp_path.glob("*.tfrecord")) == [p.name for p in second.files("train")]
    assert read_record_set(tmp_path, "demo").examples("train") == 5
    assert len(list(image_dataset(str(tmp_path / "demo_train-*.tfrecord")))) == 5  # a glob reads one set too


def test_another_sets_shards_of_a_similar_name_are_left_alone(tmp_path):
    other = write_record_set(tmp_path, "chest_small", {"train": examples(2)})
    write_record_set(tmp_path, "chest", {"train": examples(3)})
    write_record_set(tmp_path, "chest", {"train": examples(4)})
    assert all(path.exists() for path in other.files("train"))
    read_record_set(tmp_path, "chest_small")


def test_stray_missing_and_changed_shards_are_refused_by_name(tmp_path, capsys):
    good = write_record_set(tmp_path, "demo", {"train": examples(4)}, num_shards=2)
    stray = write_shards(examples(3), tmp_path, "demo_train", 1)[0]  # as an older converter named them
    with pytest.raises(DataError, match=f"{stray.name}: a shard that demo.manifest.json does not list"):
        list(image_dataset(str(tmp_path / "demo_train-*.tfrecord")))  # a glob would read it: refused
    read = read_record_set(tmp_path, "demo")  # the manifest's readers pass it over, saying so
    assert read.strays() == [stray] and stray not in read.files("train")
    assert "1 shard(s)" in capsys.readouterr().out
    stray.unlink()
    shard = good.files("train")[0]
    shard.write_bytes(shard.read_bytes()[:-7])
    with pytest.raises(DataError, match=f"{shard.name}: .* bytes, but demo.manifest.json recorded"):
        read_record_set(tmp_path, "demo")
    shard.unlink()
    with pytest.raises(DataError, match=f"{shard.name}: missing from the record set"):
        read_record_set(tmp_path, "demo")


def test_a_changed_shard_of_the_same_size_is_found_by_its_checksum(tmp_path):
    shard = write_record_set(tmp_path, "demo", {"train": examples(2)}).files("train")[0]
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF
    shard.write_bytes(bytes(data))
    read_record_set(tmp_path, "demo")  # sizes agree
    with pytest.raises(DataError, match="differs from its SHA-256"):
        read_record_set(tmp_path, "demo", checksums=True)


def test_shards_without_a_manifest_are_refused_for_training(tmp_path):
    write_shards(examples(2), tmp_path, "demo_train", 1)
    with pytest.raises(DataError, match=r"demo.manifest.json: no such record set manifest \(1 shard"):
        read_record_set(tmp_path, "demo")


def test_a_patient_in_two_splits_is_refused(tmp_path):
    with pytest.raises(ValueError, match="patients in two splits"):
        write_record_set(tmp_path, "demo", {"train": examples(2), "test": examples(2)})
    assert not manifest_path(tmp_path, "demo").exists()


def _convert_slowly(folder, started):
    def slow_examples():
        started.set()
        time.sleep(60)
        return examples(2)
    write_record_set(folder, "demo", {"train": slow_examples})


def test_a_conversion_killed_half_way_keeps_the_old_set(tmp_path):
    old = write_record_set(tmp_path, "demo", {"train": examples(4)}, num_shards=2)
    context = multiprocessing.get_context("fork")
    started = context.Event()
    converter = context.Process(target=_convert_slowly, args=(tmp_path, started))
    converter.start()
    assert started.wait(30)
    with pytest.raises(ResourceError, match="record set folder in use by pid"):
        write_record_set(tmp_path, "demo", {"train": examples(2)})
    os.kill(converter.pid, signal.SIGKILL)
    converter.join()
    assert read_record_set(tmp_path, "demo").files("train") == old.files("train")
    assert sorted(p.name for p in tmp_path.glob("demo_train-*.tfrecord")) == [p.name for p in old.files("train")]
    write_record_set(tmp_path, "demo", {"train": examples(3)})  # the lock went with the killed process


def test_a_model_folder_resumes_only_on_its_own_set(tmp_path):
    first = write_record_set(tmp_path / "data", "demo", {"train": examples(2)})
    model = tmp_path / "model"
    model.mkdir()
    (model / "run_config.json").write_text(json.dumps({"record_set": first.manifest["set_id"]}))
    check_same_record_set(model, first)
    second = write_record_set(tmp_path / "data", "demo", {"train": examples(2)})
    with pytest.raises(DataError, match="converted again"):
        check_same_record_set(model, second)


def test_locks_are_per_process_and_reentrant(tmp_path):
    lock_folder(tmp_path, "record set folder")
    write_record_set(tmp_path, "demo", {"train": examples(1)})  # this process holds it: no refusal
    unlock_folder(tmp_path)
    assert record_set.read_record_set(tmp_path, "demo").examples("train") == 1
