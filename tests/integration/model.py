"""The reference model for test_model.py: what each subscriber should
receive and when, predicted from the steps (and from what the SMTP sink
answered, which the steps decide).

It is deliberately small.  It predicts *state*: which enrollments are
pending / active / paused / stopped / completed, who is bounced, which
lesson is owed next, which lessons must still arrive.  Timing is checked
generically (a lesson lands on a slot of its course in the subscriber's
zone, or within late_grace after it; the first lesson within first_within;
at most max_per_day per local day) instead of re-implementing the calendar.

Lessons are known by identity, the slug (docs/course-edits.md): each course
holds its current ordered list of slugs and the list of every version that
ran; an enrollment owes a set of slugs, and the lesson it gets next is the
first of them in the current order (or the one it is committed to: the
lesson that was in flight when an edit was applied, see `pointer`).
`Model.apply_edit` is the reference of what a new version does to the people
already in the course.
"""
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone, time as dtime
from collections import Counter
from zoneinfo import ZoneInfo

UTC = timezone.utc
DAY = 86400


@dataclass
class Course:
    slug: str
    initial: int             # lessons of version 1 (slugs step-1 .. step-N)
    weekdays: tuple          # Python weekday() numbers the RRULE allows
    at: dtime                # local time of each slot
    tz: str                  # the course's default zone
    first_within: int = 0    # seconds, 0: none
    allow_next: bool = False
    insert_behind_send: bool = False     # course.ini on_insert_behind = send
    completed_get_new: bool = False      # course.ini completed_get_new = true
    lessons: list = field(default_factory=list)    # the slugs of the version that runs, in order
    versions: list = field(default_factory=list)   # every version that ran: tuples of slugs
    removed: set = field(default_factory=set)      # slugs of earlier versions not in this one

    def __post_init__(self):
        if not self.lessons:
            self.lessons = [f"step-{i}" for i in range(1, self.initial + 1)]
        if not self.versions:
            self.versions = [tuple(self.lessons)]

    @property
    def n(self):
        return len(self.lessons)

    def pos(self, slug):
        """1-based position of slug in the version that runs (0: not in it)."""
        return self.lessons.index(slug) + 1 if slug in self.lessons else 0

    def copy(self):
        return replace(self, lessons=list(self.lessons), versions=list(self.versions), removed=set(self.removed))

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
    owed: set = field(default_factory=set)      # slugs that must still arrive
    pointer: object = None               # a slug it gets next whatever the order (the lesson in
                                         # flight when an edit was applied, or adopted), or None
    gone_had: set = field(default_factory=set)  # removed slugs it had (a row): had if they come back
    activated_at: object = None          # when it last became active by enroll/confirm
    paused_until: object = None          # epoch seconds, or None
    paused_at: object = None
    stopped_at: object = None
    stop_cause: str = ""
    reason: str = ""                     # why paused or stopped (failure reasons: bounced, policy, gave-up)
    received: list = field(default_factory=list)  # (t, slug) first copies, in order
    exempt: dict = field(default_factory=dict)    # slug -> why (next / retry): timing not checked
    zones_since: list = field(default_factory=list)  # zones allowed for the next lesson
    confirm_at: int = 0                  # when the last confirmation was requested
    open_bug: str = ""                   # an open bug of coursed's makes the database differ (see Model)
    counted: list = field(default_factory=list)   # send times that count for max_per_day


class Model:
    def __init__(self, courses, grace, mpd):
        self.courses = {c.slug: c.copy() for c in courses}   # edited by apply_edit
        self.grace = grace
        self.mpd = mpd                       # max_per_day in effect now
        self.mpd_history = [(0, mpd)]        # (epoch since, value)
        self.subs = {}                       # email -> Sub
        self.enr = {}                        # (email, course) -> Enr
        self.byid = {}                       # eid -> Enr
        self.erased = set()                  # addresses erased and not re-added
        self.rev = {}                        # (course, slug) -> the text revision lessons carry now
        self.dup_allow = {}                  # Message-ID -> duplicates the kills allow
        self.fail_cause = {}                 # Message-ID -> '511' | '571' | 'giveup'
        self.kill_dups = 0
        self.kill_inflight = 0
        self.edit_stats = Counter()          # what the edits did to people (coverage, reported)

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

    def activate(self, e, now, owed=None, pointer=None):
        """Active from now, owing `owed` (slugs; default: every lesson of
        the version that runs) and, when given, committed to `pointer` first."""
        c = self.courses[e.course]
        e.state = "active"
        e.open_bug = ""
        e.owed = set(c.lessons) if owed is None else set(owed)
        e.pointer = pointer if pointer in e.owed else None
        e.activated_at = now
        e.paused_until = None
        e.zones_since = [self.zone_of(e)]
        if not e.owed:
            e.state = "completed"

    def next_slug(self, e):
        """The lesson e must get next: its pointer, else the first slug it
        owes in the current order (None: nothing owed)."""
        if e.pointer is not None and e.pointer in e.owed:
            return e.pointer
        for s in self.courses[e.course].lessons:
            if s in e.owed:
                return s
        return None

    def next_pos(self, e):
        c = self.courses[e.course]
        s = self.next_slug(e)
        return c.pos(s) if s else c.n + 1

    def apply_edit(self, course, new, inflight, now, sub_status=None):
        """A new version of `course` (its slugs in order) applied at `now`.
        inflight: enrollment id -> the slug of its delivery row that is
        queued, sending or deferred at that moment.  The rules of
        docs/course-edits.md, written from the document (not from version.c):

        - had = every lesson with a row: received, skipped (cancel, move,
          a rule below), or in flight; its position is the furthest of
          those in the new order;
        - a lesson of the old version still owed stays owed (rule 2),
          wherever it goes; the next one is the first owed in the new order
          (rule 5), except that the lesson in flight keeps going (rule 10);
        - removed: owed by nobody (a queued one is withdrawn, rule 4); one
          that was had still counts as had if it comes back (rule 1);
        - inserted ahead of the position: owed; behind it: owed only with
          on_insert_behind = send (rule 3);
        - completed: new lessons owed only with completed_get_new, and only
          after their position (rule 7), and only to a subscriber who may be
          mailed (sub_status: email -> subscribers.status; nobody who left
          every course or bounced is mailed again, README): the others stay
          completed (e.open_bug marks where coursed reopens them, see
          test_course_edit_regress.py);
        - active with nothing left owed: completed at once (rule 8).
        Returns {eid: (owed before, owed after)} of those whose lessons to
        come changed (for reporting)."""
        c = self.courses[course]
        old, new = list(c.lessons), list(new)
        changed = {}
        for e in self.enr.values():
            if e.course != course or e.state in ("adopt", "erased"):
                continue
            before = (self.next_slug(e), sorted(e.owed))
            fly = inflight.get(e.eid)
            had = {s for s in old if s not in e.owed} | {s for s in new if s in e.gone_had and s not in old}
            if fly:
                had.add(fly)
            furthest = max((new.index(s) + 1 for s in had if s in new), default=0)
            st = self.edit_stats
            for s in old:
                if s in new:
                    continue
                if s in e.owed:
                    e.owed.discard(s)
                    e.exempt.pop(s, None)
                    st["removed-owed-inflight" if s == fly else "removed-owed"] += 1
                else:
                    e.gone_had.add(s)
                    st["removed-had"] += 1
            for k, s in enumerate(new, 1):
                if s in old:
                    continue
                if s in e.gone_had:
                    st["back-had"] += 1
                    continue
                if e.state == "completed":
                    owe = c.completed_get_new and k > furthest
                    st["completed-" + ("owed" if owe else "skip")] += 1
                else:
                    owe = k > furthest or c.insert_behind_send
                    st["insert-ahead" if k > furthest else "insert-behind-" + ("send" if owe else "skip")] += 1
                if owe:
                    e.owed.add(s)
            if e.state == "completed" and e.owed and (sub_status or {}).get(e.email, "active") != "active":
                e.owed = set()
                e.open_bug = "reopen-left"
                st["completed-left-stay"] += 1
            e.pointer = fly if fly in e.owed and fly in new else None
            other = next((x for x in new if x in e.owed and x != fly), None)
            if e.pointer and other and new.index(other) < new.index(fly):
                st["inflight-kept-first"] += 1      # rule 10 before rule 5
            if e.state == "active" and not e.owed:
                e.state = "completed"
                st["completed-at-once"] += 1
            elif e.state == "completed" and e.owed:
                e.state = "active"
                e.zones_since = [self.zone_of(e)]
                st["reopened"] += 1
            after = (self._next_in(e, new), sorted(e.owed))
            if before != after:
                changed[e.eid] = (before, after)
                st["next-changed" if before[0] != after[0] else "rest-changed"] += 1
        c.lessons = new
        if tuple(new) != c.versions[-1]:
            c.versions.append(tuple(new))
        c.removed = (c.removed | set(old)) - set(new)
        return changed

    def _next_in(self, e, order):
        if e.pointer is not None and e.pointer in e.owed:
            return e.pointer
        return next((s for s in order if s in e.owed), None)

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
