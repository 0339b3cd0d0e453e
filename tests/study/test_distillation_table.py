"""results.md's distillation section from `analysis.distillation_summary` (issue 17: the study's distillation run end
to end moved to `make test-slow`; this keeps the table it writes in the default suite, in milliseconds)."""
from recsys.study import analysis, report


def _entry(label, spec, role="", pd=0.1, auc=0.7, curve=None, **extra):
    return {"status": "ok", "ensemble": False, "label": label, "cell": label, "spec": spec, "noise": "init",
            "role": role, "relative_pd": pd, "auc": auc, "progressive_auc_curve": curve, **extra}


def test_distillation_table_has_a_row_per_student_and_the_codistilled_cells():
    entries = [
        _entry("SmeLU β=1", "smelu:beta=1", pd=0.15, auc=0.70, progressive_auc=0.66,
               curve={"examples": [100, 200, 300], "auc": [0.60, 0.64, 0.66]}),
        _entry("gSmeLU (learned)", "gsmelu:trainable=true", pd=0.30, auc=0.72),
        _entry("SmeLU β=1 student, w=0.7", "smelu:beta=1", "student", pd=0.10, auc=0.69, weight=0.7,
               teacher="gsmelu:trainable=true", teacher_progressive_auc=0.71,
               curve={"examples": [100, 200, 300], "auc": [0.62, 0.67, 0.69]}),
        _entry("ReLU co-distilled, w=0.5", "relu", "codistilled", pd=0.05, auc=0.68, weight=0.5),
    ]
    summary = analysis.distillation_summary(entries)
    lines = report.distillation_table(summary)
    header = next(line for line in lines if line.startswith("| student | w |"))
    rows = [line for line in lines if line.startswith("| SmeLU β=1 student, w=0.7 |")]
    assert len(rows) == 1 and rows[0].count("|") == header.count("|")
    assert rows[0].startswith("| SmeLU β=1 student, w=0.7 | 0.7 | 10.00 | 0.6900 | 15.00 | 0.7000 |")
    assert "| ReLU co-distilled, w=0.5 | 5.00 | 0.6800 |" in "\n".join(lines)
