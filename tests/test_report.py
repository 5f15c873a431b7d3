"""Results files merge into a self-contained, escaped leaderboard page."""

from __future__ import annotations

import json
import re

import pytest

from benchmark.cli import main
from benchmark.report.leaderboard import render
from benchmark.report.results import ResultsError, load_table


def results_file(path, records, when="2026-11-22T10:00:00", commit="abc123"):
    doc = {
        "machine_info": {
            "node": "runner-1",
            "python_version": "3.11.7",
            "cpu": {"brand_raw": "Test CPU"},
        },
        "commit_info": {"id": commit, "dirty": False, "branch": "main"},
        "datetime": when,
        "version": "5.3.1",
        "memobench": {"version": "0.1.0", "torch": "2.14.1", "diffusers": "0.42.1"},
        "benchmarks": [
            {
                "name": f"test_leakage[{r['case_id']}]",
                "fullname": r["case_id"],
                "stats": {},
                "extra_info": r,
            }
            for r in records
        ],
    }
    path.write_text(json.dumps(doc))
    return path


def record(case_id, carlini, **kw):
    family, dataset, mitigation = case_id.split("-")
    return dict(
        case_id=case_id,
        family=family,
        dataset="digits",
        n_train=64,
        mitigation=mitigation,
        mitigation_params={},
        carlini_l2=carlini,
        train_seconds=100.0,
        images_per_second=20.0,
        nfe_per_image=50,
        n_gen=256,
        **kw,
    )


def test_merge_shards_and_mark_latest(tmp_path):
    a = results_file(tmp_path / "a.json", [record("ddim-digits64-none", 0.7)])
    b = results_file(
        tmp_path / "b.json",
        [record("ddim-digits64-none", 0.6), record("ddim-digits1024-none", 0.02)],
        when="2026-11-22T11:00:00",
    )
    df, runs = load_table([a, b])
    assert len(df) == 3 and len(runs) == 2
    latest = df[df["latest"]]
    assert sorted(latest["carlini_l2"]) == [0.02, 0.6]


def test_page_is_self_contained_sorted_and_escaped(tmp_path):
    hostile = "<script>alert(1)</script>"
    path = results_file(
        tmp_path / "r.json",
        [
            record("ddim-digits64-none", 0.7),
            record("ddim-digits1024-none", 0.02),
            dict(
                record("evil-digits64-none", 0.3), family=hostile, mitigation_params={"x": hostile}
            ),
        ],
    )
    out = render([path], tmp_path / "board.html")
    page = out.read_text()
    assert hostile not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"(src|href)=\"https?://", page), "no network assets"
    # default order: Carlini fraction, lower is better, first
    order = re.findall(r'data-case="([^"]+)"', page)
    assert order == ["ddim-digits1024-none", "evil-digits64-none", "ddim-digits64-none"]
    assert "lower is better" in page and "runner-1" in page and "abc123" in page
    assert page.count("<script>") == 1, "only our own sorting script"


def test_unmeasured_cells_say_so(tmp_path):
    rec = record("ddim-digits64-none", 0.5)
    del rec["images_per_second"]
    page = render([results_file(tmp_path / "r.json", [rec])], tmp_path / "b.html").read_text()
    assert 'class="num missing"' in page or 'class="text missing"' in page


def test_bad_results_files(tmp_path):
    with pytest.raises(ResultsError, match="does not exist"):
        load_table([tmp_path / "nope.json"])
    (tmp_path / "half.json").write_text('{"benchmarks": [')
    with pytest.raises(ResultsError, match="not valid JSON"):
        load_table([tmp_path / "half.json"])
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(ResultsError, match="not a pytest-benchmark results file"):
        load_table([tmp_path / "other.json"])


def test_cli_report_and_list(tmp_path, capsys):
    path = results_file(tmp_path / "r.json", [record("ddim-digits64-none", 0.7)])
    assert main(["report", str(path), "-o", str(tmp_path / "lb.html")]) == 0
    assert f"leaderboard {tmp_path / 'lb.html'}" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "models: ddim, dummy" in out and "datasets:" in out


def test_fingerprint_columns(tmp_path):
    rec = dict(record("ddim-digits64-none", 0.5), q=3, q_expected=8.0, q_p_value=0.041, tstar=0.97)
    none = dict(record("ddim-digits1024-none", 0.0), q=0, q_expected=0.5, q_p_value=0.6, tstar=-1.0)
    page = render([results_file(tmp_path / "r.json", [rec, none])], tmp_path / "b.html")
    text = page.read_text()
    assert "3 / 8.0 (p=0.041)" in text and ">0.97<" in text and ">none<" in text
    assert "|q|" in text and "t*" in text
