"""Checkpoints are read with ``weights_only=True``: a file never runs code, and a corrupt, truncated,
foreign or other-run checkpoint is a CreditlabError naming the file and what was expected."""

from __future__ import annotations

import pathlib

import pytest
import torch

from creditlab.checkpoint import load_checkpoint
from creditlab.errors import CreditlabError
from creditlab.train import train_from_names

SETTINGS = {"epochs": 1, "train_limit": 128, "test_limit": 64, "batch_size": 64, "progress": False,
            "model_options": {"hidden": (16,)}}


@pytest.fixture
def run_dir(mnist, tmp_path) -> pathlib.Path:
    """A run directory holding a real one-epoch checkpoint."""
    train_from_names("bp", "mlp", "mnist", loaded=mnist, out_dir=str(tmp_path), **SETTINGS)
    return tmp_path


class _Payload:
    """An object whose unpickling would create ``path`` (stands in for arbitrary code)."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path,))


def test_a_real_checkpoint_loads(run_dir):
    state = load_checkpoint(run_dir / "checkpoint.pt")
    assert state["epoch"] == 0 and state["run_info"]["rule"] == "bp"


def test_a_pickle_with_code_is_refused_without_running_it(run_dir, tmp_path, mnist):
    marker = tmp_path / "code-ran"
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    state["history"] = [_Payload(marker)]
    torch.save(state, run_dir / "checkpoint.pt")
    with pytest.raises(CreditlabError, match=r"checkpoint .*checkpoint.pt was refused unread.*run code.*"
                                             r"Unsupported global"):
        train_from_names("bp", "mlp", "mnist", loaded=mnist, resume=True, out_dir=str(run_dir), **SETTINGS)
    assert not marker.exists()
    torch.load(run_dir / "checkpoint.pt", weights_only=False)  # the payload is real: unsafe loading runs it
    assert marker.exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "random"])
def test_corrupt_or_truncated_checkpoints_name_the_file(run_dir, damage):
    """Not "could run code": random bytes or a cut-off file are simply not a checkpoint."""
    path = run_dir / "checkpoint.pt"
    data = path.read_bytes()
    damaged = {"garbage": b"this is not a checkpoint", "truncated": data[:len(data) // 2],
               "random": bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0)).tolist())}
    path.write_bytes(damaged[damage])
    with pytest.raises(CreditlabError, match=rf"{path} is not a checkpoint: it is not a torch.save archive") as error:
        load_checkpoint(path)
    assert "run code" not in str(error.value)


def test_a_damaged_archive_is_corrupt(run_dir):
    path = run_dir / "checkpoint.pt"
    data = bytearray(path.read_bytes())
    data[100:400] = bytes(300)  # inside the archive's first member; the directory at the end is intact
    path.write_bytes(bytes(data))
    with pytest.raises(CreditlabError, match=rf"checkpoint {path} cannot be read, it is corrupt"):
        load_checkpoint(path)


def test_an_archive_of_damaged_pickle_bytes_is_corrupt_not_code(run_dir):
    import zipfile

    path = run_dir / "checkpoint.pt"
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, bytes(range(200, 256)) * 3 if name.endswith("data.pkl") else data)
    with pytest.raises(CreditlabError, match=rf"checkpoint {path} cannot be read, it is corrupt.*Unsupported operand"):
        load_checkpoint(path)


def test_a_foreign_file_is_not_a_checkpoint(tmp_path):
    for i, foreign in enumerate([torch.zeros(3), {"model": {}, "epoch": 0}]):
        path = tmp_path / f"foreign{i}.pt"
        torch.save(foreign, path)
        with pytest.raises(CreditlabError, match=rf"{path} is not a creditlab checkpoint.*expected a creditlab"):
            load_checkpoint(path)


def test_a_checkpoint_of_another_run_configuration_is_refused(run_dir, mnist):
    with pytest.raises(CreditlabError, match=r"another run configuration: it has lr 0.002 \(now 0.01\)"):
        train_from_names("bp", "mlp", "mnist", loaded=mnist, resume=True, out_dir=str(run_dir),
                         **{**SETTINGS, "lr": 0.01})
    with pytest.raises(CreditlabError, match=r"model state in checkpoint .* does not fit this run"):
        train_from_names("bp", "mlp", "mnist", loaded=mnist, resume=True, out_dir=str(run_dir),
                         **{**SETTINGS, "model_options": {"hidden": (8,)}})
    with pytest.raises(CreditlabError, match="is for rule 'bp', not 'fa'"):
        train_from_names("fa", "mlp", "mnist", loaded=mnist, resume=True, out_dir=str(run_dir), **SETTINGS)
    resumed = train_from_names("bp", "mlp", "mnist", loaded=mnist, resume=True, out_dir=str(run_dir),
                               **{**SETTINGS, "epochs": 2})  # more epochs: the same run, continued
    assert resumed["epochs"] == 2
