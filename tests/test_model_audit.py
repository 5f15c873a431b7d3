"""``memobench audit`` end to end on a model memobench did not make.

A UNet is trained with diffusers' own API only (``tests/diffusers_training.py``,
as diffusers' ``train_unconditional.py`` example) on 12 digits until it memorizes
them, and saved with ``DDPMPipeline.save_pretrained``; the digits are written as
PNG folders. The audit must flag the reproductions and the membership signal and
fail the release gate; the same model audited against 12 digits it never saw must
show neither and pass. Then every bad input, one line each.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel
from PIL import Image

from benchmark.cli import main
from benchmark.data.folders import FitRule
from benchmark.errors import MemobenchError
from benchmark.model_audit import audit_model, model_shape, read_split
from benchmark.models.ddpm import DDIMFamily
from benchmark.report import browser
from benchmark.report.results import latest_records
from benchmark.session import Session
from fixtures.user_model import digits_16, write_pngs

pytestmark = pytest.mark.filterwarnings("ignore:Cannot initialize model with low cpu memory")

GATE = ["--fail-if", "members_reproduced > 0", "--fail-if", "mia_loss_weights_auc > 0.9"]
COUNTS = ["--samples", "128", "--steps", "20"]


def _audit(user, members, out, *extra):
    argv = ["audit", str(user["model"]), "--members", str(user[members]), "--heldout",
            str(user["heldout"]), "-o", str(out), "--cache", str(user["cache"]), "--device",
            "cpu", *COUNTS, *extra]  # fmt: skip
    code = main(argv)
    record = latest_records([out / "results.json"])
    assert len(record) == 1
    return code, next(iter(record.values()))


def test_the_memorizing_model_is_flagged_and_fails_the_gate(user_model, tmp_path, capsys):
    out = tmp_path / "audit"
    code, record = _audit(user_model, "members", out, *GATE)
    said = capsys.readouterr()
    assert code == 1  # the gate stops the release
    assert "gate: audit:model-" in said.err and "-none: members_reproduced > 0" in said.err
    assert record["members_reproduced"] >= 4, record["members_reproduced"]
    assert record["carlini_l2"] > 0
    assert record["mia_loss_weights_auc"] > 0.9
    assert record["members_identifiable"] >= 8
    assert record["fid_gap"] > 0
    assert record["fid_extractor"].startswith("copy-detection-")  # no labels: self-supervised
    assert record["audited_images"]["n_members"] == 12
    assert "resized to 16" in record["audited_images"]["fit"]  # the rule is recorded
    assert "Reproduction: " in said.out and "of 12 training images" in said.out
    # the risk report: every member, the reproduced ones first, the riskiest on the page
    risk = pd.read_csv(out / "risk.csv")
    assert len(risk) == 12 and sorted(risk["member"]) == [f"{i:04d}.png" for i in range(12)]
    k = record["members_reproduced"]
    assert risk["reproduced"].tolist() == [True] * k + [False] * (12 - k)
    assert (risk["carlini_ratio"][:k] < 1 / 3).all()
    page = (out / "risk.html").read_text()
    assert page.count('<tr class="reproduced">') == k
    assert (out / "leaderboard.html").exists()


def test_members_it_never_saw_show_nothing_and_pass(user_model, tmp_path):
    code, record = _audit(user_model, "unseen", tmp_path / "audit", *GATE)
    assert code == 0
    assert record["members_reproduced"] == 0 and record["carlini_l2"] == 0
    assert record["mia_loss_weights_auc"] < 0.9
    # at 1% false positives a model that leaks nothing has 0.12 of 12 flagged on average
    assert record["members_identifiable"] <= 2
    assert record["fid_gap"] < 0


def test_the_risk_page_in_a_browser(user_model, tmp_path):
    reason = browser.unavailable()
    if reason:
        pytest.skip(reason)
    from selenium.webdriver.common.by import By

    out = tmp_path / "audit"
    _audit(user_model, "members", out)
    driver = browser.start()
    try:
        driver.get((out / "risk.html").as_uri())
        summary = driver.find_element(By.ID, "summary").text
        assert "Reproduction:" in summary and "Membership:" in summary
        rows = driver.find_elements(By.CSS_SELECTOR, "#risk tbody tr")
        assert len(rows) == 12
        assert rows[0].get_attribute("class") == "reproduced"
        sizes = driver.execute_script(
            "return [...document.querySelectorAll('#risk img')].map(i => i.naturalWidth)"
        )
        assert len(sizes) == 12 and all(w > 0 for w in sizes)
    finally:
        driver.quit()


def test_the_python_entry_point_audits_the_same(user_model, tmp_path):
    """``benchmark.audit_model`` is what the command runs: the same record and ranking."""
    import benchmark

    _, command = _audit(user_model, "members", tmp_path / "audit")
    session = Session(user_model["cache"], device="cpu", progress=False)
    audit = benchmark.audit_model(
        user_model["model"], user_model["members"], user_model["heldout"], session,
        n_gen=128, steps=20,
    )  # fmt: skip
    for key in ("case_id", "carlini_l2", "members_reproduced", "members_identifiable",
                "mia_loss_weights_auc", "fid_gap"):  # fmt: skip
        assert audit.record[key] == command[key], key
    risk = pd.read_csv(tmp_path / "audit" / "risk.csv")
    assert [audit.members.names[r.index] for r in audit.risks] == risk["member"].tolist()


def test_a_picture_given_twice_among_the_members_is_ranked_once(user_model, tmp_path):
    """Two equal members would leave every copy of them at ratio 1 (as near the second-
    nearest member as the nearest): the picture is ranked once, and the note says so."""
    twice = tmp_path / "twice"
    shutil.copytree(user_model["members"], twice)
    shutil.copy(twice / "0003.png", twice / "0003-again.png")
    session = Session(user_model["cache"], device="cpu", progress=False)
    audit = audit_model(user_model["model"], twice, user_model["heldout"], session,
                        n_gen=128, steps=20)  # fmt: skip
    assert audit.record["members_audited"] == 12 and len(audit.members) == 13
    assert audit.record["members_reproduced"] >= 4
    assert any("repeat another member's picture" in n
               for n in audit.record["audited_images"]["notes"])  # fmt: skip


# -- bad input: one line each, naming the problem and the fix ---------------------------------
@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """An untrained 16x16 grey model and folders of images around it."""
    root = tmp_path_factory.mktemp("bad")
    unet = UNet2DModel(sample_size=16, in_channels=1, out_channels=1, layers_per_block=1,
                       block_out_channels=(8, 16), down_block_types=("DownBlock2D",) * 2,
                       up_block_types=("UpBlock2D",) * 2, norm_num_groups=4)  # fmt: skip
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler()).save_pretrained(str(root / "model"))
    digits = digits_16(8)
    write_pngs(digits[:4], root / "members")
    write_pngs(digits[4:], root / "heldout")
    return root


def _bad(root, name):
    """The inputs of one bad case: (model, members, heldout, keywords)."""
    model, members, heldout, kw = root / "model", root / "members", root / "heldout", {}
    case = root / name
    case.mkdir()
    if name == "overlap":
        heldout = write_pngs(np.stack([np.asarray(Image.open(members / "0001.png"))] * 2), case)
    elif name == "empty":
        members = case
    elif name == "corrupt":
        members = case
        write_pngs(digits_16(3), case)
        (case / "0001.png").write_bytes(b"not a png")
    elif name == "rgb":
        members = case
        for i in range(3):
            Image.fromarray(np.full((16, 16, 3), (200, 20, 20), np.uint8)).save(case / f"{i}.png")
    elif name == "one":
        members = write_pngs(digits_16(1), case)
    elif name == "no-config":
        model = case
    elif name == "garbage-config":
        model = case
        (case / "config.json").write_text("{ not json")
    elif name == "unknown-prediction":
        model = case
        shutil.copytree(root / "model" / "unet", case / "unet")
        (case / "scheduler").mkdir()
        (case / "scheduler" / "scheduler_config.json").write_text(
            json.dumps({"_class_name": "DDPMScheduler", "prediction_type": "flow"})
        )
    elif name == "unknown-scheduler":
        model = case
        shutil.copytree(root / "model" / "unet", case / "unet")
        (case / "scheduler").mkdir()
        (case / "scheduler" / "scheduler_config.json").write_text(
            json.dumps({"_class_name": "EulerDiscreteScheduler"})
        )
    elif name == "no-weights":
        model = case
        (case / "unet").mkdir()
        shutil.copy(root / "model" / "unet" / "config.json", case / "unet")
    elif name == "out-channels":
        model = case
        unet = UNet2DModel(sample_size=16, in_channels=1, out_channels=2, layers_per_block=1,
                           block_out_channels=(8, 16), down_block_types=("DownBlock2D",) * 2,
                           up_block_types=("UpBlock2D",) * 2, norm_num_groups=4)  # fmt: skip
        DDPMPipeline(unet=unet, scheduler=DDPMScheduler()).save_pretrained(str(case))
    elif name == "dpsgd":
        kw = {"mitigation": "dpsgd"}
    elif name == "unknown-family":
        kw = {"family": "no-such-family"}
    elif name == "samples":
        kw = {"n_gen": 1}
    elif name == "fit":
        kw = {"fit": "stretch"}
    elif name == "too-small-exact":
        members = case
        for i in range(3):
            Image.fromarray(np.zeros((12, 12), np.uint8) + i).save(case / f"{i}.png")
        kw = {"fit": "exact"}
    return model, members, heldout, kw


BAD = {
    "overlap": "2 held-out image(s) are also members",
    "empty": "no images",
    "corrupt": "0001.png",
    "rgb": "channel",
    "one": "needs at least 2 of each",
    "no-config": "is not a diffusers checkpoint",
    "garbage-config": "is not valid JSON",
    "unknown-prediction": "prediction_type 'flow'",
    "unknown-scheduler": "EulerDiscreteScheduler",
    "no-weights": "has a config.json but no weights",
    "out-channels": "returns 2",
    "dpsgd": "changes how the model is trained",
    "unknown-family": "no-such-family",
    "samples": "--samples must be >= 2",
    "fit": "unknown fit rule 'stretch'",
    "too-small-exact": "12x12",
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_one_line(untrained, name, tmp_path):
    model, members, heldout, kw = _bad(untrained, name)
    session = Session(tmp_path / "cache", device="cpu", progress=False)
    with pytest.raises(MemobenchError) as err:
        audit_model(model, members, heldout, session, **kw)
    message = str(err.value)
    assert BAD[name] in message, message
    assert "\n" not in message and "Traceback" not in message


def test_bad_input_through_the_command_exits_2_with_one_line(untrained, tmp_path, capsys):
    code = main(["audit", str(untrained / "model"), "--members", str(untrained / "nowhere"),
                 "--heldout", str(untrained / "heldout"), "-o", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no such folder" in err[0], err
    assert not (tmp_path / "out").exists()  # nothing written for a run that did not start


def test_an_output_folder_that_cannot_be_written_stops_before_any_work(untrained, tmp_path,
                                                                       capsys):  # fmt: skip
    (tmp_path / "a-file").write_text("")
    code = main(["audit", str(untrained / "model"), "--members", str(untrained / "members"),
                 "--heldout", str(untrained / "heldout"), "-o",
                 str(tmp_path / "a-file")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "a file, not a folder" in err[0], err


def test_a_users_own_encoder_gives_the_feature_space(untrained, tmp_path):
    """--feature-encoder: a TorchScript file measures FID and replication, named by its
    file and content; a file that is not TorchScript is one line before any work."""
    encoder = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.AdaptiveAvgPool2d(2),
                                  torch.nn.Flatten())  # fmt: skip
    torch.jit.save(torch.jit.script(encoder), str(tmp_path / "enc.pt"))
    session = Session(tmp_path / "cache", device="cpu", progress=False,
                      feature_encoder=str(tmp_path / "enc.pt"))  # fmt: skip
    audit = audit_model(untrained / "model", untrained / "members", untrained / "heldout",
                        session, n_gen=4, steps=2)  # fmt: skip
    assert audit.record["fid_extractor"].startswith("encoder:enc.pt:")
    (tmp_path / "bad.pt").write_text("not torchscript")
    code = main(["audit", str(untrained / "model"), "--members", str(untrained / "members"),
                 "--heldout", str(untrained / "heldout"), "-o", str(tmp_path / "out"),
                 "--feature-encoder", str(tmp_path / "bad.pt"), "--cache",
                 str(tmp_path / "cache")])  # fmt: skip
    assert code == 2 and not (tmp_path / "out").exists()


def test_images_of_another_size_are_fitted_by_the_stated_rule(untrained, tmp_path):
    """32x32 images reach the 16x16 model by the default rule (resize, as diffusers'
    training example prepares them); ``exact`` refuses them."""
    big = tmp_path / "big"
    big.mkdir()
    for i, digit in enumerate(digits_16(3)):
        Image.fromarray(np.kron(digit, np.ones((2, 2), np.uint8))).save(big / f"{i}.png")
    _, net = DDIMFamily.load_pretrained(untrained / "model")
    channels, size = model_shape(net, untrained / "model")
    assert (channels, size) == (1, 16)
    members, _ = read_split(big, untrained / "heldout", FitRule(size, channels))
    assert members.images.shape == (3, 1, 16, 16)
    with pytest.raises(MemobenchError, match="32x32"):
        read_split(big, untrained / "heldout", FitRule(size, channels, "exact"))
