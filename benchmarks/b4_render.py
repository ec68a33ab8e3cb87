"""B4: TrainingJobs rendered per second (tandem.render.render), and validated per second
(TrainingJob.from_dict), on one core.

    "$(hack/bootstrap.sh)/bin/python" benchmarks/b4_render.py [--seconds 3] [--no-pin] [--no-append]

Pins itself to CPU 0 (re-runs under `taskset -c 0`) so the figure is per core. The specs are
the three examples in jobs/ (DDP, Keras MWMS, TPU), each under many distinct names, so no
cache can serve a repeat. Rendering is timed on already-validated jobs, validation on the
parsed dicts, separately. If rendering is under the target (2000/s), a cProfile of it is
printed and recorded (top entries by cumulative and by internal time).
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import io
import os
import pstats
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import yaml
from common import REPO, append_results, median, table

TARGET_RENDER = 2000.0
EXAMPLES = ("mnist-ddp.yaml", "keras-mwms.yaml", "tpu-v5e.yaml")
VARIANTS = 200


def specs() -> list[dict]:
    docs = [yaml.safe_load((REPO / "jobs" / name).read_text()) for name in EXAMPLES]
    out = []
    for i in range(VARIANTS):
        for doc in docs:
            d = copy.deepcopy(doc)
            d["metadata"]["name"] = f"{doc['metadata']['name']}-{i}"
            d["metadata"]["namespace"] = f"team-{i % 7}"
            out.append(d)
    return out


def rate(fn, items, seconds: float) -> tuple[float, int]:
    """Calls per second of fn over items, cycling until `seconds` have passed."""
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for item in items:
            fn(item)
        n += len(items)
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start), n


def profile(fn, items, top: int = 15) -> str:
    prof = cProfile.Profile()
    prof.enable()
    for item in items:
        fn(item)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs()
    out.write(f"by cumulative time ({len(items)} calls):\n")
    stats.sort_stats("cumulative").print_stats(top)
    out.write("by internal time:\n")
    stats.sort_stats("tottime").print_stats(top)
    # keep only the table lines
    lines = [ln for ln in out.getvalue().splitlines() if ln.strip() and not ln.startswith(("   Ordered", "   List"))]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0, help="per repetition")
    p.add_argument("--repeats", type=int, default=5, help="median of this many repetitions")
    p.add_argument("--no-pin", action="store_true", help="do not re-run under taskset -c 0")
    p.add_argument("--no-append", action="store_true", help="print only, do not append to RESULTS.md")
    p.add_argument("--profile", action="store_true", help="print the profile even when on target")
    args = p.parse_args()

    if not args.no_pin and os.environ.get("TANDEM_B4_PINNED") != "1":
        if shutil.which("taskset"):
            os.environ["TANDEM_B4_PINNED"] = "1"
            os.execvp("taskset", ["taskset", "-c", "0", sys.executable, *sys.argv])
        print("taskset not found: running unpinned", file=sys.stderr)

    from tandem.api.model import TrainingJob
    from tandem.render import render

    docs = specs()
    jobs = [TrainingJob.from_dict(d) for d in docs]
    for job in jobs[:3]:
        objs = render(job)
        assert [o["kind"] for o in objs] == ["Service", "Job"], objs
    render(jobs[0])  # warm: templates compiled once per process, as in the operator

    render_rates, validate_rates, both_rates = [], [], []
    for r in range(args.repeats):  # interleaved
        render_rates.append(rate(render, jobs, args.seconds)[0])
        validate_rates.append(rate(TrainingJob.from_dict, docs, args.seconds)[0])
        both_rates.append(rate(lambda d: render(TrainingJob.from_dict(d)), docs, args.seconds)[0])
        print(f"repeat {r + 1}/{args.repeats}: render {render_rates[-1]:.0f}/s, "
              f"validate {validate_rates[-1]:.0f}/s, both {both_rates[-1]:.0f}/s", file=sys.stderr)

    # Where the time goes, stage by stage (the same steps render() takes, timed apart).
    import json as _json

    import yaml as _yaml

    from tandem import render as render_module
    from tandem.render.context import template_values
    env = render_module.environment()
    loader = getattr(_yaml, "CSafeLoader", _yaml.SafeLoader)
    names = render_module.TEMPLATES
    texts = [[env.get_template(n).render(template_values(j)) for n in names] for j in jobs]

    def parse_json(ts: list[str]) -> list:
        return [_json.loads(t) for t in ts]

    def parse_yaml(ts: list[str]) -> list:
        return [o for t in ts for o in _yaml.load_all(t, Loader=loader)]

    stages = {
        "values (template_values)": (lambda j: template_values(j), jobs),
        "Jinja (both templates)": (lambda j: [env.get_template(n).render(template_values(j)) for n in names], jobs),
        "parse the rendered text: YAML (CSafeLoader)": (parse_yaml, texts),
    }
    try:
        parse_json(texts[0])
        stages["parse the rendered text: json.loads"] = (parse_json, texts)
    except ValueError:  # YAML templates: JSON of the same objects, for scale
        objects = [parse_yaml(ts) for ts in texts]
        stages["for scale: json.loads of the same objects"] = (lambda t: _json.loads(t), [_json.dumps(o) for o in objects])
    stage_rates = {k: rate(fn, items, 1.0)[0] for k, (fn, items) in stages.items()}

    pinned = os.environ.get("TANDEM_B4_PINNED") == "1"
    rows = [
        ("render (tandem.render.render: Service + Indexed Job)", f"{median(render_rates):,.0f}",
         f"{min(render_rates):,.0f}-{max(render_rates):,.0f}", f"{1e6 / median(render_rates):.0f}",
         f">= {TARGET_RENDER:,.0f}/s: " + ("met" if median(render_rates) >= TARGET_RENDER else "MISSED")),
        ("validate (TrainingJob.from_dict)", f"{median(validate_rates):,.0f}",
         f"{min(validate_rates):,.0f}-{max(validate_rates):,.0f}", f"{1e6 / median(validate_rates):.0f}", "-"),
        ("validate + render", f"{median(both_rates):,.0f}",
         f"{min(both_rates):,.0f}-{max(both_rates):,.0f}", f"{1e6 / median(both_rates):.0f}", "-"),
    ]
    out = table(("operation", "jobs/s (median)", "range", "us/job", "target"), rows)
    out += (f"\n\nStages of render, timed apart (1 s each; templates {', '.join(names)}):\n\n") + table(
        ("stage", "jobs/s", "us/job"), [(k, f"{v:,.0f}", f"{1e6 / v:.0f}") for k, v in stage_rates.items()])
    body = [
        f"{len(docs)} distinct valid specs (the 3 examples in jobs/ x {VARIANTS} names), "
        f"median of {args.repeats} interleaved {args.seconds:.0f}-second repetitions, "
        f"{'pinned to CPU 0 (taskset -c 0)' if pinned else 'NOT pinned'}, one process, templates warm.",
        "", out,
    ]
    print(out)
    if median(render_rates) < TARGET_RENDER or args.profile:
        prof = profile(render, jobs[:600])
        print(prof)
        body += ["", "cProfile of render (600 calls):", "", "```", prof, "```"]
    if not args.no_append:
        append_results("B4 rendering", "\n".join(body), "benchmarks/b4_render.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
