"""The built site, opened in a real browser (headless Debian Chromium via Playwright).

Every page of _build/html is loaded from a loopback HTTP server and must show:
no console errors, no failed or 4xx/5xx requests, no request to any other host
(MathJax, fonts and scripts are all served by the site itself), no broken
internal link (file and #anchor) or image, math typeset by MathJax with no raw
TeX left in the visible text, no equation, figure or table wider than the
column, and at least one figure made by its own code on every chapter page.
Every page names its favicon, and the favicon is served by the site.
Every page is opened a second time at phone width (390 px): no page-level
horizontal scroll, and no display equation cut off (one wider than the column
sits in its own horizontal scroll box). Every page passes axe-core
(node_modules/axe-core, pinned in package-lock.json) with no serious or
critical violation, at both widths (axe runs once per width: on pages with
folded derivations, sphinx-design dropdowns, with every dropdown open, so the
folded content is checked too). Layout is checked with the dropdowns closed
and again open.
Every <img> has a descriptive alt text (not empty, not a file name), and no
figure made by a page's code is shrunk below 0.6 of its natural width in the
1280-pixel column (its text would be smaller than about 6 px).
`make test` builds the book first.
A screenshot of every page is saved under pytest's tmp dir (the first screenful;
SITE_FULL_SCREENSHOTS=1 for whole pages).
"""
import functools
import html.parser
import http.server
import os
import re
import shutil
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
CHROMIUM = "/usr/bin/chromium"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
FULL_SHOTS = os.environ.get("SITE_FULL_SCREENSHOTS") == "1"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 390, "height": 844}

try:                                      # a requirement: missing is an error, not a skip
    from playwright import sync_api
except ImportError as e:                  # pragma: no cover
    raise ImportError("tests/test_site.py needs playwright: pip install -r requirements.txt") from e
if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
    pytest.skip("Chromium is not installed at /usr/bin/chromium "
                "(apt-get install -y chromium): the real-browser site test cannot run", allow_module_level=True)


def site_pages():
    """Every HTML page of the built site, as paths relative to SITE."""
    return sorted(p.relative_to(SITE).as_posix() for p in SITE.rglob("*.html")
                  if not p.relative_to(SITE).parts[0].startswith("_"))


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids = set()

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("id", "name") and v:
                self.ids.add(v)


@functools.lru_cache(maxsize=None)
def ids_of(path):
    parser = _Ids()
    parser.feed(Path(path).read_text(encoding="utf-8"))
    return frozenset(parser.ids)


@pytest.fixture(scope="module")
def server():
    if not (SITE / "index.html").exists():
        pytest.fail("_build/html/index.html is missing: build the site first with `make book` "
                    "(`make test` does this)")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _launch(p):
    """Debian's Chromium, headless, from the Playwright instance ``p``."""
    return p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--disable-gpu", "--disable-quic"])


@pytest.fixture(scope="module")
def chromium():
    with sync_api.sync_playwright() as p:
        b = _launch(p)
        yield b
        b.close()


@pytest.fixture(scope="module")
def browser(chromium):
    """One browser context for all pages, so MathJax (2 MB) and the theme load once."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    yield context
    context.close()


def _phone_checks(server, shot_dir, axe_source):
    """check_phone_page for every page, in a phone-sized context (390 x 844 CSS pixels, touch,
    device pixel ratio 3) of a Playwright and a Chromium of this thread's own (Playwright's API is
    not thread-safe: one instance per thread). Returns {page: problems}."""
    report = {}
    with sync_api.sync_playwright() as p:
        b = _launch(p)
        try:
            context = b.new_context(viewport=PHONE, device_scale_factor=3, is_mobile=True, has_touch=True)
            for rel in site_pages():
                found = check_phone_page(*open_page(context, server, rel), rel, shot_dir, axe_source)
                if found:
                    report[rel] = found
            context.close()
        finally:
            b.close()
    return report


@pytest.fixture(scope="module")
def phone_run(server, tmp_path_factory, axe_source):
    """The phone-width checks of every page, started in a thread of their own as soon as the desktop
    test starts, so that the two widths load side by side on the machine's two cores."""
    shots = tmp_path_factory.mktemp("phone")
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(_phone_checks, server, shots, axe_source)
    future.shots = shots
    yield future
    pool.shutdown(wait=True)


@pytest.fixture(scope="module")
def axe_source():
    if not AXE.is_file():
        pytest.fail(f"{AXE.relative_to(ROOT)} is missing: run `npm ci` (axe-core is pinned in package-lock.json)")
    return AXE.read_text(encoding="utf-8")


# JavaScript run in each page once it has loaded and MathJax has finished.
_INSPECT = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const clone = document.querySelector('main') ? document.querySelector('main').cloneNode(true)
                                                : document.body.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, mjx-container, .highlight').forEach(e => e.remove());
  return {
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
    images: Array.from(document.images).map(i => ({src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0,
      natural: i.naturalWidth, shown: i.getBoundingClientRect().width, figure: !!i.closest('.cell_output'),
      raster: !/\\.svg(\\?|#|$)/i.test(i.currentSrc || i.src)})),
    mathSources: document.querySelectorAll('main .math').length,
    mathRendered: document.querySelectorAll('main mjx-container').length,
    mathErrors: document.querySelectorAll('mjx-merror, [data-mjx-error]').length,
    figures: Array.from(document.querySelectorAll('.cell_output img')).filter(i => i.naturalWidth > 0).length,
    tooWide: TOO_WIDE,
    text: clone.innerText,
    searchBoxes: Array.from(document.querySelectorAll('.search-button-field, form.bd-search'))
      .filter(e => e.offsetParent !== null && e.getBoundingClientRect().width > 0).length,
    favicon: (() => { const l = document.querySelector('link[rel~="icon"]'); return l ? l.href : null; })(),
    ...(await (async () => {                 // the favicon is served (browsers ask for it on every page)
      const l = document.querySelector('link[rel~="icon"]');
      if (!l) return {faviconStatus: null};
      try { return {faviconStatus: (await fetch(l.href, {cache: 'no-store'})).status}; }
      catch (e) { return {faviconStatus: String(e)}; }
    })()),
    ...LAYOUT_CHECKS
  };
}"""


# Layout at any width: page-level horizontal scroll, and display equations cut off.
# A display equation wider than its box is fine only inside a box that scrolls sideways.
_LAYOUT = """
    pageScroll: Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)
                - document.documentElement.clientWidth,
    clippedMath: Array.from(document.querySelectorAll('mjx-container[display=true]')).filter(m => {
      const svg = m.querySelector('svg');
      if (!svg) return false;
      const r = svg.getBoundingClientRect();
      let box = m;                            // the nearest box that clips or scrolls
      while (box && box !== document.body) {
        const ox = getComputedStyle(box).overflowX;
        if (ox !== 'visible') break;
        box = box.parentElement;
      }
      const vw = document.documentElement.clientWidth;
      if (!box || box === document.body) return r.right > vw + 1 || r.left < -1;
      const ox = getComputedStyle(box).overflowX;
      const b = box.getBoundingClientRect();
      const wider = r.width > b.width + 1;
      return wider && !(ox === 'auto' || ox === 'scroll');
    }).map(m => (m.textContent || m.getAttribute('aria-label') || '').slice(0, 60)),
"""
# display math, figures and tables must fit the column
_TOO_WIDE = """(() => {
      const art = document.querySelector('article.bd-article');
      if (!art) return [];
      const right = art.getBoundingClientRect().right + 2;
      return Array.from(document.querySelectorAll('mjx-container[display=true] svg, .cell_output img, article table'))
        .filter(e => e.getBoundingClientRect().right > right)
        .map(e => (e.closest('mjx-container') ? 'display math' : e.tagName.toLowerCase()) + ' sticks out by '
                  + Math.round(e.getBoundingClientRect().right - right) + ' px');
    })()"""
_INSPECT = _INSPECT.replace("...LAYOUT_CHECKS", _LAYOUT).replace("TOO_WIDE", _TOO_WIDE)
# open every folded dropdown (sphinx-design's <details class="sd-dropdown">, the derivations
# placed after an exercise); returns how many were closed
_OPEN_DROPDOWNS = """async () => {
  const closed = Array.from(document.querySelectorAll('article details.sd-dropdown:not([open])'));
  closed.forEach(d => { d.open = true; });
  await new Promise(r => requestAnimationFrame(() => setTimeout(r, 50)));   // the toggle events ran
  return closed.length;
}"""
_OPEN_INSPECT = """async () => ({tooWide: """ + _TOO_WIDE + """, """ + _LAYOUT + """})"""
# a figure drawn by a page's code is a matplotlib PNG at 100 dpi whose text is 8-12 pt (11-17 px):
# shown at less than this fraction of its natural width, its smallest text is below about 6 px
MIN_FIGURE_SCALE = 0.6
IMAGE_SUFFIXES = (".png", ".svg", ".gif", ".jpg", ".jpeg", ".webp")
_PHONE_INSPECT = """async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  return {""" + _LAYOUT + """};
}"""

# axe-core on the page as loaded; serious and critical violations fail. ``contrast=False`` leaves
# out color-contrast, two thirds of axe's time on a chapter (3.5 of 5 s: it finds the background
# of every token of every code cell): the phone run does, since the theme gives text the same
# colours at every width and the 1280-pixel run has checked them
_AXE_RUN = """async (contrast) => {
  const r = await axe.run(document, {resultTypes: ['violations'], preload: false,
                                      rules: {'css-orientation-lock': {enabled: false},
                                              'color-contrast': {enabled: contrast}}});
  return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical').map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + (n.failureSummary ? ': ' + n.failureSummary.split('\\n').slice(1, 2).join('') : ''))
    , count: v.nodes.length}));
}"""


def axe_problems(page, axe_source, where, contrast=True):
    page.add_script_tag(content=axe_source)
    return [f"axe-core ({where}) {v['impact']}: {v['id']} ({v['help']}), {v['count']} element(s): "
            + "; ".join(v["nodes"]) for v in page.evaluate(_AXE_RUN, contrast)]


def layout_problems(info, where):
    out = []
    if info["pageScroll"] > 1:
        out.append(f"the page scrolls sideways at {where} (by {info['pageScroll']} px)")
    out.extend(f"display equation cut off at {where} (wider than its box, which does not scroll): {m!r}"
               for m in info["clippedMath"])
    return out


def open_page(browser, server, rel):
    """Start loading one page; returns (page or None, problems list filled by its listeners)."""
    problems = []
    source = (SITE / rel).read_text(encoding="utf-8")
    refresh = re.search(r'http-equiv="refresh"[^>]*url=([^"]+)"', source, flags=re.I)
    if refresh:                           # the root index.html only redirects into book/
        target = (SITE / rel).parent / refresh.group(1).strip()
        if not target.exists():
            problems.append(f"redirects to a missing page: {refresh.group(1)}")
        return None, problems
    page = browser.new_page()

    site = urllib.parse.urlsplit(server)

    def on_route(route):
        url = route.request.url
        parts = urllib.parse.urlsplit(url)
        if url.startswith(("data:", "blob:", "about:")) or (parts.scheme, parts.netloc) == (site.scheme, site.netloc):
            route.continue_()
        else:
            problems.append(f"request to something other than the site itself: {url}")
            route.abort()

    page.route("**/*", on_route)
    page.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url} ({r.failure})"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
    page.goto(server + rel, wait_until="commit")
    return page, problems


def check_page(page, problems, rel, shot_dir, axe_source=None):
    """Finish loading a page opened by open_page; return the problems found (empty: fine)."""
    if page is None:
        return problems
    try:
        page.wait_for_load_state("load")
        info = page.evaluate(_INSPECT)
        # axe-core once per width (about 2 s a run), on the page with every dropdown open when it has
        # any: that state holds all of the page's content, the folded derivations included
        where = "1280 px"
        if page.evaluate(_OPEN_DROPDOWNS):
            opened = page.evaluate(_OPEN_INSPECT)
            problems.extend(f"too wide for the column (1280-pixel window, dropdowns open): {w}"
                            for w in opened["tooWide"])
            problems.extend(layout_problems(opened, "1280 px with the dropdowns open"))
            where = "1280 px, dropdowns open"
        if axe_source:
            problems.extend(axe_problems(page, axe_source, where))
        # the first screenful; SITE_FULL_SCREENSHOTS=1 takes whole pages (about 2 s each)
        page.screenshot(path=str(shot_dir / (rel.replace("/", "__") + ".png")), full_page=FULL_SHOTS)
    finally:
        page.close()

    for img in info["images"]:
        if not img["ok"]:
            problems.append(f"image did not load: {img['src']}")
        elif img["figure"] and img["raster"] and img["shown"] < MIN_FIGURE_SCALE * img["natural"]:
            problems.append(f"figure text too small to read: {img['src'].rsplit('/', 1)[-1]} is "
                            f"{img['natural']} px wide, shown at {img['shown']:.0f} px "
                            f"({img['shown'] / img['natural']:.2f}x, under {MIN_FIGURE_SCALE}x): draw it "
                            f"narrower (figsize width at most about {688 / MIN_FIGURE_SCALE / 100:.1f} inches)")
    for href in info["links"]:
        url = urllib.parse.urlsplit(href)
        if url.scheme not in ("http", "https") or url.hostname not in LOOPBACK:
            continue                       # external links (none should be fetched) and mailto:
        target = SITE / urllib.parse.unquote(url.path).lstrip("/")
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            problems.append(f"broken internal link: {href}")
        elif url.fragment and target.suffix == ".html" and urllib.parse.unquote(url.fragment) not in ids_of(target):
            problems.append(f"internal link to a missing anchor: {href}")
    if re.fullmatch(r"book/0\d_.*\.html", rel) and not info["figures"]:
        problems.append("a chapter without a figure made by its own code (no image in any cell output)")
    problems.extend(f"too wide for the column (1280-pixel window): {w}" for w in info["tooWide"])
    problems.extend(layout_problems(info, "1280 px"))
    if info["searchBoxes"] > 1 and rel != "search.html":   # the search page has its own query field
        problems.append(f"{info['searchBoxes']} search boxes on the 1280-pixel page (one is enough)")
    if not info["favicon"]:
        problems.append('no favicon (<link rel="icon">): browsers then ask for /favicon.ico and get a 404')
    elif info["faviconStatus"] != 200:
        problems.append(f"the favicon {info['favicon']} is not served: {info['faviconStatus']}")
    if info["mathSources"]:
        if info["mathRendered"] < info["mathSources"]:
            problems.append(f"MathJax typeset {info['mathRendered']} of {info['mathSources']} math elements")
        if info["mathErrors"]:
            problems.append(f"{info['mathErrors']} MathJax error(s) (bad TeX)")
    for raw in ("$$", "\\frac", "\\partial", "\\(", "\\["):
        if raw in info["text"]:
            i = info["text"].index(raw)
            problems.append(f"raw TeX {raw!r} in the visible text: ...{info['text'][max(0, i - 60):i + 60]!r}...")
    return problems


def check_phone_page(page, problems, rel, shot_dir, axe_source):
    """The same page at 390 px: layout, requests, and axe-core."""
    if page is None:
        return problems
    try:
        page.wait_for_load_state("load")
        info = page.evaluate(_PHONE_INSPECT)
        where = "390 px"
        if page.evaluate(_OPEN_DROPDOWNS):
            problems.extend(layout_problems(page.evaluate(_OPEN_INSPECT), "390 px with the dropdowns open"))
            where = "390 px, dropdowns open"
        problems.extend(axe_problems(page, axe_source, where, contrast=False))   # contrast: at 1280 px
        page.screenshot(path=str(shot_dir / ("phone__" + rel.replace("/", "__") + ".png")), full_page=FULL_SHOTS)
    finally:
        page.close()
    problems.extend(layout_problems(info, "390 px"))
    return problems


def test_every_page_renders_offline_with_math_links_and_images(browser, server, tmp_path, axe_source, phone_run):
    pages = site_pages()
    assert "index.html" in pages and len(pages) >= 2, f"the site looks empty: {pages}"
    # the book's pages all exist (the chapters listed in _toc.yml were built)
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    for doc in re.findall(r"(?:file|root):\s*(\S+)", toc):
        assert f"{doc}.html" in pages, f"{doc} is in _toc.yml but {doc}.html was not built"
    report = {}
    start = time.perf_counter()
    for rel in pages:                       # one at a time: loading several at once was slower here
        found = check_page(*open_page(browser, server, rel), rel, tmp_path, axe_source)
        if found:
            report[rel] = found
    print(f"{len(pages)} pages in {time.perf_counter() - start:.1f} s")
    print(f"checked {len(pages)} pages; screenshots in {tmp_path}")
    assert not report, "problems on the site:\n" + "\n".join(
        f"{rel}:\n  " + "\n  ".join(p) for rel, p in report.items())


class _Images(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.images = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))


def alt_problem(img):
    """Why an <img>'s alt text does not describe it (None: it does)."""
    src = img.get("src") or ""
    name = urllib.parse.unquote(urllib.parse.urlsplit(src).path).rsplit("/", 1)[-1]
    alt = img.get("alt")
    if alt is None:
        return "no alt attribute"
    alt = alt.strip()
    if not alt:
        return "an empty alt"
    if alt.lower().endswith(IMAGE_SUFFIXES) or alt in (name, name.rsplit(".", 1)[0]) \
            or alt.rsplit("/", 1)[-1] == name:
        return f"a file name as alt ({alt[:60]!r})"
    return None


def test_every_image_has_a_descriptive_alt_text():
    """Screen readers read the alt: a generated figure gets its file name unless the page sets one
    (code cell metadata `mystnb: image: alt: ...`, or :alt: on {image} and {figure})."""
    pages = site_pages()
    assert pages, "_build/html has no pages: build the site first with `make book`"
    bad = []
    for rel in pages:
        parser = _Images()
        parser.feed((SITE / rel).read_text(encoding="utf-8"))
        for img in parser.images:
            why = alt_problem(img)
            if why:
                bad.append(f"{rel}: <img src={img.get('src', '')!r}> has {why}")
    assert not bad, ("images without a descriptive alt text (set it from the page: code cell metadata "
                     "`mystnb: image: alt: ...`, or :alt: on {image}/{figure}):\n" + "\n".join(bad))


def test_alt_check_catches_file_names():
    """The alt check itself fails on what MyST-NB writes by default, and passes a description."""
    default = {"src": "../_images/5f3a.png", "alt": "../_images/5f3a.png"}
    assert alt_problem(default) and alt_problem({"src": "x.png"}) and alt_problem({"src": "x.png", "alt": " "})
    assert alt_problem({"src": "a/plot.svg", "alt": "plot"}) and alt_problem({"src": "a.gif", "alt": "b.GIF"})
    assert alt_problem({"src": "a.png", "alt": "Loss falls from 2.3 to 0.1 over 20 epochs"}) is None


def test_mathjax_is_served_by_the_site_itself(server):
    """The pages point at the site's own copy of MathJax, and that copy is there."""
    index = (SITE / "book" / "01_backprop.html")
    if not index.exists():
        index = SITE / "book" / "index.html"
    text = index.read_text(encoding="utf-8")
    srcs = re.findall(r'<script[^>]+src="([^"]*mathjax[^"]*)"', text, flags=re.I)
    assert srcs, f"no MathJax <script> in {index.name}"
    for src in srcs:
        assert not src.startswith(("http:", "https:", "//")), f"MathJax loaded from the web: {src}"
        path = (index.parent / src.split("?")[0]).resolve()
        assert path.is_file() and path.stat().st_size > 1_000_000, f"MathJax bundle missing: {path}"


def test_every_page_fits_a_phone_and_passes_axe(phone_run):
    """At 390 px no page scrolls sideways, no equation is cut off, no request leaves the site,
    and axe-core finds no serious or critical violation (colour contrast: checked at 1280 px)."""
    report = phone_run.result()
    print(f"screenshots at 390 px in {phone_run.shots}")
    assert not report, "problems at phone width (390 px):\n" + "\n".join(
        f"{rel}:\n  " + "\n  ".join(p) for rel, p in report.items())


def test_search_results_show_no_raw_tex(browser, server):
    """The search page's summaries come from the pages' HTML, where math is TeX source."""
    page = browser.new_page()
    try:
        page.goto(server + "search.html?q=gradient", wait_until="load")
        page.wait_for_function("document.querySelectorAll('#search-results li p.context').length >= 5",
                               timeout=60_000)
        page.wait_for_timeout(1500)          # the summaries of the remaining results
        summaries = page.evaluate("Array.from(document.querySelectorAll('#search-results li')).map(e => e.innerText)")
    finally:
        page.close()
    assert summaries, "no search results for 'gradient'"
    raw = [t for t in summaries if re.search(r"\\[()\[\]]|\\[A-Za-z]+", t)]
    assert not raw, "raw TeX in search results:\n" + "\n".join(r[:200] for r in raw[:5])
