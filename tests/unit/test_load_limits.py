"""Loading refuses documents that would expand past their own size (an alias bomb)."""

from __future__ import annotations

import time

import pytest

from tandem.api import SpecError, load_job, load_jobs
from tandem.api.load import MAX_DOCUMENT_BYTES, parse_override

# 486 bytes that pass the model as a securityContext, and expand to ~10^5 strings (11 MB rendered).
BOMB = """\
apiVersion: tandem.dev/v1alpha1
kind: TrainingJob
metadata: {name: bomb}
spec:
  framework: pytorch
  strategy: ddp
  command: [python, train.py]
  podTemplate:
    securityContext:
      a: &a ["xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]
      b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]
      c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]
      d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]
      e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]
      f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]
      g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]
      h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]
      i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_alias_bomb_is_refused_quickly_naming_the_line(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    started = time.perf_counter()
    with pytest.raises(SpecError, match=r"aliases .* are not accepted") as error:
        load_jobs(path)
    assert time.perf_counter() - started < 0.5  # 10^11 strings once expanded: today it never finishes
    assert error.value.first_path == "line 11"


def test_a_single_alias_is_refused_too(tmp_path):
    path = tmp_path / "alias.yaml"
    path.write_text(BOMB.split("    securityContext:")[0] + "    labels: &l {team: a}\n    annotations: *l\n")
    with pytest.raises(SpecError, match="aliases"):
        load_job(path)


def test_an_anchor_without_alias_still_loads(tmp_path):
    path = tmp_path / "anchor.yaml"
    path.write_text(BOMB.split("    securityContext:")[0] + "    labels: &l {team: a}\n")
    assert load_job(path).spec.pod_template.labels == {"team": "a"}


def test_alias_in_a_set_override_is_refused():
    with pytest.raises(SpecError, match=r"^--set: spec.env: YAML aliases"):
        parse_override("spec.env=[&a {name: A}, *a]")
    assert parse_override("workers=4") == (["spec", "workers"], 4)


def test_oversized_document_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(BOMB.split("  podTemplate:")[0] + "#" + "x" * MAX_DOCUMENT_BYTES + "\n")
    with pytest.raises(SpecError, match=rf"larger than {MAX_DOCUMENT_BYTES} bytes"):
        load_job(path)
