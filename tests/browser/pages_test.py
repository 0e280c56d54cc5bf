#!/usr/bin/env python3
"""The station's desk and line pages in headless chromium (OP-1, BN-8).

    pages_test.py desk|line

Run by test-pages.sh, which starts the station and passes paths and URLs
in the environment (see there).  Prints "ok - ..." / "FAIL - ..." lines;
exit 1 on any failure.  Screenshots go to $SHOTS/*.png.
"""
import glob
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

FAILED = []


def ok(msg):
    print("ok   - " + msg, flush=True)


def bad(msg):
    print("FAIL - " + msg, flush=True)
    FAILED.append(msg)


def check(cond, msg):
    (ok if cond else bad)(msg)
    return cond


def wait(fn, secs, step=0.05):
    """fn() until truthy or secs passed; its last value."""
    end = time.monotonic() + secs
    while True:
        v = fn()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


def browser(profile):
    o = Options()
    o.binary_location = shutil.which("chromium")
    for a in ("--headless", "--no-sandbox", "--disable-gpu",
              "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
              "--user-data-dir=" + profile, "--window-size=1024,768",
              "--lang=en-GB"):
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=o)
    viewport(d, 1024, 768)
    return d


def text(d, css):
    try:
        return d.find_element(By.CSS_SELECTOR, css).text
    except Exception:		# pylint: disable=broad-except
        return ""


def cls(d, css):
    try:
        return d.find_element(By.CSS_SELECTOR, css).get_attribute("class") or ""
    except Exception:		# pylint: disable=broad-except
        return ""


def viewport(d, w, h):
    """The page's viewport exactly w x h (the window's size includes none
    of it in headless mode, but chromium's own decorations may)."""
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": False})


def shot(d, name, size=(1024, 768)):
    viewport(d, *size)
    d.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
    time.sleep(0.4)
    path = os.path.join(os.environ["SHOTS"], name)
    d.save_screenshot(path)
    fits = d.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth")
    check(fits, f"{name}: nothing cut off at {size[0]}x{size[1]} (no sideways scrolling)")
    viewport(d, 1024, 768)


def console_errors(d):
    errs = [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]
    check(not errs, "no JavaScript console error" +
          ("" if not errs else ": " + "; ".join(e["message"] for e in errs)))


def http(url, method="GET", headers=None):
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def headers_checks(base, page):
    st, h, body = http(base)
    check(st == 200 and b"<!DOCTYPE html>" in body, f"{page}: GET / serves the page")
    csp = h.get("Content-Security-Policy", "")
    check("default-src 'none'" in csp and "script-src 'self'" in csp and
          "unsafe-inline" not in csp, f"{page}: strict Content-Security-Policy")
    check(h.get("X-Content-Type-Options") == "nosniff", f"{page}: X-Content-Type-Options nosniff")
    check(b"<script>" not in body and b"style=" not in body and b"http" not in
          body.replace(b"http-equiv", b""), f"{page}: no inline script or style, no outside URL")
    st, _, _ = http(base + "api/pause", "POST")
    check(st in (403, 404), f"{page}: POST without the token refused ({st})")
    st, _, _ = http(base + "api/pause", "POST", {"X-Mintline-Token": "0" * 32})
    check(st in (403, 404), f"{page}: POST with a wrong token refused ({st})")
    st, _, _ = http(base, "GET", {"Host": "evil.example:80"})
    check(st == 421, f"{page}: a request for another Host refused ({st}: no DNS rebinding)")
    st, _, _ = http(base + "../etc/passwd")
    check(st == 404, f"{page}: nothing but the page files is served ({st})")


def present(chip):
    pos = os.path.join(os.environ["LINE_DIR"], "pos-01")
    if os.path.lexists(pos):
        os.unlink(pos)
    os.symlink(chip, pos)


def remove():
    pos = os.path.join(os.environ["LINE_DIR"], "pos-01")
    if os.path.lexists(pos):
        os.unlink(pos)


def desk(d):
    base = os.environ["DESK_URL"]
    headers_checks(base, "desk")
    d.get(base)
    check(wait(lambda: "connected" in text(d, "#st-page"), 10), "desk: the page is connected to the station")
    check(wait(lambda: "Server connected" in text(d, "#st-server"), 10), "desk: server connection shown as connected")
    check(wait(lambda: "Reader ready" in text(d, "#st-reader"), 10), "desk: the reader is ready, no note")
    check("Waiting" in text(d, "#verdict"), "desk: waiting for a note")
    check(d.find_element(By.ID, "verdict").get_attribute("aria-live") == "assertive",
          "desk: the verdict is an ARIA live region")

    # a genuine note: GENUINE within 1 s
    t0 = time.monotonic()
    present(os.environ["GENUINE"])
    seen = wait(lambda: "v-GENUINE" in cls(d, "#verdict"), 5, 0.02)
    dt = time.monotonic() - t0
    check(seen and dt <= 1.0, f"desk: genuine note -> GENUINE in {dt:.2f} s (<= 1 s)")
    v = text(d, "#verdict")
    check("GENUINE" in v and "✔" in v, "desk: verdict with icon and word, not colour alone")
    note = os.environ.get("GENUINE_NOTE", "")
    serial = text(d, "#n-serial").replace(" ", "")
    check(note != "" and serial == note, f"desk: the serial {serial!r} is the note's ({note!r})")
    check(len(text(d, "#n-chk")) == 8 and "online" in text(d, "#n-how"),
          "desk: check code and 'checked online' shown")
    shot(d, "desk-genuine.png")
    remove()
    check(wait(lambda: "Waiting" in text(d, "#verdict"), 5), "desk: note removed -> the page waits")

    # each counterfeit with its reason in plain words, and the blank chip
    cases = [("FORGED", "COUNTERFEIT", "not allowed to issue"),
             ("CLONE", "COUNTERFEIT", "copied chip"),
             ("ALTERED", "COUNTERFEIT", "altered"),
             ("BLANK", "BLANK", "carries no note")]
    for env, verdict, words in cases:
        present(os.environ[env])
        got = wait(lambda: ("v-" + verdict) in cls(d, "#verdict"), 5, 0.02)
        check(got and words in text(d, "#verdict"),
              f"desk: {env.lower()} chip -> {verdict} ({words!r} in {text(d, '.v-reason')!r})")
        if env == "CLONE":
            shot(d, "desk-counterfeit.png")
        remove()
        check(wait(lambda: "Waiting" in text(d, "#verdict"), 5), f"desk: {env.lower()} removed -> waits")

    # the server goes away: the page says so, then the next check too
    os.kill(int(os.environ["SERVER_PID"]), signal.SIGKILL)	# no draining
    check(wait(lambda: "connection lost" in text(d, "#st-server"), 5),
          "desk: server killed -> 'connection lost' shown (" + text(d, "#st-server") + ")")
    present(os.environ["GENUINE"])
    got = wait(lambda: "v-ERROR" in cls(d, "#verdict"), 8, 0.02)
    check(got and "cannot be reached" in text(d, "#verdict") and "GENUINE" not in text(d, "#verdict"),
          "desk: next online check -> NO VERDICT, the server cannot be reached")
    shot(d, "desk-server-lost.png")
    remove()
    wait(lambda: "Waiting" in text(d, "#verdict"), 5)

    # history, filter, counts, CSV: every check
    rows = d.find_elements(By.CSS_SELECTOR, "#hist tbody tr")
    check(len(rows) == 6, f"desk: history holds the 6 checks ({len(rows)})")
    check("NO VERDICT" in rows[0].text and "GENUINE" in rows[-1].text, "desk: history newest first")
    counts = [text(d, "#c-" + k) for k in ("GENUINE", "COUNTERFEIT", "BLANK", "ERROR")]
    check(counts == ["1", "3", "1", "1"], f"desk: counts genuine/counterfeit/blank/none {counts}")
    # keyboard: Tab reaches the filter and the export button
    body = d.find_element(By.TAG_NAME, "body")
    body.click()
    reached = set()
    for _ in range(8):
        d.switch_to.active_element.send_keys(Keys.TAB)
        reached.add(d.switch_to.active_element.get_attribute("id"))
    check({"filter", "csv"} <= reached, f"desk: keyboard reaches the filter and CSV export ({sorted(x for x in reached if x)})")
    d.find_element(By.ID, "filter").send_keys("counterfeit")
    visible = [r for r in d.find_elements(By.CSS_SELECTOR, "#hist tbody tr") if r.is_displayed()]
    check(len(visible) == 3 and all("COUNTERFEIT" in r.text for r in visible),
          f"desk: filter 'counterfeit' shows the 3 counterfeits ({len(visible)})")
    Select(d.find_element(By.ID, "filter")).select_by_value("")
    csv = d.execute_script("return window.mintlineDeskCsv()")
    lines = [x for x in csv.split("\r\n") if x]
    check(len(lines) == 7 and lines[0].startswith("time,verdict"),
          f"desk: CSV has a header and the 6 checks ({len(lines) - 1})")
    check([ln.split(",")[1] for ln in lines[1:]] ==
          ["GENUINE", "COUNTERFEIT", "COUNTERFEIT", "COUNTERFEIT", "BLANK", "ERROR"],
          "desk: CSV verdicts in the order checked")
    d.find_element(By.ID, "csv").send_keys(Keys.ENTER)	# the button works by keyboard
    time.sleep(0.3)
    shot(d, "desk-tablet.png", (768, 1024))
    # a page opened late or reloaded gets the whole session again
    d.refresh()
    check(wait(lambda: len(d.find_elements(By.CSS_SELECTOR, "#hist tbody tr")) == 6, 10),
          "desk: reloaded page shows the whole history again")
    check(text(d, "#c-COUNTERFEIT") == "3", "desk: reloaded page: counts again")
    secret = d.page_source.lower()
    check("pin" not in secret.replace("spinner", "") and "begin" not in secret,
          "desk: no PIN or key material on the page")
    console_errors(d)


def journal_rows():
    db = sqlite3.connect("file:" + os.environ["JOURNAL"] + "?mode=ro", uri=True, timeout=5)
    try:
        return db.execute("select count(*) from issue_journal").fetchone()[0]
    finally:
        db.close()


def feed(names):
    for n in names:
        files = sorted(glob.glob(os.path.join(os.environ["MORE"], n + ".chip*")), key=len, reverse=True)
        for f in files:		# side files first, the image last
            shutil.move(f, os.path.join(os.environ["FEED"], os.path.basename(f)))


def num(d, css):
    try:
        return int(text(d, css) or "0")
    except ValueError:
        return -1


def line(d):
    base = os.environ["LINE_URL"]
    headers_checks(base, "line")
    d.get(base)
    check(wait(lambda: "connected" in text(d, "#st-page"), 10), "line: the page is connected to the station")
    check(wait(lambda: len(d.find_elements(By.CSS_SELECTOR, "#pos li")) == 4, 10), "line: 4 positions shown")
    check(wait(lambda: num(d, "#k-issued") == 4, 30), f"line: the first 4 chips issued ({text(d, '#k-issued')})")
    check("Server connected" in text(d, "#st-server"), "line: server connection shown")
    check(num(d, "#k-rate") >= 4, f"line: rate over the last minute ({text(d, '#k-rate')}/min)")
    lasts = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#pos .last")]
    check(sum("issued" in x for x in lasts) >= 2, f"line: positions show their last note ({lasts})")
    check(text(d, "#b-done") == "4" and text(d, "#b-total") == "10", "line: batch progress 4 of 10")
    check(text(d, "#b-eta") not in ("", "—"), f"line: time left estimated ({text(d, '#b-eta')})")
    shot(d, "line-running.png")

    # pause: nothing more is written
    d.find_element(By.ID, "pause").click()
    check(wait(lambda: "Paused from this page" in text(d, "#line-state"), 5), "line: paused (page says so)")
    check(d.find_element(By.ID, "resume").is_enabled() and not d.find_element(By.ID, "pause").is_enabled(),
          "line: resume enabled, pause disabled")
    rows = journal_rows()
    feed(["NOTE000000000104", "NOTE000000000105", "NOTE000000000106"])
    check(wait(lambda: sum("held" in (e.get_attribute("class") or "")
                           for e in d.find_elements(By.CSS_SELECTOR, "#pos li")) >= 3, 10),
          "line: the new chips are at their positions, held")
    time.sleep(3)
    check(num(d, "#k-issued") == 4, f"line: paused: no note issued ({text(d, '#k-issued')})")
    check(journal_rows() == rows, f"line: paused: the journal did not move ({rows} rows): no chip authorised or written")
    shot(d, "line-paused.png")

    d.find_element(By.ID, "resume").click()
    check(wait(lambda: num(d, "#k-issued") == 7, 30), f"line: resumed: 7 issued ({text(d, '#k-issued')})")
    feed(["NOTE000000000107", "NOTE000000000108", "NOTE000000000109"])
    check(wait(lambda: num(d, "#k-issued") == 10, 30), f"line: all 10 issued ({text(d, '#k-issued')})")
    check(wait(lambda: "batch done" in text(d, "#b-eta"), 5), "line: batch done")
    check(journal_rows() == 10, "line: journal: 10 notes")
    shot(d, "line-done.png")
    shot(d, "line-tablet.png", (768, 1024))
    console_errors(d)


def main():
    what = sys.argv[1]
    profile = tempfile.mkdtemp(prefix="mintline-chromium-")
    d = browser(profile)
    try:
        {"desk": desk, "line": line}[what](d)
    except Exception as e:	# pylint: disable=broad-except
        bad(f"{what}: {type(e).__name__}: {e}")
        try:
            d.save_screenshot(os.path.join(os.environ["SHOTS"], what + "-failure.png"))
        except Exception:	# pylint: disable=broad-except
            pass
    finally:
        d.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
