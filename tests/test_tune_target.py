"""``--target`` expressions: the four metrics of the public contract, percentages, and clear errors."""

import math

import pytest

from analyzers.diff_types import OutputResult
from workbench.errors import WorkbenchError
from workbench.tune.target import parse_target


@pytest.mark.parametrize("text,metric,op,value", [
    ("top1_agreement>=0.99", "top1_agreement", ">=", 0.99),
    ("cosine>=0.98", "cosine", ">=", 0.98),
    ("accuracy_drop<=0.5%", "accuracy_drop", "<=", 0.005),
    ("sqnr>=30", "sqnr", ">=", 30.0),
    (" top1_agreement >= 99% ", "top1_agreement", ">=", 0.99),
    ("sqnr>=2.5e1", "sqnr", ">=", 25.0),
])
def test_parse(text, metric, op, value):
    t = parse_target(text)
    assert (t.metric, t.op) == (metric, op)
    assert t.value == pytest.approx(value)


@pytest.mark.parametrize("text,needle", [
    ("cosin>=0.9", "did you mean 'cosine'"),
    ("cosine<=0.9", "takes >="),
    ("accuracy_drop>=0.5%", "takes <="),
    ("sqnr>=30%", "dB, not a percentage"),
    ("top1_agreement>=1.5", "between 0 and 1"),
    ("cosine", "not a target expression"),
    ("", "not a target expression"),
    ("cosine>=abc", "not a target expression"),
])
def test_bad_targets_are_refused_with_a_fix(text, needle):
    with pytest.raises(WorkbenchError) as e:
        parse_target(text)
    assert needle in e.value.message
    assert e.value.fix


def test_measure_takes_the_worst_output_and_errors_add():
    a = OutputResult("a", sqnr_db=30.0, cosine=0.99, top1_agreement=0.97, accuracy_fp32=0.9, accuracy_int8=0.89)
    b = OutputResult("b", sqnr_db=20.0, cosine=0.999, top1_agreement=0.99, accuracy_fp32=0.8, accuracy_int8=0.77)
    assert parse_target("sqnr>=25").measure([a, b]) == 20.0
    assert parse_target("top1_agreement>=0.98").measure([a, b]) == 0.97
    drop = parse_target("accuracy_drop<=1%")
    assert drop.measure([a, b]) == pytest.approx(0.03)
    assert not drop.met(0.03) and drop.met(0.01)
    sq = parse_target("sqnr>=30")
    # noise powers add: two sources at 30 dB make one at ~27 dB
    assert 10 * -math.log10(sq.error(30.0) * 2) == pytest.approx(26.99, abs=0.01)
    assert parse_target("cosine>=0.9").measure([OutputResult("c", 1.0, float("nan"))]) is None
