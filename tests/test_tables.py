"""Tables: reading and writing CSVs, CTGAN's encoding, training-by-sampling, the measures,
the tabular GAN end to end, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ganforge.data.table import read_table, write_table
from ganforge.data.table_encoding import ConditionSampler, TableEncoder
from ganforge.errors import GanforgeError
from ganforge.tables import TableConfig, load_table_model, synthesize_table, train_table
from ganforge.tables.evaluate import evaluate_table, independent_columns, split

TABULAR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "tabular"

HEADER = "price,count,colour,stars,member,joined,level\n"
EVERY_KIND = """\
1.5,12{i},red,1,yes,2024-01-02,3
2.25,?,blue,2,no,2024-02-03,1
?,400{i},red,3,yes,?,2
0.125,7{i},,1,?,2023-12-31,3
3.0,5{i},green,2,no,2024-03-04,1
"""


def _every_kind(tmp_path: Path) -> Path:
    path = tmp_path / "every.csv"
    path.write_text(HEADER + "".join(EVERY_KIND.format(i=i) for i in range(4)))  # 20 rows
    return path


def test_every_column_kind_round_trips(tmp_path):
    path = _every_kind(tmp_path)
    table = read_table(path)
    kinds = {c.name: c.kind for c in table.columns}
    assert kinds == {"price": "continuous", "count": "integer", "colour": "categorical",
                     "stars": "categorical", "member": "boolean", "joined": "datetime",
                     "level": "categorical"}  # fmt: skip
    assert table.column("count").missing == "?" and table.column("colour").missing == ""
    assert np.isnan(table.values["price"][2]) and table.values["colour"][3] is None
    out = tmp_path / "back.csv"
    write_table(table, out)
    assert out.read_text() == path.read_text()  # same columns, order, values, missing
    # Kinds can be overridden; a DataFrame works like a file.
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    table = read_table(frame, {"stars": "integer"})
    assert table.column("stars").kind == "integer"


def test_the_encoding_recovers_values_and_missing_states(tmp_path):
    table = read_table(_every_kind(tmp_path))
    encoder = TableEncoder.fit(table)
    rows = encoder.encode(table)
    assert rows.shape == (20, encoder.dim) and rows.dtype == torch.float32
    back = encoder.decode(rows)
    for c in table.columns:
        a, b = table.values[c.name], back.values[c.name]
        if c.kind in ("categorical", "boolean"):
            assert list(a) == list(b), c.name
        else:
            assert np.array_equal(np.isnan(a), np.isnan(b)), c.name
            assert np.allclose(a[~np.isnan(a)], b[~np.isnan(b)], rtol=1e-4), c.name
    # The state survives a checkpoint (plain values only).
    again = TableEncoder.from_state(json.loads(json.dumps(encoder.state_dict())))
    assert torch.equal(again.encode(table), rows)


def test_training_by_sampling_finds_rare_categories():
    import pandas as pd

    n = 2000
    rare = np.where(np.arange(n) < 20, "rare", "common")  # 1% of the rows
    frame = pd.DataFrame({"kind": rare, "x": np.arange(n).astype(str)})
    table = read_table(frame, {"x": "continuous"})
    encoder = TableEncoder.fit(table)
    sampler = ConditionSampler(encoder, encoder.category_index(table), "cpu")
    torch.manual_seed(0)
    cond, column, category, row = sampler.sample(20_000)
    rare_code = table.column("kind").categories.index("rare")
    share = (category == rare_code).float().mean().item()
    expected = np.log(21) / (np.log(21) + np.log(1981))
    assert share == pytest.approx(expected, abs=0.02) and share > 20 * 0.01
    # Each drawn real row holds the asked category, and the vector says so.
    chosen = table.values["kind"][row.numpy()]
    asked = np.array(table.column("kind").categories)[category.numpy()]
    assert (chosen == asked).all()
    assert torch.equal(cond.argmax(1), category) and (cond.sum(1) == 1).all()


def test_sampled_rows_draw_categories_from_the_softmax_not_its_argmax():
    from ganforge.data.table_encoding import Span
    from ganforge.nets.tabular import activate

    spans = [Span("c", "category", 0, 2)]
    raw = torch.log(torch.tensor([[0.7, 0.3]])).expand(20_000, 2)
    rows = activate(raw, spans, hard=True, generator=torch.Generator().manual_seed(0))
    assert (rows.sum(1) == 1).all()
    assert rows[:, 0].mean().item() == pytest.approx(0.7, abs=0.015)  # argmax would give 1.0
    again = activate(raw, spans, hard=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(rows, again)


@pytest.fixture(scope="module")
def german():
    if not TABULAR.exists():
        pytest.skip("the shared tabular data is not beside the checkout")
    return split(read_table(TABULAR / "german-credit.csv"), 0.3, 0)


def test_the_measures_rank_real_rows_above_independent_columns(german):
    train, holdout = german
    a, _ = split(train, 0.5, 1)
    real = evaluate_table(train, holdout, a, "credit")
    floor = evaluate_table(train, holdout, independent_columns(train, len(holdout) * 2), "credit")
    assert real["quality"]["column_pair_trends"] > floor["quality"]["column_pair_trends"] + 0.05
    assert real["quality"]["score"] > 0.85 and real["detection_auc"] < 0.65
    assert floor["detection_auc"] > real["detection_auc"] + 0.1
    e_real, e_floor = real["ml_efficacy"], floor["ml_efficacy"]
    assert e_real["trained_on_synthetic"]["logistic"] > e_floor["trained_on_synthetic"]["logistic"]
    # Training rows are copies of training rows; independent columns almost never are.
    assert real["privacy"]["exact_copies"] == 1
    assert floor["privacy"]["exact_copies"] < 0.01
    assert floor["privacy"]["dcr_synthetic_median"] > real["privacy"]["dcr_holdout_median"]


TINY = dict(epochs=2, batch_size=100, pac=10, z_dim=16, width=32, log_every=5,
            checkpoint_every=5, device="cpu")  # fmt: skip


def test_train_synthesize_and_resume(tmp_path, german):
    train, _ = german
    cfg = TableConfig(**TINY)
    run = train_table(cfg, tmp_path / "run", table=train, progress=False)
    assert run.steps == 2 * (len(train) // 100)
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"manifest.json", "config.yaml", "schema.json", "sample.csv", "checkpoints",
            "metrics.jsonl"} <= names  # fmt: skip
    model = load_table_model(tmp_path / "run")
    import ganforge

    loaded = ganforge.load(tmp_path / "run")  # the one loader opens table runs too
    assert loaded.sample(5, seed=1).to_frame().equals(model.sample(5, seed=1).to_frame())
    rows = model.sample(300, seed=1)
    assert rows.names == train.names and len(rows) == 300
    for c in rows.columns:
        if c.kind in ("categorical", "boolean"):
            assert set(rows.values[c.name]) <= set(c.categories) | {None}
    women = model.sample(50, seed=2, where={"personal_status": "A92"})
    assert (women.values["personal_status"] == "A92").all()
    with pytest.raises(GanforgeError, match="not a value"):
        model.sample(5, where={"personal_status": "nobody"})
    synthesize_table(tmp_path / "run", 40, tmp_path / "s.csv")
    header = (TABULAR / "german-credit.csv").read_text().splitlines()[0]
    assert (tmp_path / "s.csv").read_text().splitlines()[0] == header
    with pytest.raises(GanforgeError, match="exists"):
        synthesize_table(tmp_path / "run", 40, tmp_path / "s.csv")
    # Another network size is another run; more epochs continue this one.
    with pytest.raises(GanforgeError, match="other settings"):
        train_table(TableConfig(**{**TINY, "width": 64}), tmp_path / "run", table=train,
                    progress=False)  # fmt: skip
    more = train_table(TableConfig(**{**TINY, "epochs": 3}), tmp_path / "run", table=train,
                       progress=False)  # fmt: skip
    assert more.steps == 3 * (len(train) // 100)


def test_private_tables_spend_their_budget(tmp_path, german):
    train, _ = german
    cfg = TableConfig(**{**TINY, "private": True, "epsilon": 2.0, "delta": 1e-4})
    run = train_table(cfg, tmp_path / "dp", table=train, progress=False)
    report = json.loads((tmp_path / "dp" / "privacy.json").read_text())
    assert report == run.privacy
    assert 0 < report["epsilon_spent"] <= 2.0 + 1e-6 and report["noise_multiplier"] > 0.5
    assert report["critic_steps_done"] == report["critic_steps_planned"]
    assert load_table_model(tmp_path / "dp").sample(20).names == train.names
    with pytest.raises(GanforgeError, match="delta"):
        train_table(TableConfig(**{**TINY, "private": True, "delta": 0.1}), tmp_path / "x",
                    table=train, progress=False)  # fmt: skip


def test_tables_from_the_command_line(tmp_path, german, cli_many, one_line_error):
    train, holdout = german
    data = tmp_path / "train.csv"  # the model never sees the held-out rows
    write_table(train, data)
    write_table(holdout, tmp_path / "holdout.csv")
    flags = ["--epochs", "1", "--batch-size", "100", "--width", "16", "--z-dim", "8"]
    procs = cli_many({"train": ["train", "--dataset", "table", "--data", data, "--out",
                                tmp_path / "run", "--quiet", *flags]})  # fmt: skip
    assert procs["train"].returncode == 0, procs["train"].stderr
    procs = cli_many(
        {
            "synth": ["synthesize", tmp_path / "run", "-n", "50", "--out", tmp_path / "s.csv"],
            "eval": [
                "evaluate",
                tmp_path / "run",
                "--real",
                tmp_path / "holdout.csv",
                "--target",
                "credit",
                "-n",
                "200",
            ],
        }  # fmt: skip
    )
    assert procs["synth"].returncode == 0 and (tmp_path / "s.csv").exists()
    assert procs["eval"].returncode == 0, procs["eval"].stderr
    assert "quality score" in procs["eval"].stdout
    report = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert set(report) >= {"synthetic", "independent_columns"}


BAD = {
    "empty.csv": (b"", "empty"),
    "header.csv": (b"a,b,c\n", "row"),
    "one.csv": (b"a\n1\n2\n3\n", "two"),
    "allmissing.csv": (b"a,b\n1,?\n2,\n3,NA\n", "all missing"),
    "mixed.csv": (b"a,b\n" + b"".join(b"%d,x\n" % i for i in range(30)) + b"oops,y\n", "mixes"),
    "latin1.csv": ("a,b\ncaf\u00e9,1\nthé,2\n".encode("latin-1"), "UTF-8"),
    "ids.csv": (b"id,b\n" + b"".join(b"u%d,x\n" % i for i in range(600)), "identifier"),
    "ragged.csv": (b"a,b\n1,2,3\n4,5,6\n", "readable"),
    "repeated.csv": (b"a,a\n1,2\n3,4\n", "repeated"),
    "inf.csv": (b"a,b\n" + b"".join(b"%d.5,x\n" % i for i in range(30)) + b"inf,y\n", "mixes"),
}


def test_bad_tables_are_one_line_errors_and_write_nothing(tmp_path, cli_many, one_line_error):
    commands = {}
    for name, (content, _) in BAD.items():
        (tmp_path / name).write_bytes(content)
        commands[name] = ["train", "--dataset", "table", "--data", tmp_path / name, "--out",
                          tmp_path / f"run-{name}", "--epochs", "1"]  # fmt: skip
    procs = cli_many(commands)
    for name, (_, fragment) in BAD.items():
        one_line_error(procs[name], fragment)
        assert not (tmp_path / f"run-{name}").exists(), name


def test_a_table_too_large_for_memory_is_refused(tmp_path, monkeypatch):
    import ganforge.resources as resources

    path = tmp_path / "big.csv"
    path.write_text("a,b\n" + "1.5,x\n" * 1000)
    monkeypatch.setattr(resources, "available_bytes", lambda: 1000)
    with pytest.raises(GanforgeError, match="memory"):
        read_table(path)
