import numpy as np
import pytest
from scipy import ndimage

from zoo_jax.data import captions, datasets, vision
from zoo_jax.errors import InputError, UnknownNameError

pytestmark = pytest.mark.xdist_group("captions")  # one worker measures each training set once


def _cells_with_ink(canvas):
    c = captions.CELL
    return [i for i in range(4) if canvas[(i // 2) * c : (i // 2 + 1) * c, (i % 2) * c : (i % 2 + 1) * c].sum() > 0]  # fmt: skip


def test_canvas_captions_name_the_digits_in_their_cells():
    images, labels = vision.load("mnist", "test")
    x, y, which = captions.compose(images[:50], labels[:50], captions.LAYOUTS, 40, seed=3)
    assert x.shape == (40, 64, 64, 1) and y.shape == (40, captions.CAPTION_LEN)
    assert x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1
    for canvas, ids, w in zip(x[..., 0], y, which, strict=True):
        words = captions.decode(ids).split(" , ")
        layout = captions.LAYOUTS[w]
        assert len(words) == len(layout) and ids[0] == captions.BOS
        assert [captions.CELLS.index(p.split(" ", 2)[2]) for p in words] == list(layout)
        assert _cells_with_ink(canvas) == list(layout)  # the empty cells are empty
        assert all(p.split()[1] in "0123456789" for p in words)


def test_caption_digits_are_the_labels_of_the_digits_placed():
    # one source digit per class: a caption's digit says which image went into the cell
    images, labels = vision.load("mnist", "test")
    firsts = [int(np.argmax(labels == d)) for d in range(10)]
    x, y, which = captions.compose(images[firsts], labels[firsts], captions.LAYOUTS, 20, seed=1)
    for canvas, ids, w in zip(x[..., 0], y, which, strict=True):
        for phrase, cell in zip(
            captions.decode(ids).split(" , "), captions.LAYOUTS[w], strict=True
        ):
            top, left = (cell // 2) * captions.CELL, (cell % 2) * captions.CELL
            patch = canvas[top : top + captions.CELL, left : left + captions.CELL]
            digit = images[firsts[int(phrase.split()[1])]] / 255.0
            assert any(np.allclose(patch[dy : dy + 28, dx : dx + 28], digit)
                       for dy in range(5) for dx in range(5))  # fmt: skip


def test_heldout_layouts_never_appear_in_training():
    layouts_of = lambda y: {tuple(captions.CELLS.index(p.split(" ", 2)[2])
                                  for p in captions.decode(ids).split(" , ")) for ids in y}  # fmt: skip
    _, train, _ = captions.canvas_split("train")
    _, heldout, _ = captions.canvas_split("heldout")
    seen, unseen = layouts_of(train[:3000]), layouts_of(heldout)
    assert unseen == set(captions.HELDOUT_LAYOUTS)
    assert seen == set(captions.TRAIN_LAYOUTS) and not seen & unseen


def test_encode_decode_round_trip_and_unknown_words():
    text = "a 3 top left , a 7 bottom right"
    ids = captions.encode(text, captions.CAPTION_LEN, bos_eos=True)
    assert captions.decode(ids) == text and ids[-1] == captions.PAD
    with pytest.raises(KeyError):
        captions.encode("a 3 in the middle", 21, bos_eos=True)
    with pytest.raises(InputError, match="more than"):
        captions.encode(text, 5, bos_eos=False)


def test_slant_and_thickness_are_measured_from_the_image():
    images, labels = vision.load("mnist", "test")
    one = images[int(np.argmax(labels == 1))] / 255.0
    # shear: the top moves right, the bottom left (x' = x − s·(y − 14)): a right lean
    right = ndimage.affine_transform(one, [[1, 0], [0.4, 1]], offset=[0, -0.4 * 14], order=1)
    left = ndimage.affine_transform(one, [[1, 0], [-0.4, 1]], offset=[0, 0.4 * 14], order=1)
    slant = captions.measure(np.stack([left, one, right]), "mnist")[:, 1]
    assert slant[0] < slant[1] < slant[2]
    thick = ndimage.grey_dilation(one, size=(2, 2))
    ink = captions.measure(np.stack([one, thick]), "mnist")[:, 0]
    assert ink[1] > 1.3 * ink[0]


def test_sentences_describe_class_and_tertile_attributes():
    x, ids, labels, lv, z = captions.sentences("mnist-sentences", "train")
    assert x.shape == (60000, 28, 28, 1) and ids.shape == (60000, captions.SENTENCE_LEN)
    assert np.all(np.abs(np.bincount(lv[:, 0]) / 60000 - 1 / 3) < 0.01)  # tertiles
    for i in range(20):
        words = captions.decode(ids[i]).split()
        (_, thickness), (_, slant) = captions.ATTRIBUTES["mnist"]
        assert str(labels[i]) in words
        assert thickness[lv[i, 0]] in words and slant[lv[i, 1]] in words
    np.testing.assert_allclose(captions.standardized(x[:5], labels[:5], "mnist"), z[:5])


def test_unseen_split_is_worded_as_no_training_sentence():
    _, train, *_ = captions.sentences("mnist-sentences", "train")
    _, unseen, labels, lv, _ = captions.sentences("mnist-sentences", "unseen")
    assert not {tuple(s) for s in train} & {tuple(s) for s in unseen}
    assert captions.decode(unseen[0]) == captions.sentence("mnist", labels[0], *lv[0], 3)


def test_captioned_datasets_in_the_registry():
    assert datasets.kind("digit-canvases") == datasets.kind("mnist-sentences") == "captioned"
    x, y = datasets.load("digit-canvases", "validation", (64, 64, 1), limit=7)
    assert x.shape == (7, 64, 64, 1) and y.shape == (7, captions.CAPTION_LEN)
    with pytest.raises(InputError, match="cannot read"):
        datasets.load("mnist-sentences", "test", (784,), limit=2)
    with pytest.raises(UnknownNameError, match="heldout"):
        datasets.load("digit-canvases", "held-out", (64, 64, 1))
