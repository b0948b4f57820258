import math

import pytest
import torch

from seglab.metrics.confusion import confusion_matrix_metric, segmentation_scores


def test_confusion_matrix_rows_are_targets_and_ignored_pixels_are_dropped():
    metric = confusion_matrix_metric(num_classes=3, ignore_index=255)
    target = torch.tensor([[[0, 0, 1], [2, 255, 255]]])
    preds = torch.tensor([[[0, 1, 1], [0, 2, 0]]])
    metric.update(preds, target)

    expected = torch.tensor(
        [
            [1, 1, 0],  # target 0: predicted 0 once, 1 once
            [0, 1, 0],  # target 1: predicted 1
            [1, 0, 0],  # target 2: predicted 0
        ]
    )
    assert torch.equal(metric.compute(), expected)


def test_confusion_matrix_accepts_logits_and_accumulates_over_updates():
    metric = confusion_matrix_metric(num_classes=2, ignore_index=None)
    # Argmax of these logits is [[1, 0]].
    logits = torch.tensor([[[[0.0, 3.0]], [[1.0, -1.0]]]])
    metric.update(logits, torch.tensor([[[1, 1]]]))
    metric.update(torch.tensor([[[0, 0]]]), torch.tensor([[[0, 1]]]))

    assert torch.equal(metric.compute(), torch.tensor([[1, 0], [2, 1]]))


def test_scores_of_a_hand_worked_three_class_matrix():
    confmat = torch.tensor([[5, 1, 0], [2, 3, 1], [0, 0, 4]])
    scores = segmentation_scores(confmat)

    # class 0: TP 5, FP 2, FN 1 | class 1: TP 3, FP 1, FN 3 | class 2: TP 4, FP 1, FN 0
    iou = [5 / 8, 3 / 7, 4 / 5]
    dice = [10 / 13, 6 / 10, 8 / 9]
    torch.testing.assert_close(scores["IoU"], torch.tensor(iou))
    torch.testing.assert_close(scores["Dice"], torch.tensor(dice))
    torch.testing.assert_close(scores["mIoU"], torch.tensor(sum(iou) / 3))
    torch.testing.assert_close(scores["mDice"], torch.tensor(sum(dice) / 3))
    torch.testing.assert_close(scores["pixel_accuracy"], torch.tensor(12 / 16))
    assert scores["present"].tolist() == [True, True, True]
    assert scores["IoU"].dtype == torch.float32
    assert scores["IoU"].device == confmat.device


def test_class_absent_from_target_and_prediction_is_left_out_of_the_means():
    confmat = torch.tensor([[3, 0, 1], [0, 0, 0], [1, 0, 2]])
    scores = segmentation_scores(confmat)

    assert math.isnan(scores["IoU"][1]) and math.isnan(scores["Dice"][1])
    assert scores["present"].tolist() == [True, False, True]
    # class 0: TP 3, FP 1, FN 1 | class 2: TP 2, FP 1, FN 1
    torch.testing.assert_close(scores["mIoU"], torch.tensor((3 / 5 + 2 / 4) / 2))
    torch.testing.assert_close(scores["mDice"], torch.tensor((6 / 8 + 4 / 6) / 2))


def test_class_only_predicted_scores_zero_and_lowers_the_mean():
    # Class 1 never occurs in the target but is predicted once.
    confmat = torch.tensor([[3, 1, 0], [0, 0, 0], [0, 0, 2]])
    scores = segmentation_scores(confmat)

    assert scores["IoU"][1] == 0 and scores["Dice"][1] == 0
    assert scores["present"].tolist() == [True, True, True]
    torch.testing.assert_close(scores["mIoU"], torch.tensor((3 / 4 + 0 + 1) / 3))


def test_all_zero_matrix_gives_nan_means():
    scores = segmentation_scores(torch.zeros(3, 3, dtype=torch.long))

    for name in ("mIoU", "mDice", "pixel_accuracy"):
        assert math.isnan(scores[name])
    assert not scores["present"].any()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_scores_stay_on_the_confmat_device():
    scores = segmentation_scores(torch.eye(2, dtype=torch.long, device="cuda"))

    assert all(value.is_cuda for value in scores.values())
