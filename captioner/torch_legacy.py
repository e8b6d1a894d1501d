"""Reads a PyTorch state dict saved in torch's legacy (pre-zip) format, without torch and without running code.

The format is five pickles followed by raw storage bytes: a magic number, the protocol version, the writer's
system info, the state dict (tensors refer to storages by persistent id) and the list of storage keys in the
order their bytes follow, each as an int64 element count then the elements. Only the records a state dict needs
are accepted; any other global in the file is refused before it could be called.
"""
from __future__ import annotations

import collections
import hashlib
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001
STORAGE_TYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16, "LongStorage": np.int64,
    "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class TorchFileError(ValueError):
    """A file that is not a plain legacy torch state dict, or not the one expected."""


@dataclass(frozen=True)
class _Storage:
    key: str
    dtype: type
    size: int


@dataclass(frozen=True)
class _Tensor:
    storage: _Storage
    offset: int
    shape: tuple
    stride: tuple


def _rebuild_tensor_v2(storage, offset, shape, stride, requires_grad=False, hooks=None, metadata=None):
    return _Tensor(storage, offset, tuple(shape), tuple(stride))


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path = path
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_TYPES:
            return STORAGE_TYPES[name]
        raise TorchFileError(f"{self.path}: refused to load {module}.{name}: a state dict holds only tensors")

    def persistent_load(self, pid):
        # ("storage", storage type, key, device, element count, view): views are from before torch 1.0
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage" and pid[5] is None):
            raise TorchFileError(f"{self.path}: unexpected persistent record {pid!r:.60}")
        _, dtype, key, _device, size, _view = pid
        if dtype not in STORAGE_TYPES.values() or not isinstance(size, int):
            raise TorchFileError(f"{self.path}: malformed storage record {pid!r:.60}")
        return self.storages.setdefault(key, _Storage(key, dtype, size))


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_state_dict(path: str | Path, expected_sha256: str | None = None) -> dict[str, np.ndarray]:
    """Every tensor of the file by name, as numpy arrays. Checks the file's sha256 first when one is given."""
    path = Path(path)
    data = path.read_bytes()
    if expected_sha256 is not None and (found := hashlib.sha256(data).hexdigest()) != expected_sha256:
        raise TorchFileError(f"{path}: sha256 {found[:16]}… is not the expected {expected_sha256[:16]}…: "
                             f"the file is damaged or not the published one; reinstall its package")
    file = io.BytesIO(data)

    def header(what, expected):
        try:
            value = _StateDictUnpickler(file, path).load()
        except TorchFileError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError) as error:
            raise TorchFileError(f"{path}: not a legacy torch file ({what} unreadable: {error})") from None
        if expected is not None and value != expected:
            raise TorchFileError(f"{path}: not a legacy torch file ({what} is {value!r:.40})")
        return value

    header("magic number", MAGIC_NUMBER)
    header("protocol version", PROTOCOL_VERSION)
    info = header("system info", None)
    if not (isinstance(info, dict) and info.get("little_endian")):
        raise TorchFileError(f"{path}: only little-endian files are supported")
    unpickler = _StateDictUnpickler(file, path)
    try:
        state = unpickler.load()
        keys = _StateDictUnpickler(file, path).load()
    except (pickle.UnpicklingError, EOFError) as error:
        raise TorchFileError(f"{path}: truncated or corrupt state dict ({error})") from None
    if not isinstance(state, dict) or not all(isinstance(v, _Tensor) for v in state.values()):
        raise TorchFileError(f"{path}: holds something other than a state dict of tensors")

    buffers = {}
    offset = file.tell()
    for key in keys:
        storage = unpickler.storages.get(key)
        if storage is None:
            raise TorchFileError(f"{path}: storage {key} has no tensor")
        count = int(np.frombuffer(data, "<i8", 1, offset)[0])
        offset += 8
        itemsize = np.dtype(storage.dtype).itemsize
        if count != storage.size or offset + count * itemsize > len(data):
            raise TorchFileError(f"{path}: storage {key} is truncated or of the wrong size")
        buffers[key] = np.frombuffer(data, storage.dtype, count, offset)
        offset += count * itemsize

    arrays = {}
    for name, tensor in state.items():
        buffer = buffers.get(tensor.storage.key)
        if buffer is None:
            raise TorchFileError(f"{path}: {name}'s storage is missing")
        needed = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.shape, tensor.stride)) + 1
        if tensor.offset < 0 or any(s < 0 for s in tensor.stride) or (all(tensor.shape) and needed > buffer.size):
            raise TorchFileError(f"{path}: {name} reaches outside its storage")
        itemsize = buffer.itemsize
        view = np.lib.stride_tricks.as_strided(buffer[tensor.offset:], tensor.shape,
                                               [s * itemsize for s in tensor.stride], writeable=False)
        arrays[name] = np.array(view)
    return arrays
