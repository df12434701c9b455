"""fnn.data.canvas: digits pasted on canvases with per-pixel masks, and pixel accuracy / IoU
from a confusion matrix, against hand-computed cases."""
import numpy as np
import pytest

from fnn.data.canvas import digit_canvases, segmentation_scores


def squares():
    # two 4×4 "digits": label 3 a full square of 0.9, label 7 a 2×2 bright centre of 1.0
    a = np.full((4, 4), 0.9, np.float32)
    b = np.zeros((4, 4), np.float32)
    b[1:3, 1:3] = 1.0
    b[0, 0] = 0.3  # below the threshold: on the canvas, not in the mask
    return np.stack([a, b]), np.array([3, 7])


def test_canvases_hold_the_pasted_digits_and_masks_label_their_strokes():
    images, labels = squares()
    canvases, masks = digit_canvases(images, labels, count=50, size=9, max_digits=3, seed=1)
    assert canvases.shape == masks.shape == (50, 9, 9)
    assert canvases.dtype == np.float32 and masks.dtype == np.int32
    assert set(np.unique(masks)) <= {0, 4, 8}  # background, 3 + 1, 7 + 1
    # a mask pixel is set only where the canvas is bright, and every bright pixel is labelled
    assert np.all(canvases[masks > 0] > 0.5) and np.all(masks[canvases > 0.5] > 0)
    # pixels of value 0.3 exist (the corner of a 7 not covered by anything brighter) unlabelled
    assert np.any((np.abs(canvases - 0.3) < 1e-6) & (masks == 0))
    # every canvas has between 1 and 3 digits: at least 4 labelled pixels (a 7's centre)
    assert np.all((masks > 0).sum(axis=(1, 2)) >= 4)
    again = digit_canvases(images, labels, count=50, size=9, max_digits=3, seed=1)
    np.testing.assert_array_equal(again[0], canvases)
    other = digit_canvases(images, labels, count=50, size=9, max_digits=3, seed=2)
    assert not np.array_equal(other[0], canvases)


def test_one_digit_on_a_canvas_of_its_own_size_is_the_digit():
    images, labels = squares()
    canvases, masks = digit_canvases(images[1:], labels[1:], count=2, size=4, seed=0)
    np.testing.assert_array_equal(canvases[0], images[1])
    expected = np.zeros((4, 4), np.int32)
    expected[1:3, 1:3] = 8
    np.testing.assert_array_equal(masks[0], expected)


@pytest.mark.parametrize("kwargs, message", [
    ({"size": 3}, "`size` must be an int >= the digits' size 4"),
    ({"count": 0}, "`count` must be an int >= 1"),
    ({"min_digits": 3, "max_digits": 2}, "`min_digits` <= `max_digits`"),
    ({"threshold": 1.0}, "`threshold` must be in"),
])
def test_bad_arguments_are_named(kwargs, message):
    images, labels = squares()
    with pytest.raises(ValueError, match=message):
        digit_canvases(images, labels, **{"count": 1, **kwargs})


def test_segmentation_scores_by_hand():
    # rows true, columns predicted: class 0 (6 px: 5 right, 1 called 1), class 1 (4 px: 3
    # right, 1 called 0), class 2 never present nor predicted
    cm = np.array([[5, 1, 0], [1, 3, 0], [0, 0, 0]])
    s = segmentation_scores(cm)
    assert s["pixel_accuracy"] == pytest.approx(8 / 10)
    assert s["iou"][0] == pytest.approx(5 / 7) and s["iou"][1] == pytest.approx(3 / 5)
    assert s["iou"][2] is None
    assert s["mean_iou"] == pytest.approx((5 / 7 + 3 / 5) / 2)
