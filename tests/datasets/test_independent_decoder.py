"""A dataset is readable without the project's code: protobuf wire bytes decoded by hand here."""
import io
import struct

import numpy as np
from PIL import Image

from digitslite.datasets import DatasetOptions, create_dataset
from tests.datasets.helpers import make_folders, read_lmdb, sources_by_key

DATUM_FIELDS = {1: "channels", 2: "height", 3: "width", 4: "data", 5: "label", 7: "encoded"}


def varint(data: bytes, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def wire_fields(data: bytes) -> dict[int, list]:
    """Field number -> values, for varint (0), length-delimited (2) and 32-bit (5) wire types."""
    fields: dict[int, list] = {}
    position = 0
    while position < len(data):
        key, position = varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, position = varint(data, position)
        elif wire_type == 2:
            length, position = varint(data, position)
            value, position = data[position:position + length], position + length
        elif wire_type == 5:
            value, position = struct.unpack("<f", data[position:position + 4])[0], position + 4
        else:
            raise AssertionError(f"unexpected wire type {wire_type}")
        fields.setdefault(number, []).append(value)
    return fields


def datum_fields(value: bytes) -> dict:
    return {DATUM_FIELDS[number]: values[-1] for number, values in wire_fields(value).items()}


def test_datum_records_decode_with_a_hand_written_protobuf_reader(tmp_path):
    written = make_folders(tmp_path, 3, "index")
    create_dataset(DatasetOptions(images=tmp_path / "images", labels=tmp_path / "labels", label_mode="index",
                                  val_percent=0, seed=2, workers=1), tmp_path / "ds")
    names = sources_by_key(tmp_path / "ds", "train")

    features = read_lmdb(tmp_path / "ds" / "train_db" / "features")
    labels = read_lmdb(tmp_path / "ds" / "train_db" / "labels")

    for (key, feature), (_, label) in zip(features, labels, strict=True):
        pixels, indices = written[names[key]]
        image = datum_fields(feature)
        assert (image["channels"], image["height"], image["width"], image["encoded"]) == (3, 10, 12, 1)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(image["data"]))), pixels)
        mask = datum_fields(label)
        assert (mask["channels"], mask["height"], mask["width"], mask["encoded"]) == (1, 10, 12, 1)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(mask["data"]))), indices)


def test_raw_features_and_the_mean_blob_decode_by_hand(tmp_path):
    written = make_folders(tmp_path, 2, "index")
    create_dataset(DatasetOptions(images=tmp_path / "images", labels=tmp_path / "labels", label_mode="index",
                                  encoding="none", val_percent=0, seed=2, workers=1), tmp_path / "ds")
    names = sources_by_key(tmp_path / "ds", "train")

    for key, feature in read_lmdb(tmp_path / "ds" / "train_db" / "features"):
        image = datum_fields(feature)
        assert "encoded" not in image  # proto2 default false is not written
        chw = np.frombuffer(image["data"], np.uint8).reshape(3, 10, 12)
        assert np.array_equal(chw.transpose(1, 2, 0)[:, :, ::-1], written[names[key]][0])

    blob = wire_fields((tmp_path / "ds" / "mean.binaryproto").read_bytes())
    assert [blob[number][0] for number in (1, 2, 3, 4)] == [1, 3, 10, 12]  # num, channels, height, width
    mean = np.frombuffer(blob[5][0], "<f4").reshape(3, 10, 12)  # packed floats
    expected = np.mean([pixels.astype(np.float64) for pixels, _ in written.values()], axis=0)
    np.testing.assert_allclose(mean, expected[:, :, ::-1].transpose(2, 0, 1), atol=1e-4)
