"""Plots are written as non-empty PNG files without a display; bad inputs fail clearly."""
import numpy as np
import pytest

pytest.importorskip("matplotlib")

from fnn.plots import plot_confusion_matrix, plot_monitor, plot_roc  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CM = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 0]])  # class 2 absent: a row of zeros
HISTORY = {
    "epoch": [1, 2, 3],
    "grad_norm": {"dense_0": [0.5, 0.4, 0.3], "dense_1": [0.2, 0.2, 0.1]},
    "update_ratio": {"dense_0": [2e-3, 1e-3, 8e-4], "dense_1": [1e-5, 1e-5, 1e-5]},
    "dead_fraction": {"relu_0": [0.0, 0.1, 0.0]},
}


def assert_png(path, returned):
    assert returned == path
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000


@pytest.mark.parametrize("options", [{}, {"normalize": True, "class_names": ["cat", "dog", "emu"]}])
def test_confusion_matrix_png(tmp_path, options):
    path = tmp_path / "nested" / "cm.png"  # missing folders are created
    assert_png(path, plot_confusion_matrix(CM, path, **options))


def test_roc_png_from_pairs_and_roc_curve_triples(tmp_path):
    triple = (np.array([0, 0, 0.5, 0.5, 1]), np.array([0, 0.5, 0.5, 1, 1]),  # as roc_curve gives
              np.array([np.inf, 0.9, 0.8, 0.3, 0.2]))
    curves = {"model": triple, "perfect": ([0, 0, 1], [0, 1, 1])}
    path = tmp_path / "roc.png"
    assert_png(path, plot_roc(curves, str(path)))


def test_monitor_png(tmp_path):
    path = tmp_path / "monitor.png"
    assert_png(path, plot_monitor(HISTORY, path, title="test"))


@pytest.mark.parametrize("call, message", [
    (lambda p: plot_confusion_matrix(np.ones((2, 3)), p),
     r"plot_confusion_matrix: expected a square confusion matrix of shape \(C, C\); "
     r"got shape \(2, 3\)"),
    (lambda p: plot_confusion_matrix(-np.eye(2), p),
     "plot_confusion_matrix: `cm` must hold non-negative"),
    (lambda p: plot_confusion_matrix(CM, p, class_names=["a"]),
     "plot_confusion_matrix: got 1 class_names for a confusion matrix of 3 classes"),
    (lambda p: plot_roc({}, p),
     r"plot_roc: `curves` must be a non-empty dict name -> \(fpr, tpr\)"),
    (lambda p: plot_roc({"a": [0, 1]}, p), r"plot_roc: curve 'a' needs fpr and tpr of one shape"),
    (lambda p: plot_roc({"a": np.zeros((2, 5))}, p), "plot_roc: curve 'a' must be a pair"),
    (lambda p: plot_roc({"a": ([0, 1], [0, 0.5, 1])}, p),
     r"plot_roc: curve 'a' needs fpr and tpr of one shape \(points,\) with at least 2 points; "
     r"got \(2,\) and \(3,\)"),
    (lambda p: plot_monitor({"grad_norm": {}}, p),
     "plot_monitor: `history` must be a dict with an 'epoch'"),
    (lambda p: plot_monitor({"epoch": []}, p), "plot_monitor: `history` holds no statistics"),
    (lambda p: plot_monitor({**HISTORY, "epoch": [1, 2]}, p),
     r"plot_monitor: grad_norm\['dense_0'\] has 3 values for 2 epochs"),
])
def test_bad_inputs(tmp_path, call, message):
    path = tmp_path / "bad.png"
    with pytest.raises(ValueError, match=message):
        call(path)
    assert not path.exists()
