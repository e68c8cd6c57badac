"""The synthetic COCO generator and dataset registration (``mimdet.data``), on small datasets in tmp dirs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from mimdet.data import synthetic
from mimdet.data.synthetic import CATEGORIES, SyntheticCOCO, make_synthetic_coco

SMALL = {"num_train": 16, "num_val": 4}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> SyntheticCOCO:
    return make_synthetic_coco(tmp_path_factory.mktemp("synthetic"), **SMALL, seed=0)


@pytest.fixture(scope="module")
def registry() -> ModuleType:
    """The registry module, imported here: it pulls in detectron2, which only these tests need."""
    from mimdet.data import registry

    return registry


@pytest.fixture
def catalog(registry: ModuleType) -> Iterator[None]:
    """Unregister, after the test, the dataset names it added to detectron2's global catalogs."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    before = set(DatasetCatalog.list())
    yield
    for name in set(DatasetCatalog.list()) - before:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- generator -----------------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    first = _files(make_synthetic_coco(tmp_path / "a", num_train=3, num_val=2, seed=5).root)
    second = _files(make_synthetic_coco(tmp_path / "b", num_train=3, num_val=2, seed=5).root)
    other = _files(make_synthetic_coco(tmp_path / "c", num_train=3, num_val=2, seed=6).root)
    assert first == second
    for name in ("annotations/instances_train.json", "train/000000.jpg", "val/000001.jpg"):
        assert first[name] != other[name], name


def test_val_split_does_not_depend_on_train_size(tmp_path: Path) -> None:
    a = make_synthetic_coco(tmp_path / "a", num_train=2, num_val=2, seed=0)
    b = make_synthetic_coco(tmp_path / "b", num_train=5, num_val=2, seed=0)
    assert a.json_file("val").read_bytes() == b.json_file("val").read_bytes()


@pytest.mark.parametrize("split", ["train", "val"])
def test_coco_header_and_images(dataset: SyntheticCOCO, split: str) -> None:
    coco = json.loads(dataset.json_file(split).read_text())
    assert {"info", "licenses", "images", "annotations", "categories"} <= coco.keys()
    assert len(coco["images"]) == SMALL[f"num_{split}"] == dataset.num_images[split]
    assert len(coco["annotations"]) == dataset.num_annotations[split]
    assert [c["name"] for c in coco["categories"]] == list(CATEGORIES) and len(CATEGORIES) >= 4
    assert all({"id", "name", "supercategory"} <= c.keys() for c in coco["categories"])
    for image in coco["images"]:
        with Image.open(dataset.image_root(split) / image["file_name"]) as pixels:
            assert pixels.size == (image["width"], image["height"]) and pixels.mode == "RGB"
    assert len({image["id"] for image in coco["images"]}) == len(coco["images"])
    assert len({ann["id"] for ann in coco["annotations"]}) == len(coco["annotations"])


def test_annotations_are_consistent_coco_instances(dataset: SyntheticCOCO) -> None:
    coco = COCO(str(dataset.json_file("train")))
    areas = []
    for ann in coco.loadAnns(coco.getAnnIds()):
        image = coco.imgs[ann["image_id"]]
        (polygon,) = ann["segmentation"]
        xs, ys = np.array(polygon[0::2]), np.array(polygon[1::2])
        assert len(polygon) >= 6 and ann["iscrowd"] == 0
        assert xs.min() >= 0 and ys.min() >= 0 and xs.max() <= image["width"] and ys.max() <= image["height"]
        x, y, w, h = ann["bbox"]
        assert np.allclose([x, y, x + w, y + h], [xs.min(), ys.min(), xs.max(), ys.max()], atol=1)
        rle = coco.annToRLE(ann)
        assert ann["area"] == mask_utils.area(rle) > 0
        # The pixels agree with the box; a sharp tip can end between pixel centres, a pixel or two short.
        px, py, pw, ph = mask_utils.toBbox(rle)
        assert np.allclose([px, py, px + pw, py + ph], [x, y, x + w, y + h], atol=2.5)
        areas.append(ann["area"])
    areas = np.array(areas)
    assert (areas < 32**2).any() and (areas > 96**2).any()
    assert len({ann["category_id"] for ann in coco.anns.values()}) == len(CATEGORIES)
    assert len({(image["height"], image["width"]) for image in coco.imgs.values()}) > 1  # not all one size
    assert any(image["height"] != image["width"] for image in coco.imgs.values())


def test_several_objects_per_image_some_overlap_none_mostly_hidden(dataset: SyntheticCOCO) -> None:
    coco = COCO(str(dataset.json_file("train")))
    overlapping = 0
    for image_id, image in coco.imgs.items():
        anns = coco.imgToAnns[image_id]  # in drawing order
        assert len(anns) >= 2
        masks = [coco.annToMask(ann).astype(bool) for ann in anns]
        for i, mask in enumerate(masks):
            covered = np.logical_or.reduce([np.zeros_like(mask), *masks[i + 1 :]])
            hidden = np.count_nonzero(mask & covered)
            overlapping += hidden > 0
            assert hidden <= synthetic.MAX_HIDDEN_FRACTION * mask.sum() + 1, (image["file_name"], i)
    assert overlapping > 0


def test_objects_stand_out_from_the_background(dataset: SyntheticCOCO) -> None:
    coco = COCO(str(dataset.json_file("val")))
    for ann in coco.loadAnns(coco.getAnnIds()):
        image = coco.imgs[ann["image_id"]]
        with Image.open(dataset.image_root("val") / image["file_name"]) as pixels:
            array = np.asarray(pixels, dtype=np.float32)
        x, y, w, h = (int(v) for v in ann["bbox"])
        ring = np.zeros(array.shape[:2], dtype=bool)
        ring[max(y - 3, 0) : y + h + 4, max(x - 3, 0) : x + w + 4] = True
        mask = coco.annToMask(ann).astype(bool)
        ring &= ~mask
        if ring.any():  # the object's mean colour differs from what surrounds it
            assert np.linalg.norm(array[mask].mean(0) - array[ring].mean(0)) > 10, ann["id"]


def test_second_call_reuses_the_dataset(tmp_path: Path) -> None:
    first = make_synthetic_coco(tmp_path, num_train=3, num_val=2, seed=0)
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    second = make_synthetic_coco(tmp_path, num_train=3, num_val=2, seed=0)
    assert first.generated and not second.generated
    assert second.num_images == first.num_images and second.num_annotations == first.num_annotations
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == stamps


def test_other_parameters_regenerate_and_drop_stale_images(tmp_path: Path) -> None:
    make_synthetic_coco(tmp_path, num_train=4, num_val=2, seed=0)
    dataset = make_synthetic_coco(tmp_path, num_train=2, num_val=2, seed=0)
    assert dataset.generated
    assert sorted(p.name for p in dataset.image_root("train").iterdir()) == ["000000.jpg", "000001.jpg"]
    manifest = json.loads((tmp_path / synthetic.MANIFEST).read_text())
    assert manifest["params"]["num_train"] == 2


def test_interrupted_generation_is_not_taken_as_complete(tmp_path: Path, monkeypatch) -> None:
    write_split = synthetic._write_split

    def fail_on_val(root, split, *args):
        if split == "val":
            raise KeyboardInterrupt
        return write_split(root, split, *args)

    monkeypatch.setattr(synthetic, "_write_split", fail_on_val)
    with pytest.raises(KeyboardInterrupt):
        make_synthetic_coco(tmp_path, num_train=2, num_val=2, seed=0)
    assert not (tmp_path / synthetic.MANIFEST).exists()
    monkeypatch.undo()
    assert make_synthetic_coco(tmp_path, num_train=2, num_val=2, seed=0).generated


def test_fixed_height_width(tmp_path: Path) -> None:
    dataset = make_synthetic_coco(tmp_path, num_train=2, num_val=1, image_size=(80, 120), seed=0)
    images = json.loads(dataset.json_file("train").read_text())["images"]
    assert {(image["height"], image["width"]) for image in images} == {(80, 120)}


@pytest.mark.parametrize(
    "bad",
    [
        {"num_train": 0},
        {"num_val": -1},
        {"seed": -2},
        {"image_size": 16},
        {"image_size": (64, 8)},
        {"image_size": (64,)},
    ],
)
def test_bad_parameters_are_refused(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(ValueError):
        make_synthetic_coco(tmp_path, **{**SMALL, "seed": 0, **bad})


def test_cli_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mimdet.data.synthetic", "--help"], capture_output=True, text=True, check=True
    )
    assert "--num-train" in result.stdout and "--size" in result.stdout


def test_cli_generates_and_summarises(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "mimdet.data.synthetic", "--out", str(tmp_path)]
    command += ["--num-train", "3", "--num-val", "2", "--size", "96x128", "--seed", "1"]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "train 3 images" in lines[0] and "val 2 images" in lines[0]
    assert "generated" in lines[0]
    with Image.open(tmp_path / "train" / "000002.jpg") as image:
        assert image.size == (128, 96)
    again = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "already present" in again.stdout
    bad = subprocess.run(command[:5] + ["--size", "big"], capture_output=True, text=True)
    assert bad.returncode == 2 and "HEIGHTxWIDTH" in bad.stderr


# --- registration --------------------------------------------------------------------------------------


def test_register_synthetic_default_names(tmp_path: Path, registry, catalog) -> None:
    from detectron2.data import DatasetCatalog, MetadataCatalog

    names = registry.register_synthetic(tmp_path)
    assert names == ("synthetic_train", "synthetic_val")  # the names the tiny configs use
    assert registry.register_synthetic(tmp_path) == names  # registering again does not raise
    dicts = DatasetCatalog.get("synthetic_val")
    assert len(dicts) == synthetic.DEFAULT_NUM_VAL
    annotation = dicts[0]["annotations"][0]
    assert annotation["segmentation"] and "bbox_mode" in annotation and "bbox" in annotation
    assert MetadataCatalog.get("synthetic_train").thing_classes == list(CATEGORIES)
    registry.ensure_registered(names)


def test_register_synthetic_other_parameters_get_their_own_names_and_folder(
    tmp_path: Path, registry, catalog
) -> None:
    from detectron2.data import DatasetCatalog, MetadataCatalog

    train, val = registry.register_synthetic(tmp_path, num_train=3, num_val=2, seed=7)
    assert train.startswith("synthetic_") and "seed7" in train and train.endswith("_train")
    assert len(DatasetCatalog.get(train)) == 3 and len(DatasetCatalog.get(val)) == 2
    assert Path(MetadataCatalog.get(train).json_file).is_relative_to(tmp_path)
    assert not (tmp_path / "synthetic").exists()  # the default dataset's folder is left alone


def test_register_coco_path_replaces_a_name(tmp_path: Path, registry, catalog) -> None:
    from detectron2.data import MetadataCatalog

    a = make_synthetic_coco(tmp_path / "a", num_train=2, num_val=1, seed=0)
    b = make_synthetic_coco(tmp_path / "b", num_train=2, num_val=1, seed=1)
    assert registry.register_coco_path("test_data_shapes", a.json_file("val"), a.image_root("val"))
    registry.register_coco_path("test_data_shapes", a.json_file("val"), a.image_root("val"))
    registry.register_coco_path("test_data_shapes", b.json_file("val"), b.image_root("val"))
    assert MetadataCatalog.get("test_data_shapes").json_file == str(b.json_file("val"))


def test_register_coco_path_validates_first(tmp_path: Path, registry, catalog) -> None:
    from detectron2.data import DatasetCatalog

    with pytest.raises(registry.DatasetError, match="missing.json"):
        registry.register_coco_path("test_data_missing", tmp_path / "missing.json", tmp_path)
    assert "test_data_missing" not in DatasetCatalog.list()


# --- validation ----------------------------------------------------------------------------------------


@pytest.fixture
def small_coco(tmp_path: Path) -> SyntheticCOCO:
    return make_synthetic_coco(tmp_path / "coco", num_train=3, num_val=2, seed=0)


def _assert_names(error: pytest.ExceptionInfo, path: Path) -> None:
    message = str(error.value)
    assert str(path) in message and "\n" not in message


def test_valid_dataset_passes(small_coco: SyntheticCOCO, registry) -> None:
    registry.validate_coco_dataset(small_coco.json_file("train"), small_coco.image_root("train"))


def test_missing_json_file(tmp_path: Path, registry) -> None:
    path = tmp_path / "nowhere" / "instances_val.json"
    with pytest.raises(registry.DatasetError, match="not found") as error:
        registry.validate_coco_dataset(path, tmp_path)
    _assert_names(error, path)


@pytest.mark.parametrize("content", [b"{'images': []}", b"", b"\xff\xfe\x00garbage", b'{"images": [}'])
def test_not_json(tmp_path: Path, registry, content: bytes) -> None:
    path = tmp_path / "instances.json"
    path.write_bytes(content)
    with pytest.raises(registry.DatasetError, match="not valid JSON") as error:
        registry.validate_coco_dataset(path, tmp_path)
    _assert_names(error, path)


def _coco_with(small_coco: SyntheticCOCO, change) -> dict:
    coco = json.loads(small_coco.json_file("train").read_text())
    change(coco)
    return coco


NOT_COCO = {
    "a list": lambda coco: coco.clear(),  # replaced by [] below
    "no annotations": lambda coco: coco.pop("annotations"),
    "images not a list": lambda coco: coco.update(images={"id": 1}),
    "image without file_name": lambda coco: coco["images"][1].pop("file_name"),
    "string image id": lambda coco: coco["images"][0].update(id="1"),
    "category without name": lambda coco: coco["categories"][0].pop("name"),
    "annotation of an unknown image": lambda coco: coco["annotations"][0].update(image_id=999),
    "annotation of an unknown category": lambda coco: coco["annotations"][0].update(category_id=99),
    "annotation without bbox": lambda coco: coco["annotations"][0].pop("bbox"),
    # before: these passed, and detectron2's loader or pycocotools failed in a traceback once the run began
    "image without width": lambda coco: coco["images"][0].pop("width"),
    "image of height 0": lambda coco: coco["images"][0].update(height=0),
    "no images": lambda coco: coco.update(images=[], annotations=[]),
    "no categories": lambda coco: coco.update(categories=[], annotations=[]),
    "bbox of 2 numbers": lambda coco: coco["annotations"][0].update(bbox=[1, 2]),
    "bbox of a string": lambda coco: coco["annotations"][0].update(bbox=["a", 1, 2, 3]),
    "bbox of negative width": lambda coco: coco["annotations"][0].update(bbox=[10, 10, -5, 4]),
}


@pytest.mark.parametrize("case", sorted(NOT_COCO))
def test_not_coco_instances(small_coco: SyntheticCOCO, tmp_path: Path, registry, case: str) -> None:
    coco = [] if case == "a list" else _coco_with(small_coco, NOT_COCO[case])
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(coco))
    with pytest.raises(registry.DatasetError, match="not COCO instances format") as error:
        registry.validate_coco_dataset(path, small_coco.image_root("train"))
    _assert_names(error, path)


def _repeat_an_annotation_id(coco: dict) -> None:
    coco["annotations"][1]["id"] = coco["annotations"][0]["id"]


NOT_READABLE_ENTRIES = {  # before: each passed, and the run failed in detectron2's or pycocotools' traceback
    "repeated annotation id": (
        _repeat_an_annotation_id,
        "annotations[1].id is 1, as annotations[0]'s (allowed: an id once; detectron2 refuses ids that are "
        "not unique)",
    ),
    "polygon of 3 numbers": (
        lambda coco: coco["annotations"][0].update(segmentation=[[1, 2, 3]]),
        "annotations[0].segmentation: a polygon of 3 values (allowed: lists of x, y numbers, an even count, "
        "at least 6 each)",
    ),
    "segmentation of a string": (
        lambda coco: coco["annotations"][0].update(segmentation="abc"),
        "annotations[0].segmentation: 'abc' (allowed: polygons, lists of x, y numbers, or an RLE object)",
    ),
    "iscrowd of a string": (
        lambda coco: coco["annotations"][0].update(iscrowd="yes"),
        "annotations[0].iscrowd: 'yes' (allowed: 0 or 1)",
    ),
    "area of a string": (
        lambda coco: coco["annotations"][0].update(area="x"),
        "annotations[0].area: 'x' (allowed: a finite number of 0 or more)",
    ),
    "width of true": (lambda coco: coco["images"][0].update(width=True), "images[0] has no int 'width'"),
}


@pytest.mark.parametrize("case", sorted(NOT_READABLE_ENTRIES))
def test_an_entry_its_readers_cannot_use_is_one_line_naming_it(
    small_coco: SyntheticCOCO, tmp_path: Path, registry, case: str
) -> None:
    change, problem = NOT_READABLE_ENTRIES[case]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(_coco_with(small_coco, change)))
    with pytest.raises(registry.DatasetError) as error:
        registry.validate_coco_dataset(path, small_coco.image_root("train"))
    assert str(error.value) == f"{path}: not COCO instances format: {problem}"


def test_a_training_set_without_annotations_is_refused_as_a_training_set_only(
    small_coco: SyntheticCOCO, tmp_path: Path, registry, catalog
) -> None:
    """Before: detectron2's "No valid data found" traceback once the run had started; a test set without
    annotations is still one (its AP is the evaluation's business)."""
    path = tmp_path / "empty.json"
    path.write_text(json.dumps(_coco_with(small_coco, lambda coco: coco.update(annotations=[]))))
    registry.register_coco_path("test_data_no_annotations", path, small_coco.image_root("train"))
    registry.ensure_registered("test_data_no_annotations")
    with pytest.raises(registry.DatasetError) as error:
        registry.ensure_registered("test_data_no_annotations", training=True)
    assert str(error.value) == (
        f"{path}: no annotation that is not a crowd (iscrowd 0), and a training set needs one "
        "(detectron2 finds no image to train on) (dataset 'test_data_no_annotations')"
    )


def test_missing_images(small_coco: SyntheticCOCO, registry) -> None:
    image_root = small_coco.image_root("train")
    (image_root / "000001.jpg").unlink()
    (image_root / "000002.jpg").unlink()
    with pytest.raises(registry.DatasetError, match="2 of 3 images are missing") as error:
        registry.validate_coco_dataset(small_coco.json_file("train"), image_root)
    _assert_names(error, image_root / "000001.jpg")
    _assert_names(error, small_coco.json_file("train"))


def test_missing_image_folder(small_coco: SyntheticCOCO, tmp_path: Path, registry) -> None:
    with pytest.raises(registry.DatasetError, match="image folder not found") as error:
        registry.validate_coco_dataset(small_coco.json_file("train"), tmp_path / "no_images")
    _assert_names(error, tmp_path / "no_images")


# --- ensure_registered ---------------------------------------------------------------------------------


def test_unknown_name_lists_close_matches(registry) -> None:
    with pytest.raises(registry.DatasetError, match="close matches: coco_2017_val") as error:
        registry.ensure_registered("coco_2017_vall")
    assert "\n" not in str(error.value)


def test_registered_with_bad_files_stops_naming_the_file(tmp_path: Path, registry, catalog) -> None:
    from detectron2.data.datasets import register_coco_instances

    json_file = tmp_path / "instances_x.json"
    json_file.write_text('{"images": 3}')
    register_coco_instances("test_data_bad_files", {}, str(json_file), str(tmp_path))
    with pytest.raises(registry.DatasetError, match="test_data_bad_files") as error:
        registry.ensure_registered(["test_data_bad_files"])
    _assert_names(error, json_file)


def test_builtin_coco_without_files(tmp_path: Path, monkeypatch, registry) -> None:
    monkeypatch.chdir(tmp_path)  # detectron2's builtin paths are relative to DETECTRON2_DATASETS
    from detectron2.data import MetadataCatalog

    json_file = MetadataCatalog.get("coco_2017_val").json_file
    if Path(json_file).exists():
        pytest.skip(f"COCO is installed at {json_file}")
    with pytest.raises(registry.DatasetError, match="DETECTRON2_DATASETS") as error:
        registry.ensure_registered("coco_2017_val")
    _assert_names(error, Path(json_file))
