"""The reference model for test_model.py: what each subscriber should
receive and when, predicted from the steps (and from what the SMTP sink
answered, which the steps decide).

It is deliberately small.  It predicts *state*: which enrollments are
pending / active / paused / stopped / completed, who is bounced, which
lesson is owed next, which lessons must still arrive.  Timing is checked
generically (a lesson lands on a slot of its course in the subscriber's
zone, or within late_grace after it; the first lesson within first_within;
at most max_per_day per local day) instead of re-implementing the calendar.
"""
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, time as dtime
from zoneinfo import ZoneInfo

UTC = timezone.utc
DAY = 86400


@dataclass
class Course:
    slug: str
    n: int
    weekdays: tuple          # Python weekday() numbers the RRULE allows
    at: dtime                # local time of each slot
    tz: str                  # the course's default zone
    first_within: int = 0    # seconds, 0: none
    allow_next: bool = False

    def rrule(self):
        if len(self.weekdays) == 7:
            return "FREQ=DAILY"
        names = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
        return "FREQ=WEEKLY;BYDAY=" + ",".join(names[d] for d in self.weekdays)

    def on_slot(self, t, zone, grace):
        """t (UTC datetime) is a slot of this course in `zone`, or at most
        `grace` seconds after one."""
        z = ZoneInfo(zone)
        lt = t.astimezone(z)
        for back in range(0, grace // DAY + 2):
            d = lt.date() - timedelta(days=back)
            if d.weekday() not in self.weekdays:
                continue
            s = datetime.combine(d, self.at, tzinfo=z).astimezone(UTC)
            if s <= t <= s + timedelta(seconds=grace):
                return True
        return False


@dataclass
class Sub:
    email: str
    status: str = "active"               # pending | active | bounced | unsubscribed (not checked)
    zone: object = None                  # what the model expects in subscribers.tz (None: none)
    zone_known: bool = True              # False: adopted from the database (see docstring)
    zones: list = field(default_factory=list)   # (since, zone) history, for timing checks
    bounced_at: object = None            # fake time of the 5.1.1
    policy_at: object = None             # fake time of the last 5.7.1


@dataclass
class Enr:
    email: str
    course: str
    eid: object = None                   # enrollments.id once seen in the database
    state: str = "active"
    owed: set = field(default_factory=set)      # lessons that must still arrive
    activated_at: object = None          # when it last became active by enroll/confirm
    first_lesson: object = None          # the lesson first owed at activation
    paused_until: object = None          # epoch seconds, or None
    paused_at: object = None
    stopped_at: object = None
    stop_cause: str = ""
    reason: str = ""                     # why paused or stopped (failure reasons: bounced, policy, gave-up)
    received: list = field(default_factory=list)  # (t, lesson) first copies, in order
    exempt: dict = field(default_factory=dict)    # lesson -> why (next / retry): timing not checked
    zones_since: list = field(default_factory=list)  # zones allowed for the next lesson
    confirm_at: int = 0                  # when the last confirmation was requested
    counted: list = field(default_factory=list)   # send times that count for max_per_day


class Model:
    def __init__(self, courses, grace, mpd):
        self.courses = {c.slug: c for c in courses}
        self.grace = grace
        self.mpd = mpd                       # max_per_day in effect now
        self.mpd_history = [(0, mpd)]        # (epoch since, value)
        self.subs = {}                       # email -> Sub
        self.enr = {}                        # (email, course) -> Enr
        self.byid = {}                       # eid -> Enr
        self.erased = set()                  # addresses erased and not re-added
        self.lesson_text = {}                # (course, n) -> (epoch since, marker)
        self.dup_allow = {}                  # Message-ID -> duplicates the kills allow
        self.fail_cause = {}                 # Message-ID -> '511' | '571' | 'giveup'
        self.kill_dups = 0
        self.kill_inflight = 0

    # ---------------------------------------------------------- helpers
    def course(self, slug):
        return self.courses[slug]

    def zone_of(self, e):
        s = self.subs.get(e.email)
        return (s.zone if s and s.zone else None) or self.courses[e.course].tz

    def mpd_at(self, epoch):
        v = self.mpd_history[0][1]
        for since, val in self.mpd_history:
            if since <= epoch:
                v = val
        return v

    def activate(self, e, now, first):
        c = self.courses[e.course]
        e.state = "active"
        e.owed = set(range(first, c.n + 1))
        e.activated_at = now
        e.first_lesson = first
        e.paused_until = None
        e.zones_since = [self.zone_of(e)]
        if not e.owed:
            e.state = "completed"

    def enrollments_of(self, email):
        return [e for (m, _), e in self.enr.items() if m == email]

    def set_zone(self, email, zone, now, known=True):
        s = self.subs[email]
        s.zone, s.zone_known = zone, known
        s.zones.append((now, zone))
        for e in self.enrollments_of(email):
            z = zone or self.courses[e.course].tz
            if z not in e.zones_since:
                e.zones_since.append(z)

    def auto_resume(self, now):
        for e in self.enr.values():
            if e.state == "paused" and e.paused_until is not None and e.paused_until <= now:
                e.state, e.paused_until = "active", None
                if not e.owed:
                    e.state = "completed"
