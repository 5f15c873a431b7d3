"""The schema of a case's results record: every key, the type of its value and its meaning.

A record is a flat JSON object (it travels in pytest-benchmark's ``extra_info``
and is merged by pandas), so its keys stay strings. Each key is declared once, as
a ``Field``: a ``str`` that also carries the value's type and a legend. The case's
identity and cost are declared here; every metric declares its own entries in
``CaseMetric.fields`` beside the code that computes them (``CARLINI_L2`` in
``benchmark/metrics/carlini.py``), and a family of keys named after a plugin (one
per attack, say) is a ``Fields`` pattern: ``MIA_AUC(attack="loss")`` is the key
``mia_loss_auc``.

The suites, the columns and the plots read a record through these constants
(``record[CARLINI_L2]``), and the audit checks every metric's entries against the
fields it declares (``check_entries``), so an undeclared, misspelt or mistyped
entry fails where it is written, with the metric's name, instead of as an empty
leaderboard cell.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterable, Mapping
from typing import Any

from benchmark.errors import MemobenchError

# what a JSON value of each declared type may be in Python
_KINDS: dict[str, tuple[type, ...]] = {
    "float": (numbers.Real,),  # ints pass: JSON and pandas do not keep 1.0 apart from 1
    "int": (numbers.Integral,),
    "bool": (bool,),
    "str": (str,),
    "list": (list, tuple),  # tuples come back as lists from JSON
    "dict": (dict,),
    "any": (object,),
}


class RecordSchemaError(MemobenchError):
    """A metric wrote an entry its fields do not declare, or a value of the wrong type."""


class Field(str):
    """One key of the results record, with the type of its value and a legend.

    Being a ``str``, it indexes a record (``record[FIELD]``) and becomes a pandas
    column name or a JSON key as it is; pickled, it is a plain string.

    Args:
        key: the record key.
        kind: the value's type: one of float, int, bool, str, list, dict, any.
        legend: what the value means (units, direction), for people and the docs.
        nullable: whether None is a valid value (not measured in this case).
    """

    kind: str
    legend: str
    nullable: bool

    def __new__(cls, key: str, kind: str, legend: str, *, nullable: bool = False) -> Field:
        if kind not in _KINDS:
            raise ValueError(f"field {key!r}: kind must be one of {sorted(_KINDS)}, got {kind!r}")
        self = super().__new__(cls, key)
        self.kind, self.legend, self.nullable = kind, legend, nullable
        return self

    def __reduce__(self):
        return (str, (str(self),))

    def problem(self, value: Any) -> str | None:
        """Why ``value`` cannot be this field's value, or None when it can."""
        if value is None:
            return None if self.nullable else "None, but the field is not nullable"
        is_bool = isinstance(value, bool)
        if not isinstance(value, _KINDS[self.kind]) or (is_bool and self.kind in ("float", "int")):
            return f"a {type(value).__name__}, but the field is {self.kind}"
        return None

    def describe(self) -> str:
        return f"{self} ({self.kind}{', or None' if self.nullable else ''}): {self.legend}"


class Fields:
    """A family of record keys named after something a plugin registers, e.g. one
    ``mia_{attack}_auc`` per attack; calling it with the names gives the ``Field``.

    Args:
        template: the key with ``{placeholders}`` (``str.format`` syntax).
    """

    def __init__(self, template: str, kind: str, legend: str, *, nullable: bool = False) -> None:
        Field(template, kind, legend, nullable=nullable)  # checks kind
        self.template, self.kind, self.legend, self.nullable = template, kind, legend, nullable
        parts = re.split(r"\{(\w+)\}", template)
        pattern = "".join(
            re.escape(p) if i % 2 == 0 else f"(?P<{p}>[A-Za-z0-9_.-]+)" for i, p in enumerate(parts)
        )
        self._regex = re.compile(pattern)

    def __call__(self, **names: Any) -> Field:
        return Field(self.template.format(**names), self.kind, self.legend, nullable=self.nullable)

    def match(self, key: str) -> Field | None:
        """The field ``key`` is an instance of, or None when it is not one of this family."""
        found = self._regex.fullmatch(key)
        return self(**found.groupdict()) if found else None

    def specificity(self) -> int:
        """Minus the length of its literal text (sorts the most specific first)."""
        return -len(re.sub(r"\{\w+\}", "", self.template))

    def describe(self) -> str:
        return f"{self.template} ({self.kind}{', or None' if self.nullable else ''}): {self.legend}"

    def __repr__(self) -> str:
        return f"Fields({self.template!r}, {self.kind!r})"


Declared = Field | Fields


def resolve(key: str, declared: Iterable[Declared]) -> Field | None:
    """The declared field ``key`` is (a plain field first, then a pattern), or None."""
    declared = list(declared)
    for d in declared:
        if isinstance(d, Field) and d == key:
            return d
    # the most specific pattern first: ``mia_{attack}_tpr_{fpr}_ci`` before ``..._{fpr}``
    patterns = sorted((d for d in declared if isinstance(d, Fields)), key=Fields.specificity)
    for d in patterns:
        field = d.match(key)
        if field is not None:
            return field
    return None


def check_entries(owner: str, entries: Mapping[str, Any], declared: Iterable[Declared]) -> None:
    """Raise ``RecordSchemaError`` naming ``owner`` unless every entry is a declared field
    holding a value of its type."""
    declared = list(declared)
    for key, value in entries.items():
        field = resolve(key, declared)
        if field is None:
            raise RecordSchemaError(
                f"{owner} wrote the record entry {key!r}, which it does not declare; add "
                f"Field({key!r}, kind, legend) (benchmark.record) to its fields "
                f"(docs/plugins.md, 'A metric'), or correct the key"
            )
        problem = field.problem(value)
        if problem is not None:
            raise RecordSchemaError(f"{owner} wrote {key!r} = {value!r:.80}: {problem}")


# ---------------------------------------------------------------- identity and cost
# written by the audit (``benchmark.audit.measure``) for every case

CASE_ID = Field("case_id", "str", "the case's id: family, data, N_train, mitigation")
FAMILY = Field("family", "str", "model family (registry name)")
DATASET = Field("dataset", "str", "dataset (registry name)")
N_TRAIN = Field("n_train", "int", "number of training images")
MITIGATION = Field("mitigation", "str", "mitigation (registry name)")
MITIGATION_PARAMS = Field("mitigation_params", "dict", "the mitigation's parameters")
SAMPLER = Field("sampler", "str", "the sampler's name")
SAMPLER_STEPS = Field("sampler_steps", "int", "the sampler's steps")
N_GEN = Field("n_gen", "int", "number of generated images measured")
TRAIN_SECONDS = Field(
    "train_seconds", "float", "wall time of training (a cached model keeps it)", nullable=True
)
TRAIN_STEPS = Field("train_steps", "int", "optimizer steps of training", nullable=True)
FINAL_LOSS = Field("final_loss", "float", "training loss at the end", nullable=True)
LOSS_HISTORY = Field("loss_history", "list", "training loss along the steps", nullable=True)
PARAM_COUNT = Field("param_count", "int", "the network's parameters", nullable=True)
MODEL_REUSED = Field("model_reused", "bool", "whether the model came from the cache")
MODEL_SOURCE = Field("model_source", "str", "trained, or the checkpoint it was loaded from")
MODEL_KEY = Field("model_key", "str", "the model's cache key (its weights' identity)")
BASE_MODEL = Field(
    "base_model",
    "str",
    "the model's setup before any training-time mitigation (family, model, training and data "
    "configs; a loaded checkpoint's weights): the leaderboard compares a case with `none` of "
    "the same base model, so a DP-SGD model meets the plain one it replaces",
)
NFE_PER_IMAGE = Field("nfe_per_image", "int", "network evaluations per generated image")
NFE_TOTAL = Field("nfe_total", "int", "network evaluations for all generated images")
SAMPLE_SECONDS = Field("sample_seconds", "float", "wall time of sampling")
IMAGES_PER_SECOND = Field("images_per_second", "float", "sampling throughput, images/s")
RECORDED = Field("recorded", "str", "when the case was audited (local time, ISO 8601)")
TRAIN_PRECISION = Field("train_precision", "str", "autocast of training: fp32 or bf16")
PRECISION = Field(
    "precision", "str", "autocast of the network while sampling, t* and attacks: fp32 or bf16"
)
TF32 = Field(
    "tf32",
    "bool",
    "TF32 matmuls and convolutions on CUDA (false: IEEE fp32; empty: PyTorch's defaults, "
    "TF32 convolutions and IEEE matmuls)",
    nullable=True,
)
CHANNELS_LAST = Field("channels_last", "bool", "the network ran in NHWC memory layout")
COMPILED = Field("compiled", "bool", "the network was compiled with torch.compile")
BATCH_SIZE = Field(
    "batch_size", "int", "images per sampling call (from free memory, or --memobench-batch-size)"
)
SEEDS = Field(
    "seeds",
    "dict",
    "the case's seeds: split, fingerprint (saf), training, sampling (case), detectors",
)
THREADS = Field("threads", "int", "torch's CPU threads in the process that audited the case")
DEVICE = Field("device", "str", "the device the case was sampled and attacked on, with its name")
AUDIT_REUSED = Field("audit_reused", "bool", "whether the audit came from the cache")
MITIGATION_ADDRESSES = Field(
    "mitigation_addresses", "list", "the threat models the mitigation claims to address"
)
CIRCULAR = Field(
    "circular",
    "list",
    "record keys the mitigation uses internally: it scores itself on them (marked, not ranked)",
)
MITIGATION_ENTRY = Fields(
    "mitigation_{entry}",
    "any",
    "what the mitigation did while drawing the case's samples (SampleResult.mitigation)",
)
METRIC_SECONDS = Fields("{metric}_seconds", "float", "wall time of a metric on the case")
METRIC_SKIPPED = Fields("{metric}_skipped", "str", "why a metric did not measure the case")

# written by the suites (``benchmark.report.thumbnails.case_record``)
TIER = Field("tier", "str", "the tier that ran the case: smoke, paper or validation")
TUNING_ROLE = Field(
    "tuning_role",
    "str",
    "selection: the model the suite's tuned settings were chosen on; evaluation: a model "
    "of another training seed and split, which they are checked on",
)
PICTURES = Field("pictures", "dict", "the case page's PNG data URIs by name")
# written by ``memobench audit`` (``benchmark.model_audit``): a user's model and images
AUDITED_IMAGES = Field(
    "audited_images",
    "dict",
    "a user's audit: the model folder, where the members and held-out images came from, "
    "how many, and the rule that brought them to the model's size",
)
MEMBERS_REPRODUCED = Field(
    "members_reproduced",
    "int",
    "training images at least one sample reproduces (Carlini's criterion, ratio < 1/3)",
)
MEMBERS_IDENTIFIABLE = Field(
    "members_identifiable",
    "int",
    "training images the loss membership attack flags at 1% false-positive rate (score "
    "above 99% of the held-out images')",
)
MEMBERS_AUDITED = Field("members_audited", "int", "training images ranked by risk")

IDENTITY: tuple[Field, ...] = (
    CASE_ID,
    FAMILY,
    DATASET,
    N_TRAIN,
    MITIGATION,
    MITIGATION_PARAMS,
    SAMPLER,
    SAMPLER_STEPS,
    N_GEN,
    TRAIN_SECONDS,
    TRAIN_STEPS,
    FINAL_LOSS,
    LOSS_HISTORY,
    PARAM_COUNT,
    MODEL_REUSED,
    MODEL_SOURCE,
    MODEL_KEY,
    BASE_MODEL,
    NFE_PER_IMAGE,
    NFE_TOTAL,
    SAMPLE_SECONDS,
    IMAGES_PER_SECOND,
    RECORDED,
    TRAIN_PRECISION,
    PRECISION,
    TF32,
    CHANNELS_LAST,
    COMPILED,
    BATCH_SIZE,
    MITIGATION_ADDRESSES,
    CIRCULAR,
    SEEDS,
    THREADS,
    DEVICE,
)
AUDIT: tuple[Declared, ...] = (
    *IDENTITY,
    AUDIT_REUSED,
    MITIGATION_ENTRY,
    METRIC_SECONDS,
    METRIC_SKIPPED,
)
SUITE: tuple[Field, ...] = (
    TIER,
    TUNING_ROLE,
    PICTURES,
    AUDITED_IMAGES,
    MEMBERS_REPRODUCED,
    MEMBERS_IDENTIFIABLE,
    MEMBERS_AUDITED,
)
