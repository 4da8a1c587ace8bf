import pickle

import numpy as np
import pytest

from genssl.errors import StoreError
from genssl.store import ImageStore, StoreWriter, verify_store
from genssl.store.codec import encode_image
from genssl.store.manifest import read_manifest


def _images(n, shape=(12, 10, 3), seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def _write(path, images, encoding, max_shard_bytes=1 << 30, quality=95):
    path.mkdir()
    shape = images.shape[1:] if encoding == "raw" else None
    writer = StoreWriter(path, encoding, shape, max_shard_bytes=max_shard_bytes)
    for image in images:
        writer.add(encode_image(image, encoding, quality))
    labels = np.arange(len(images)) % 3
    splits = {"train": np.arange(0, len(images), 2), "test": np.arange(1, len(images), 2)}
    return writer.close(labels, ["a", "b", "c"], splits, {"source": "test"})


@pytest.mark.parametrize("encoding", ["raw", "png"])
def test_lossless_round_trip_and_random_access(tmp_path, encoding):
    images = _images(50)
    _write(tmp_path / "s", images, encoding)
    store = ImageStore(tmp_path / "s")
    assert len(store) == 50 and store.classes == ["a", "b", "c"]
    for i in np.random.default_rng(1).permutation(50):
        assert np.array_equal(store[i], images[i])
    assert np.array_equal(store[-1], images[49])
    assert np.array_equal(store.labels, np.arange(50) % 3)
    assert np.array_equal(store.split("train"), np.arange(0, 50, 2))
    with pytest.raises(StoreError, match="no split 'val'; the store has test, train"):
        store.split("val")
    with pytest.raises(IndexError, match="index 50 out of range"):
        store[50]


@pytest.mark.parametrize(("encoding", "tolerance"), [("jpeg", 4), ("webp", 8)])
def test_lossy_stores_decode_close_to_the_source(tmp_path, encoding, tolerance):
    ramp = np.linspace(0, 255, 16)
    smooth = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], 128 + 0 * ramp[None, :]), -1)
    smooth = np.rint(smooth).astype(np.uint8)[None]
    _write(tmp_path / "s", smooth, encoding, quality=95)
    decoded = ImageStore(tmp_path / "s")[0]
    assert decoded.shape == (16, 16, 3)
    assert np.abs(decoded.astype(int) - smooth[0]).mean() <= tolerance


@pytest.mark.parametrize("encoding", ["raw", "png"])
def test_images_are_split_into_shards_by_size(tmp_path, encoding):
    images = _images(25)
    image_bytes = images[0].nbytes
    manifest = _write(tmp_path / "s", images, encoding, max_shard_bytes=4 * image_bytes + 1 if encoding == "raw" else 1)
    shards = manifest["shards"]
    if encoding == "raw":
        assert [s["count"] for s in shards] == [4, 4, 4, 4, 4, 4, 1]
    else:
        assert len(shards) == 25  # every encoded image exceeds 1 byte: one image per shard
    assert [s["start"] for s in shards] == list(np.cumsum([0] + [s["count"] for s in shards[:-1]]))
    store = ImageStore(tmp_path / "s")
    assert np.array_equal(store.get_batch([24, 0, 7, 4, 3, -1, 7]), images[[24, 0, 7, 4, 3, 24, 7]])
    if encoding == "raw":
        assert store.get_batch([]).shape == (0, 12, 10, 3)
    else:
        with pytest.raises(StoreError, match="empty batch of a store of variable image sizes"):
            store.get_batch([])
    with pytest.raises(IndexError, match="index 25 out of range"):
        store.get_batch([0, 25])


def test_raw_store_is_memory_mapped_and_pickles_without_maps(tmp_path):
    images = _images(10)
    _write(tmp_path / "s", images, "raw")
    store = ImageStore(tmp_path / "s")
    view = store[3]
    assert isinstance(view.base, np.memmap) or isinstance(view, np.memmap)
    assert not view.flags.writeable
    clone = pickle.loads(pickle.dumps(store))
    assert clone._maps == {} and np.array_equal(clone[3], images[3])


def test_manifest_records_every_file_and_verify_detects_changes(tmp_path):
    _write(tmp_path / "s", _images(8), "png")
    manifest = read_manifest(tmp_path / "s")
    assert set(manifest["files"]) == {
        "images-00000.bin",
        "images-00000.idx",
        "labels.npy",
        "split-train.npy",
        "split-test.npy",
    }
    assert verify_store(tmp_path / "s") == []
    shard = tmp_path / "s" / "images-00000.bin"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    problems = verify_store(tmp_path / "s")
    assert len(problems) == 1 and "images-00000.bin: sha256" in problems[0]
    (tmp_path / "s" / "labels.npy").unlink()
    assert any(p.endswith("labels.npy: missing") for p in verify_store(tmp_path / "s"))


def test_opening_something_that_is_not_a_store_names_the_path(tmp_path):
    with pytest.raises(StoreError, match=f"{tmp_path}: not a store"):
        ImageStore(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "genssl.store", "format_version": 99}')
    with pytest.raises(StoreError, match="format_version 99 is not supported"):
        ImageStore(tmp_path)


def test_writer_refuses_inconsistent_input(tmp_path):
    writer = StoreWriter(tmp_path, "raw", (4, 4, 3))
    with pytest.raises(ValueError, match="raw image of 12 bytes, expected 48"):
        writer.add(b"x" * 12)
    writer.add(bytes(48))
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.1"):
        writer.close(np.array([2]), ["a", "b"], {}, {})


def test_atomic_file_replaces_only_on_success(tmp_path):
    from genssl.atomic import atomic_file

    target = tmp_path / "run.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]
    with atomic_file(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]
