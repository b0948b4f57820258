"""NonFiniteGuard on hand-built losses: when stop mode reads them back and what it reports,
and which batches skip mode leaves out."""

import logging
import math

import pytest
import torch

from seglab.engine.nonfinite import NonFiniteGuard, NonFiniteLossError, TrainingStep

# losses of steps 0..5; step 2 is NaN and step 4 infinite
LOSSES = [0.5, 0.4, math.nan, 0.3, math.inf, 0.2]


def _origin(step: int) -> TrainingStep:
    return TrainingStep(step, epoch=1, batch_idx=step % 4, names=[f"s{step}a", f"s{step}b"])


def test_stop_reads_the_losses_back_every_check_every_steps_and_names_the_first_bad_one() -> None:
    guard = NonFiniteGuard("stop")
    admitted = []
    with pytest.raises(NonFiniteLossError) as error:
        for step, loss in enumerate(LOSSES):
            admitted.append(guard.admit(torch.tensor(loss), _origin(step), check_every=4))
    # steps 0-2 gather unread; the check at the fourth loss finds step 2, not step 4
    assert admitted == [True, True, True]
    assert str(error.value).startswith("training loss is nan at step 2 (epoch 1, batch 2)")
    assert "samples [s2a, s2b]" in str(error.value)
    guard.check()  # what was reported is no longer pending


def test_stop_finds_the_first_bad_loss_still_pending_when_checked() -> None:
    guard = NonFiniteGuard()
    for step in (3, 4, 5):
        assert guard.admit(torch.tensor(LOSSES[step]), _origin(step), check_every=10)
    guard.admit(torch.tensor(LOSSES[2]), _origin(6), check_every=10)
    # one transfer of all four losses; the infinite one of step 4 came first
    with pytest.raises(NonFiniteLossError, match=r"^training loss is inf at step 4 \(epoch 1"):
        guard.check()
    guard.check()


def test_stop_lists_eight_sample_names_and_counts_the_rest() -> None:
    guard = NonFiniteGuard()
    names = [f"n{i}" for i in range(11)]
    guard.admit(torch.tensor(math.nan), TrainingStep(7, 0, 7, names), check_every=5)
    with pytest.raises(NonFiniteLossError) as error:
        guard.check()
    assert str(error.value).endswith("samples [n0, n1, n2, n3, n4, n5, n6, n7, and 3 more]")


def test_skip_leaves_out_only_the_nonfinite_batches_and_warns_of_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard = NonFiniteGuard("skip")
    with caplog.at_level(logging.WARNING, logger="seglab.engine.nonfinite"):
        admitted = [
            guard.admit(torch.tensor(loss), _origin(step), check_every=100)
            for step, loss in enumerate(LOSSES)
        ]
    assert admitted == [True, True, False, True, False, True]
    assert [record.getMessage() for record in caplog.records] == [
        "skipping the batch: training loss is nan at step 2 (epoch 1, batch 2) of the samples "
        "[s2a, s2b]",
        "skipping the batch: training loss is inf at step 4 (epoch 1, batch 0) of the samples "
        "[s4a, s4b]",
    ]
    guard.check()  # skip mode keeps nothing to check later


def test_on_nonfinite_takes_stop_or_skip() -> None:
    with pytest.raises(ValueError, match="^on_nonfinite=maybe must be one of: stop, skip$"):
        NonFiniteGuard("maybe")
