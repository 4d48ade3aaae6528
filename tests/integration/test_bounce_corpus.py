"""Bounce reading held against a reference no one here wrote (issue 15).

../shared/bounce-corpus/ (beside the checkout, or $COURSED_BOUNCE_CORPUS)
holds 629 real bounce and complaint mails of the Sisimai project and what
Sisimai 4.25.15 reads in each (sisimai-4.25.15.json). tests/inbound_report
runs the real `coursectl inbound --dry-run --json` over every file (and over
tests/fixtures/inbound) and prints the figures; this test runs it (so CI
prints them) and holds the targets:

  - at least 99% of the bounces recognised as bounces,
  - at least 97% of Sisimai's failed addresses recovered, each a bare address,
  - every complaint (ARF) handled as a complaint,
  - none of not-bounces/ taken for a bounce,
  - the addresses Sisimai reads as gone for good (user or host unknown)
    read hard by us too, but for the reports whose own Status says otherwise
    (a floor, see SISIMAI_HARD in the report);
  - on our fixtures: no automatic reply or person's mail taken for a
    bounce, no bounce taken for a command.

The corpus is never copied into the repository; without it the test skips.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import BUILD, COURSECTL, REPO

CORPUS = Path(os.environ.get("COURSED_BOUNCE_CORPUS", REPO.parent / "shared" / "bounce-corpus"))

# Where coursed reads a file of the corpus otherwise than Sisimai, on
# purpose; each file here is left out of the figures. Keep it short: a new
# entry needs a reason a reviewer can check in the file itself.
DISAGREE = {
    # Amazon SNS notifications (JSON) go to an SES customer's notification
    # endpoint; they are no report returned to an envelope sender, and
    # coursed does not send through SES.
    "lhost-amazonses-09.eml": "SNS JSON notification, not a bounce",
    "lhost-amazonses-10.eml": "SNS JSON notification, not a bounce",
    "lhost-amazonses-11.eml": "SNS JSON complaint notification, not an ARF report",
    # Feedback reports of type auth-failure are about our DKIM/SPF, not a
    # reader's complaint: classified 'ignored' (for the operator), nobody
    # is unsubscribed.
    "arf-18.eml": "auth-failure report: nobody complained",
    "arf-19.eml": "auth-failure report: nobody complained",
    "arf-20.eml": "auth-failure report: nobody complained",
    # An fml list robot refusing a post from a non-member: an answer to a
    # post, not a delivery failure of a reader's address.
    "lhost-fml-02.eml": "list robot's 'not a member' notice",
    "lhost-fml-03.eml": "list robot's 'not a member' notice",
    # A person forwarding a bounce (Subject: Fwd:, every line quoted) is a
    # person's mail: quoted text is never read as a report.
    "lhost-sendmail-14.eml": "a person's forward of a bounce",
    # Postfix's "errors from localhost" session transcript goes to the
    # postmaster; it reports no failed delivery of a message.
    "lhost-postfix-75.eml": "postmaster's SMTP session transcript",
    # An automatic reply (Auto-Submitted: auto-replied, no failure words):
    # Sisimai takes the one address in it for a failed recipient.
    "rfc3834-05.eml": "an automatic reply",
    # The DSN's Final-Recipient (@neko.example.org) and the text (.com)
    # disagree: we take the field of the standard report.
    "lhost-domino-03.eml": "DSN field preferred to the text",
    # The failed recipient is the bounce's own recipient (the sender wrote
    # to itself, or the sample's addresses are anonymised to one): we never
    # return the bounce's recipient, which is our own envelope sender.
    "lhost-qmail-08.eml": "failed recipient is the bounce's recipient",
    "lhost-einsundeins-03.eml": "anonymised: failed recipient is the bounce's recipient",
    "rhost-franceptt-04.eml": "anonymised: failed recipient is the bounce's recipient",
    # A postmaster@ address found only in the text is the reporting MTA's:
    # never returned from text.
    "lhost-biglobe-01.eml": "postmaster@ named only in the text",
    # No address coursed could have sent to: a domain without a dot, a
    # quoted local part, a local part that is not ASCII (Sisimai returns it
    # RFC 2047-encoded); address_normalize refuses all three.
    "lhost-postfix-79.eml": "kijitora@mailhub0 has no domain",
    "lhost-postfix-32.eml": "quoted local part",
    "lhost-sendmail-25.eml": "non-ASCII local part",
    # Office 365 shows one address and links another (mailto:); we take the
    # address the report names, Sisimai the link.
    "lhost-office365-04.eml": "the named address, not the mailto: link",
    # A bounce of a bounce: the failed address is inside the returned DSN.
    # coursed never answers a bounce, so never receives one of these.
    "lhost-x5-01.eml": "a double bounce",
}

TARGETS = {"recognised": 0.99, "recovered": 0.97, "hard_agree": 0.85}


@pytest.fixture(scope="module")
def figures():
    if not (CORPUS / "sisimai-4.25.15.json").exists():
        pytest.skip(f"the bounce corpus is not at {CORPUS} (set COURSED_BOUNCE_CORPUS): "
                    "nothing to hold our reading against")
    env = dict(os.environ, COURSECTL_BIN=COURSECTL, COURSED_BUILD_DIR=str(BUILD),
               COURSED_BOUNCE_CORPUS=str(CORPUS))
    report = REPO / "tests" / "inbound_report"
    # the report as people read it, for the CI log
    shown = subprocess.run(["/usr/bin/python3", str(report)], env=env, capture_output=True, text=True,
                           timeout=1200)
    print(shown.stdout)
    assert shown.returncode == 0, shown.stderr
    p = subprocess.run(["/usr/bin/python3", str(report), "--json"], env=env, capture_output=True,
                       text=True, timeout=1200)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_every_disagreement_names_a_file_of_the_corpus(figures):
    names = {p.name for p in (CORPUS / "bounces").glob("*.eml")}
    assert set(DISAGREE) <= names, set(DISAGREE) - names


def test_bounces_are_recognised(figures):
    c = figures["corpus"]
    assert c["recognised"] >= TARGETS["recognised"] * c["bounces"], c["misses"]["recognised"]


def test_failed_addresses_are_recovered(figures):
    c = figures["corpus"]
    assert c["recovered"] >= TARGETS["recovered"] * c["addresses"], c["misses"]["addresses"]


def test_addresses_gone_for_good_read_hard(figures):
    c = figures["corpus"]
    assert c["hard_agree"] >= TARGETS["hard_agree"] * c["hard"], c["misses"]["hard"]


def test_every_complaint_is_handled(figures):
    c = figures["corpus"]
    assert c["complaints"] > 0
    assert c["complaints_handled"] == c["complaints"], c["misses"]["complaints"]


def test_no_not_bounce_is_taken_for_a_bounce(figures):
    c = figures["corpus"]
    assert c["not_bounces"] == 3
    assert c["not_bounces_taken"] == 0, c["misses"]["not_bounces"]


def test_fixtures_keep_machines_and_people_apart(figures):
    x = figures["fixtures"]
    assert x["taken_for_bounce"] == 0, x["misses"]
    assert x["taken_for_command"] == 0, x["misses"]
