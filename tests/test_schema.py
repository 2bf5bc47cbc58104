"""The package vocabulary (dnc_interactive.schema): the metric registry covers every history
metric, the aliases normalise, the cited theory sections exist, and it imports no torch."""

import re
from pathlib import Path

import pytest

from dnc_interactive import schema
from dnc_interactive.config import DUFMConfig
from dnc_interactive.schema import METRICS, Status, canonical_optimizer, metric_info

THEORY = Path(__file__).resolve().parents[1] / "docs" / "theory.md"


def test_registry_covers_every_metric_the_trainer_records():
    from dnc_interactive import metrics
    from dnc_interactive.training import Trainer

    cfg = DUFMConfig(num_classes=3, samples_per_class=4, depth=3, width=6, dtype="float64")
    trainer = Trainer(cfg, record_every=5, metrics_every=5).run(20)
    names = set(trainer.history["metric"])
    names |= {name for _, _, name, _ in metrics.layer_metric_rows(trainer.model, extended=True)}
    missing = sorted(n for n in names if metric_info(n) is None)
    assert not missing, missing
    # kinds and layers as the registry says
    L = cfg.L
    for row in trainer.history.itertuples():
        info = metric_info(row.metric)
        assert row.kind in info.kinds, (row.metric, row.kind)
        assert {"0": row.layer == 0, "L+1": row.layer == L + 1, "L": row.layer == L}.get(
            info.layers, 1 <= row.layer <= L
        ), (row.metric, row.layer)


def test_registry_entries_are_complete():
    for name, m in METRICS.items():
        assert m.name == name
        assert m.formula and "\n" not in m.formula
        assert m.title and m.collapsed_when
        assert set(m.kinds) <= {"model", "pre", "post", "weight", "output"}
        assert m.layers in {"0", "1..L", "L", "L+1"}
    assert metric_info("q_3") is METRICS["q"]
    assert metric_info("nc1_class_0") is METRICS["nc1_class"]
    assert metric_info("nc1_0") is None and metric_info("absent") is None
    assert schema.is_log_metric("nc1") and not schema.is_log_metric("rank")
    assert not schema.is_log_metric("q_0")
    assert schema.metric_title("q_1") == "output scale q_1"


def test_every_cited_theory_section_is_a_heading():
    headings = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)[ .]", THEORY.read_text(), re.M))
    for m in METRICS.values():
        assert m.section.startswith("§") and m.section[1:] in headings, (m.name, m.section)


def test_optimizer_aliases_normalise():
    from dnc_interactive.realnets.config import OPTIMIZERS, RealNetConfig

    assert canonical_optimizer("sgd") == "gd" and canonical_optimizer("adam") == "adam"
    assert set(OPTIMIZERS) <= set(schema.OPTIMIZERS)
    assert RealNetConfig(optimizer="sgd").optimizer == "gd"
    assert RealNetConfig(optimizer="gd") == RealNetConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="optimizer='lbfgs' is not valid"):
        RealNetConfig(optimizer="lbfgs")


def test_statuses_are_one_set():
    from dnc_interactive.realnets.experiment import STATUSES as REALNET
    from dnc_interactive.training import STATUSES as TRAINER

    values = {s.value for s in Status}
    assert TRAINER == schema.TRAINER_STATUSES and REALNET == schema.REALNET_STATUSES
    for subset in (TRAINER, REALNET, schema.BATCH_STATUSES):
        assert set(subset) <= values
    assert Status.DIVERGED == "diverged" and str(Status.MAX_STEPS) == "max_steps"


def test_one_name_for_the_history_columns_and_dtypes():
    import torch

    from dnc_interactive.charts import _common
    from dnc_interactive.config import DTYPES
    from dnc_interactive.model import torch_dtype
    from dnc_interactive.training import HISTORY_COLUMNS

    assert HISTORY_COLUMNS == _common.HISTORY_COLUMNS == schema.HISTORY_COLUMNS
    assert DTYPES == schema.DTYPES
    assert torch_dtype("float64") is torch.float64
    with pytest.raises(ValueError, match="dtype='float16' is not valid"):
        torch_dtype("float16")


def test_schema_imports_neither_torch_nor_pandas(imports_none):
    imports_none("import dnc_interactive.schema", heavy=("torch", "pandas", "numpy"), timeout=60)


def test_diverged_message_names_the_loss_the_step_the_rate_and_the_remedy():
    text = schema.diverged_message(float("inf"), 120, 0.5, " and reset")
    assert text.startswith("diverged: the loss became inf at step 120 (lr=0.5)")
    assert "history kept" in text and text.endswith("Lower the learning rate and reset.")
