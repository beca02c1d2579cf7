# Generates the hostile torch.save-like files used by tests/unit_pickle_hostile.cpp. Run with /usr/bin/python3
# (torch 1.13) from this folder. pickle.dumps only RECORDS the callables named by __reduce__; nothing here runs them.
import collections, io, os, pickle, subprocess, zipfile, zlib
import numpy as np
import torch


def stored_zip(path, entries, deflate=()):
    with zipfile.ZipFile(path, 'w', compression=zipfile.ZIP_STORED) as z:
        for name, data in entries:
            z.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED if name in deflate else zipfile.ZIP_STORED)


class Reduce:
    """Pickles as fn(*args)."""
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


class Storage:
    """Pickles as torch.save's persistent id ('storage', FloatStorage, key, 'cpu', numel)."""
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ('storage', torch.FloatStorage, obj.key, 'cpu', obj.numel)
        return None


def torch_file(path, obj, storages=(), deflate=(), protocol=2):
    buf = io.BytesIO()
    TorchPickler(buf, protocol=protocol, fix_imports=False).dump(obj)  # real module names, not Python 2's
    entries = [('archive/data.pkl', buf.getvalue())] + [('archive/data/' + k, d) for k, d in storages]
    stored_zip(path, entries + [('archive/version', b'3\n')], deflate=deflate)


def tensor(storage, offset, size, stride):
    return Reduce(torch._utils._rebuild_tensor_v2, (storage, offset, size, stride, False, collections.OrderedDict()))


# Code execution attempts: each names a global outside the allow-list.
torch_file('evil_popen.pth.tar', {'state_dict': Reduce(subprocess.Popen, (['touch', '/tmp/gill_pwned_popen'],))},
           protocol=4)  # STACK_GLOBAL
torch_file('evil_torch_load.pth.tar', {'state_dict': Reduce(torch.load, ('evil_os_system.pth.tar',))})
torch_file('evil_eval.pth.tar', {'w': Reduce(eval, ("__import__('os').system('touch /tmp/gill_pwned_eval')",))})
# An allow-listed callable whose arguments hide a forbidden one (os.system runs as an argument of OrderedDict).
torch_file('evil_nested_arg.pth.tar',
           {'w': Reduce(collections.OrderedDict, (Reduce(os.system, ('touch /tmp/gill_pwned_nested',)),))})
# Allow-listed callables with hostile arguments.
torch_file('ordereddict_args.pth.tar', {'w': Reduce(collections.OrderedDict, ([('a', 1)],))})
torch_file('reconstruct_not_ndarray.pth.tar',
           {'w': Reduce(np.core.multiarray._reconstruct, (collections.OrderedDict, (0,), b'b'))})
torch_file('codecs_rot13.pth.tar', {'w': Reduce(__import__('_codecs').encode, ('abc', 'rot13'))})
torch_file('rebuild_tensor_not_storage.pth.tar', {'w': tensor('not a storage', 0, (2,), (1,))})
# Storages and views that would need absurd memory if believed.
s4 = Storage('0', 4)
torch_file('huge_storage.pth.tar', {'w': tensor(Storage('0', 10 ** 12), 0, (10 ** 6, 10 ** 6), (10 ** 6, 1))},
           storages=[('0', b'\0' * 16)])
torch_file('huge_view.pth.tar', {'w': tensor(s4, 0, (2 ** 30, 2 ** 30), (0, 0))}, storages=[('0', b'\0' * 16)])
torch_file('huge_offset.pth.tar', {'w': tensor(s4, 2 ** 62, (2,), (1,))}, storages=[('0', b'\0' * 16)])
# A zip bomb entry: 64 MiB of zeros deflated to ~64 KiB, as the tensor's storage.
torch_file('zip_bomb.pth.tar', {'w': tensor(Storage('0', 16 << 20), 0, (16 << 20,), (1,))},
           storages=[('0', b'\0' * (64 << 20))], deflate=('archive/data/0',))
# A list shared 2^40 ways: [[...], [...]] nested 40 levels through the memo (a few hundred bytes on disk).
shared = [None]
for _ in range(40):
    shared = [shared, shared]
torch_file('shared_bomb.pth.tar', {'state_dict': shared})
