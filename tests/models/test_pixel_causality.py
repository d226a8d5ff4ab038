"""Causality of the pixel family, measured by gradients: the logits of sub-pixel (t, y, x, c) must have exactly zero
gradient w.r.t. every input sub-pixel at or after it in the order, and a nonzero one w.r.t. every earlier sub-pixel
inside the decoder's receptive field. The expected receptive fields are built here from the papers' descriptions
(kernel taps and recurrences), never from the code under test; planted bugs in each mechanism must be caught."""

from __future__ import annotations

import functools
import itertools

import pytest
import torch

import zoo.models.pixel.pixelcnn as pixelcnn_module
import zoo.models.pixel.pixelrnn as pixelrnn_module
from zoo.models.base import VideoSpec
from zoo.models.layers.masked_conv import channel_groups, spatial_mask
from zoo.models.pixel.common import gate_groups
from zoo.registry import MODELS, load_all

load_all()
C, T, H, W = 3, 2, 6, 6
LAYERS = {"pixelcnn": 2, "gated_pixelcnn": 4, "row_lstm": 2, "diagonal_bilstm": 1}
# Features split into three colour groups: at 12, a group of PixelCNN's half-width blocks has two channels after a
# ReLU (Gated PixelCNN's, four gated units), and for some initialisations all are off for every input, which cuts
# real dependencies (3 of 4 seeds for PixelCNN, 2 of 4 for Gated once the context encoder changed the random
# stream); at 24 none in 6 and 4 seeds.
HIDDEN = 24


def build(key: str, **changes):
    cls = MODELS.get(key)
    fields = dict(hidden=HIDDEN, layers=LAYERS[key], first_kernel=3, out_hidden=24, context_width=6, context_blocks=2)
    torch.manual_seed(0)
    return cls(cls.config_class(**{**fields, **changes}), VideoSpec(C, T, H, 0)).double()


def dependencies(model, inputs: int = 3) -> torch.Tensor:
    """Bool `(T, H, W, C, T, H, W, C)`: output sub-pixel -> input sub-pixels with a nonzero gradient at any of
    `inputs` random videos (one input alone can hide a dependency behind a ReLU that happens to be off)."""
    out = torch.zeros(T, H, W, C, T, H, W, C, dtype=torch.bool)
    for seed in range(inputs):
        generator = torch.Generator().manual_seed(seed)
        x = (torch.rand(1, C, T, H, W, dtype=torch.float64, generator=generator) * 2 - 1).requires_grad_(True)
        logits = model.logits_of(x)  # (1, 256, C, T, H, W)
        weights = torch.randn(256, dtype=torch.float64, generator=generator)
        scores = torch.einsum("bkcthw,k->bthwc", logits, weights)[0]  # one random projection per sub-pixel
        for t, y, xx, c in itertools.product(range(T), range(H), range(W), range(C)):
            (grad,) = torch.autograd.grad(scores[t, y, xx, c], x, retain_graph=True)
            out[t, y, xx, c] |= grad[0].permute(1, 2, 3, 0) != 0  # (C, T, H, W) -> (T, H, W, C)
    return out


@functools.cache
def measured(key: str, context: str = "convlstm") -> torch.Tensor:
    """`dependencies` of the unmodified tiny model (shared by the tests that only read it)."""
    return dependencies(build(key, context=context))


def order_index() -> torch.Tensor:
    """Position of each sub-pixel (t, y, x, c) in the generation order."""
    return torch.arange(T * H * W * C).reshape(T, H, W, C)


def violations(dep: torch.Tensor) -> int:
    """Dependencies on the sub-pixel itself or on later ones (must be none)."""
    order = order_index().flatten()
    at_or_after = order[None, :] >= order[:, None]  # (out, in)
    return int((dep.reshape(order.numel(), -1) & at_or_after).sum())


# -- receptive fields from the papers -------------------------------------------------------------------------------


def first_layer(r: int) -> list[list[set]]:
    """Mask-A (2r+1)^2 kernel: rows above within r, pixels to the left within r, and the pixel itself (colours < c)."""
    return [[{(yy, xx) for yy in range(max(0, y - r), y + 1) for xx in range(max(0, x - r), min(W, x + r + 1))
              if yy < y or xx <= x} for x in range(W)] for y in range(H)]


def pixelcnn_field(layers: int) -> list[list[set]]:
    """PixelRNN Sec. 3.5: each 3x3 mask-B layer reads the taps above (three) and to the left (one) and the centre."""
    field = first_layer(1)
    for _ in range(layers):
        taps = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 0)]
        field = [[set().union(*(field[y + dy][x + dx] for dy, dx in taps if 0 <= y + dy < H and 0 <= x + dx < W))
                  for x in range(W)] for y in range(H)]
    return field


def row_lstm_field(layers: int) -> list[list[set]]:
    """PixelRNN Sec. 3.1: the state at (y, x) reads the layer input at (y, x - 1), (y, x) and the states of the
    previous row at x - 1, x, x + 1: a triangle above each pixel."""
    field = first_layer(1)
    for _ in range(layers):
        state = [[set() for _ in range(W)] for _ in range(H)]
        for y in range(H):
            for x in range(W):
                state[y][x] = field[y][x] | (field[y][x - 1] if x > 0 else set())
                for dx in (-1, 0, 1):
                    if y > 0 and 0 <= x + dx < W:
                        state[y][x] |= state[y - 1][x + dx]
        field = [[field[y][x] | state[y][x] for x in range(W)] for y in range(H)]
    return field


def full_field() -> list[list[set]]:
    return [[{(yy, xx) for yy in range(H) for xx in range(W) if (yy, xx) <= (y, x)} for x in range(W)]
            for y in range(H)]


def expected(field: list[list[set]], last_colour_needs_later_first_layer: bool = False) -> torch.Tensor:
    """Bool like `dependencies`: every earlier frame in full, this frame's `field` pixels (the pixel itself: the
    colours before c only).

    The last colour of a pixel p never reaches the features at p (mask A hides it there and mask B keeps colours
    apart), only the first layer's outputs at later pixels q' whose kernel covers p. A decoder whose field is full
    after one layer (Diagonal BiLSTM) therefore sees it at q only if such a q' <= q exists."""
    out = torch.zeros(T, H, W, C, T, H, W, C, dtype=torch.bool)
    first = first_layer(1)
    for t, y, x, c in itertools.product(range(T), range(H), range(W), range(C)):
        out[t, y, x, c, :t] = True
        for yy, xx in field[y][x]:
            out[t, y, x, c, t, yy, xx] = True if (yy, xx) != (y, x) else torch.arange(C) < c
            if last_colour_needs_later_first_layer and (yy, xx) != (y, x):
                later = [(qy, qx) for qy in range(H) for qx in range(W) if (yy, xx) < (qy, qx) <= (y, x)]
                out[t, y, x, c, t, yy, xx, C - 1] = any((yy, xx) in first[qy][qx] for qy, qx in later)
    return out


FIELDS = {"pixelcnn": lambda: pixelcnn_field(LAYERS["pixelcnn"]), "gated_pixelcnn": full_field,
          "row_lstm": lambda: row_lstm_field(LAYERS["row_lstm"]), "diagonal_bilstm": full_field}


@pytest.mark.parametrize("key,context", [(k, "convlstm") for k in FIELDS] + [("pixelcnn", "conv3d")])
def test_receptive_field_is_exactly_the_papers(key, context):
    dep = measured(key, context)
    assert violations(dep) == 0, "a logit depends on its own sub-pixel or a later one"
    want = expected(FIELDS[key](), last_colour_needs_later_first_layer=key == "diagonal_bilstm")
    missing = (want & ~dep).nonzero()[:5].tolist()
    extra = (dep & ~want).nonzero()[:5].tolist()
    assert not missing and not extra, f"missing {missing}, unexpected {extra}"


def test_blind_spot_present_in_pixelcnn_absent_in_gated_and_diagonal():
    """A blind spot: an earlier pixel of the frame outside the field while a pixel further up the same column is
    inside (so it is not the kernel's reach)."""

    def blind_spots(dep: torch.Tensor) -> list[tuple]:
        t = 1
        spots = []
        for y, x in itertools.product(range(H), range(W)):
            seen = dep[t, y, x, 0, t].any(-1)  # (H, W) pixels of this frame the R logit reads
            for yy, xx in itertools.product(range(y), range(W)):
                if not seen[yy, xx] and seen[:yy, xx].any():
                    spots.append((y, x, yy, xx))
        return spots

    assert blind_spots(measured("pixelcnn", "convlstm")), "PixelCNN must show its blind spot"
    assert not blind_spots(measured("gated_pixelcnn", "convlstm"))
    dep = measured("diagonal_bilstm", "convlstm")
    assert not blind_spots(dep)
    assert dep[1, H - 1, 0, 0, 1, 0, W - 1].all(), "Diagonal BiLSTM sees the far upper-right pixel"


def test_row_lstm_field_is_a_triangle_that_misses_context():
    """With a 3x3 first layer, the pixel (y, x) sees (y - k, x + k) but not (y - k, x + k + 1): the triangle's
    edge (Fig. 4), so the upper right of the context is missed."""
    dep = measured("row_lstm", "convlstm")
    y, x = H - 1, 0
    seen = dep[1, y, x, 0, 1].any(-1)
    assert seen[y - 1, x + 1] and seen[y - 3, x + 3]
    assert not seen[y - 1, x + 2] and not seen[y - 4, x + 5]


# -- planted bugs -------------------------------------------------------------------------------------------------


def first_masked(model):
    decoder = model.decoder
    return decoder.first if hasattr(decoder, "first") else decoder.layers[0].horizontal


@pytest.mark.parametrize("key", list(FIELDS))
def test_mask_b_in_the_first_layer_is_caught(key):
    model = build(key)
    conv = first_masked(model)
    gated = key == "gated_pixelcnn"
    out_groups = gate_groups(conv.out_channels // 2, C, 2) if gated else channel_groups(conv.out_channels, C)
    conv.mask.copy_(spatial_mask(channel_groups(conv.in_channels, C), out_groups, conv.kernel_size, conv.centre, "B"))
    assert violations(dependencies(model, inputs=1)) > 0


def test_unmasked_row_lstm_input_to_state_is_caught():
    model = build("row_lstm")
    model.decoder.layers[0].input_to_state.mask.fill_(1.0)  # sees the pixel to the right
    assert violations(dependencies(model, inputs=1)) > 0


@pytest.mark.parametrize("key,module", [("gated_pixelcnn", pixelcnn_module), ("diagonal_bilstm", pixelrnn_module)])
def test_missing_shift_down_is_caught(key, module, monkeypatch):
    """Gated: the vertical -> horizontal link; Diagonal BiLSTM: the right-to-left output. Unshifted, both leak the
    current row's future."""
    model = build(key)
    monkeypatch.setattr(module, "shift_down", lambda x: x)
    assert violations(dependencies(model, inputs=1)) > 0


@pytest.mark.parametrize("context", ["convlstm", "conv3d"])
def test_context_that_sees_the_current_frame_is_caught(context):
    model = build("pixelcnn", context=context)
    original = model.context.forward
    # off by one frame: frame t's context built from frames <= t
    model.context.forward = lambda video, labels=None: original(torch.cat([video[:, :, 1:], video[:, :, -1:]], 2),
                                                               labels)
    assert violations(dependencies(model, inputs=1)) > 0


@pytest.mark.parametrize("key", ["pixelcnn", "row_lstm"])
def test_uneven_colour_groups_stay_causal(key):
    """The papers' widths (256, 1024) do not divide by 3: colour blocks of unequal size must mask just as well."""
    assert violations(dependencies(build(key, hidden=16, out_hidden=25), inputs=1)) == 0
