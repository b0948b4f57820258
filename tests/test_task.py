import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from seglab.losses import CrossEntropyLoss
from seglab.models import ConvEncoder, Segmenter, UNetDecoder
from seglab.task import SegmentationTask


def test_training_loss_adds_the_weighted_mean_of_the_aux_losses() -> None:
    torch.manual_seed(0)
    model = Segmenter(ConvEncoder(widths=[4, 8, 16]), UNetDecoder, 3, aux_weight=0.4)
    images, masks = torch.randn(4, 3, 16, 16), torch.randint(0, 3, (4, 16, 16))
    loss = CrossEntropyLoss()
    with torch.no_grad():
        logits, aux = model.train().forward_with_aux(images)
        aux_loss = sum(loss(a, masks) for a in aux) / len(aux)
        expected = loss(logits, masks) + 0.4 * aux_loss
    task = SegmentationTask(
        model, loss, lambda params: torch.optim.SGD(params, lr=0.0), None, ["a", "b", "c"], 255
    )
    trainer = pl.Trainer(
        fast_dev_run=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    samples = [(images[i], masks[i], f"{i}.png") for i in range(len(images))]
    trainer.fit(task, DataLoader(samples, batch_size=4))
    torch.testing.assert_close(trainer.callback_metrics["train/loss"], expected)
    torch.testing.assert_close(trainer.callback_metrics["train/loss/aux"], aux_loss)
