# Generates the hostile / edge-case inputs and PIL reference decodes used by tests/unit_{pickle,npy,image}.cpp.
# Run with /usr/bin/python3 (torch 1.13, numpy, PIL 9.4) from this folder. Not part of the product.
import io, os, pickle, struct, zipfile
import numpy as np
import torch
from PIL import Image

torch.manual_seed(0)
np.random.seed(0)

def stored_zip(path, entries):
    with zipfile.ZipFile(path, 'w', compression=zipfile.ZIP_STORED) as z:
        for name, data in entries:
            z.writestr(name, data)

# A valid small torch.save file with nested values, int key, epoch, and a non-contiguous (transposed) tensor.
w = torch.arange(12, dtype=torch.float32).reshape(3, 4)
sd = {'state_dict': {'a.weight': w, 'a.t': w.t(), 'b': torch.tensor([1, 2, 3], dtype=torch.int64),
                     'h': torch.tensor([0.5, -2.0], dtype=torch.float16)},
      'epoch': 7, 'best_acc1': 0.25, 'name': 'tiny', 'flags': [1, 2], 'none': None}
torch.save(sd, 'nested.pth.tar')

# Legacy (pre-1.6) format.
torch.save({'x': torch.zeros(2)}, 'legacy.pth', _use_new_zipfile_serialization=False)

# Zip without data.pkl.
stored_zip('no_data_pkl.pth.tar', [('archive/version', b'3\n'), ('archive/data/0', b'\0' * 8)])

# Storage whose size does not match: re-pack decision-like file with a short storage.
buf = io.BytesIO()
torch.save({'w': torch.ones(2, 4)}, buf)
zin = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
ents = [(n, zin.read(n)) for n in zin.namelist()]
ents = [(n, d[:-4] if n.endswith('/data/0') else d) for n, d in ents]
stored_zip('bad_storage_size.pth.tar', ents)

# data.pkl naming os.system (a classic RCE payload: os.system('touch PWNED')).
class Evil:
    def __reduce__(self):
        return (os.system, ('touch /tmp/gill_pwned_by_test',))
evil_pkl = pickle.dumps({'state_dict': Evil()}, protocol=2)
stored_zip('evil_os_system.pth.tar', [('archive/data.pkl', evil_pkl), ('archive/version', b'3\n')])

# Deflate-compressed torch zip.
with zipfile.ZipFile('compressed.pth.tar', 'w', compression=zipfile.ZIP_DEFLATED) as z:
    for n, d in [(n, zin.read(n)) for n in zin.namelist()]:
        z.writestr(n, d)

# .npy files
np.save('f32_2x3.npy', np.arange(6, dtype=np.float32).reshape(2, 3))
np.save('i64_4.npy', np.array([1, -2, 3, 1 << 40], dtype=np.int64))
np.save('f16_3.npy', np.array([0.5, 1.5, -3], dtype=np.float16))
np.save('bool_3.npy', np.array([True, False, True]))
np.save('fortran_2x3.npy', np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)))
np.save('be_f4.npy', np.arange(3, dtype='>f4'))
with open('v2_f32.npy', 'wb') as f:
    np.lib.format.write_array(f, np.arange(4, dtype=np.float32), version=(2, 0))
with open('v3_f32.npy', 'wb') as f:
    np.lib.format.write_array(f, np.arange(4, dtype=np.float32), version=(3, 0))

# Images: source files and PIL's convert("RGB") of each, as .npy.
rng = np.random.RandomState(1)
rgb = rng.randint(0, 256, (7, 5, 3), dtype=np.uint8)
rgba = rng.randint(0, 256, (7, 5, 4), dtype=np.uint8)
gray = rng.randint(0, 256, (7, 5), dtype=np.uint8)
imgs = {
    'rgb.png': Image.fromarray(rgb),
    'rgba.png': Image.fromarray(rgba, 'RGBA'),
    'gray.png': Image.fromarray(gray, 'L'),
    'la.png': Image.fromarray(rgba[:, :, :2], 'LA'),
    'palette.png': Image.fromarray(rgb).convert('P', palette=Image.ADAPTIVE, colors=16),
    'rgb.bmp': Image.fromarray(rgb),
    'rgb.tga': Image.fromarray(rgb),
    'rgb.ppm': Image.fromarray(rgb),
    'gray.pgm': Image.fromarray(gray, 'L'),
    'rgb.gif': Image.fromarray(rgb).convert('P', palette=Image.ADAPTIVE, colors=32),
    'rgb.jpg': Image.fromarray(rgb),
    'gray.jpg': Image.fromarray(gray, 'L'),
}
for name, im in imgs.items():
    kw = {'quality': 90} if name.endswith('.jpg') else {}
    im.save('img_' + name, **kw)
# 16-bit grayscale PNG (PIL I;16) and 16-bit RGB PNG (written by hand: PIL cannot write RGB;16).
g16 = (rng.randint(0, 65536, (6, 4))).astype(np.uint16)
g16[0, :4] = [0, 200, 255, 256]
Image.fromarray(g16, 'I;16').save('img_gray16.png')
def png16_rgb(path, arr):
    import zlib
    h, w, _ = arr.shape
    raw = b''.join(b'\0' + arr[y].astype('>u2').tobytes() for y in range(h))
    def chunk(t, b):
        return struct.pack('>I', len(b)) + t + b + struct.pack('>I', zlib.crc32(t + b) & 0xffffffff)
    data = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 16, 2, 0, 0, 0))
    data += chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b'')
    open(path, 'wb').write(data)
png16_rgb('img_rgb16.png', rng.randint(0, 65536, (3, 5, 3)).astype(np.uint16))
# retrieval_000000.png is a copy of the fixture's retrieval image (SOURCE.md), decoded the same way. The list is
# explicit so a rerun in this folder does not try to decode the corrupt images written below.
for f in ['img_' + n for n in imgs] + ['img_gray16.png', 'img_rgb16.png', 'retrieval_000000.png']:
    np.save(f + '.pil.npy', np.asarray(Image.open(f).convert('RGB')))
# Corrupt and truncated images.
open('img_corrupt.png', 'wb').write(b'\x89PNG\r\n\x1a\n' + b'garbage' * 10)
open('img_truncated.jpg', 'wb').write(open('img_rgb.jpg', 'rb').read()[:120])
open('img_empty.png', 'wb').write(b'')
