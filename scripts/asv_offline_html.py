#!/usr/bin/env python3
"""Make a published asv dashboard work without the internet.

asv's pages load jQuery, flot, bootstrap and three small plugins from public CDNs; on a
machine that cannot reach them the dashboard shows "Can not determine continental
origin of swallow" instead of graphs.  This script fetches the same libraries from the
npm registry (``npm pack``, the ordinary client), copies the files the pages use into
``<html>/vendor/`` and points the pages at them.

    python scripts/asv_offline_html.py [--html .asv/html] [--cache .asv/npm-cache]

Run it after every ``asv publish`` (``scripts/asv_history.sh --offline`` does).  Tarballs
are cached, so only the first run needs the registry.  A CDN address this script does
not know (a newer asv) is reported and makes it fail.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# CDN address in asv 0.6's pages -> (npm package@version, file inside the package).
# flot-charts ships no minified files; the plain ones behave the same.  stupidtable
# 1.0.1 is not on npm; 1.1.3 keeps the same $(table).stupidtable() interface.
FILES = {
    "https://code.jquery.com/jquery-3.3.1.min.js": ("jquery@3.3.1", "dist/jquery.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js": ("flot-charts@0.8.3", "jquery.flot.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js": ("flot-charts@0.8.3", "jquery.flot.time.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.selection.min.js": ("flot-charts@0.8.3", "jquery.flot.selection.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.categories.min.js": ("flot-charts@0.8.3", "jquery.flot.categories.js"),
    "https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js": ("flot-orderbars@1.0.0", "js/jquery.flot.orderBars.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js": ("stupid-table-plugin@1.1.3", "stupidtable.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js": ("blueimp-md5@2.19.0", "js/md5.min.js"),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js": ("bootstrap@3.1.1", "dist/js/bootstrap.min.js"),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css": ("bootstrap@3.1.1", "dist/css/bootstrap.min.css"),
}
# Files a vendored file refers to by relative path (bootstrap.min.css -> ../fonts/).
EXTRA = {"bootstrap@3.1.1": ["dist/fonts/"]}

TAG = re.compile(r'<(script|link)\b[^>]*?\b(?:src|href)="(https?://[^"]+)"[^>]*>', re.S)


def tarball(spec, cache):
    name, version = spec.rsplit("@", 1)
    path = os.path.join(cache, f"{name}-{version}.tgz")
    if not os.path.exists(path):
        os.makedirs(cache, exist_ok=True)
        subprocess.run(["npm", "pack", "--silent", "--pack-destination", cache, spec],
                       check=True, stdout=subprocess.DEVNULL)
    return path


def extract(spec, inner, cache, vendor):
    """Copy package/<inner> (a file, or a folder ending in /) to vendor/<spec>/<inner>."""
    with tarfile.open(tarball(spec, cache)) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and
                   (m.name == "package/" + inner or
                    inner.endswith("/") and m.name.startswith("package/" + inner))]
        if not members:
            raise SystemExit(f"asv_offline_html: {inner} not found in {spec}")
        for m in members:
            dest = os.path.join(vendor, spec, m.name[len("package/"):])
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with tar.extractfile(m) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--html", default=os.path.join(ROOT, ".asv", "html"))
    ap.add_argument("--cache", default=os.path.join(ROOT, ".asv", "npm-cache"))
    args = ap.parse_args()
    pages = sorted(glob.glob(os.path.join(args.html, "*.html")))
    if not pages:
        raise SystemExit(f"asv_offline_html: no pages in {args.html}; run 'asv publish' first")
    vendor = os.path.join(args.html, "vendor")
    unknown, done = set(), set()

    def local(match):
        tag, url = match.group(0), match.group(2)
        if url not in FILES:
            unknown.add(url)
            return tag
        spec, inner = FILES[url]
        if (spec, inner) not in done:
            extract(spec, inner, args.cache, vendor)
            for extra in EXTRA.get(spec, []):
                extract(spec, extra, args.cache, vendor)
            done.add((spec, inner))
        tag = tag.replace(url, f"vendor/{spec}/{inner}")
        # same-origin files now: drop the CDN's integrity hashes (the npm builds of a few
        # files are not byte-identical to the CDN's minified ones) and CORS attributes
        return re.sub(r'\s+(integrity|crossorigin|referrerpolicy)="[^"]*"', "", tag)

    for page in pages:
        with open(page) as f:
            text = f.read()
        new = TAG.sub(local, text)
        if new != text:
            with open(page, "w") as f:
                f.write(new)
            print(f"{os.path.relpath(page)}: external scripts and styles now served from vendor/")
    if unknown:
        print("asv_offline_html: unknown external addresses (new asv?), left as they are:\n  "
              + "\n  ".join(sorted(unknown)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
