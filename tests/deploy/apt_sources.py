#!/usr/bin/env python3
"""Prints a one-line-style sources.list for a bookworm root (main, updates, security), taken from
this machine's apt configuration so that no mirror is written into the repository. The first line's
URI is the main archive, for debootstrap."""
import glob
import sys


def deb822_stanzas(text):
    stanza = {}
    for line in text.splitlines() + [""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if stanza:
                yield stanza
            stanza = {}
            continue
        if line[0].isspace() or ":" not in line:
            continue
        key, _, value = line.partition(":")
        stanza[key.strip().lower()] = value.split()


def entries():
    """(uri, suite) pairs of the Debian archive, in the order apt lists them."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        for st in deb822_stanzas(open(path).read()):
            if "deb" not in st.get("types", []) or st.get("enabled", ["yes"]) == ["no"]:
                continue
            for uri in st.get("uris", []):
                for suite in st.get("suites", []):
                    yield uri, suite
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        try:
            lines = open(path).read().splitlines()
        except OSError:
            continue
        for line in lines:
            words = line.split("#")[0].split()
            if len(words) >= 3 and words[0] == "deb":
                words = [w for w in words[1:] if not w.startswith("[")]
                if len(words) >= 2:
                    yield words[0], words[1]


def main():
    archive = security = None
    for uri, suite in entries():
        if suite == "bookworm" and archive is None:
            archive = uri
        elif suite == "bookworm-security" and security is None:
            security = uri
    archive = archive or "http://deb.debian.org/debian"
    security = security or "http://deb.debian.org/debian-security"
    sys.stdout.write(f"deb {archive} bookworm main\n"
                     f"deb {archive} bookworm-updates main\n"
                     f"deb {security} bookworm-security main\n")


if __name__ == "__main__":
    main()
