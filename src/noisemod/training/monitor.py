"""Live monitoring of a run: TensorBoard event files (``torch.utils.tensorboard``)."""

from __future__ import annotations

import torch
from torch import nn

from ..rundir import RunDir

__all__ = ["Monitor"]


class Monitor:
    """TensorBoard event files in ``RUN_DIR/tensorboard``: per epoch the train loss and accuracy,
    validation accuracy, the VII of a fixed validation batch (256 images evenly spaced over the split,
    ``Split.spread``; x_bar their mean), and every ``every`` epochs (and the first and last) a grid of 8
    of them (evenly spaced over the batch) above their input-gradient maps, each scaled to [0, 1]. A
    resumed run drops the events after its checkpoint (``purge_step``), so curves are never doubled."""

    def __init__(self, run: RunDir, val, device, *, start: int = 0, every: int = 5, images: int = 256):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run.file(run.TENSORBOARD)), purge_step=start + 1)
        self.every = every
        batch = val.spread(images) if len(val) else None
        self.x = batch.images.to(device).float().div_(255) if batch is not None else None
        self.y = batch.labels.to(device) if batch is not None else None

    def epoch(self, model: nn.Module, row: dict, *, last: bool = False) -> None:
        step = row["epoch"]
        scalars = {"loss/train": "train_loss", "accuracy/train": "train_accuracy"}
        scalars.update({"accuracy/validation": "val_accuracy", "lr": "lr"})
        for tag, key in scalars.items():
            self.writer.add_scalar(tag, row[key], step)
        if "probe_robust_accuracy" in row:
            self.writer.add_scalar("accuracy/probe_robust", row["probe_robust_accuracy"], step)
        if self.x is None:
            return
        self.writer.add_scalar("vii/validation_batch", row["val_vii"], step)  # the same 256 images (train.py)
        if step % self.every == 0 or step == 1 or last:
            self._maps(model, step)
        self.writer.flush()

    def _maps(self, model: nn.Module, step: int) -> None:
        from torchvision.utils import make_grid

        from ..gradients import input_gradients
        from ..image_rows import scale01

        pick = torch.arange(8, device=self.x.device) * len(self.x) // 8 if len(self.x) >= 8 else slice(None)
        x, y = self.x[pick], self.y[pick]
        maps = torch.cat([x, scale01(input_gradients(model, x, y))]).cpu()
        self.writer.add_image("input-gradients", make_grid(maps, nrow=8, pad_value=1.0), step)

    def close(self) -> None:
        self.writer.close()
