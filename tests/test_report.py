"""Results files merge into a self-contained, escaped leaderboard page."""

from __future__ import annotations

import json
import math
import re

import pytest

from benchmark.cli import main
from benchmark.measures.carlini_l2 import CARLINI_L2
from benchmark.record import CASE_ID, IMAGES_PER_SECOND
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
                "name": f"test_leakage[{r[CASE_ID]}]",
                "fullname": r[CASE_ID],
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
    base = dict(
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
    )
    return {**base, **kw}


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
    assert sorted(latest[CARLINI_L2]) == [0.02, 0.6]


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
    del rec[IMAGES_PER_SECOND]
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
    assert main(["list", "--settings"]) == 0
    out = capsys.readouterr().out  # each mitigation's and sampler's own settings
    assert "  cpsample: alpha=0.001, scale=1.0, classifier_steps=800" in out
    assert "  ddim: eta=0.0, clip_sample=True" in out and "  none: (none)" in out


def test_fingerprint_columns(tmp_path):
    rec = dict(record("ddim-digits64-none", 0.5), q=3, q_expected=8.0, q_p_value=0.041, tstar=0.97)
    none = dict(record("ddim-digits1024-none", 0.0), q=0, q_expected=0.5, q_p_value=0.6, tstar=-1.0)
    page = render([results_file(tmp_path / "r.json", [rec, none])], tmp_path / "b.html")
    text = page.read_text()
    assert "3 / 8.0 (p=0.041)" in text and ">0.97<" in text and ">none<" in text
    assert "|q|" in text and "t*" in text


# -- case pages, history, the privacy-utility view ------------------------------------------
def _case_pages(board):
    return sorted((board.parent / f"{board.stem}-cases").glob("*.html"))


def test_every_case_gets_a_linked_page_with_its_pictures(tmp_path):
    import torch

    from benchmark.report.thumbnails import case_pictures

    images = torch.rand(20, 1, 16, 16) * 2 - 1
    train = torch.rand(10, 1, 16, 16) * 2 - 1
    metrics = {"q_flagged": [3, 5], "top_pairs": [[1, 2, 0.99], [4, 7, 0.98]]}
    pictures = case_pictures(images, train, metrics, fingerprinted=train[0])
    assert all(v.startswith("data:image/png;base64,") for v in pictures.values())
    curve = {"t": [0.9, 0.5, 0.1], "q": [0.0, None, 0.25], "trials": [16, 0, 16]}
    rich = record(
        "ddim-digits64-none",
        0.7,
        pictures=pictures,
        tstar=0.1,
        tstar_m=16,
        tstar_curve=curve,
        mia_runs=["loss_weights"],
        mia_loss_weights_roc=[[0, 0.5, 1], [0, 0.9, 1]],
        mia_loss_weights_auc=0.9,
        similarity_hist=[0] * 90 + [5] * 10,
        heldout_similarity_hist=[0] * 80 + [5] * 20,
        replication_tau=0.95,
        loss_history=[[10, 1.0], [20, 0.5]],
    )
    bare = record("ddim-digits1024-none", 0.0, q_flagged=[])
    board = render([results_file(tmp_path / "r.json", [rich, bare])], tmp_path / "b.html")
    pages = _case_pages(board)
    assert len(pages) == 2
    html = board.read_text()
    for page in pages:
        assert f'href="b-cases/{page.name}"' in html
    rich_page = next(p for p in pages if "digits64" in p.name).read_text()
    assert rich_page.count("data:image/png;base64,") == 7  # 3 image grids + 4 plots
    assert "not measured for this case" not in rich_page
    bare_page = next(p for p in pages if "digits1024" in p.name).read_text()
    assert bare_page.count("not measured for this case") == 6
    assert "no sample was flagged (|q| = 0)" in bare_page
    assert 'href="../b.html"' in bare_page


def test_hostile_names_and_picture_uris_are_escaped_on_case_pages(tmp_path):
    hostile = "<script>alert(1)</script>"
    evil = dict(
        record("evil-digits64-none", 0.3),
        case_id=f"x{hostile}\u202e../../etc",
        family=hostile,
        mitigation_params={"p": hostile},
        pictures={"samples": 'javascript:alert(1)" onerror="alert(2)', "top_pairs": hostile},
    )
    board = render([results_file(tmp_path / "r.json", [evil])], tmp_path / "b.html")
    for page in [board, *_case_pages(board)]:
        text = page.read_text()
        assert hostile not in text and "&lt;script&gt;" in text, page.name
        assert "javascript:" not in text and 'onerror="' not in text, page.name
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+\.html", p.name) for p in _case_pages(board))


def test_change_against_the_previous_run_of_the_same_case(tmp_path):
    old = results_file(
        tmp_path / "old.json",
        [record("ddim-digits64-none", 0.7, images_per_second=20.0)],
        when="2026-11-20T10:00:00",
    )
    new = results_file(
        tmp_path / "new.json",
        [record("ddim-digits64-none", 0.5, images_per_second=10.0)],
        when="2026-11-22T10:00:00",
    )
    html = render([new, old], tmp_path / "b.html").read_text()  # order of files does not matter
    # Carlini fraction fell 0.7 -> 0.5: lower is better, so better; img/s fell: worse
    assert re.search(r'class="change better" title="previous run: 0\.700">▼', html)
    assert re.search(r'class="change worse" title="previous run: 20\.0">▼', html)
    assert 'class="change same"' in html  # train s unchanged


def test_pareto_front_matches_brute_force():
    import random

    from benchmark.report.plots import pareto_front

    rng = random.Random(0)
    for _ in range(50):
        pts = [(rng.randint(0, 9), rng.randint(0, 9)) for _ in range(rng.randint(1, 12))]
        dominated = {
            i for i, p in enumerate(pts) for q in pts if q[0] <= p[0] and q[1] <= p[1] and q != p
        }
        front = pareto_front(pts)
        assert {pts[i] for i in front} == {p for i, p in enumerate(pts) if i not in dominated}


def test_cases_are_compared_on_their_own_base_model(tmp_path):
    """Groups by base model; each mitigation against `none` of its own model, with an
    interval; a per-group front and a generated summary per threat model."""

    def case(case_id, carlini, model_key, fid, w, api, **kw):
        return record(
            case_id,
            carlini,
            model_key=model_key,
            fid_test=fid,
            n_gen=1024,
            sample_seconds=10.0,
            mia_loss_weights_auc=w,
            mia_loss_weights_auc_ci=[w - 0.02, min(1.0, w + 0.02)],
            mia_loss_api_auc=api,
            mia_loss_api_auc_ci=[api - 0.02, min(1.0, api + 0.02)],
            **kw,
        )

    recs = [
        case("ddim-digits64-none", 0.7, "m64", 11.0, 1.0, 1.0, q=14),
        dict(
            case("ddim-digits64-cpsample", 0.01, "m64", 27.0, 1.0, 0.56, q=1),
            sample_seconds=25.0,
        ),
        case("ddim-digits64-rejection", 0.4, "m64", 12.0, 1.0, 1.0, q=54),
        dict(case("ddim-digits1024-none", 0.0, "m1024", 3.6, 0.6, 0.6, q=0), n_train=1024),
    ]
    html = render([results_file(tmp_path / "r.json", recs)], tmp_path / "b.html").read_text()
    headers = re.findall(r'<h3 class="group-header">([^<]*)</h3>', html)
    assert headers == ["ddim · digits · N_train = 64", "ddim · digits · N_train = 1024"]
    first = html.split('<h3 class="group-header">')[1]
    row = re.search(r'<tr data-compare="ddim-digits64-cpsample">(.*?)</tr>', first, re.S).group(1)
    # the deployed denoiser's advantage: 0.06 [0.04, 0.08] against 0.50 [0.48, 0.50]
    assert "-0.440 [-0.460, -0.412]" in row
    assert "+0.000 [-0.020, +0.020]" in row  # the weights: unchanged
    assert "+16.00" in row and "2.50×" in row  # FID_test and sampling time against none
    assert "cpsample lowers it by 0.440" in first  # the denoiser-api summary
    assert "no mitigation lowers it beyond its interval" in first  # the weights summary
    fronts = re.findall(r'<p class="note front">Pareto front: ([^<]*)</p>', first)
    assert fronts[0] == "none"  # weights: cpsample's AUC is none's, at a worse FID
    assert fronts[1] == "none, cpsample"  # the deployed denoiser
    assert 'id="threat-pick"' in html


def test_a_rehearsals_rows_are_marked(tmp_path):
    """A run marked as a rehearsal gets the warning and a 'yes' in the runs table; a real
    run neither."""
    path = results_file(tmp_path / "r.json", [record("ddim-digits64-none", 0.5)])
    real = render([path], tmp_path / "real.html").read_text()
    assert 'id="rehearsal"' not in real
    doc = json.loads(path.read_text())
    doc["memobench"]["rehearsal"] = True
    path.write_text(json.dumps(doc))
    page = render([path], tmp_path / "reh.html").read_text()
    assert 'id="rehearsal"' in page and "<td>yes</td>" in page


def test_threat_model_groups_circular_cells_and_shift_warnings(tmp_path):
    """One header group per threat model; a mitigation's own measurement is marked and not
    ranked; a case whose blind baseline separates the sets is flagged."""
    from benchmark.measures.feature_replication import REPLICATION_FRACTION_HELDOUT

    rows = [
        record(
            "ddim-digits64-rejection",
            0.4,
            replication_fraction_heldout=0.0,
            circular=[REPLICATION_FRACTION_HELDOUT],
            blind_auc=0.51,
            blind_auc_ci=[0.40, 0.62],
            blind_shift=False,
        ),
        record(
            "ddim-digits64-none",
            0.7,
            replication_fraction_heldout=0.8,
            circular=[],
            blind_auc=0.93,
            blind_auc_ci=[0.88, 0.97],
            blind_shift=True,
            mia_loss_weights_auc=1.0,
            mia_loss_weights_tpr_1pct_transfer=0.9,
            mia_loss_weights_fpr_1pct_achieved=0.02,
            mia_loss_weights_tpr_1pct=0.95,
        ),
    ]
    out = render([results_file(tmp_path / "r.json", rows)], tmp_path / "board.html")
    html = out.read_text()
    for threat in ("weights", "denoiser-api", "samples-only"):
        assert f"threat model: {threat}" in html
    assert "0.900 at FPR 0.020 (oracle 0.950)" in html
    # the circular cell: marked, without a sort key; the independent one keeps its key
    circular = re.search(r'<td class="[^"]*circular"[^>]*>\s*([^<]*)</td>', html)
    assert circular and "⟲" in circular.group(1) and "data-sort" not in circular.group(0)
    assert 'id="circular-note"' in html
    assert 'id="shift-warning"' in html and "ddim-digits64-none" in html.split("shift-warning")[1]
    assert html.count('class="shift"') == 1


def test_report_gates_each_cases_latest_record(tmp_path, capsys):
    """``memobench report --fail-if``: one stderr line per broken rule and case, exit 1;
    a newer run of a case replaces its older record; a malformed rule stops before any
    work (exit 2)."""
    old = results_file(
        tmp_path / "old.json", [record("ddim-digits64-none", 0.0)], when="2026-11-01"
    )
    new = results_file(
        tmp_path / "new.json",
        [record("ddim-digits64-none", 0.64), record("ddim-digits1024-none", 0.0)],
        when="2026-11-02",
    )
    out = str(tmp_path / "lb.html")
    assert main(["report", str(old), "-o", out, "--fail-if", "carlini_l2 > 0"]) == 0
    assert "all 1 pass" in capsys.readouterr().out
    code = main(["report", str(old), str(new), "-o", out, "--fail-if", "carlini_l2 > 0",
                 "--fail-if", "n_gen < 1000"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1 and "2 of 2 case(s) fail" in captured.out
    lines = captured.err.strip().splitlines()
    assert "memobench: gate: ddim-digits64-none: carlini_l2 > 0: carlini_l2 = 0.64" in lines
    assert sum("n_gen < 1000" in line for line in lines) == 2 and len(lines) == 3
    empty = results_file(tmp_path / "empty.json", [])
    assert main(["report", str(empty), "-o", out, "--fail-if", "carlini_l2 > 0"]) == 1
    assert "the files hold no case" in capsys.readouterr().err
    assert main(["report", str(new), "-o", out, "--fail-if", "carlini_l2 >> 0"]) == 2
    assert "memobench: error: --fail-if 'carlini_l2 >> 0'" in capsys.readouterr().err


def test_an_attack_pushed_below_chance_counts_as_leakage(tmp_path):
    """Leakage is two-sided: a mitigation that drives the deployed denoiser's loss-attack
    AUC from 0.60 to 0.10 leaks more (advantage 0.40 against 0.10), is not said to lower
    the leak, is not on the Pareto front at a worse FID, and the summary says why."""
    from benchmark.report.groups import compare_groups

    def case(case_id, fid, api):
        return record(
            case_id, 0.0, model_key="m", fid_test=fid, n_gen=1024, sample_seconds=1.0,
            mia_loss_api_auc=api, mia_loss_api_auc_ci=[api - 0.02, api + 0.02],
        )  # fmt: skip

    recs = [case("ddim-digits64-none", 10.0, 0.60), case("ddim-digits64-flip", 12.0, 0.10)]
    (group,) = compare_groups(recs)
    (flip,) = group.comparisons
    change = flip.privacy["denoiser-api"]
    assert change.delta == pytest.approx(0.30) and change.significant
    assert "lowers it by" not in group.summaries["denoiser-api"]
    assert "no mitigation lowers it beyond its interval" in group.summaries["denoiser-api"]
    assert "below chance (AUC 0.100" in group.summaries["denoiser-api"]
    assert group.fronts["denoiser-api"] == ["none"]
    html = render([results_file(tmp_path / "r.json", recs)], tmp_path / "b.html").read_text()
    assert "+0.300 [+0.272, +0.328]" in html


def test_a_generator_of_noise_is_marked_and_never_ranked_private(tmp_path, monkeypatch):
    """The utility floor: a 'mitigation' that outputs pure noise leaks nothing (every
    attack at chance, no copy) and its FID_test is 30x none's. It is marked "utility
    destroyed", is not said to lower the leak, and is on no Pareto front; before the
    floor it was the most private row and on every front."""
    from benchmark.report.groups import compare_groups

    def case(case_id, fid, auc, carlini):
        return record(
            case_id, carlini, model_key="m", fid_test=fid, n_gen=1024, sample_seconds=1.0,
            mia_loss_api_auc=auc, mia_loss_api_auc_ci=[auc - 0.02, auc + 0.02],
        )  # fmt: skip

    recs = [
        case("ddim-digits64-none", 10.0, 0.95, 0.6),
        case("ddim-digits64-noise", 300.0, 0.5, 0.0),
    ]
    drawn = {}

    def plot(records, leak_of, label, name, front=None):
        drawn[label] = [name(r) for r in front]

    monkeypatch.setattr("benchmark.report.groups.group_privacy_utility", plot)
    (group,) = compare_groups(recs)
    from benchmark.report.groups import PRIVACY

    assert drawn[PRIVACY["denoiser-api"][1]] == ["none"], drawn  # the plot's front too
    monkeypatch.undo()
    (noise,) = group.comparisons
    assert noise.utility_destroyed and noise.privacy["denoiser-api"].significant
    text = group.summaries["denoiser-api"]
    assert "lowers it by" not in text and "noise destroys utility" in text, text
    assert "leave the leak as it is" not in text, text  # a destroyed row is not 'leaky'
    assert group.fronts["denoiser-api"] == ["none"]
    html = render([results_file(tmp_path / "r.json", recs)], tmp_path / "b.html").read_text()
    row = re.search(r'<tr data-compare="ddim-digits64-noise">(.*?)</tr>', html, re.S).group(1)
    assert "utility destroyed" in row


def test_an_auc_column_ranks_two_sided(tmp_path):
    """The attack columns sort by |AUC - 0.5|: a case at AUC 0.10 ranks as leakier than
    one at 0.60, and a change from 0.60 to 0.10 between runs is marked worse (it was
    marked better when lower AUC counted as safer)."""
    auc = "mia_loss_weights_auc"

    def case(case_id, value):
        return record(case_id, 0.0, **{auc: value, f"{auc}_ci": [value - 0.05, value + 0.05]})

    old = results_file(tmp_path / "old.json", [case("ddim-digits64-none", 0.60)],
                       when="2026-11-20T10:00:00")  # fmt: skip
    new = results_file(
        tmp_path / "new.json",
        [case("ddim-digits64-none", 0.10), case("ddim-digits1024-none", 0.60)],
    )
    html = render([new, old], tmp_path / "b.html").read_text()
    cells = re.findall(r'data-sort="([0-9.]+)">\s*(0\.[16]00) \[', html)
    sorts = {text: float(value) for value, text in cells}
    assert sorts == {"0.100": pytest.approx(0.4), "0.600": pytest.approx(0.1)}, sorts
    assert re.search(r'class="change worse" title="previous run: 0\.600">▼', html)
    assert "(lower |AUC − 0.5| is better)" in html


def test_a_training_time_mitigation_is_compared_with_the_plain_model(tmp_path):
    """DP-SGD trains weights of its own (another model_key), from the same setup as
    `none` (one base_model): it lands in none's group, compared and labelled as
    training-time. Before, the weights keyed the group and it stood alone, uncompared."""
    from benchmark.report.groups import compare_groups

    def case(case_id, key, fid, auc):
        return record(
            case_id, 0.1, model_key=key, base_model="setup-64", fid_test=fid, n_gen=1024,
            mia_loss_weights_auc=auc, mia_loss_weights_auc_ci=[auc - 0.05, auc + 0.05],
        )  # fmt: skip

    recs = [
        case("ddim-digits64-none", "plain", 10.0, 1.0),
        case("ddim-digits64-dpsgd", "dp", 25.0, 0.5),
    ]
    (group,) = compare_groups(recs)
    (dp,) = group.comparisons
    assert dp.label == "dpsgd (training-time: its own model)"
    assert dp.privacy["weights"].delta == pytest.approx(-0.5)
    assert "dpsgd (training-time: its own model) lowers it by 0.500" in group.summaries["weights"]
    old = [{k: v for k, v in r.items() if k != "base_model"} for r in recs]  # older results
    assert len(compare_groups(old)) == 2


def test_a_change_in_advantage_uses_each_sides_own_interval():
    """An AUC interval straddling 0.5 folds into a lopsided advantage interval: 0.50
    [0.30, 0.70] is advantage 0 [0, 0.20]. Against none's 0.70 [0.62, 0.78] the change
    -0.20 reaches +0.015 (not significant); symmetric half-widths said [-0.28, -0.12]."""
    from benchmark.report.groups import leakage_delta

    def rec(auc, ci):
        return {"mia_loss_weights_auc": auc, "mia_loss_weights_auc_ci": ci}

    d = leakage_delta(rec(0.5, [0.3, 0.7]), rec(0.7, [0.62, 0.78]), "loss_weights")
    assert d.delta == pytest.approx(-0.2)
    assert d.lo == pytest.approx(-0.2 - 0.08)
    assert d.hi == pytest.approx(-0.2 + math.hypot(0.2, 0.08))
    assert not d.significant
    # an interval written as [null, null] (an old or partial record) is no interval, no crash
    assert leakage_delta(rec(0.5, [None, None]), rec(0.7, [0.6, 0.8]), "loss_weights").lo is None


def test_an_equally_leaky_change_is_not_called_better():
    """0.40 and 0.60 are the same distance from chance: a run moving between them is 'same'."""
    from benchmark.display import Column
    from benchmark.measures.auc_interval import advantage
    from benchmark.report.leaderboard import change

    col = Column("a", "AUC", "", False, "{:.3f}", rank=advantage, rank_label="|AUC − 0.5|")
    assert change(col, 0.6, 0.4)["verdict"] == "same"
    assert change(col, 0.9, 0.4)["verdict"] == "worse"
    assert change(col, 0.45, 0.2)["verdict"] == "better"


def test_a_latent_and_a_pixel_model_of_the_same_data_are_shown_side_by_side(tmp_path):
    """One table per dataset x N_train x mitigation measured on more than one family: each
    family's figures in a row, the autoencoder's own attack and training time included;
    a case no other family measured gets no table."""
    recs = [
        record("ddim-digits64-none", 0.6, q=14, tstar=0.96, fid_test=9.9,
               mia_loss_weights_auc=1.0, mia_loss_weights_auc_ci=[0.97, 1.0]),
        record("latent-digits64-none", 0.3, q=3, tstar=0.5, fid_test=12.5,
               mia_loss_weights_auc=0.8, mia_loss_weights_auc_ci=[0.72, 0.86],
               autoencoder_mia_auc=0.61, autoencoder_mia_auc_ci=[0.52, 0.7],
               autoencoder_train_seconds=60.0),
        dict(record("ddim-digits1024-none", 0.0), n_train=1024),
    ]  # fmt: skip
    html = render([results_file(tmp_path / "r.json", recs)], tmp_path / "b.html").read_text()
    assert 'id="same-data"' in html
    tables = re.findall(r'<section class="same-data">\s*<h3>([^<]*)</h3>', html)
    assert tables == ["digits · N_train = 64 · none"]
    latent = re.search(r'<tr data-family="latent">(.*?)</tr>', html, re.S).group(1)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", latent)
    assert cells == ["latent", "0.300", "3", "0.50", "0.800 [0.720, 0.860]",
                     "0.610 [0.520, 0.700]", "12.5", "160 (60 autoencoder)", "—"]  # fmt: skip
    pixel = re.search(r'<tr data-family="ddim">(.*?)</tr>', html, re.S).group(1)
    assert re.findall(r"<td[^>]*>([^<]*)</td>", pixel)[5] == "—"  # no autoencoder
