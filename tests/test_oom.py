"""Out of GPU memory is not the end of a case: sampling, t* and the attacks halve their
batch and retry, the log says so once per place, and the record keeps the batch used."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from benchmark.audit import run_case
from benchmark.batching import BATCH_FLOOR
from benchmark.errors import DeviceError
from benchmark.measures.membership_scores import MIA_AUC
from benchmark.measures.tstar import TSTAR
from benchmark.record import BATCH_SIZE
from benchmark.session import Session
from benchmark.tiers import Rehearsal, smoke_case


class OutOfMemoryAbove(nn.Module):
    """The network, except that a call of more than ``limit`` images runs out of memory."""

    def __init__(self, net: nn.Module, limit: int) -> None:
        super().__init__()
        self.net, self.limit, self.largest = net, limit, 0

    def forward(self, x, *args, **kwargs):
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory ({x.shape[0]} images)")
        self.largest = max(self.largest, x.shape[0])
        return self.net(x, *args, **kwargs)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["net"], name)


def test_a_case_out_of_memory_halves_its_batches_and_retries(tmp_path, caplog):
    """Sampling 16 images runs out above 8 a call: retried at 8, then t* and the attacks
    (each retried the same way, metric by metric) run at the halved batches."""
    session = Session(tmp_path, n_gen=16, rehearsal=Rehearsal(), progress=False)
    case = session.settings.scaled(smoke_case("ddim", 32, n_gen=16))
    trained = session.model(case.model, case.train, case.data)
    net = OutOfMemoryAbove(trained.net, limit=BATCH_FLOOR * 2)
    record = run_case(case, session, model=replace(trained, net=net, key=trained.key)).metrics
    assert net.largest == BATCH_FLOOR * 2, "it ran at the largest batch that fits"
    assert record[BATCH_SIZE] <= BATCH_FLOOR * 2
    assert TSTAR in record and MIA_AUC(attack="loss_weights") in record
    said = [r.getMessage() for r in caplog.records if "out of memory" in r.getMessage()]
    assert sum("sampling" in m for m in said) == 1, said  # once, however many halvings


def test_an_explicit_batch_that_does_not_fit_says_so(tmp_path):
    session = Session(tmp_path, n_gen=8, rehearsal=Rehearsal(), progress=False, batch_size=8)
    case = session.settings.scaled(smoke_case("ddim", 32, n_gen=8))
    trained = session.model(case.model, case.train, case.data)
    net = OutOfMemoryAbove(trained.net, limit=2)
    with pytest.raises(
        DeviceError, match="at a batch of 8 images; pass a smaller one .*--batch-size"
    ):
        run_case(case, session, model=replace(trained, net=net, key=trained.key))
