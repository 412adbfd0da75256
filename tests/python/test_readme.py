"""The README's Python blocks (marked <!-- snippet python -->) run as written, on a bus of the
test's own: the publisher block, then the subscriber block receiving what it published."""
import os
import pathlib
import re
import subprocess
import sys

from conftest import Peer

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def snippets():
    text = README.read_text()
    return re.findall(r"<!-- snippet python -->\n```python\n(.*?)```", text, re.S)


def test_readme_has_short_python_blocks():
    blocks = snippets()
    assert len(blocks) == 2, "the README's From Python section marks a publisher and a subscriber"
    for b in blocks:
        assert len(b.splitlines()) < 15, f"a README block must stay under 15 lines:\n{b}"
        assert '"demo"' in b, "the blocks use the bus \"demo\" (the test substitutes its own)"


def test_readme_publisher_then_subscriber(bus_name, tmp_path):
    pub_src, sub_src = (b.replace('"demo"', repr(bus_name)) for b in snippets())
    (tmp_path / "pub.py").write_text(pub_src)
    (tmp_path / "sub.py").write_text(sub_src)
    env = dict(os.environ)
    r = subprocess.run([sys.executable, str(tmp_path / "pub.py")], env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    sub = Peer([sys.executable, "-u", str(tmp_path / "sub.py")], env=env)
    try:
        line = sub.wait_line("1 ", timeout=20)
        seq, age_ns, bid = line.split()
        assert int(age_ns) >= 0 and float(bid) == 189.51
    finally:
        sub.kill()
