#!/usr/bin/python3
"""Writes tests/data/clip/{resize_cases,preprocess_cases}.safetensors + cases.json and the PNG inputs.

Run with Debian's /usr/bin/python3 and python3-pil 9.4.0 (the Pillow GILL pins). Expected values come from
Pillow itself (Image.resize, Image.convert); the CLIP steps around the resize (shortest-edge size with int(),
centre crop with padding, float64 rescale, float32 normalise) are a numpy transcription of transformers 4.30.2
image_transforms.py / image_processing_clip.py, checked against ../shared/fixtures/expected/clip.safetensors by
check_fixture() below before anything is written.
"""
import io, json, os, struct, sys
import numpy as np
import PIL
from PIL import Image

assert PIL.__version__ == "9.4.0", PIL.__version__
HERE = os.path.dirname(os.path.abspath(__file__))
MASK = 0xFFFFFFFF


def pattern(w, h, seed, channels=3):
    """Procedural test image, reproduced bit-exactly by tests/unit_clip_preprocess.cpp (make_pattern)."""
    y, x, c = np.meshgrid(np.arange(h, dtype=np.uint64), np.arange(w, dtype=np.uint64),
                          np.arange(channels, dtype=np.uint64), indexing="ij")
    u = np.uint64
    s = u(seed)
    v = (x * u(73856093) ^ y * u(19349663) ^ c * u(83492791) ^ s * u(2654435761)) & u(MASK)
    v ^= v >> u(13)
    v = (v * u(0x5BD1E995)) & u(MASK)
    v ^= v >> u(15)
    grad = (x * (u(3) + c) + y * (u(5) + u(2) * c) + s * u(11)) & u(255)
    noisy = ((v >> u(8)) & u(3)) == u(0)
    out = np.where(noisy, v & u(255), grad)
    return out.astype(np.uint8)


def hf_resize_size(h, w, size):
    short, long = (w, h) if w <= h else (h, w)
    if short == size:
        return h, w
    new_short, new_long = size, int(size * long / short)
    return (new_long, new_short) if w <= h else (new_short, new_long)


def hf_clip_preprocess(rgb, size, crop_h, crop_w, mean, std, resample=Image.BICUBIC):
    """numpy transcription of CLIPImageProcessor.preprocess (transformers 4.30.2) on an HWC uint8 RGB array."""
    h, w = rgb.shape[:2]
    nh, nw = hf_resize_size(h, w, size)
    img = np.array(Image.fromarray(rgb).resize((nw, nh), resample=resample))
    # center_crop (channels last here; HF moves channels first, same slicing)
    oh, ow = img.shape[:2]
    top = (oh - crop_h) // 2
    left = (ow - crop_w) // 2
    bottom, right = top + crop_h, left + crop_w
    if not (top >= 0 and bottom <= oh and left >= 0 and right <= ow):
        nh2, nw2 = max(crop_h, oh), max(crop_w, ow)
        padded = np.zeros((nh2, nw2, 3), dtype=img.dtype)
        tp, lp = (nh2 - oh) // 2, (nw2 - ow) // 2
        padded[tp:tp + oh, lp:lp + ow] = img
        top += tp; bottom += tp; left += lp; right += lp
        img = padded[max(0, top):min(nh2, bottom), max(0, left):min(nw2, right)]
    else:
        img = img[top:bottom, left:right]
    x = (img * (1 / 255)).astype(np.float32)  # float64 product, then float32
    x = (x - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]


def read_safetensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    hdr = json.loads(data[8:8 + n])
    out = {}
    dt = {"U8": np.uint8, "F32": np.float32, "I64": np.int64}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(data[8 + n + b:8 + n + e], dtype=dt[v["dtype"]]).reshape(v["shape"])
    return out


def write_safetensors(path, tensors):
    hdr, blobs, off = {}, [], 0
    names = {np.dtype(np.uint8): "U8", np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}
    for k, a in tensors.items():
        a = np.ascontiguousarray(a)
        b = a.tobytes()
        hdr[k] = {"dtype": names[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def check_fixture():
    fx = os.path.join(HERE, "../../../../shared/fixtures/expected/clip.safetensors")
    if not os.path.exists(fx):
        fx = "/work/shared/fixtures/expected/clip.safetensors"
    t = read_safetensors(fx)
    got = np.stack([hf_clip_preprocess(t["inputs.clip_input_0.png.rgb_uint8"], 32, 32, 32, MEAN, STD),
                    hf_clip_preprocess(t["inputs.clip_input_1.png.rgb_uint8"], 32, 32, 32, MEAN, STD)])
    assert np.array_equal(got, t["pixel_values"]), np.abs(got - t["pixel_values"]).max()
    print("numpy transcription matches the fixture's pixel_values exactly")


def main():
    check_fixture()
    cases = {"resize": [], "preprocess": [], "resize_output_size": [], "png": []}
    tensors = {}
    filters = {"LANCZOS": 1, "BILINEAR": 2, "BICUBIC": 3, "BOX": 4, "HAMMING": 5}
    resize = [  # (in_w, in_h, out_w, out_h, filter)
        (45, 37, 38, 32, "BICUBIC"), (512, 512, 224, 224, "BICUBIC"), (90, 60, 100, 67, "BICUBIC"),
        (17, 23, 64, 87, "BICUBIC"), (64, 48, 64, 20, "BICUBIC"), (40, 30, 97, 30, "BICUBIC"),
        (1, 1, 5, 3, "BICUBIC"), (7, 1, 3, 2, "BICUBIC"), (100, 100, 3, 7, "BICUBIC"), (250, 50, 249, 51, "BICUBIC"),
        (45, 37, 20, 50, "BILINEAR"), (45, 37, 20, 50, "LANCZOS"), (45, 37, 20, 50, "BOX"),
        (45, 37, 20, 50, "HAMMING"), (13, 9, 40, 41, "LANCZOS"),
    ]
    for i, (iw, ih, ow, oh, f) in enumerate(resize):
        seed = 100 + i
        src = pattern(iw, ih, seed)
        out = np.array(Image.fromarray(src).resize((ow, oh), resample=filters[f]))
        tensors[f"resize.{i}"] = out
        cases["resize"].append({"in_w": iw, "in_h": ih, "out_w": ow, "out_h": oh, "filter": filters[f], "seed": seed})
    # Preprocessing: (w, h, size, crop_h, crop_w) on procedural RGB images.
    pre = [(45, 37, 32, 32, 32), (20, 27, 32, 32, 32), (64, 64, 32, 32, 32), (32, 100, 32, 32, 32),
           (33, 32, 32, 32, 32), (31, 31, 32, 32, 32), (90, 41, 48, 40, 48), (50, 30, 24, 32, 32),
           (30, 50, 16, 20, 28), (8, 8, 32, 32, 32)]
    for i, (w, h, size, ch, cw) in enumerate(pre):
        seed = 200 + i
        rgb = pattern(w, h, seed)
        tensors[f"preprocess.{i}"] = hf_clip_preprocess(rgb, size, ch, cw, MEAN, STD)
        cases["preprocess"].append({"w": w, "h": h, "size": size, "crop_h": ch, "crop_w": cw, "seed": seed})
    for (h, w, size) in [(333, 500, 224), (500, 333, 224), (224, 1000, 224), (1, 1000, 224), (1000, 3, 224),
                         (37, 45, 32), (299, 300, 224), (7, 2000, 224), (640, 480, 224), (481, 640, 224)]:
        cases["resize_output_size"].append({"h": h, "w": w, "size": size, "out": list(hf_resize_size(h, w, size))})
    # PNG inputs in other modes: what convert("RGB") gives, and the CLIP pixel values (size 32) of that.
    pngs = []
    g = pattern(41, 29, 300, 1)[:, :, 0]
    pngs.append(("gray_41x29.png", Image.fromarray(g, "L")))
    rgba = pattern(37, 45, 301, 4)
    pngs.append(("rgba_37x45.png", Image.fromarray(rgba, "RGBA")))
    la = pattern(30, 34, 302, 2)
    pngs.append(("la_30x34.png", Image.fromarray(la, "LA")))
    pal = Image.fromarray(pattern(44, 36, 303)).quantize(colors=16)
    pngs.append(("palette_44x36.png", pal))
    g16 = (pattern(36, 40, 304, 2)[:, :, 0].astype(np.int32) * 256 + pattern(36, 40, 304, 2)[:, :, 1]).astype(np.int32)
    pngs.append(("gray16_36x40.png", Image.fromarray(g16.astype(np.uint16), "I;16")))
    pngs.append(("rgb_45x37.png", Image.fromarray(pattern(45, 37, 305))))
    for name, im in pngs:
        path = os.path.join(HERE, name)
        im.save(path)
        re = Image.open(path)
        rgb = np.array(re.convert("RGB"))
        key = name[:-4]
        tensors[f"png.{key}.rgb"] = rgb
        tensors[f"png.{key}.pixel_values"] = hf_clip_preprocess(rgb, 32, 32, 32, MEAN, STD)
        cases["png"].append({"file": name, "mode": re.mode, "key": key})
    write_safetensors(os.path.join(HERE, "clip_cases.safetensors"), tensors)
    with open(os.path.join(HERE, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
    print("wrote", len(tensors), "tensors")


if __name__ == "__main__":
    main()
