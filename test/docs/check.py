#!/usr/bin/env python3
"""The built docs in a real browser (test/docs/check.sh runs this).

Each page of the site (every module and every extra) is opened in headless
Chromium; after its scripts ran, the page must have logged nothing to the
console (no error, no uncaught exception), show its title and a sidebar
listing the modules. The search page must find `get!` and `erqwest:req`.
Every internal link and every local resource (href and src) of every
page, as written and as the scripts left the page, must name a file that
exists and, with a fragment, an id in that file. Screenshots of a module
page and of the search results go to the output directory.

Only the standard library and chromium's own flags (--dump-dom,
--screenshot, --enable-logging) are used.

Usage: check.py DOC_DIR OUT_DIR
"""
import html.parser
import os
import re
import subprocess
import sys
import tempfile
import urllib.parse

CHROMIUM = os.environ.get("CHROMIUM", "chromium")
# Virtual time lets the page's scripts (the sidebar, the search index)
# finish before the DOM is dumped, without waiting in real time.
BUDGET_MS = "3000"


class Page(html.parser.HTMLParser):
    """The ids a page defines and the local URLs it refers to."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids = set()
        self.refs = []  # (attribute, value)
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value is None:
                continue
            if name in ("id", "name"):
                self.ids.add(value)
            elif name == "href" and tag in ("a", "link"):
                self.refs.append(("href", value))
            elif name == "src" and tag in ("script", "img", "iframe"):
                self.refs.append(("src", value))
        if tag == "title":
            self._in_title = True

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def parse(text):
    page = Page()
    page.feed(text)
    return page


def chromium(args, profile, budget=BUDGET_MS):
    """Runs chromium headless; returns (stdout, stderr) as text."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
           "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}",
           "--enable-logging=stderr", "--v=0", f"--virtual-time-budget={budget}"] + args
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return done.stdout, done.stderr


def console_lines(stderr):
    # Chromium logs each console message and uncaught exception as
    # "...:CONSOLE(line)] "text", source: url (line)".
    return [l for l in stderr.splitlines() if ":CONSOLE" in l]


def local(ref):
    """The path and fragment of a local reference, or None for an external one."""
    parts = urllib.parse.urlsplit(ref)
    if parts.scheme or parts.netloc or ref.startswith("//"):
        return None
    return urllib.parse.unquote(parts.path), urllib.parse.unquote(parts.fragment)


def main(doc_dir, out_dir):
    doc_dir = os.path.abspath(doc_dir)
    os.makedirs(out_dir, exist_ok=True)
    failures = []
    fail = failures.append

    pages = sorted(f for f in os.listdir(doc_dir) if f.endswith(".html"))
    static = {f: parse(open(os.path.join(doc_dir, f), encoding="utf-8").read()) for f in pages}
    ids = {f: p.ids for f, p in static.items()}

    def check_refs(name, page, where):
        for attr, ref in page.refs:
            target = local(ref)
            if target is None:
                continue
            path, fragment = target
            if not path:
                path = name  # a fragment in the same page
            full = os.path.normpath(os.path.join(doc_dir, os.path.dirname(name), path))
            if not os.path.exists(full):
                fail(f"{name} ({where}): {attr}={ref!r}: no such file")
                continue
            rel = os.path.relpath(full, doc_dir)
            if fragment and rel in ids and fragment not in ids[rel]:
                fail(f"{name} ({where}): {attr}={ref!r}: no id {fragment!r} in {rel}")

    for name, page in static.items():
        check_refs(name, page, "as written")

    # Modules and extras: everything but the pages ExDoc makes for itself.
    content = [f for f in pages if f not in ("404.html", "search.html")]
    stats = {"pages": len(content), "console": 0}
    with tempfile.TemporaryDirectory() as profile:
        for name in content:
            url = "file://" + os.path.join(doc_dir, name)
            dom, err = chromium(["--dump-dom", url], profile)
            for line in console_lines(err):
                stats["console"] += 1
                fail(f"{name}: console: {line.split(']', 1)[-1].strip()}")
            page = parse(dom)
            if not page.title.strip():
                fail(f"{name}: no title after loading")
            # The sidebar is built by the page's scripts from sidebar_items.
            if "erqwest_default.html" not in dom or "Erqwest.Error.html" not in dom:
                fail(f"{name}: the sidebar does not list the modules")
            ids[name] |= page.ids
            check_refs(name, page, "after its scripts")

        searches = {"get!": "Erqwest.html#get!/1", "erqwest:req": "erqwest.html#req/2"}
        stats["search"] = {}
        for query, expected in searches.items():
            url = "file://" + os.path.join(doc_dir, "search.html") + "?q=" + urllib.parse.quote(query)
            dom, err = chromium(["--dump-dom", url], profile)
            for line in console_lines(err):
                fail(f"search {query!r}: console: {line.split(']', 1)[-1].strip()}")
            results = re.findall(r'<h2 class="result-id">\s*<a href="([^"]+)"', dom)
            stats["search"][query] = len(results)
            if expected not in results:
                fail(f"search {query!r}: no result {expected} among {results[:10]}")

        shots = [("module-erqwest.png", "file://" + os.path.join(doc_dir, "Erqwest.html")),
                 ("search-get.png", "file://" + os.path.join(doc_dir, "search.html") + "?q=get%21"),
                 ("search-erqwest-req.png",
                  "file://" + os.path.join(doc_dir, "search.html") + "?q=erqwest%3Areq")]
        for png, url in shots:
            path = os.path.join(os.path.abspath(out_dir), png)
            # More time: the search page builds its index before the sidebar.
            chromium(["--window-size=1280,900", f"--screenshot={path}", url], profile, "8000")
            if not os.path.exists(path) or os.path.getsize(path) < 10_000:
                fail(f"screenshot {png}: not written")

    for f in failures:
        print("FAIL " + f)
    print(f"docs check: {stats['pages']} pages opened, {stats['console']} console messages, "
          f"search results {stats['search']}, screenshots in {out_dir}")
    print(f"docs check: {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
