"""fastrnn modules train under DistributedDataParallel: processes on the gloo
backend (CPU) or nccl (CUDA, one process per GPU), loopback only, each on its
share of a batch, give the gradients of one process on the whole batch."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import fastrnn

SEQ_LEN, BATCH, INPUT, HIDDEN = 6, 4, 3, 5


def make_model(device="cpu"):
    torch.manual_seed(0)
    return torch.nn.Sequential(fastrnn.LSTM(INPUT, HIDDEN, num_layers=2, bidirectional=True)).to(
        device, torch.float64
    )


def make_batch(device="cpu"):
    torch.manual_seed(1)
    return torch.randn(SEQ_LEN, BATCH, INPUT, dtype=torch.float64).to(device)


def loss_of(model, x):
    output, _ = model(x)
    return output.pow(2).mean()  # a mean: DDP averages the two halves' gradients


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank, backend, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        device = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
        ids = [rank] if device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(make_model(device), device_ids=ids)
        share = make_batch(device).chunk(world, dim=1)[rank]
        loss_of(model, share).backward()
        grads = {n: p.grad.cpu() for n, p in model.module.named_parameters()}
        torch.save(grads, os.path.join(out_dir, f"grads{rank}.pt"))
        # both ranks done before either tears the group down: rank 0 hosts the
        # store, and a teardown racing the other rank's work aborted it
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _backends():
    """gloo with two processes on the CPU; nccl with one process per GPU (up to
    two), where there is a GPU: nccl takes one GPU per process."""
    gloo = pytest.param(
        "gloo",
        2,
        marks=pytest.mark.skipif(
            not dist.is_available() or not dist.is_gloo_available(),
            reason="torch.distributed with gloo is not available",
        ),
    )
    nccl = pytest.param(
        "nccl",
        min(2, torch.cuda.device_count()),
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(
                not dist.is_available() or not dist.is_nccl_available(),
                reason="torch.distributed with nccl is not available",
            ),
        ],
    )
    return [gloo, nccl]


@pytest.mark.parametrize("backend, world", _backends())
def test_ddp_processes_match_one_process(tmp_path, backend, world):
    mp.spawn(
        _rank_main, args=(backend, world, _free_port(), str(tmp_path)), nprocs=world, join=True
    )
    model = make_model()
    loss_of(model, make_batch()).backward()
    for rank in range(world):
        grads = torch.load(tmp_path / f"grads{rank}.pt")
        for name, p in model[0].named_parameters():
            torch.testing.assert_close(
                grads[f"0.{name}"], p.grad, atol=1e-12, rtol=1e-10, msg=f"rank {rank} {name}"
            )
