"""The animal mode's pieces: the animal checkpoint layout, and the cat and dog face finder on the examples."""

from __future__ import annotations

import numpy as np
import pytest

from liveportrait.errors import NoFaceError, WeightsError
from tests.conftest import require_module

# where the examples' animal faces are (pixels, measured by eye): eye centres, the animal's right first
S25_EYES = np.array([[172.0, 232.0], [303.0, 229.0]])  # shiba dog, 512 x 512
S39_EYES = np.array([[414.0, 480.0], [630.0, 414.0]])  # ragdoll cat, 1080 x 1439


@pytest.fixture(scope="module")
def animal_finder(cropper):
    from liveportrait.face.animal import AnimalFaceFinder

    return AnimalFaceFinder(human=cropper)


def _animal_layout(human_root, animal_base, root):
    """The hub's layout under ``root``: liveportrait/ (human) and liveportrait_animals/base_models_v1.1."""
    root.mkdir(exist_ok=True)
    (root / "liveportrait").symlink_to(human_root, target_is_directory=True)
    (root / "liveportrait_animals").mkdir()
    (root / "liveportrait_animals" / "base_models_v1.1").symlink_to(animal_base, target_is_directory=True)
    return root


def test_animal_layout_loads_strictly_with_synthetic_weights(synthetic_weights, tmp_path):
    import torch

    from liveportrait.networks import LivePortraitNetworks
    from liveportrait.networks.checkpoint import read_state_dict, resolve_layout

    root = _animal_layout(synthetic_weights, synthetic_weights / "base_models", tmp_path)
    layout = resolve_layout(root, animal=True)
    assert layout.base_dir == root / "liveportrait_animals" / "base_models_v1.1"
    assert layout.retargeting_dir == root / "liveportrait" / "retargeting_models"  # S is the human one
    nets = LivePortraitNetworks.from_pretrained(root, "released", animal=True)
    for module in ("appearance_feature_extractor", "motion_extractor", "warping_module", "spade_generator"):
        stored = read_state_dict(layout.file(module), module)
        loaded = getattr(nets, module).state_dict()
        assert stored.keys() == loaded.keys()
        assert all(torch.equal(stored[k].float(), loaded[k].float()) for k in stored)


def test_animal_layout_with_a_wrong_tensor_is_refused(tiny_weights, tmp_path):
    import shutil

    import torch

    from liveportrait.networks import LivePortraitNetworks

    animal = tmp_path / "animal_base"
    shutil.copytree(tiny_weights / "base_models", animal)
    state = torch.load(animal / "warping_module.pth", weights_only=True)
    state.pop(next(iter(state)))
    torch.save(state, animal / "warping_module.pth")
    root = _animal_layout(tiny_weights, animal, tmp_path / "root")
    with pytest.raises(WeightsError, match="warping_module.*missing tensor"):
        LivePortraitNetworks.from_pretrained(root, "tiny", animal=True, download=False)


def test_animal_layout_missing_names_the_animal_folder(tiny_weights, tmp_path):
    from liveportrait.networks.checkpoint import locate_weights

    (tmp_path / "liveportrait").symlink_to(tiny_weights, target_is_directory=True)
    with pytest.raises(WeightsError, match=r"liveportrait_animals/base_models_v1\.1.*download --animal"):
        locate_weights(tmp_path, animal=True)


def _eyes_in_crop(fc, eyes):
    from liveportrait.face import geometry

    return geometry.transform_points(eyes, fc.M_o2c)


@pytest.mark.parametrize("name, eyes, roll", [("s25", S25_EYES, 0.0), ("s39", S39_EYES, -17.0)])
def test_example_animals_are_found_and_framed(animal_finder, source_dir, load_rgb, name, eyes, roll):
    """Framed like the reference's animal crop: upright, eyes level a little above the middle, the head inside."""
    from liveportrait.face.animal import crop_animal

    fc = crop_animal(load_rgb(source_dir / f"{name}.jpg"), animal_finder)
    assert fc.crop_256.shape == (256, 256, 3) and fc.landmarks is None and fc.eye_ratio is None
    assert abs(np.degrees(fc.angle) - roll) < 6  # turned upright by the head's roll
    right, left = _eyes_in_crop(fc, eyes)
    spacing = float(np.linalg.norm(left - right))
    # the reference's side: 2.3 times the outer eye corners' span (about 1.34 eye spacings); measured here
    # on the mesh's nine points: the dog's crop 15 % wider (its muzzle sets the width), the cat's as the rule
    reference = 512 / (2.3 * 1.34)
    assert 0.75 * reference < spacing < 1.25 * reference, spacing
    assert abs((right[1] + left[1]) / 2 - 256 * 0.85) < 40  # eye line a little above the middle (vy -0.125)
    assert abs((right[0] + left[0]) / 2 - 256) < 30  # centred across
    assert right[0] < left[0]


def test_a_human_photo_in_animal_mode_says_so(animal_finder, source_dir, load_rgb):
    from liveportrait.face.animal import crop_animal

    with pytest.raises(NoFaceError, match="only a human face: animate it without --animal"):
        crop_animal(load_rgb(source_dir / "s0.jpg"), animal_finder)


def test_nothing_found_suggests_a_crop_box(animal_finder):
    from liveportrait.face.animal import crop_animal

    rng = np.random.default_rng(0)
    noise = (rng.random((300, 400, 3)) * 255).astype(np.uint8)
    with pytest.raises(NoFaceError, match=r"no cat or dog face .*--crop-box x0,y0,x1,y1"):
        crop_animal(noise, animal_finder)


@pytest.mark.parametrize("name", ["s25", "s39"])
def test_an_animal_photo_in_human_mode_is_no_face(cropper, source_dir, load_rgb, name):
    with pytest.raises(NoFaceError, match="no human face.*--crop-box.*add --animal"):
        cropper.crop_image(load_rgb(source_dir / f"{name}.jpg"))


def test_each_proposal_alone_is_not_trusted(animal_finder, source_dir, load_rgb):
    """The cat cascades fire on human faces and miss the ragdoll with the extended one: the reason for
    the confirmation step (if this changes, the module's notes and the README are out of date)."""
    import cv2

    image = load_rgb(source_dir / "s39.jpg")
    extended = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalcatface_extended.xml")
    gray = cv2.cvtColor(cv2.resize(image, (480, 640), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    assert len(extended.detectMultiScale(gray, 1.05, 3, minSize=(48, 48))) == 0
    assert animal_finder.proposals(load_rgb(source_dir / "s0.jpg"))  # a cat cascade fires on a human face


def _turned(image, eyes, degrees):
    """``image`` turned by ``degrees`` about its centre (same size, edges mirrored), and where the eyes went."""
    import cv2

    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REFLECT), eyes @ m[:, :2].T + m[:, 2]


def _shrunk_on_a_canvas(image, eyes):
    """``image`` in the right half of a grey canvas twice its size (the face a quarter as large, relatively)."""
    h, w = image.shape[:2]
    canvas = np.full((2 * h, 2 * w, 3), 120, np.uint8)
    canvas[h // 2:h // 2 + h, w:] = image
    return canvas, eyes + [w, h // 2]


def _mirrored(image, eyes):
    w = image.shape[1]
    return np.ascontiguousarray(image[:, ::-1]), np.stack([w - 1 - eyes[::-1, 0], eyes[::-1, 1]], 1)


def _close_up(image, eyes, side):
    """A close-up ``side`` eye spacings square around the face, the ears cut off (as scikit-image's chelsea)."""
    spacing = float(np.linalg.norm(eyes[1] - eyes[0]))
    cx, cy = eyes.mean(0) + [0, 0.35 * spacing]
    x0, y0 = int(max(cx - side * spacing / 2, 0)), int(max(cy - side * spacing / 2, 0))
    x1, y1 = int(cx + side * spacing / 2), int(cy + side * spacing / 2)
    return np.ascontiguousarray(image[y0:y1, x0:x1]), eyes - [x0, y0]


CHANGES = {"turned left": lambda im, e: _turned(im, e, 20.0), "turned right": lambda im, e: _turned(im, e, -20.0),
           "far away": _shrunk_on_a_canvas, "mirrored": _mirrored,
           "close-up": lambda im, e: _close_up(im, e, 1.8), "tighter close-up": lambda im, e: _close_up(im, e, 2.6)}


def test_tilted_distant_mirrored_and_close_up_animals_are_found(animal_finder, source_dir, load_rgb):
    """Pets tilt their heads and close-ups cut them off: the animal_finder also searches the picture turned 20
    degrees either way and on a widened canvas, and the mesh places the eyes. Of these 12 copies of s25 and
    s39, 11 are framed right (eyes within 0.3 of their spacing; measured: the dog turned left is 0.37 off),
    with a median error of 0.06 spacings. The detector's eyes alone framed 11 too (the mirrored ragdoll was
    0.99 off), with a median error of 0.13."""
    errors = {}
    for name, eyes in (("s25", S25_EYES), ("s39", S39_EYES)):
        image = load_rgb(source_dir / f"{name}.jpg")
        for change, make in CHANGES.items():
            picture, where = make(image, eyes)
            faces, _ = animal_finder.find(picture)
            spacing = float(np.linalg.norm(where[1] - where[0]))
            errors[f"{name} {change}"] = (float(np.abs(faces[0].keypoints[:2] - where).max()) / spacing
                                          if faces else np.inf)
    framed = [k for k, e in errors.items() if e < 0.3]
    assert len(framed) >= 11, errors
    assert np.median(list(errors.values())) < 0.1, errors  # the mesh's eyes, not the detector's


def test_pictures_without_animals_give_no_animal_face(animal_finder):
    """scikit-image's sample pictures: a coffee cup, a rocket, a horse's silhouette, a cameraman."""
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image (the dev extra) has the pictures")
    for name in ("coffee", "rocket", "horse", "camera", "immunohistochemistry"):
        picture = getattr(skimage_data, name)()
        picture = np.stack([picture] * 3, -1) if picture.ndim == 2 else picture[..., :3]
        picture = (picture * 255 if picture.max() <= 1 else picture).astype(np.uint8)
        faces, _ = animal_finder.find(np.ascontiguousarray(picture))
        assert not faces, name


def test_framing_takes_the_roll_from_the_eyes_alone():
    """The mesh puts a pet's mouth off to one side: the nose and lips are swung about the eyes' anchor
    (distances kept) until the eye-to-mouth axis is square to the eye line; the eye corners stay."""
    from liveportrait.face import geometry
    from liveportrait.face.animal import AnimalFace

    roll = np.radians(-17.0)
    turn = np.array([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]])
    # eye corners level, mouth 5 px to the right of the eyes' middle, then the whole face rolled
    nine = np.array([[0, 0], [10, 0], [30, 0], [40, 0], [25, 20], [15, 30], [35, 30], [25, 28], [25, 34]],
                    np.float64) @ turn.T + [100, 200]
    pts = AnimalFace(np.zeros(4), np.zeros((4, 2)), 1.0, 1.0, nine=nine).framing_points()
    np.testing.assert_allclose(pts[:4], nine[:4])
    eye, mouth = geometry.anchor_points(pts)
    across = (pts[2] + pts[3]) / 2 - (pts[0] + pts[1]) / 2
    assert abs(np.dot(mouth - eye, across)) < 1e-9
    np.testing.assert_allclose(np.linalg.norm(pts[4:] - eye, axis=1), np.linalg.norm(nine[4:] - eye, axis=1))
    assert abs(np.degrees(geometry.face_rect(pts).angle) - -17.0) < 1e-6


def test_two_looks_or_a_strong_agreement_of_the_cascades_make_a_face():
    """The decision in votes: two detector looks reach FACE_VOTES alone (the rule before the cascades' agreement
    counted), one look does not, and the agreement counts toward a face: alone only when strong, since a night
    street draws a weak one (MIN_AGREEMENT) from the cascades."""
    from liveportrait.face.animal import FACE_VOTES, MIN_AGREEMENT, AnimalFace

    def votes(looks, agreement):
        return AnimalFace(np.zeros(4), np.zeros((4, 2)), 0.5, 0.5, looks=looks, agreement=agreement).votes

    assert votes(2, 0) >= FACE_VOTES
    assert votes(1, 0) < FACE_VOTES
    assert votes(0, MIN_AGREEMENT) < FACE_VOTES
    assert votes(0, FACE_VOTES) >= FACE_VOTES
    assert votes(1, FACE_VOTES // 2) >= FACE_VOTES


def test_the_cascades_agree_where_their_boxes_overlap_on_one_picture():
    """Boxes of the two cascades agree when they overlap enough on the same (plain or equalised) picture; the
    agreement is the weaker box's neighbour count."""
    from liveportrait.face.animal import AnimalFaceFinder

    box = np.array([100.0, 100.0, 200.0, 200.0])
    shifted, far = box + 10, box + 300
    plain = [[(box, 12), (far, 30)], [(shifted, 7)]]
    equalised = [[(far, 9)], [(box, 40)]]
    agreed = AnimalFaceFinder._agreements(plain + equalised)
    assert [votes for _, votes in agreed] == [7]  # far is only seen by one cascade on each picture
    np.testing.assert_allclose(agreed[0][0], box + 5)


def _benchmark():
    """The benchmark's picture makers (benchmarks/ is not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_animal_finder.py"
    spec = importlib.util.spec_from_file_location("bench_animal_finder", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_human_examples_give_no_animal_face(animal_finder, source_dir, load_rgb):
    """Zero false positives on the human examples: the cat cascades agree on some of these faces as strongly as
    on a cat's (20 neighbours on s0), so the human check must still drop them."""
    for name in _benchmark().HUMANS:
        faces, humans = animal_finder.find(load_rgb(source_dir / f"{name}.jpg"))
        assert not faces, (name, [(a.looks, a.agreement) for a in faces])


def test_a_light_furred_cat_small_on_a_busy_background_is_found(animal_finder, examples_dir):
    """The issue's case, made here: chelsea with white-grey fur, full body, its face 15 % of a 1200 px noisy
    background. MediaPipe's detector does not confirm it in any view (two looks were the rule before, and
    missed it); both cat cascades agree on it (13 neighbours, measured) and that alone reaches FACE_VOTES."""
    skimage_data = require_module("skimage.data", "scikit-image, the dev extra, has chelsea")
    bench = _benchmark()
    cat = bench.as_picture(skimage_data.chelsea())
    background = bench.busy_backgrounds(examples_dir, skimage_data)["noise"]
    picture, eyes = bench.full_body(cat, np.array(bench.CHELSEA_EYES), bench.PET_SHAPES["chelsea"], background,
                                    0.15, (0.3, 0.85), "light")
    faces, humans = animal_finder.find(picture)
    assert faces and humans == 0
    spacing = float(np.linalg.norm(eyes[1] - eyes[0]))
    assert np.abs(faces[0].keypoints[:2] - eyes).max() < 0.3 * spacing, (faces[0].keypoints[:2], eyes)
    assert faces[0].looks < 2  # found on the cascades' agreement, not on the detector
