"""App responsiveness: a slider change answered from the cache, and the cold start of the landing page.

1. Cached rerun (target ≤ 200 ms). ``streamlit.testing.v1.AppTest`` runs a page (default: B3, the class-conditioned
   DDPM, with the shipped model) once cold, then moves one slider (default: the guidance scale γ, key ``b3_scale``) to
   a neighbouring value and back, several times. The first move must compute (the baseline: an uncached rerun); every
   later rerun finds both values' results in ``st.cache_data`` — the figure is the median of those reruns. Times are
   the server-side script run (what AppTest measures), without the browser's network and drawing time.
2. Cold start of Home.py: a fresh Python process that imports streamlit's AppTest and runs Home.py once, wall time
   from process start to the first complete run; the baseline is the same for a one-line ``st.write`` app (the
   framework's own floor), measured the same way in the same run.

The widget is looked up by key or label (``--slider``); without one, the first slider whose key mentions "scale",
else the page's first slider. MNIST is read from copies of the canonical raw files (DIFFUSION_LAB_MNIST_ROOT).

Run:  python bench/app_responsiveness.py [--quick] [--page app_pages/class_ddpm.py] [--slider b3_scale]
      [--profile]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, median, mnist_root, parser, report, setup

from lib.train.data import ROOT_ENV  # noqa: E402

CACHED_TARGET_S = 0.200
TIMEOUT_S = 900

COLD_START = r"""
import json, sys, time
t0 = time.perf_counter()
from streamlit.testing.v1 import AppTest
t1 = time.perf_counter()
at = AppTest.from_file(sys.argv[1], default_timeout=float(sys.argv[2])).run()
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "run_s": t2 - t1, "errors": [str(e.value)[:300] for e in at.exception]}))
"""


def default_page() -> str:
    from ui.sections import BY_SLUG

    return str(ROOT / BY_SLUG["class_ddpm"].page)


def pick_slider(at, wanted: str | None):
    sliders = list(at.slider)
    if wanted:
        for w in sliders:
            if wanted in (w.key, w.label):
                return w
        sys.exit(f"no st.slider with key or label {wanted!r}; the page has: "
                 + ", ".join(f"{w.key!r} ({w.label!r})" for w in sliders))
    for w in sliders:
        if w.key and "scale" in w.key:
            return w
    if not sliders:
        sys.exit("the page shows no st.slider (did it stop early? is the shipped model there?)")
    return sliders[0]


def check(at, what: str) -> None:
    if at.exception:
        sys.exit(f"{what}: the page raised: {at.exception[0].value}")


def timed_run(at) -> float:
    start = time.perf_counter()
    at.run()
    return time.perf_counter() - start


def cached_rerun(page: str, wanted: str | None, toggles: int, profile: bool) -> tuple[float, float, list[float]]:
    """(cold run s, uncached rerun s, cached rerun times) on ``page``."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(page, default_timeout=TIMEOUT_S)
    cold = timed_run(at)
    check(at, "cold run")
    w = pick_slider(at, wanted)
    key, v0 = w.key, w.value
    v1 = v0 + w.step if v0 + w.step <= w.max else v0 - w.step
    print(f"page: {Path(page).relative_to(ROOT)}; slider {key!r} ({w.label!r}) toggled {v0!r} ↔ {v1!r}")
    print(f"  cold run: {cold:.2f} s")
    at.slider(key=key).set_value(v1)
    uncached = timed_run(at)
    check(at, "changed slider")
    print(f"  slider → {v1!r} (computes): {uncached:.2f} s")
    cached = []
    for i in range(2 * toggles):
        at.slider(key=key).set_value(v0 if i % 2 == 0 else v1)
        cached.append(timed_run(at))
        check(at, "cached rerun")
    print(f"  cached reruns: {', '.join(f'{s * 1000:.0f}' for s in cached)} ms")
    if profile:
        import cProfile
        import pstats
        import threading

        at.slider(key=key).set_value(v0)
        prof = cProfile.Profile()
        # AppTest runs the script in a new thread: switch the profiler on from that thread's first profile event.
        threading.setprofile(lambda frame, event, arg: prof.enable())
        try:
            at.run()
        finally:
            threading.setprofile(None)
        print("\nprofile of one cached rerun's script thread (top 30 by cumulative time):")
        pstats.Stats(prof, stream=sys.stdout).sort_stats("cumulative").print_stats(30)
    return cold, uncached, cached


def cold_start(script: str, env: dict) -> dict:
    """Wall seconds from a fresh interpreter's start to the end of the first AppTest run of ``script``."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", COLD_START, script, str(TIMEOUT_S)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=TIMEOUT_S + 60)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"cold start of {script} failed:\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["errors"]:
        sys.exit(f"{script} raised on its first run: {result['errors'][0]}")
    result["wall_s"] = wall
    return result


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--page", default=None, help="the page to measure (default: the B3 page)")
    p.add_argument("--slider", default=None, help="key or label of the st.slider to move")
    p.add_argument("--toggles", type=int, default=None, help="back-and-forth moves timed (default 5; 2 with --quick)")
    p.add_argument("--repeats", type=int, default=None, help="cold starts of each app (median; default 3, 1 quick)")
    p.add_argument("--profile", action="store_true", help="cProfile one cached rerun")
    args = p.parse_args()
    setup(args)
    toggles = args.toggles or (2 if args.quick else 5)
    repeats = args.repeats or (1 if args.quick else 3)
    os.environ[ROOT_ENV] = str(mnist_root())  # pages read MNIST from the canonical files, never the network
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)

    page = str(ROOT / args.page) if args.page else default_page()
    cold, uncached, cached = cached_rerun(page, args.slider, toggles, args.profile)
    report(f"cached rerun after a slider change ({Path(page).name})", "s", median(cached), uncached,
           higher_is_better=False, target=f"≤ {CACHED_TARGET_S * 1000:.0f} ms",
           met=median(cached) <= CACHED_TARGET_S)

    with tempfile.TemporaryDirectory() as tmp:
        hello = Path(tmp) / "hello.py"
        hello.write_text('import streamlit as st\nst.write("hello")\n')
        home, floor = [], []
        for _ in range(repeats):
            home.append(cold_start("Home.py", env))
            floor.append(cold_start(str(hello), env))
            print(f"  cold start: Home.py {home[-1]['wall_s']:.2f} s (imports {home[-1]['import_s']:.2f} s, first run "
                  f"{home[-1]['run_s']:.2f} s); one-line app {floor[-1]['wall_s']:.2f} s", flush=True)
    report("cold start to first render of Home.py (fresh process)", "s", median([r["wall_s"] for r in home]),
           median([r["wall_s"] for r in floor]), higher_is_better=False)
    print("  (ratio < 1: Home.py costs 1/ratio times the framework's own cold start)")


if __name__ == "__main__":
    main()
