"""DiscNet v2 decoding (every disc in view, names counted up from L5-S1) and the real-label
readers that train it."""

from __future__ import annotations

import numpy as np
import torch

from reporter.ingest.image2d_nets import ANY_DISC, DISC_LEVELS, decode_chain
from reporter.training.real_labels import group_boxes, lumbar_from_chain


def _logits(discs: list[tuple[int, int]], lumbar_from: int, size: int = 80) -> torch.Tensor:
    """Six heatmap logits: blobs on every disc in the any-disc channel, the last five discs of
    `discs[lumbar_from:]` on the lumbar channels."""
    yy, xx = np.mgrid[0:size, 0:size]
    out = np.full((len(DISC_LEVELS) + 1, size, size), -8.0, dtype=np.float32)
    for r, c in discs:
        blob = np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * 1.5**2))
        out[ANY_DISC] = np.maximum(out[ANY_DISC], -8 + 16 * blob)
    for ch, (r, c) in enumerate(discs[lumbar_from : lumbar_from + 5]):
        blob = np.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * 1.5**2))
        out[ch] = -8 + 16 * blob
    return torch.from_numpy(out)


def test_cranial_discs_are_counted_up_from_l1_l2() -> None:
    discs = [(6 + 9 * i, 30 + i) for i in range(8)]  # 8 discs 9 px apart, cranial first
    pos, score, cranial = decode_chain(_logits(discs, lumbar_from=3))
    np.testing.assert_allclose(pos, np.array(discs[3:], dtype=float), atol=0.6)
    assert score.min() > 0.9
    # Nearest first: T12-L1 is discs[2], then discs[1], discs[0].
    got = [(round(r), round(c)) for r, c, _ in cranial]
    assert got == [discs[2], discs[1], discs[0]]


def test_a_gap_in_the_chain_stops_the_count() -> None:
    # discs[1] missing: the step from discs[2] to discs[0] is twice the lumbar step, so the
    # count stops at T12-L1 rather than naming discs[0] T11-T12.
    discs = [(6 + 9 * i, 30) for i in range(8)]
    shown = [d for i, d in enumerate(discs) if i != 1]
    _, _, cranial = decode_chain(_logits(shown, lumbar_from=2))
    assert [(round(r), round(c)) for r, c, _ in cranial] == [discs[2]]


def test_five_channel_weights_give_no_cranial_discs() -> None:
    discs = [(10 + 9 * i, 30) for i in range(5)]
    _, _, cranial = decode_chain(_logits(discs, lumbar_from=0)[: len(DISC_LEVELS)])
    assert cranial == []


def test_box_groups_and_names_from_the_sacrum_up() -> None:
    boxes = [
        (10.0, 10.0, 50.0, 30.0),
        (10.0, 60.0, 50.0, 80.0),
        (12.0, 62.0, 48.0, 79.0),  # a second class drawn on the same disc
        (10.0, 110.0, 50.0, 130.0),
    ]
    groups = group_boxes(boxes)
    assert len(groups) == 3
    chain = np.array([[(g[1] + g[3]) / 2, (g[0] + g[2]) / 2] for g in groups])
    lumbar = lumbar_from_chain(chain)
    # Three discs: L3-L4, L4-L5, L5-S1 known; L1-L2 and L2-L3 unknown (NaN), never guessed.
    assert np.isnan(lumbar[:2]).all()
    np.testing.assert_allclose(lumbar[2:, 0], [20.0, 70.0, 120.0])


def test_segmented_shapes_take_the_names_of_the_disc_chain() -> None:
    from reporter.contracts import labels as lab
    from reporter.ingest.image2d_shapes import named_labels

    # A straight spine: discs every 20 rows at column 30, bodies between them, canal behind
    # (columns 45-50), a spinous process behind the canal (columns 55-60).
    classes = np.zeros((140, 80), dtype=np.uint8)
    names = ["T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    pts = np.array([[20.0 + 20 * i, 30.0] for i in range(len(names))])
    for r, _ in pts:
        classes[int(r) - 2 : int(r) + 3, 20:41] = 2
    for r in range(5, 135):
        if classes[r, 30] == 0:
            classes[r, 20:41] = 1
    classes[:, 45:51] = 3
    classes[60:70, 55:61] = 1
    out, found = named_labels(classes, names, pts, step=20.0)
    assert found == set(names)
    assert out[20, 30] == lab.disc_label("T12-L1") and out[120, 30] == lab.disc_label("L5-S1")
    assert out[30, 30] == lab.vertebra_label("L1")  # between T12-L1 and L1-L2
    assert out[10, 30] == lab.vertebra_label("T12")  # above the top disc
    assert out[130, 30] == lab.vertebra_label("S1")
    assert out[65, 58] == lab.POSTERIOR_ELEMENTS and out[65, 47] == lab.CANAL


def test_spider_slice_masks_map_source_values_and_name_from_the_lowest_disc(tmp_path) -> None:
    from PIL import Image

    from reporter.training.real_labels import spider_slice_items

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    img = np.full((200, 100), 40, dtype=np.uint8)
    raw = np.zeros((200, 100), dtype=np.uint8)
    raw[:, 70:80] = 150  # canal
    for i in range(6):  # six discs, every 30 rows; bone between them
        raw[20 + 30 * i : 25 + 30 * i, 20:60] = 29
        raw[26 + 30 * i : 48 + 30 * i, 20:60] = 76
    Image.fromarray(img).save(tmp_path / "images" / "7_t2_SPACE_slice10.png")
    Image.fromarray(raw).save(tmp_path / "masks" / "7_t2_SPACE_slice10.png")
    (item,) = spider_slice_items(tmp_path)
    assert item["patient_id"] == "spider-7"
    assert set(np.unique(item["mask"]).tolist()) == {0, 1, 2, 3}
    assert (item["mask"][:, 70:80] == 3).all()
    assert len(item["all_discs"]) == 6
    # L5-S1 is the lowest disc (rows 170-174), L1-L2 the fifth from the bottom (rows 50-54).
    np.testing.assert_allclose(item["discs"][:, 0], [52.0, 82.0, 112.0, 142.0, 172.0])
