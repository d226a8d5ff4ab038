"""`transforms.resize_labels`: label maps take the frames' crop and are resized by nearest neighbour at pixel centres,
so ids are never blended (what `paired`'s segmentation condition relies on)."""
import torch

from zoo.datasets.transforms import resize_frames, resize_labels


def test_blocks_shrink_to_their_ids_and_the_crop_is_the_frames_crop():
    blocks = torch.arange(64).reshape(1, 8, 8).repeat_interleave(4, 1).repeat_interleave(4, 2)  # 4x4 blocks, 32x32
    assert torch.equal(resize_labels(blocks, 8), torch.arange(64).reshape(1, 8, 8))
    assert torch.equal(resize_labels(torch.arange(4).reshape(1, 2, 2), 4),
                       torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])[None])
    wide = torch.arange(30).repeat(2, 20, 1)  # id = column, 20 x 30: the centre square is columns 5..24
    assert torch.equal(resize_labels(wide, 20), wide[:, :, 5:25])
    assert torch.equal(resize_labels(wide, 20, crop_shift=1.0), wide[:, :, 10:30]), "jittered like the frames"
    frames = wide[..., None].repeat(1, 1, 1, 3).to(torch.uint8)
    assert torch.equal(resize_frames(frames, 20, crop_shift=1.0)[..., 0].long(), wide[:, :, 10:30])
    stretched = resize_labels(wide, 10, policy="stretch")
    assert stretched.dtype == torch.long and set(stretched.unique().tolist()) <= set(range(30))
    assert torch.equal(stretched[0, 0], torch.arange(1, 30, 3)), "nearest at pixel centres: columns 1, 4, ..., 28"
