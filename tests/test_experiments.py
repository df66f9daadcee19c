"""The seed-table script's quick mode runs and writes DESIGN §7 rows (not to the real results)."""

import json

from experiments import common, report, seed_tables


def test_seed_tables_quick(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    assert seed_tables.main(["--quick", "--rows", "mlp_256-256-256_dropout0.45_adam"]) == 0
    (path,) = (tmp_path / "quick" / "seed_tables").glob("*.json")
    (row,) = json.loads(path.read_text())
    for key in (
        "experiment",
        "row",
        "model",
        "dataset",
        "config",
        "metrics",
        "reference",
        "wall_s",
        "device",
        "versions",
        "git",
    ):
        assert key in row
    assert row["reference"]["test_accuracy"] == 0.985 and 0 < row["metrics"]["test_accuracy"] <= 1
    assert row["config"]["model_overrides"]["hidden"] == [256, 256, 256]
    assert "| mlp_256-256-256_dropout0.45_adam |" in report.render([row])


def test_every_seed_table_row_is_defined_once():
    ids = [r.id for r in seed_tables.ROWS]
    assert len(ids) == len(set(ids))
    tables = [r.reference["source"] for r in seed_tables.ROWS]
    assert tables.count(seed_tables.T132) == 19 and tables.count(seed_tables.T141) == 4
    assert tables.count(seed_tables.T151) == 4 and tables.count(seed_tables.TF) == 1


def test_readme_generated_blocks_are_current():
    """The README's zoo and speed tables are exactly what `experiments.report` generates."""
    text = report.README.read_text()
    for name, body in report.readme_blocks(common.read_rows(common.RESULTS_DIR)).items():
        assert f"<!-- BEGIN {name} -->\n{body}\n<!-- END {name} -->" in text, name
