"""`tandem dashboard` in a real browser (headless Chromium) against a real local run: real
`tandem run` workers (torch DDP) with a failure recovered by a group restart, a real local Ray
for the figures, the dashboard as a user starts it."""

from __future__ import annotations

import json
import re
import urllib.request
from contextlib import closing

import pytest

from tests.support.browser import Dashboard, chromium, iter_rows, screenshot
from tests.support.commands import run_args, run_tandem
from tests.support.waiting import wait_for

pytestmark = pytest.mark.local

#: Worker 0's and worker 1's colours in the charts (dashboard.js COLOURS), as RGB.
WORKER_COLOURS = {0: (0, 114, 178), 1: (213, 94, 0)}
#: Counts, over the first chart's canvas, the pixels within 12 of each colour on every channel.
COUNT_PIXELS = """
const canvas = document.querySelector('#charts .chart canvas');
if (!canvas) return null;
const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
const colours = arguments[0], counts = colours.map(() => 0);
for (let i = 0; i < data.length; i += 4) {
  colours.forEach((c, k) => {
    if (Math.abs(data[i] - c[0]) < 12 && Math.abs(data[i + 1] - c[1]) < 12 && Math.abs(data[i + 2] - c[2]) < 12) counts[k]++;
  });
}
return counts;
"""


def test_the_dashboard_shows_a_real_run_its_chart_per_worker_and_its_failure(tmp_path, job_name):
    runs = tmp_path / "runs"
    command = ["python", "jobs/train_ddp.py", "--steps", "400", "--sleep-per-step", "0.03", "--log-every", "50",
               "--checkpoint-every", "20",
               "--crash-at-step", "60", "--crash-rank", "1", "--crash-exit-code", "3"]
    done = run_tandem(*run_args(runs, "spec.command=" + json.dumps(command), "runPolicy.backoffLimit=1",
                                name=job_name, options=["--workers", "2"]), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    reported = re.search(r"throughput: ([\d,.]+ samples/s)", done.stderr)
    assert reported, done.stderr[-3000:]

    with Dashboard("--runs-dir", str(runs), "--no-cluster") as board, closing(chromium()) as driver:
        driver.get(board.url)
        row = next(r for r in iter_rows(driver) if r["Name"].split()[0] == job_name)
        screenshot(driver, "dashboard-jobs")
        # The run's own final table and the page: the same figures, in the same words.
        assert (row["Phase"], row["Throughput"], row["Restarts"]) == ("Succeeded", reported.group(1), "1"), row
        # The restarted group's processes count their own steps (from the checkpoint on): all of them done.
        assert re.fullmatch(r"step (\d+)/\1 \(100%\)", row["Progress"]) and row["Where"] == "local", row

        with urllib.request.urlopen(board.url) as response:  # the same figures without JavaScript
            assert reported.group(1) in response.read().decode()

        driver.find_element("link text", job_name).click()
        drawn = wait_for("the charts", lambda: driver.execute_script(
            "const c = document.getElementById('charts'); return c && c.dataset.drawn;"), timeout=30)
        assert int(drawn) >= 5  # samples: one a second over the run
        counts = wait_for("each worker's line drawn", lambda: driver.execute_script(
            COUNT_PIXELS, [list(WORKER_COLOURS[0]), list(WORKER_COLOURS[1])]), timeout=10)
        assert all(count > 20 for count in counts), counts
        timeline = driver.find_element("css selector", "ol.timeline").text
        assert re.search(r"recovered by a group restart.*: worker 1 exit 3 \(Error\), group #0", timeline), timeline
        assert "succeeded" in timeline
        logs = driver.find_element("css selector", "details pre").text
        assert "done:" in logs, logs[-2000:]
        screenshot(driver, "dashboard-job", whole_page=True)
