#!/usr/bin/python3
"""The naive baseline of bench/throughput: what a short Python script would
do. Each message is built with the standard `email` package (an
EmailMessage with a text/plain part and a text/html alternative, the same
headers as a coursed lesson) and sent with smtplib over ONE connection,
one message after the other (smtplib does not pipeline).

Usage: naive_smtplib.py --port PORT --count N --text FILE --html FILE [--host 127.0.0.1]
Prints one line: naive sent=N seconds=S msgs_per_s=R bytes=B (B: size of
the last message as sent, headers included).
"""
import argparse
import email.utils
import smtplib
import sys
import time
from email.message import EmailMessage


def build(i, text, html):
    m = EmailMessage()
    m["From"] = "Release <release@courses.example.org>"
    m["To"] = f"Reader {i} <s{i}@example.org>"
    m["Subject"] = "What you cannot bring back"
    m["Date"] = email.utils.formatdate(usegmt=True)
    m["Message-ID"] = f"<lesson-1.e{i}.release@courses.example.org>"
    m["Auto-Submitted"] = "auto-generated"
    m["List-Id"] = "Release <release.courses.example.org>"
    m["X-Course-Lesson"] = "release 1/13"
    m["List-Unsubscribe"] = (f"<https://courses.example.org/u/tok{i:028d}>, "
                             f"<mailto:release+unsubscribe-tok{i:028d}@courses.example.org?subject=unsubscribe>")
    m["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # Personalised like a real lesson: the greeting names the reader.
    m.set_content(text.replace("Reader 0", f"Reader {i}"), charset="utf-8", cte="quoted-printable")
    m.add_alternative(html.replace("Reader 0", f"Reader {i}"), subtype="html", charset="utf-8",
                      cte="quoted-printable")
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--text", required=True, help="the text/plain part (UTF-8)")
    ap.add_argument("--html", required=True, help="the text/html part (UTF-8)")
    ap.add_argument("--timeout", type=float, default=30.0, help="socket timeout per command")
    a = ap.parse_args()
    if a.host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("naive_smtplib.py: benchmarks talk to the loopback only")
    text = open(a.text, encoding="utf-8").read()
    html = open(a.html, encoding="utf-8").read()
    size = 0
    t0 = time.monotonic()
    with smtplib.SMTP(a.host, a.port, local_hostname="bench.example.org", timeout=a.timeout) as s:
        for i in range(a.count):
            m = build(i, text, html)
            s.send_message(m, from_addr=f"bounces+{i}@courses.example.org", to_addrs=[f"s{i}@example.org"])
            if i == a.count - 1:
                size = len(m.as_bytes())
    dt = time.monotonic() - t0
    print(f"naive sent={a.count} seconds={dt:.3f} msgs_per_s={a.count / dt:.1f} bytes={size}")


if __name__ == "__main__":
    main()
