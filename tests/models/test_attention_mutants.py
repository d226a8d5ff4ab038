"""Masked convolutions, axial attention and VideoGPT's causal attention / key-value cache, each compared with a
direct computation written here with explicit loops (issue 19: mutation survivors). The model-level causality
tests (tests/models/test_pixel_causality.py, tests/models/test_videogpt.py) need trained or gradient-swept models,
too slow to repeat per mutant; these pin the layers themselves.
"""

import math

import pytest
import torch

from zoo.models.layers.axial_attention import AxialAttention3d, AxialSelfAttention
from zoo.models.layers.masked_conv import MaskedConv2d, centre_mask, channel_groups, spatial_mask


@pytest.fixture(autouse=True)
def _double():
    torch.manual_seed(0)


# -- masked convolutions ------------------------------------------------------------------------------------------


def test_channel_groups_split_channels_into_contiguous_colour_runs():
    assert channel_groups(7, 3).tolist() == [0, 0, 0, 1, 1, 2, 2]  # i * 3 // 7
    assert channel_groups(6, 3).tolist() == [0, 0, 1, 1, 2, 2]
    assert channel_groups(3, 3, blocks=2).tolist() == [0, 1, 2, 0, 1, 2]
    assert channel_groups(4, 1).tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match=r"^2 channels cannot hold 3 colour groups$"):
        channel_groups(2, 3)


def test_centre_and_spatial_masks_by_hand():
    rgb = torch.tensor([0, 1, 2])
    assert centre_mask(rgb, rgb, "A").tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0]]  # (out, in): colours < g
    assert centre_mask(rgb, rgb, "B").tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]  # colours <= g
    with pytest.raises(ValueError, match=r"^mask type must be 'A' or 'B', got 'C'$"):
        centre_mask(rgb, rgb, "C")
    mask = spatial_mask(rgb, rgb, (3, 4), (1, 2), "A")
    assert mask.shape == (3, 3, 3, 4) and mask.dtype == torch.float32
    taps = [[1, 1, 1, 1], [1, 1, None, 0], [0, 0, 0, 0]]  # rows above / left of the centre (1, 2) / after
    for y in range(3):
        for x in range(4):
            if taps[y][x] is None:
                assert mask[:, :, y, x].tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0]]
            else:
                assert (mask[:, :, y, x] == taps[y][x]).all(), (y, x)


def _masked_conv_by_hand(conv: MaskedConv2d, x: torch.Tensor, allowed) -> torch.Tensor:
    """out[n, o, y, x] = bias[o] + sum over taps (i, j) whose input pixel (y + i - cy, x + j - cx) exists and input
    channels c that `allowed(o, c, i, j)` of weight[o, c, i, j] * x[n, c, ...]."""
    n, cin, h, w = x.shape
    kh, kw = conv.kernel_size
    cy, cx = conv.centre
    out = torch.zeros(n, conv.out_channels, h, w, dtype=x.dtype)
    for o in range(conv.out_channels):
        for y in range(h):
            for xx in range(w):
                total = conv.bias[o].expand(n).clone() if conv.bias is not None else torch.zeros(n, dtype=x.dtype)
                for i in range(kh):
                    for j in range(kw):
                        sy, sx = y + i - cy, xx + j - cx
                        if 0 <= sy < h and 0 <= sx < w:
                            for c in range(cin):
                                if allowed(o, c, i, j):
                                    total = total + conv.weight[o, c, i, j] * x[:, c, sy, sx]
                out[:, o, y, xx] = total
    return out


@pytest.mark.parametrize("mask_type,kernel,centre", [("A", 3, None), ("B", (3, 4), (1, 2)), ("B", (2, 3), (1, 1)),
                                                     ("A", 5, None), ("B", (4, 5), None), ("B", 3, (2, 1))])
def test_masked_conv_is_the_causal_convolution_computed_by_hand(mask_type, kernel, centre):
    conv = MaskedConv2d(6, 3, kernel, mask_type, centre=centre).double()
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    cy, cx = centre if centre is not None else (kh // 2, kw // 2)
    assert conv.centre == (cy, cx) and conv.mask_type == mask_type
    in_colour, out_colour = [0, 0, 1, 1, 2, 2], [0, 1, 2]

    def allowed(o, c, i, j):
        if (i, j) == (cy, cx):
            return in_colour[c] < out_colour[o] if mask_type == "A" else in_colour[c] <= out_colour[o]
        return i < cy or (i == cy and j < cx)

    x = torch.randn(2, 6, 4, 5, dtype=torch.float64)
    expected = _masked_conv_by_hand(conv, x, allowed)
    torch.testing.assert_close(conv(x), expected)
    for y, col in [(0, 0), (2, 3), (3, 4)]:
        torch.testing.assert_close(conv.at(x, y, col), expected[:, :, y, col])
        stale = x.clone()
        stale[:, :, y, col + 1:] = 99.0  # later positions hold anything: the mask hides them
        stale[:, :, y + 1:] = -99.0
        torch.testing.assert_close(conv.at(stale, y, col), expected[:, :, y, col])
    assert "mask" not in conv.state_dict(), "the mask is rebuilt from the config, not stored in checkpoints"


def test_point_is_a_one_by_one_masked_convolution_and_bias_is_optional():
    conv = MaskedConv2d(3, 6, 1, "B").double()
    v = torch.randn(4, 3, dtype=torch.float64)
    allowed = torch.tensor([[int(c <= o // 2) for c in range(3)] for o in range(6)], dtype=torch.float64)
    expected = v @ (conv.weight[:, :, 0, 0] * allowed).T + conv.bias
    torch.testing.assert_close(conv.point(v), expected)
    explicit = MaskedConv2d(2, 2, 1, "A", in_groups=torch.tensor([0, 1]), out_groups=torch.tensor([1, 0]),
                            bias=False)
    assert explicit.bias is None
    assert explicit.mask[:, :, 0, 0].tolist() == [[1, 0], [0, 0]]  # out 0 (colour 1) sees in 0 (colour 0) only


# -- axial attention --------------------------------------------------------------------------------------------------


def _attention_by_hand(rows: torch.Tensor, module: AxialSelfAttention, axis: int) -> torch.Tensor:
    """rows (B, T, H, W, C); softmax(q k^T / sqrt(d)) v per head along `axis` (1, 2 or 3), heads taking contiguous
    d-channel slices, then the output projection. No mask: every position sees the whole line."""
    c = rows.shape[-1]
    nh = module.heads
    d = c // nh
    wq, wk, wv = module.qkv.weight.chunk(3)
    q, k, v = rows @ wq.T, rows @ wk.T, rows @ wv.T
    out = torch.zeros_like(rows)
    moved = [t.movedim(axis, -2) for t in (q, k, v, out)]  # (..., L, C)
    qm, km, vm, om = moved
    for h in range(nh):
        s = slice(h * d, (h + 1) * d)
        scores = qm[..., s] @ km[..., s].transpose(-1, -2) / math.sqrt(d)
        om[..., s] = scores.softmax(-1) @ vm[..., s]
    return om.movedim(-2, axis) @ module.out.weight.T + module.out.bias


@pytest.mark.parametrize("axis,dim", [("t", 1), ("h", 2), ("w", 3)])
def test_axial_attention_attends_along_its_axis_only(axis, dim):
    module = AxialSelfAttention(8, 2, axis).double()
    x = torch.randn(2, 8, 3, 4, 5, dtype=torch.float64)  # (B, C, T, H, W)
    rows = x.permute(0, 2, 3, 4, 1)
    expected = _attention_by_hand(rows, module, dim).permute(0, 4, 1, 2, 3)
    torch.testing.assert_close(module(x), expected)


def test_axial_block_is_the_sum_of_three_axes_and_checks_its_arguments():
    block = AxialAttention3d(8, 4).double()
    assert [a.axis for a in block.attentions] == ["t", "h", "w"] and all(a.heads == 4 for a in block.attentions)
    x = torch.randn(1, 8, 2, 3, 4, dtype=torch.float64)
    rows = x.permute(0, 2, 3, 4, 1)
    expected = sum(_attention_by_hand(rows, a, dim) for a, dim in zip(block.attentions, (1, 2, 3)))
    torch.testing.assert_close(block(x), expected.permute(0, 4, 1, 2, 3))
    with pytest.raises(ValueError, match=r"^channels 6 must be divisible by heads 4$"):
        AxialSelfAttention(6, 4, "t")
    with pytest.raises(ValueError, match=r"^axis must be one of t, h, w; got 'x'$"):
        AxialSelfAttention(8, 4, "x")


def test_axial_projections_start_with_unit_variance():
    module = AxialSelfAttention(256, 4, "t")
    for weight in (module.qkv.weight, module.out.weight):
        assert weight.std().item() == pytest.approx(1 / 16, rel=0.05)
        assert abs(weight.mean().item()) < 0.01
    assert module.qkv.bias is None and module.out.bias is not None


# -- VideoGPT: causal attention, start token, key/value cache -----------------------------------------------------


def _gpt_config(**kw):
    from zoo.models.videogpt.gpt import VideoGPTConfig

    fields = dict(layers=2, heads=2, width=8, mlp_width=16, dropout=0.0, attn_dropout=0.0, cond_width=6)
    return VideoGPTConfig(**{**fields, **kw})


def _attention_reference(attn, x, context=None, causal=True):
    """softmax(q k^T / sqrt(d) [+ causal -inf above the diagonal]) v per head, heads on contiguous d-slices of the
    projections (k before v in the kv projection), then the output projection: loops over heads."""
    width = x.shape[-1]
    nh, d = attn.heads, width // attn.heads
    source = x if context is None else context
    q = x @ attn.q.weight.T
    kv = source @ attn.kv.weight.T
    k, v = kv[..., :width], kv[..., width:]
    out = torch.zeros_like(q)
    for h in range(nh):
        s = slice(h * d, (h + 1) * d)
        scores = q[..., s] @ k[..., s].transpose(-1, -2) / math.sqrt(d)
        if causal:
            scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool).triu(1), float("-inf"))
        out[..., s] = scores.softmax(-1) @ v[..., s]
    return out @ attn.out.weight.T + attn.out.bias


def test_self_attention_is_causal_and_cross_attention_sees_every_frame_token():
    from zoo.models.videogpt.gpt import Attention

    attn = Attention(8, 2, layers=3, attn_dropout=0.0).double().eval()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    torch.testing.assert_close(attn(x), _attention_reference(attn, x))
    cross = Attention(8, 2, layers=3, attn_dropout=0.0, context_width=6).double().eval()
    context = torch.randn(2, 4, 6, dtype=torch.float64)
    torch.testing.assert_close(cross(x, context=context), _attention_reference(cross, x, context, causal=False))
    with pytest.raises(ValueError, match=r"^cached decoding takes one position at a time$"):
        from zoo.models.videogpt.gpt import KVCache

        attn(x, cache=KVCache(1, 2, 2, 5, 4, x))


def test_attention_dropout_acts_in_training_only_and_the_official_initialisation():
    from zoo.models.videogpt.gpt import Attention

    attn = Attention(8, 2, layers=1, attn_dropout=0.5).double()
    x = torch.randn(1, 6, 8, dtype=torch.float64)
    attn.train()
    assert not torch.allclose(attn(x), attn(x)), "dropout on the attention probabilities while training"
    attn.eval()
    torch.testing.assert_close(attn(x), _attention_reference(attn, x))
    big = Attention(256, 4, layers=4, attn_dropout=0.0, context_width=64)
    for weight, std in [(big.q.weight, 1 / 16), (big.kv.weight, 1 / 8), (big.out.weight, 1 / 32)]:
        assert weight.std().item() == pytest.approx(std, rel=0.05)
    assert big.kv.weight.shape == (512, 64) and big.q.bias is None and big.kv.bias is None


def _transformer(**kw):
    from zoo.models.videogpt.gpt import Transformer

    torch.manual_seed(1)
    model = Transformer(_gpt_config(**kw), (2, 2, 3), code_dim=4, codebook_size=5, num_classes=0).double().eval()
    torch.nn.init.normal_(model.head.weight, std=1.0)  # zero at initialisation: make logits informative
    return model


def test_teacher_forced_logits_at_i_see_exactly_the_codes_before_i():
    model = _transformer()
    assert model.length == 12
    emb = torch.randn(1, 12, 4, dtype=torch.float64, requires_grad=True)
    logits = model(emb)
    assert logits.shape == (1, 12, 5)
    for i in range(12):
        (grad,) = torch.autograd.grad(logits[0, i].sum(), emb, retain_graph=True)
        seen = grad[0].abs().sum(-1) > 0
        assert seen.tolist() == [j < i for j in range(12)], f"position {i} sees {seen.tolist()}"
    (grad,) = torch.autograd.grad(logits[0, 0].sum(), model.start)
    assert grad.abs().sum() > 0, "position 0 reads the learned start token"


def test_cached_steps_reproduce_teacher_forcing_and_fill_the_cache_in_order():
    model = _transformer()
    emb = torch.randn(2, 12, 4, dtype=torch.float64)
    full = model(emb)
    cache = model.new_cache(2, emb)
    assert cache.k.shape == (2, 2, 2, 12, 4) and cache.v.shape == (2, 2, 2, 12, 4) and cache.k.dtype == emb.dtype
    assert cache.length == 0 and cache.context == [None, None]
    with torch.no_grad():
        for i in range(12):
            previous = emb[:, i - 1: i] if i else torch.full((2, 1, 4), 7.0, dtype=torch.float64)  # ignored at 0
            torch.testing.assert_close(model.step(previous, cache), full[:, i])
            assert cache.length == i + 1
            assert cache.k[:, :, :, i].abs().sum() > 0 and cache.k[:, :, :, i + 1:].abs().sum() == 0


def test_cross_attention_keys_are_computed_once_per_sample():
    model = _transformer(cond_frames=1)
    emb = torch.randn(1, 12, 4, dtype=torch.float64)
    context = torch.randn(1, 3, 6, dtype=torch.float64)
    full = model(emb, context=context)
    cache = model.new_cache(1, emb)
    with torch.no_grad():
        first = model.step(torch.zeros(1, 1, 4, dtype=torch.float64), cache, context=context)
        torch.testing.assert_close(first, full[:, 0])
        assert all(kv is not None for kv in cache.context)
        kept = [tuple(t.clone() for t in kv) for kv in cache.context]
        second = model.step(emb[:, :1], cache, context=context * 0)  # a changed context is not re-read
        for (k, v), (k0, v0) in zip(cache.context, kept):
            assert torch.equal(k, k0) and torch.equal(v, v0)
        torch.testing.assert_close(second, full[:, 1])


def test_categorical_is_the_inverse_cdf_by_hand():
    from zoo.models.videogpt.gpt import categorical

    probs = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]])
    uniform = torch.tensor([0.0, 0.1, 0.29, 0.31, 0.6, 0.61, 0.9999])
    for row in range(2):
        cdf = probs[row].cumsum(0)
        for u in uniform.tolist():
            expected = next(k for k in range(4) if cdf[k] > u)  # first class whose CDF exceeds u
            got = categorical(probs[row: row + 1].log() + 3.0, torch.tensor([u]))
            assert got.tolist() == [expected] and got.dtype == torch.long, (row, u)
    certain = torch.tensor([[0.0, -1e9, -1e9]])
    assert categorical(certain, torch.tensor([0.9999999])).tolist() == [0]
    top = torch.tensor([[-1e9, -1e9, 0.0]])  # rounding may put u * cdf[-1] at the last bucket's edge
    assert categorical(top, torch.tensor([1.0])).tolist() == [2]


def test_decoding_draws_each_code_from_the_logits_of_the_codes_before_it():
    from zoo.models.videogpt.gpt import categorical, decode_codes

    model = _transformer()
    table = torch.randn(5, 4, dtype=torch.float64)
    uniform = torch.rand(2, 12, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    cached = decode_codes(model, table, uniform)
    uncached = decode_codes(model, table, uniform, use_cache=False)
    assert cached.dtype == torch.long and cached.shape == (2, 12) and torch.equal(cached, uncached)
    assert len(cached.unique()) > 2
    logits = model(table[cached])  # teacher forcing on the drawn codes: each draw is the inverse CDF at its uniform
    for i in range(12):
        assert torch.equal(categorical(logits[:, i], uniform[:, i]), cached[:, i])


def test_class_labels_reach_every_block_in_teacher_forcing_and_cached_steps():
    from zoo.models.videogpt.gpt import Transformer

    torch.manual_seed(2)
    model = Transformer(_gpt_config(), (1, 2, 2), code_dim=4, codebook_size=5, num_classes=3).double().eval()
    torch.nn.init.normal_(model.head.weight, std=1.0)
    for module in model.modules():  # labelled gains and biases away from their shared start values
        if isinstance(module, torch.nn.Embedding):
            torch.nn.init.normal_(module.weight, std=0.5)
    emb = torch.randn(2, 4, 4, dtype=torch.float64)
    labels = torch.tensor([0, 2])
    full = model(emb, labels)
    swapped = model(emb, labels.flip(0))
    assert not torch.allclose(full, swapped), "the label changes the logits"
    gain, bias = model.norm.gain.weight.detach().clone(), model.norm.bias.weight.detach().clone()
    with torch.no_grad():
        model.norm.gain.weight.copy_(gain[:1].expand_as(gain))  # the final norm ignores the label now
        model.norm.bias.weight.copy_(bias[:1].expand_as(bias))
        inner = model(emb, labels)
        assert not torch.allclose(inner, model(emb, labels.flip(0))), "the blocks' norms read the label too"
        cache = model.new_cache(2, emb)
        for i in range(4):
            previous = emb[:, i - 1: i] if i else torch.zeros(2, 1, 4, dtype=torch.float64)
            torch.testing.assert_close(model.step(previous, cache, labels), inner[:, i])
        model.norm.gain.weight.copy_(gain)
        model.norm.bias.weight.copy_(bias)
        cache = model.new_cache(2, emb)
        torch.testing.assert_close(model.step(torch.zeros(2, 1, 4, dtype=torch.float64), cache, labels), full[:, 0])
