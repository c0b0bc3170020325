"""``fuzzrmap show``: the timeline exports of a seed file (text, Chrome trace, HTML)."""

import html
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from fuzzrmap import cli, engine, report, show
from fuzzrmap import scenario as registry
from fuzzrmap.sched import seedfile

from helpers import run_plan

SCENARIO = "uffd-move-vs-page-idle"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"
VOID_ELEMENTS = {"meta", "br", "hr", "img", "input", "link"}


@pytest.fixture(scope="module")
def recorded(seed_path):
    return json.loads(seed_path.read_text())


@pytest.fixture(scope="module")
def timeline(seed_path):
    return show.record(seedfile.read(seed_path))


def ran(recorded):
    """Role names of the threads that ran, in thread-id order."""
    return [recorded["threads"][t] for t in sorted({s["task"] for s in recorded["steps"]})]


def export(seed_path, fmt, capsys):
    assert cli.main(["show", str(seed_path), "--format", fmt]) == cli.EXIT_CLEAN
    return capsys.readouterr().out


# -- hold spans ----------------------------------------------------------------------

def test_hold_spans_are_the_runs_of_consecutive_snapshots():
    a, w = ("A", "write"), ("B", "read")
    snapshots = [
        (frozenset(), frozenset()),
        (frozenset({a}), frozenset()),
        (frozenset({a}), frozenset({w})),
        (frozenset(), frozenset({w})),
        (frozenset({a}), frozenset({w})),
    ]
    assert show.hold_spans(snapshots) == (
        show.Hold(0, "A", "write", 1, 2),
        show.Hold(1, "B", "read", 2, 4),
        show.Hold(0, "A", "write", 4, 4),
    )


def test_a_threads_holds_are_packed_into_rows_without_overlap():
    a, b, c, d = (show.Hold(0, "A", "read", 0, 3), show.Hold(0, "B", "spin", 3, 5),
                  show.Hold(0, "C", "spin", 4, 4), show.Hold(0, "D", "lock", 6, 7))
    other = show.Hold(1, "A", "read", 0, 9)
    timeline = show.Timeline(seed=None, execution=None, holds=(d, other, c, b, a), race=None)
    assert timeline.rows(0) == [[a, c, d], [b]]
    assert timeline.rows(1) == [[other]]


def test_holds_cover_the_failure(timeline, recorded):
    failure = recorded["failure"]
    reader = recorded["threads"].index("reader")
    assert any(h.thread == reader and h.lock == "anon_vma#1.rwsem" and h.mode == "read"
               and h.first <= failure["step"] <= h.last for h in timeline.holds), timeline.holds


def test_a_handed_over_rwsem_is_held_from_the_releasers_step(tmp_path):
    """The reader sleeps in down_read(); the mover's up_write() grants it the rwsem in the mover's step."""
    sc = registry.get(SCENARIO)
    v = sc.variant("unpatched")
    # the mover holds the source root for write (M6) when page_idle's reader takes the slow path
    execution, sched = run_plan(sc, v, [("mover", "M7a"), ("reader", None), ("mover", None)])
    path = seedfile.write(engine.seed_file_for(sc, v, sched.strategy, execution), tmp_path / "handover.json")
    timeline = show.record(seedfile.read(path))
    steps, roles = timeline.execution.steps, timeline.execution.roles
    reader = roles.index("reader")
    wake = next(i for i, s in enumerate(steps) if s.task == reader and s.label.endswith("[wakes holding it]"))
    (hold,) = [h for h in timeline.holds
               if h.thread == reader and h.lock == "anon_vma#1.rwsem" and h.first <= wake <= h.last]
    assert hold.first < wake and roles[steps[hold.first].task] == "mover", hold


# -- text ------------------------------------------------------------------------------

def test_text_is_what_replay_prints(seed_path, timeline, capsys):
    text = export(seed_path, "text", capsys)
    race = timeline.race
    assert race is not None, "a failing seed file has a racing pair"
    preempted = timeline.preemptions
    assert preempted, "the seed file's race needs a preemption"
    assert text == (f"{report.interleaving(timeline.execution, race, compact=True)}\n"
                    f"{report.legend(preempted, width=report.LINE)}\n\n"
                    f"{report.verdict(timeline.execution, race, width=report.LINE, preemptions=preempted)}\n")
    cli.main(["replay", str(seed_path)])
    replayed = capsys.readouterr().out
    assert replayed.split("\n", 2)[2] == text


# -- Chrome trace -------------------------------------------------------------------------

REQUIRED = {"X": {"dur"}, "i": {"s"}, "M": {"args"}, "s": {"id"}, "f": {"id", "bp"}}


def test_chrome_trace_events_are_well_formed(seed_path, capsys):
    trace = json.loads(export(seed_path, "chrome", capsys))
    assert trace["displayTimeUnit"] == "ms"
    for event in trace["traceEvents"]:
        assert event["ph"] in REQUIRED, event
        assert {"name", "ph", "ts", "pid", "tid"} | REQUIRED[event["ph"]] <= set(event), event
        assert event["pid"] == show.PID and type(event["tid"]) is int and type(event["ts"]) is int, event


def test_chrome_trace_has_a_named_track_per_thread_and_a_slice_per_step(seed_path, recorded, capsys):
    events = json.loads(export(seed_path, "chrome", capsys))["traceEvents"]
    names = [e for e in events if e["name"] == "thread_name"]
    track_name = {e["tid"]: e["args"]["name"] for e in names}
    assert len(track_name) == len(names), "one thread_name per track"
    roles = set(recorded["threads"])
    assert sorted(n for n in track_name.values() if n in roles) == sorted(ran(recorded))

    steps = [e for e in events if e["ph"] == "X" and e["cat"] == "step"]
    assert len(steps) == len(recorded["steps"])
    for i, (event, step) in enumerate(zip(steps, recorded["steps"])):
        assert event["ts"] == i * show.STEP_US and event["dur"] == show.STEP_US
        assert event["name"] == f"{step['func']}: {step['label']}"
        assert track_name[event["tid"]] == recorded["threads"][step["task"]]
        assert event["args"]["step"] == i
        assert event["args"]["enabled"] == [recorded["threads"][t] for t in step["enabled"]]


def test_chrome_trace_marks_the_failure_once(seed_path, recorded, capsys):
    events = json.loads(export(seed_path, "chrome", capsys))["traceEvents"]
    failures = [e for e in events if e["ph"] == "i" and e["s"] == "g"]
    assert len(failures) == 1
    (failure,) = failures
    assert recorded["failure"]["invariant"] in failure["name"]
    assert failure["args"] == recorded["failure"]
    assert failure["ts"] == recorded["failure"]["step"] * show.STEP_US


def test_chrome_trace_marks_the_racing_pair_and_the_preemptions(seed_path, recorded, timeline, capsys):
    events = json.loads(export(seed_path, "chrome", capsys))["traceEvents"]
    flow = [e for e in events if e.get("cat") == "race"]
    assert [e["ph"] for e in flow] == ["s", "f"] and flow[0]["id"] == flow[1]["id"]
    assert [e["ts"] // show.STEP_US for e in flow] == list(timeline.race)
    racing = [e["args"]["step"] for e in events if e.get("cat") == "step" and e["args"]["racing"]]
    assert racing == list(timeline.race)
    steps = recorded["steps"]
    expected = [i for i in range(1, len(steps)) if steps[i]["task"] != steps[i - 1]["task"]
                and steps[i - 1]["task"] in steps[i]["enabled"]]
    marks = [e for e in events if e.get("cat") == "preemption"]
    assert [e["args"]["step"] for e in marks] == expected and expected
    assert all(e["tid"] == show.step_tid(steps[e["args"]["step"] - 1]["task"]) for e in marks)


def test_chrome_trace_has_lock_holds_that_never_overlap_on_a_track(seed_path, recorded, capsys):
    events = json.loads(export(seed_path, "chrome", capsys))["traceEvents"]
    track_name = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    holds = [e for e in events if e["ph"] == "X" and e["cat"] == "lock"]
    assert any(e["args"]["lock"] == "anon_vma#1.rwsem" and track_name[e["tid"]].startswith("mover locks")
               for e in holds), holds
    by_track = {}
    for e in holds:
        assert e["args"]["first_step"] <= e["args"]["last_step"] and e["dur"] > 0, e
        assert e["ts"] == e["args"]["first_step"] * show.STEP_US
        assert e["ts"] + e["dur"] <= len(recorded["steps"]) * show.STEP_US, e
        by_track.setdefault(e["tid"], []).append((e["ts"], e["ts"] + e["dur"]))
    for spans in by_track.values():
        spans.sort()
        assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:])), spans


def test_chrome_export_is_byte_identical_across_processes(seed_path, tmp_path):
    outputs = []
    for hashseed in ("0", "4242"):
        out = tmp_path / f"trace-{hashseed}.json"
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        p = subprocess.run([sys.executable, "-m", "fuzzrmap", "show", str(seed_path), "--format", "chrome",
                            "-o", str(out)], capture_output=True, text=True, env=env)
        assert p.returncode == 0, p.stderr
        assert p.stdout == ""
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trace-0.json", "trace-4242.json"], "no temp files left"


# -- HTML -------------------------------------------------------------------------------------

class Page(HTMLParser):
    """Collects tags and text, and checks that every element is closed in order."""

    def __init__(self):
        super().__init__()
        self.open = []
        self.tags = []
        self.lanes = []
        self.header = ""

    def handle_starttag(self, tag, attrs):
        self._tag(tag, attrs)
        if tag not in VOID_ELEMENTS:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self._tag(tag, attrs)

    def _tag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        self.tags.append((tag, classes, attrs))
        if tag == "g" and "lane" in classes:
            self.lanes.append({"thread": attrs["data-thread"], "steps": 0})
        if tag == "rect" and "step" in classes:
            self.lanes[-1]["steps"] += 1

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()

    def handle_data(self, data):
        if "header" in self.open:
            self.header += data

    def count(self, tag, cls):
        return sum(1 for t, classes, _ in self.tags if t == tag and cls in classes)


@pytest.fixture(scope="module")
def page_text(seed_path):
    return show.html_page(show.record(seedfile.read(seed_path)))


def parse(text):
    page = Page()
    page.feed(text)
    page.close()
    assert page.open == [], f"unclosed elements: {page.open}"
    return page


def test_html_is_well_formed_and_self_contained(page_text):
    page = parse(page_text)
    assert page.tags[0][0] == "html"
    assert set(re.findall(r"https?://[^\s\"'<>]*", page_text)) == {SVG_NAMESPACE}
    assert not [t for t, _, attrs in page.tags if t in ("script", "link", "img", "iframe") or "src" in attrs]


def test_html_has_a_lane_per_thread_and_a_labelled_box_per_step(page_text, recorded):
    page = parse(page_text)
    every = page_text[page_text.index('class="timeline every-step"'):]
    assert [lane["thread"] for lane in page.lanes][len(ran(recorded)):] == ran(recorded)
    assert every.count('<rect class="step ') == len(recorded["steps"])
    for step in recorded["steps"]:
        assert _e(step["label"].split()[-1]) in every
    folded = page_text[page_text.index('class="timeline folded"'):page_text.index('class="timeline every-step"')]
    assert folded.count('<rect class="step ') < len(recorded["steps"]), "quiet runs are folded"


def _e(text):
    return html.escape(text, quote=True)


def test_html_names_the_strategy_in_words(page_text):
    parse(page_text)
    assert re.search(r"strategy: shrunk from PCT, seed 3, schedule \d+, depth 3, k \d+;", page_text)
    assert "{'" not in page_text


def test_html_header_names_the_failure_and_draws_the_race(page_text, timeline, recorded):
    page = parse(page_text)
    failure = recorded["failure"]
    assert failure["invariant"] in page.header and failure["message"] in page.header
    assert SCENARIO in page.header and "unpatched" in page.header
    assert page.count("rect", "hold") == 2 * len(timeline.holds) > 0, "in the folded and the full drawing"
    assert timeline.race is not None
    assert page.count("line", "race") == 2
    assert page.count("rect", "racing") == 4


def test_html_escapes_text(seed_path, tmp_path):
    data = json.loads(seed_path.read_text())
    data["strategy"]["name"] = "<script>alert(1)</script>"
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(data))
    page_text = show.html_page(show.record(seedfile.read(path)))
    assert "<script>" not in page_text and "&lt;script&gt;" in page_text
    parse(page_text)


def chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


VIEWPORT = (1280, 800)
MEASURE = """<script>
const boxes = {};
for (const id of ["failing", "race-folded"]) {
  const r = document.getElementById(id).getBoundingClientRect();
  boxes[id] = [r.left, r.top, r.right, r.bottom];
}
document.body.dataset.boxes = JSON.stringify(boxes);
document.body.dataset.viewport = JSON.stringify([innerWidth, innerHeight]);
</script>"""


def browse(browser, tmp_path, page_text, *flags):
    page = tmp_path / "timeline.html"
    page.write_text(page_text, encoding="utf-8")
    common = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              f"--user-data-dir={tmp_path / 'profile'}", "--window-size=%d,%d" % VIEWPORT]
    p = subprocess.run([browser, *common, *flags, page.as_uri()], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


@pytest.mark.parametrize("which", ["flagship", "fork window"])
def test_html_opens_on_the_race_in_headless_chromium(which, page_text, fork_page_text, recorded, tmp_path):
    """The failing step and both ends of the racing pair's arrow lie in the first 1280x800 viewport."""
    browser = chromium()
    if browser is None:
        pytest.skip("chromium not installed: no 'chromium' or 'chromium-browser' on PATH (.ci/run installs it)")
    text = page_text if which == "flagship" else fork_page_text
    dom = browse(browser, tmp_path, text.replace("</body>", MEASURE + "</body>"), "--dump-dom")
    boxes = json.loads(html.unescape(re.search(r'data-boxes="([^"]*)"', dom).group(1)))
    width, height = json.loads(re.search(r'data-viewport="([^"]*)"', dom).group(1))
    # headless Chromium may keep some of the window for itself: the viewport is at most 1280x800
    assert width == VIEWPORT[0] and 500 <= height <= VIEWPORT[1], (width, height)
    for name, (left, top, right, bottom) in boxes.items():
        assert 0 <= left < right <= width and 0 <= top < bottom <= height, (name, boxes[name], (width, height))
    assert boxes["failing"][3] - boxes["failing"][1] >= 10, "the failing step is drawn large enough to read"
    if which == "flagship":
        assert dom.count('class="lane"') == 2 * len(ran(recorded))
        png = tmp_path / "timeline.png"
        browse(browser, tmp_path, text, f"--screenshot={png}")
        image = png.read_bytes()
        assert image.startswith(b"\x89PNG") and len(image) > 20_000, len(image)


@pytest.fixture(scope="module")
def fork_page_text(tmp_path_factory):
    out = tmp_path_factory.mktemp("fork")
    assert cli.main(["explore", "uffd-move-vs-page-idle-fork", "--out", str(out), "--json"]) == cli.EXIT_FOUND
    (path,) = out.glob("*.json")
    return show.html_page(show.record(seedfile.read(path)))


# -- changelog --------------------------------------------------------------------------------

def test_changelog_draws_the_race_in_72_columns(seed_path, recorded, capsys):
    text = export(seed_path, "changelog", capsys)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 72
    assert lines[0].split() == ran(recorded)
    assert "folio_lock_anon_vma_read()" in text and "move_pages()" in text
    assert "READ_ONCE(folio->mapping)" in text and f"/* {recorded['failure']['invariant']} */" in text
    starts = {line.index(line.strip()) for line in lines[3:] if line.strip().endswith("()")}
    assert len(starts) == len(ran(recorded)), "one column per thread"


# -- the command line ---------------------------------------------------------------------

def test_show_writes_the_output_file(seed_path, tmp_path, capsys):
    out = tmp_path / "trace.json"
    assert cli.main(["show", str(seed_path), "--format", "chrome", "-o", str(out)]) == cli.EXIT_CLEAN
    assert capsys.readouterr().out == ""
    assert json.loads(out.read_text())["traceEvents"]
    assert [p.name for p in tmp_path.iterdir()] == ["trace.json"]


@pytest.mark.parametrize("case", ["missing", "not json", "not a seed file"])
def test_show_on_a_bad_seed_file_is_one_line_and_exit_2(case, tmp_path):
    path = tmp_path / "seed.json"
    if case == "not json":
        path.write_text("{")
    elif case == "not a seed file":
        path.write_text('{"format": "something else"}')
    p = subprocess.run([sys.executable, "-m", "fuzzrmap", "show", str(path), "--format", "html"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fuzzrmap: error: "), p.stderr


@pytest.mark.parametrize("argv", [["--format", "pdf"], ["-o", "/nonexistent-dir/out.html"]])
def test_show_rejects_bad_flags_and_unwritable_outputs(argv, seed_path, capsys):
    assert cli.main(["show", str(seed_path), *argv]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("fuzzrmap: error: "), err
