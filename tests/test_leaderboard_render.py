"""`zoo leaderboard`'s pages, character by character where a reader sees them: the Markdown table, the HTML page's
frame, rows and classes, and the papers' rows (values with their spread, source, whose number it is)."""

from __future__ import annotations

import json

import pytest

from zoo.errors import ZooError
from zoo.leaderboard import COLUMNS, ORDER_NOTE, _tables, better_text, finite, paper_references, rank_key, render

VERIFIED = {"detector": {"trust": "verified", "verified": True}, "resolution": 32}


def row(model: str, value: str, **kw) -> dict:
    out = {c: "" for c in COLUMNS}
    out.update(date="2026-01-02T03:04:05+00:00", model=model, dataset="shapes", preset="fvd_shapes", metric="fvd",
               value=value, num_real=1024, num_fake=1024, detector_verified="True", training_steps=100,
               code_version="0.1.0", extra="{}", protocol=json.dumps(VERIFIED))
    out.update(kw)
    return out


ROWS = [row("late", "20.0", num_fake=512), row("early", "10.5", interval_low="9.25", interval_high="11.75")]


def test_the_markdown_table_is_exactly_what_a_reader_sees():
    assert render(ROWS, "md") == "\n".join([
        "### shapes · fvd\n",
        f"Lower is better; {ORDER_NOTE}.\n",
        "| model | value | interval | protocol | n | steps | comparable | source |",
        "|---|---|---|---|---|---|---|---|",
        "| early | 10.5 | \\[9.25, 11.75\\] | fvd_shapes @ 32px | 1024/1024 | 100 | yes | zoo 0.1.0 2026-01-02 |",
        "| late | 20 |  | fvd_shapes @ 32px | 1024/512 | 100 | sample counts N=1024/512 (real/generated), preset "
        "wants 1024/1024 | zoo 0.1.0 2026-01-02 |",
        "",
    ])
    assert render(ROWS) == render(ROWS, "md"), "Markdown is the default format"


def test_markdown_cells_escape_html_and_keep_quotes():
    md = render([row("<b>a</b> \"q\" 'x' |[]\\", "1.0")], "md")
    assert "| &lt;b&gt;a&lt;/b&gt; \"q\" 'x' \\|\\[\\]\\\\ | 1 |" in md


def test_the_html_page_frame_header_rows_and_classes():
    page = render(ROWS + [row("real-vs-real", "2.0")], "html")
    lines = page.split("\n")
    assert lines[0] == ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>video-zoo leaderboard"
                        "</title>")
    assert lines[1] == ("<style>td,th{padding:4px 8px;border-bottom:1px solid #ddd}.no{color:#999}tr.floor"
                        "{background:#eef}img.samples{image-rendering:pixelated;height:192px}figure{display:"
                        "inline-block}</style></head><body>")
    assert lines[2] == (f"<h3>shapes · fvd</h3><p>Lower is better; {ORDER_NOTE.replace(chr(39), '&#x27;')}.</p>"
                        "<table><tr><th>model</th><th>value</th><th>interval</th><th>protocol</th><th>n</th>"
                        "<th>steps</th><th>comparable</th><th>source</th><th>samples</th></tr>")
    assert lines[3] == ("<tr><td>early</td><td>10.5</td><td>[9.25, 11.75]</td><td>fvd_shapes @ 32px</td>"
                        "<td>1024/1024</td><td>100</td><td>yes</td><td>zoo 0.1.0 2026-01-02</td><td></td></tr>")
    assert lines[4].startswith("<tr class='no'><td>late</td>")
    assert lines[5].startswith("<tr class='floor'><td>real vs real (floor)</td><td>2</td>")
    assert lines[6:] == ["</table>", "</body></html>", ""]
    assert "<h2>Samples</h2>" not in page, "no figure section without an embedded figure"


def test_a_paper_number_outside_the_measured_protocols_is_greyed():
    fvd = [r for r in _tables([row("m", "5.0", dataset="ucf101", preset="fvd2048_16f", num_real=2048,
                                   num_fake=2048, protocol=json.dumps({**VERIFIED, "resolution": 256}))])
           [("ucf101", "fvd")]]
    page = render([row("m", "5.0", dataset="ucf101", preset="fvd2048_16f", num_real=2048, num_fake=2048,
                       protocol=json.dumps({**VERIFIED, "resolution": 256}))], "html")
    same = next(r for r in fvd if r["model"] == "stylegan_v (paper)" and r["value"] == "1431.0")
    other = next(r for r in fvd if r["model"] == "stylegan_v (paper)" and r["value"] == "1773.4")
    assert (same["comparable"], other["comparable"]) == ("same protocol", "different protocol: not comparable")
    assert "<tr><td>stylegan_v (paper)</td><td>1431.0</td>" in page
    assert "<tr class='no'><td>stylegan_v (paper)</td><td>1773.4</td>" in page


def test_paper_rows_carry_the_spread_the_source_and_whose_number_it_is():
    records = _tables([row("m", "5.0", dataset="ucf101", metric="is", preset="is2048_ucf", num_real=0,
                           num_fake=2048)])[("ucf101", "is")]
    papers = [r for r in records if r["model"].endswith("(paper)")]
    mocogan = next(r for r in papers if r["model"] == "mocogan (paper)")
    assert mocogan["value"] == "12.42 ± 0.03" and mocogan["source"].startswith("Tulyakov et al. 2018")
    assert (mocogan["interval"], mocogan["n"], mocogan["steps"], mocogan["samples"]) == ("", "", "", "")
    assert mocogan["floor"] is False and mocogan["rank"] is None
    assert mocogan["protocol"] == "tgan_c3d_is @ 64px"
    fvd = _tables([row("m", "5.0", dataset="ucf101", preset="fvd2048_16f")])[("ucf101", "fvd")]
    values = {(r["model"], r["value"]) for r in fvd}
    # StyleGAN-V's table retrains other models: their numbers are theirs, not StyleGAN-V's
    assert {("mocogan_hd (paper)", "1729.6"), ("digan (paper)", "1630.2"), ("videogpt (paper)", "2880.6")} <= values
    assert ("stylegan_v (paper)", "1729.6") not in values
    refs = paper_references("ucf101")
    assert all(r["model"] for r in refs) and {r["model"] for r in refs} >= {"stylegan_v", "mocogan_hd", "tgan2"}


def test_unknown_formats_are_one_line():
    with pytest.raises(ZooError, match=r"^unknown format 'pdf'; valid: md, html, csv$"):
        render(ROWS, "pdf")


@pytest.mark.parametrize("metric, text", [("fvd", "lower is better"), ("is", "higher is better"),
                                          ("acd", "closer to the real clips' value (acd_real) is better"),
                                          ("psnr", "higher is better"), ("ssim", "higher is better"),
                                          ("warp_error", "lower is better"), ("lpips", "lower is better"),
                                          ("mask_iou", "higher is better"), ("psnr_x", "no ranking rule")])
def test_better_text(metric, text):
    assert better_text(metric) == text


def test_rank_keys_and_finite_numbers():
    assert rank_key("psnr_x", "1.0", {}) is None, "no rule: not ranked"
    assert rank_key("psnr", "30.0", {}) == -30.0 and rank_key("warp_error", "0.5", {}) == 0.5
    assert rank_key("fvd", "nan", {}) is None and rank_key("fvd", "2.5", {}) == 2.5
    assert rank_key("is", "2.5", {}) == -2.5
    assert rank_key("acd", "3.0", {"acd_real": 1.0}) == 2.0 and rank_key("acd", "3.0", {}) is None
    assert [finite(v) for v in ("inf", "-inf", "nan", True, None, "x", "1e3", 0)] == [None] * 6 + [1000.0, 0.0]


def test_acd_values_show_the_real_clips_value_and_others_nothing_more():
    acd = row("m", "0.5", metric="acd", preset="acd_shapes", extra=json.dumps({"acd_real": 0.25}))
    (record,) = _tables([acd])[("shapes", "acd")]
    assert record["value"] == "0.5 (real 0.25)"
    (plain,) = _tables([row("m", "0.5", extra=json.dumps({"acd_real": 0.25}))])[("shapes", "fvd")]
    assert plain["value"] == "0.5"
    (odd,) = _tables([row("m", "0.5", metric="acd", preset="acd_shapes", extra="[0.25]")])[("shapes", "acd")]
    assert odd["value"] == "0.5", "an extra that is not a JSON object holds no real value"


def test_comparable_names_the_weights_file_and_joins_every_reason():
    from zoo.leaderboard import comparable

    unverified = row("m", "1.0", detector_verified="False", detector_weights="file:x.pt", num_fake=3,
                     protocol=json.dumps({"detector": {"trust": "unverified"}}))
    assert comparable(unverified) == (False, "unverified detector weights (file:x.pt); sample counts N=1024/3 "
                                             "(real/generated), preset wants 1024/1024")
    pinned = row("m", "1.0", detector_verified="pinned locally", detector_weights="")
    assert comparable(pinned) == (False, "detector weights (?) pinned locally (first-use checksum), not verified "
                                         "against the table")


@pytest.mark.parametrize("fields, trust", [
    ({}, "unverified"),
    ({"detector_verified": "False"}, "unverified"),
    ({"detector_verified": "True"}, "pinned locally"),  # no protocol record: written before trust levels
    ({"detector_verified": "True", "protocol": "not json"}, "pinned locally"),
    ({"detector_verified": "True", "protocol": "[]"}, "pinned locally"),
    ({"detector_verified": "True", "protocol": '{"detector": null}'}, "pinned locally"),
    ({"detector_verified": "True", "protocol": '{"detector": {"trust": "verified"}}'}, "verified"),
    ({"detector_verified": "pinned locally", "protocol": '{"detector": {"trust": "verified"}}'}, "pinned locally"),
])
def test_detector_trust_reads_the_column_and_the_protocol_record(fields, trust):
    from zoo.leaderboard import detector_trust

    assert detector_trust(fields) == trust


def test_the_smallest_resolution_is_still_a_resolution():
    from zoo.leaderboard import row_resolution

    assert row_resolution({"protocol": json.dumps({"resolution": 1})}) == 1


def test_the_command_prints_the_page_as_rendered_or_says_where_it_wrote_it(tmp_path, capsys):
    from zoo.cli import main
    from zoo.leaderboard import append_rows

    board = tmp_path / "leaderboard.csv"
    append_rows(board, ROWS)
    capsys.readouterr()
    assert main(["leaderboard", "--file", str(board)]) == 0
    assert capsys.readouterr().out == render(read_back(board), "md"), "stdout: the page exactly, no extra newline"
    out = tmp_path / "page.html"
    assert main(["leaderboard", "--file", str(board), "--format", "html", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out}\n"
    assert out.read_text() == render(read_back(board), "html", base=tmp_path)
    assert main(["leaderboard", "--file", str(board), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"zoo leaderboard: error: --out {tmp_path} is a folder; name a file in it, "
                                       f"e.g. --out {tmp_path / 'leaderboard.html'}\n")


def read_back(path):
    from zoo.leaderboard import read_rows

    return read_rows(path)


def test_an_unwritable_out_is_one_line_and_writes_nothing(tmp_path, capsys):
    from pathlib import Path

    from zoo.cli import main
    from zoo.leaderboard import append_rows

    if not Path("/proc/self").is_dir():
        pytest.skip("needs /proc: a folder no user, root included, can create files in")
    board = tmp_path / "leaderboard.csv"
    append_rows(board, ROWS)
    capsys.readouterr()
    assert main(["leaderboard", "--file", str(board), "--out", "/proc/zoo-page.md"]) == 2
    assert capsys.readouterr().err == ("zoo leaderboard: error: --out /proc/zoo-page.md: cannot write it (No such "
                                       "file or directory); nothing was written\n")


def test_field_and_image_limits_hold_exactly_at_the_limit(tmp_path):
    from zoo.leaderboard import FIELD_LIMIT, MAX_EMBED_BYTES, _check_field_sizes, image_data_uri

    _check_field_sizes({"model": "m", "extra": "x" * FIELD_LIMIT})  # at the limit: accepted
    with pytest.raises(ZooError, match=rf"^leaderboard column extra of model {'m' * 40!r} holds {FIELD_LIMIT + 1} "
                                       rf"characters, over the {FIELD_LIMIT} a field may hold; nothing was written$"):
        _check_field_sizes({"model": "m" * 50, "extra": "x" * (FIELD_LIMIT + 1)})
    samples = tmp_path / "leaderboard_samples"
    samples.mkdir()
    exact = samples / "exact.gif"
    exact.write_bytes(b"GIF89a" + b"\0" * (MAX_EMBED_BYTES - 6))
    uri, why = image_data_uri(exact, samples)
    assert why == "" and uri.startswith("data:image/gif;base64,R0lGODlh")
    over = samples / "over.gif"
    over.write_bytes(b"GIF89a" + b"\0" * (MAX_EMBED_BYTES - 5))
    assert image_data_uri(over, samples) == (None, f"larger than {MAX_EMBED_BYTES // 2**20} MiB")


def test_the_samples_section_has_its_heading(tmp_path):
    samples = tmp_path / "leaderboard_samples"
    samples.mkdir()
    (samples / "a.gif").write_bytes(b"GIF89a" + b"\0" * 10)
    page = render([row("m", "1.0", samples="leaderboard_samples/a.gif")], "html", base=tmp_path)
    assert "\n<h2>Samples</h2>\n<figure id='samples-1'>" in page


def test_one_sided_intervals_are_not_shown_and_a_rank_of_zero_ranks_first():
    (half,) = _tables([row("m", "1.0", interval_low="0.5")])[("shapes", "fvd")]
    assert half["interval"] == ""
    acd = [row(name, value, metric="acd", preset="acd_shapes", extra=json.dumps({"acd_real": 0.5}))
           for name, value in (("off", "1.0"), ("exact", "0.5"))]  # ranks 0.5 and 0.0
    assert [r["model"] for r in _tables(acd)[("shapes", "acd")]] == ["exact", "off"]


def test_markdown_cells_leave_quotes_alone_and_escape_each_markdown_character():
    from zoo.leaderboard import _md_text

    assert _md_text("a \"b\" 'c'") == "a \"b\" 'c'"
    assert [_md_text(c) for c in "\\|[]X"] == ["\\\\", "\\|", "\\[", "\\]", "X"]


def test_an_unreadable_image_path_says_why(tmp_path):
    from zoo.leaderboard import image_data_uri

    assert image_data_uri(tmp_path / "a\0.gif", tmp_path) == (None, "unreadable (ValueError)")
