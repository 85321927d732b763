"""COCO-format folder builder: read-back, dropped/skipped counts, and errors naming what is wrong."""

import copy
import io
import json

import ml_collections
import numpy as np
import pytest
from PIL import Image
from tiny_coco import CATEGORIES, write_coco_folder

from mrcnn_jax.data import coco_json, features, folder_builder, prepare, sources


def _builder(data_dir, name):
  return sources.open_builder(ml_collections.ConfigDict({"name": name, "data_dir": data_dir}))


def test_read_back_matches_annotations(folder_data):
  data_dir, name, _, expected = folder_data
  builder = _builder(data_dir, name)
  source = sources.data_source(builder, "validation")
  records = {r["image_id"]: r for r in (sources.to_record(source[i], True) for i in range(len(source)))}
  assert sorted(records) == sorted(expected)             # bad images skipped, empty image kept
  for image_id, instances in expected.items():
    record = records[image_id]
    assert record["image"].shape == (record["height"], record["width"], 3)
    assert record["classes"].tolist() == [label + 1 for label, _, _ in instances]
    assert record["crowd"].tolist() == [crowd for _, crowd, _ in instances]
    for counts, (_, _, mask) in zip(record["masks"], instances):
      np.testing.assert_array_equal(features.decode_mask(counts, *mask.shape), mask)
  # Boxes come from the annotation's bbox (x, y, w, h) -> (x1, y1, x2, y2).
  np.testing.assert_allclose(records[101]["boxes"], [[5, 6, 25, 30], [30, 2, 48, 20]], atol=1e-4)
  assert records[102]["area"].tolist() == [700.0]


def test_noncontiguous_category_ids_kept_for_evaluation(folder_data):
  data_dir, name, _, _ = folder_data
  names, ids = sources.class_info(_builder(data_dir, name))
  assert (names, ids) == (["cat", "dog", "bird"], [3, 7, 12])
  assert sorted(CATEGORIES, key=lambda c: c["id"])[0]["name"] == names[0]


def test_report_counts(folder_data):
  report = folder_data[2]["validation"]
  assert (report.images, report.instances, report.crowd) == (3, 3, 1)
  assert report.images_without_annotations == 1
  assert (report.dropped_zero_area_box, report.dropped_empty_segmentation) == (1, 1)
  assert report.dropped == [
      "annotation id 4 (image id 102, b.png): bbox [3, 3, 0, 5] has no area inside the 40x60 image",
      "annotation id 5 (image id 102, b.png): segmentation has no pixels"]
  assert len(report.skipped_bad_images) == 2
  assert any("corrupt.jpg" in m and "cannot decode" in m for m in report.skipped_bad_images)
  assert any("missing.jpg" in m and "not found" in m for m in report.skipped_bad_images)


def test_bad_image_without_skip_names_the_file(tmp_path):
  ann, images, _ = write_coco_folder(str(tmp_path / "src"))
  with pytest.raises(ValueError, match=r"corrupt\.jpg.*--skip_bad_images"):
    prepare.prepare_folder("bad", str(tmp_path / "tfds"), [ann], [images])


def test_cli_reports_errors_and_summary(tmp_path, capsys):
  bad_json = tmp_path / "bad.json"
  bad_json.write_text('{"images": [], "annotations": [], "categories": "x"}')
  assert prepare.main(["folder", "--name", "x", "--data_dir", str(tmp_path),
                       "--annotations", str(bad_json), "--images", str(tmp_path)]) == 2
  assert capsys.readouterr().err == f"error: {bad_json}: categories: expected a list, got str\n"


def test_cli_names_the_first_ten_dropped_annotations(tmp_path, capsys):
  ann, images, _ = write_coco_folder(str(tmp_path / "src"), bad_images=False)
  data = json.loads(open(ann).read())
  data["annotations"] += [{"id": 100 + i, "image_id": 101, "category_id": 3, "bbox": [1, 1, -2, 3],
                           "segmentation": [[1, 1, 2, 2]]} for i in range(9)]
  data["annotations"].append({"id": 99, "image_id": 101, "category_id": 3, "bbox": [1, 1, 5, 5],
                              "segmentation": [[1, 1, 2, 2]]})
  with open(ann, "w") as f:
    json.dump(data, f)
  assert prepare.main(["folder", "--name", "drops", "--data_dir", str(tmp_path / "tfds"),
                       "--annotations", ann, "--images", images]) == 0
  out = capsys.readouterr().out
  assert "Downloading" not in out and "preparing coco_folder in" in out
  assert "config.data.name = 'drops'" in out
  assert "config.num_classes = 3, config.class_names = ('cat', 'dog', 'bird')" in out
  dropped = [line.strip() for line in out.splitlines() if line.startswith("    dropped ")]
  assert len(dropped) == 10 and "... and 2 more dropped" in out          # 12 dropped in all
  assert dropped[0] == ("dropped annotation id 100 (image id 101, a.jpg): bbox [1, 1, -2, 3] has no "
                        "area inside the 50x40 image")
  assert dropped[-1] == ("dropped annotation id 99 (image id 101, a.jpg): segmentation has no pixels "
                         "(a polygon with fewer than 3 points)")


def _valid():
  return {"images": [{"id": 1, "file_name": "a.jpg", "height": 4, "width": 5}],
          "categories": [{"id": 9, "name": "x"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 9, "bbox": [0, 0, 2, 2],
                           "segmentation": [[0, 0, 2, 0, 2, 2]]}]}


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), r"annotations\[0\]\.bbox: expected 4 numbers"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, "3", 4]), r"annotations\[0\]\.bbox"),
    (lambda d: d["annotations"][0].update(image_id=7), r"annotations\[0\]\.image_id: unknown image id 7"),
    (lambda d: d["annotations"][0].update(category_id=1), r"annotations\[0\]\.category_id"),
    (lambda d: d["annotations"][0].pop("segmentation"), r"annotations\[0\]\.segmentation: missing"),
    (lambda d: d["annotations"][0].update(segmentation=[[0, 0, 1]]),
     r"annotations\[0\]\.segmentation\[0\]: expected an even number"),
    (lambda d: d["annotations"][0].update(segmentation={"size": [4, 4], "counts": [20]}),
     r"annotations\[0\]\.segmentation\.size"),
    (lambda d: d["annotations"][0].update(segmentation={"size": [4, 5], "counts": [3, 4]}),
     r"annotations\[0\]\.segmentation\.counts"),
    (lambda d: d["annotations"][0].update(iscrowd=2), r"annotations\[0\]\.iscrowd"),
    (lambda d: d["images"][0].update(width=0), r"images\[0\]\.width"),
    (lambda d: d["images"].append(dict(d["images"][0])), r"images\[1\]\.id: duplicate"),
    (lambda d: d.pop("annotations"), r"annotations: missing"),
    (lambda d: d["categories"].append({"id": 10, "name": "x"}), r"categories\[1\]: duplicate"),
])
def test_malformed_json_names_the_field(edit, message):
  data = copy.deepcopy(_valid())
  coco_json.validate(data)
  edit(data)
  with pytest.raises(ValueError, match=message):
    coco_json.validate(data)


def test_unreadable_json_names_the_file(tmp_path):
  path = tmp_path / "broken.json"
  path.write_text("{not json")
  with pytest.raises(ValueError, match="broken.json: cannot read annotation JSON"):
    coco_json.load_coco_json(str(path))


def test_photos_are_stored_upright_and_a_size_only_the_stored_pixels_match_names_exif(tmp_path):
  stored = np.zeros((40, 60, 3), np.uint8)
  stored[:, :10] = 255                                      # a white band on the stored left edge
  exif = Image.Exif()
  exif[0x0112] = 6                                          # a phone photo: "rotate 90 CW to view"
  path = str(tmp_path / "phone.jpg")
  Image.fromarray(stored).save(path, exif=exif, quality=95)
  encoded, error = folder_builder._read_image(path, width=40, height=60)
  assert error is None
  upright = np.asarray(Image.open(io.BytesIO(encoded)))
  assert upright.shape == (60, 40, 3) and upright[:10].mean() > 200   # the band on top
  _, error = folder_builder._read_image(path, width=60, height=40)
  assert error == (f"{path}: image is 40x60 upright, after its EXIF orientation 6 (60x40 as stored: were the "
                   "annotations made on the stored pixels?), annotations say 60x40")



def test_preparing_a_name_again_from_other_annotations_is_refused(tmp_path):
  ann, images, _ = write_coco_folder(str(tmp_path / "src"), bad_images=False)
  data_dir = str(tmp_path / "tfds")
  prepare.prepare_folder("again", data_dir, [f"validation={ann}"], [f"validation={images}"])
  assert prepare.prepare_folder("again", data_dir, [f"validation={ann}"], [f"validation={images}"])[1] == {}
  data = json.loads(open(ann).read())
  data["annotations"] = data["annotations"][:1]
  with open(ann, "w") as f:
    json.dump(data, f)
  with pytest.raises(ValueError, match=r"dataset 'again' was prepared at .* from other annotations: delete that folder"):
    prepare.prepare_folder("again", data_dir, [f"validation={ann}"], [f"validation={images}"])
