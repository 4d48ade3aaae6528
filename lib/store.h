/* store.h - the SQLite state of coursed. Every SQL statement lives in
 * store.c; callers see rows as plain structs. Times are Unix seconds (UTC). */
#ifndef COURSED_STORE_H
#define COURSED_STORE_H
#include <glib.h>
#include "state.h"

struct store;

struct sub_row {
    gint64 id;
    char *email;
    char *name;
    char *tz; /* NULL: the course's default zone */
    enum sub_state status;
    gint64 created_at;
};

struct enrollment_row {
    gint64 id;
    gint64 subscriber_id;
    char *email, *name, *tz; /* of the subscriber */
    char *course;
    enum enr_state state;
    enum enr_reason reason; /* why paused or stopped */
    int next_lesson;        /* the lesson to queue next (1-based) */
    gint64 next_send_at;    /* its slot; 0 while a lesson is in flight or done */
    gint64 anchor_at;       /* phase of the calendar (enrollment time) */
    gint64 created_at;
    int lessons_sent;
    gint64 paused_until; /* 0: none */
    int calendar_seq;    /* bumped by every change of plan */
    int calendar_dirty;  /* the next mail must carry the calendar */
    int round;           /* restarts so far (0: the first time through) */
    /* filled by store_enrollment_get() only */
    gint64 confirm_sent_at;
    enum sub_state sub_status;
    int tz_guessed;
};

struct delivery_row {
    gint64 id;
    gint64 enrollment_id;
    gint64 subscriber_id;
    int lesson;
    char *message_id;
    enum dlv_state state;
    int attempts;
    gint64 slot_at, queued_at, next_attempt_at, sent_at;
    int last_code;
    char *last_text;
    /* joined from enrollment and subscriber */
    char *email, *name, *tz, *course;
    gint64 anchor_at;
    int calendar_seq, calendar_dirty;
    int round;     /* the enrollment's restarts so far */
    gboolean live; /* store_ready(): enrollment and subscriber active */
    enum enr_state enr_state;
    enum sub_state sub_status;
};

struct store_counts {
    gint64 subscribers;
    gint64 enroll_active, enroll_paused, enroll_completed, enroll_stopped;
    gint64 queued, sending, sent, deferred, failed, cancelled;
};

/* Opens (create: creating if missing) and migrates the database at path.
 * Returns NULL with err on failure; CD_ERR_BUSY if it is locked. */
struct store *store_open(const char *path, gboolean create, GError **err);
/* Returns the path the store was opened with (borrowed). */
const char *store_path(const struct store *st);
void store_close(struct store *st);
/* Returns the schema version (PRAGMA user_version). */
int store_schema_version(struct store *st);
int store_latest_version(void);

/* Transactions. begin is BEGIN IMMEDIATE: the write lock is taken up front so
 * that read-then-write never fails half-way with SQLITE_BUSY. */
gboolean store_begin(struct store *st, GError **err);
gboolean store_commit(struct store *st, GError **err);
void store_rollback(struct store *st);
/* TRUE inside a transaction (begin not yet committed or rolled back). */
gboolean store_in_transaction(struct store *st);

/* Subscribers. */
/* Adds a subscriber in state `status` (active, or pending for a
 * subscribe request). Returns the id or -1 with err (CD_ERR_EXISTS). */
gint64 store_sub_add(struct store *st, const char *email, const char *name, const char *tz,
                     enum sub_state status, gint64 now, GError **err);
/* Returns the row (free with store_sub_free) or NULL, CD_ERR_NOT_FOUND. */
struct sub_row *store_sub_get(struct store *st, const char *email, GError **err);
void store_sub_free(struct sub_row *r);

/* Enrollments. */
/* Adds an enrollment in state `state` (active with its first slot, or
 * pending while a confirmation is out). Returns the id or -1 with err. */
gint64 store_enroll(struct store *st, gint64 subscriber_id, const char *course, enum enr_state state,
                    gint64 next_send_at, gint64 anchor_at, gint64 now, GError **err);
GPtrArray *store_enrollments_of(struct store *st, gint64 subscriber_id, GError **err);
/* Active enrollments whose next slot is due (next_send_at <= now), oldest
 * first, at most limit. Uses the partial index on next_send_at. */
GPtrArray *store_due(struct store *st, gint64 now, int limit, GError **err);
void store_enrollment_free(struct enrollment_row *r);
/* Returns the SQLite virtual-machine steps the last store_due() took: a
 * deterministic measure that tests use to show its cost follows the number
 * due, not the number enrolled. */
gint64 store_due_cost(struct store *st);

/* Queue lesson of enrollment e (inside a transaction): a deliveries row
 * (UNIQUE(enrollment, lesson) makes a second queueing a no-op; a withdrawn
 * or failed one is queued again, EV_DLV_REQUEUE) and the enrollment marked
 * as having a lesson in flight. The partial unique index deliveries_inflight
 * refuses a second lesson in flight for one enrollment. */
gboolean store_queue(struct store *st, const struct enrollment_row *e, const char *slug,
                     const char *message_id, gint64 now, GError **err);

/* Reads up to limit ready deliveries (queued, or deferred and due), oldest
 * first, with everything a message needs; d->live says whether its
 * enrollment and subscriber are still active. Writes nothing: the caller
 * claims or withdraws each row in its own transaction. Rows are the caller's
 * (g_ptr_array_unref frees). `after_id`: only rows with a larger id among
 * those due at the same instant are skipped again (pages). */
GPtrArray *store_ready(struct store *st, gint64 now, int limit, GError **err);
void store_delivery_free(struct delivery_row *r);

/* ---- transitions. Every write of a state column goes through one of
 * these, guarded by the event's "from" set in state.c: a row that is not in
 * a legal state is refused with CD_ERR_STATE and nothing is written. ---- */

/* What an enrollment transition sets besides its state. */
struct enr_change {
    gboolean set_next;
    gint64 next_send_at; /* 0: NULL (nothing planned) */
    gboolean set_lesson;
    int next_lesson;
    gboolean set_pause;
    gint64 paused_until; /* 0: NULL (open pause) */
    gboolean set_reason;
    enum enr_reason reason;
    gboolean replan;        /* the calendar's SEQUENCE goes up; the next mail carries it */
    gint64 anchor_at;       /* > 0: set */
    gint64 confirm_sent_at; /* > 0: set */
    gboolean new_round;     /* a restart: round + 1, no `complete` mail owed */
};
gboolean store_enr_apply(struct store *st, gint64 id, enum state_event ev, const struct enr_change *ch,
                         gint64 now, GError **err);
gboolean store_sub_apply(struct store *st, gint64 id, enum state_event ev, gint64 now, GError **err);
/* A delivery's transition. text != NULL sets last_code and last_text;
 * `when` is sent_at for EV_DLV_SENT and next_attempt_at for EV_DLV_DEFER,
 * EV_DLV_RETRY and EV_DLV_REQUEUE. EV_DLV_CLAIM counts an attempt,
 * EV_DLV_UNCLAIM takes it back. */
gboolean store_dlv_apply(struct store *st, gint64 id, enum state_event ev, int code, const char *text,
                         gint64 when, GError **err);
/* The same for a system mail (EV_MAIL_*). */
gboolean store_mail_apply(struct store *st, gint64 id, enum state_event ev, int code, const char *text,
                          gint64 when, GError **err);
/* EV_DLV_RESLOT: delivery id waits for `slot` (its new slot_at and next
 * attempt); attempts and give-up clock unchanged. */
gboolean store_dlv_reslot(struct store *st, gint64 id, gint64 slot, GError **err);
/* Withdraws (EV_DLV_WITHDRAW) whatever of an enrollment waits in the queue.
 * Returns how many, or -1 with err. */
int store_dlv_withdraw(struct store *st, gint64 enrollment_id, const char *why, GError **err);
/* Records lesson d as done (sent, or skipped by the operator): the
 * enrollment's progress moves past it if it is the lesson in flight; an
 * active enrollment gets next_send_at as its next slot (EV_ENR_PROGRESS) or,
 * with none (<= 0), is completed (EV_ENR_COMPLETE); a paused or stopped one
 * only records the progress. The calendar counts as delivered only if the
 * plan did not change in between. */
/* Progress moves to next_lesson: the first position with no row
 * (n_lessons + 1 when there is none), as life_next_slot() found it. */
gboolean store_enr_lesson_done(struct store *st, const struct delivery_row *d, int next_lesson,
                               gint64 next_send_at, gboolean carried_calendar, gint64 now, GError **err);
/* Forgets the rows of lesson `lesson` and later ones (not one being sent) so
 * that they may be sent again (coursectl move). Those that went out move to
 * delivery_history, where store_day_count() still counts them. */
gboolean store_dlv_forget_from(struct store *st, gint64 enrollment_id, int lesson, gint64 now, GError **err);

/* Sets an active enrollment's next slot (lateness rules; no calendar change). */
gboolean store_reschedule(struct store *st, gint64 enrollment_id, gint64 next_send_at, gint64 now,
                          GError **err);
/* Returns how many lessons of the enrollment were queued in [start, end),
 * or -1 with err. */
int store_day_count(struct store *st, gint64 enrollment_id, gint64 start, gint64 end, GError **err);
/* Paused enrollments whose paused_until has come (index enrollments_resume). */
GPtrArray *store_resumes_due(struct store *st, gint64 now, int limit, GError **err);
/* Returns the slot of lesson `lesson` while it is in flight, 0 if it is not,
 * -1 on error. */
/* ... and *queued_at (when not NULL) gets when it was queued. */
gint64 store_inflight_slot(struct store *st, gint64 enrollment_id, int lesson, gint64 *queued_at,
                           gint64 *next_attempt, GError **err);
/* Updates a subscriber's name (if not NULL) and, if set_tz, zone (NULL:
 * the course default). */
gboolean store_sub_update(struct store *st, gint64 id, const char *name, const char *tz, gboolean set_tz,
                          gint64 now, GError **err);

/* A system mail waiting in (or moving through) the outbox. */
struct outbox_row {
    gint64 id;
    char *kind; /* welcome, confirm, status, help, ... */
    char *rcpt;
    char *data; /* the whole CRLF message ("" until rendered when spec is set) */
    gsize len;
    int attempts;
    gint64 created_at;
    char *course;                        /* the course whose templates render it, or NULL */
    char *spec;                          /* what to send (compose_spec_new), or NULL: data is the message */
    gint64 subscriber_id, enrollment_id; /* 0: none */
    int state;                           /* enum dlv_state (ENT_MAIL) */
    gint64 next_attempt_at;
    int last_code;
    char *last_text;
};

/* Queues what to send (inside a transaction, with whatever caused it): the
 * system mail `kind` to rcpt, described by spec, rendered at send time
 * from course's templates (course NULL: the shared ones). reply marks an
 * automatic reply (store_outbox_replies). Returns its id or -1 with err. */
gint64 store_outbox_queue(struct store *st, gint64 subscriber_id, gint64 enrollment_id, const char *kind,
                          const char *rcpt, const char *course, const char *spec, gboolean reply, gint64 now,
                          GError **err);
/* Automatic replies queued since `since`, to anyone; -1 on error. */
gint64 store_outbox_replies(struct store *st, gint64 since, GError **err);
/* Returns system mail id (free with store_outbox_free), or NULL with err
 * (CD_ERR_NOT_FOUND when there is none). */
struct outbox_row *store_outbox_get(struct store *st, gint64 id, GError **err);
/* System mails in state (-1: queued, sending, deferred and failed), next
 * attempt first, at most limit (0: all). Free with g_ptr_array_unref. */
GPtrArray *store_outbox_list(struct store *st, int state, int limit, GError **err);

/* Queues a rendered system mail (inside a transaction, with whatever caused
 * it). Returns its id or -1 with err. */
gint64 store_outbox_add(struct store *st, gint64 subscriber_id, gint64 enrollment_id, const char *kind,
                        const char *rcpt, const char *data, gsize len, gint64 now, GError **err);
/* Claims up to limit ready system mails ('sending'); oldest first. */
GPtrArray *store_outbox_claim(struct store *st, gint64 now, int limit, GError **err);
void store_outbox_free(struct outbox_row *r);

/* Remembers an inbound message key. Returns TRUE the first time, FALSE if
 * it was seen before (no second effect), FALSE with err on error. */
gboolean store_inbound_first(struct store *st, const char *key, gint64 now, GError **err);
gboolean store_inbound_result(struct store *st, const char *key, const char *result, GError **err);
/* Returns enrollment `id` with its subscriber (free with
 * store_enrollment_free), or NULL with CD_ERR_NOT_FOUND. */
struct enrollment_row *store_enrollment_get(struct store *st, gint64 id, GError **err);
/* Returns the id of subscriber's enrollment in course, 0 if none, -1 on error. */
gint64 store_enrollment_find(struct store *st, gint64 subscriber_id, const char *course, GError **err);
gboolean store_sub_set_guessed(struct store *st, gint64 id, gboolean guessed, GError **err);
/* System mails created since `since`: to rcpt (any kind) when rcpt is not
 * NULL, else of `kind` to anyone. -1 on error. */
gint64 store_outbox_count(struct store *st, const char *rcpt, const char *kind, gint64 since, GError **err);
/* Distinct UTC days since `since` with an event of kind for the subscriber. */
gint64 store_event_days(struct store *st, gint64 subscriber_id, const char *kind, gint64 since, GError **err);

/* Messages (lessons and system mails) sent since `since`; -1 on error. */
gint64 store_sent_since(struct store *st, gint64 since, GError **err);

struct store_sub_filter {
    int status;         /* enum sub_state, -1: any */
    const char *course; /* NULL: any */
    int lesson;         /* > 0: has received at least this many lessons */
    gint64 since;       /* > 0: created at or after */
    const char *search; /* NULL, or a substring of address or name */
    gint64 limit;       /* <= 0: all */
};
/* Subscribers matching f, by id. g_ptr_array_unref() frees. */
GPtrArray *store_sub_find(struct store *st, const struct store_sub_filter *f, GError **err);
/* Deletes every row about subscriber id; if hash is not NULL, keeps it as a
 * suppression entry. */
gboolean store_sub_erase(struct store *st, gint64 id, const char *hash, gint64 now, GError **err);
/* 1 if hash is suppressed, 0 if not, -1 on error. */
int store_suppressed(struct store *st, const char *hash, GError **err);
gboolean store_unsuppress(struct store *st, const char *hash, GError **err);
/* Deliveries in `state` (-1: all not sent or cancelled), next attempt first. */
GPtrArray *store_queue_list(struct store *st, int state, int limit, GError **err);
/* Active enrollments that have neither a next slot nor a lesson in flight
 * (a bug if any: the lifecycle never leaves one so), at most limit ids. */
GArray *store_stuck(struct store *st, int limit, GError **err);
/* Returns delivery id with its enrollment and subscriber fields, or NULL
 * with CD_ERR_NOT_FOUND. Free with store_delivery_free(). */
struct delivery_row *store_delivery_full(struct store *st, gint64 id, GError **err);
struct event_row {
    gint64 at;
    char *email, *kind, *via, *detail;
    gint64 enrollment_id;
    char *message_id; /* the inbound mail that caused it, or NULL */
};
/* The newest event id (0: none), or -1. */
gint64 store_event_last(struct store *st, GError **err);
/* Marks the events after after_id as caused by message_id. */
gboolean store_events_tag(struct store *st, gint64 after_id, const char *message_id, GError **err);
/* The audit trail, newest first (subscriber_id 0: everyone). */
GPtrArray *store_events(struct store *st, gint64 subscriber_id, int limit, GError **err);
void store_event_free(struct event_row *e);

struct store_funnel_states {
    gint64 active, paused, completed, unsubscribed, bounced, pending;
};
/* For course: reached[k-1] = enrollments that were sent lesson k (reached
 * must be sized to the course's lessons, zeroed), and how many enrollments
 * are in each state (a bounced or unsubscribed subscriber counts as such). */
gboolean store_funnel(struct store *st, const char *course, GArray *reached,
                      struct store_funnel_states *states, GError **err);

/* For course: lost[k-1] = enrollments whose last lesson sent was k and that
 * ended there (left the course, bounced or unsubscribed); lost must be
 * sized to the course's lessons, zeroed. Those still active or paused are
 * waiting for their next lesson and not counted. */
gboolean store_funnel_lost(struct store *st, const char *course, GArray *lost, GError **err);

struct store_day {
    gint64 day; /* UTC midnight */
    gint64 sent, deferred, bounced, unsubscribed;
};
/* Appends struct store_day per UTC day since `since`. */
gboolean store_daily(struct store *st, gint64 since, GArray *days, GError **err);
/* PRAGMA quick_check: *result "ok" or the problems (g_free). */
gboolean store_check(struct store *st, char **result, GError **err);

struct store_export_row {
    const char *email, *name, *tz, *status;
    const char *course, *state; /* NULL for a subscriber without enrollment */
    int next_lesson;
    gint64 created_at;
};
typedef void (*store_export_cb)(const struct store_export_row *r, void *arg);
/* Calls cb for every (subscriber, enrollment) pair, streaming. */
gboolean store_export(struct store *st, store_export_cb cb, void *arg, GError **err);

/* ---- lessons by identity, and the versions of a course (schema 10).
 * A delivery row names its lesson by slug; `lesson` is its position in
 * the version of the course that runs. Every position an enrollment has
 * passed has a row (sent, in flight, cancelled, or a 'skipped' marker), so
 * the lessons it is still owed are exactly the positions with no row. ---- */

/* Appends to out (GArray of int) the positions 1..n_lessons that have no
 * row for this enrollment, in order. Costs n_lessons index probes. */
gboolean store_owed(struct store *st, gint64 enrollment_id, int n_lessons, GArray *out, GError **err);

struct store_version {
    char *course;
    int version;
    gint64 created_at;
    char *lessons; /* one line per lesson, in order: "slug hash" */
    char *summary; /* what applying it did, one line per change */
};
void store_version_free(struct store_version *v);
/* Returns the newest version of course, or NULL (err unset: none yet). */
struct store_version *store_version_latest(struct store *st, const char *course, GError **err);
/* Returns every version of course, oldest first (g_ptr_array_unref). */
GPtrArray *store_versions(struct store *st, const char *course, GError **err);
/* Returns the slugs of every course with a version (g_free'd strings;
 * g_ptr_array_unref). */
GPtrArray *store_version_courses(struct store *st, GError **err);
/* Records the next version of course; returns its number or -1. */
int store_version_add(struct store *st, const char *course, const char *lessons, const char *summary,
                      gint64 now, GError **err);
/* Keeps a lesson's text under its hash (once). */
gboolean store_text_put(struct store *st, const char *hash, const char *subject, const char *body,
                        GError **err);
/* *subject and *body (g_free) of hash, both NULL when unknown. */
gboolean store_text_get(struct store *st, const char *hash, char **subject, char **body, GError **err);
/* The enrollments in course in state (an enum enr_state; -1: any), their
 * subscriber's status filled (sub_status), by
 * the (course, state) index (g_ptr_array_unref). */
GPtrArray *store_course_enrollments(struct store *st, const char *course, int state, GError **err);
/* How many enrollments course has, any state; -1 with err. */
int store_course_count(struct store *st, const char *course, GError **err);

/* One delivery row as the version rules see it. */
struct store_mark {
    gint64 id;
    int lesson; /* position; < 0 for a lesson no longer in the course */
    char *slug; /* NULL before schema 10 filled it */
    enum dlv_state state;
    gint64 slot_at;
    gboolean skipped; /* a 'skipped' marker, never sent */
};
void store_mark_free(struct store_mark *m);
/* Every row of an enrollment, by position (g_ptr_array_unref). */
GPtrArray *store_marks(struct store *st, gint64 enrollment_id, GError **err);
/* Names the rows of course at position lesson that have no slug yet. */
gboolean store_fill_slugs(struct store *st, const char *course, int lesson, const char *slug, GError **err);
/* Moves row id to position lesson (callers avoid UNIQUE clashes by first
 * moving rows to -id). */
gboolean store_mark_place(struct store *st, gint64 id, int lesson, GError **err);
/* Returns the ids (gint64) of up to limit enrollments whose last lesson
 * went out and whose `complete` mail is not queued yet, oldest first;
 * g_array_free(, TRUE). NULL with err. */
GArray *store_complete_due(struct store *st, int limit, GError **err);
/* Withdraws the subscriber's system mails nobody asked for (welcome,
 * complete) that have not gone out: they left or bounced. */
gboolean store_outbox_withdraw_unasked(struct store *st, gint64 subscriber_id, GError **err);
/* The `complete` mail of enrollment id is queued (or not wanted). */
gboolean store_complete_clear(struct store *st, gint64 id, GError **err);
/* A 'skipped' marker at position lesson (nothing if a row is there). */
gboolean store_mark_skip(struct store *st, gint64 enrollment_id, int lesson, const char *slug, GError **err);
/* Deletes row id if it is cancelled or failed (a withdrawn lesson that an
 * edit no longer puts next: it is queued again when its turn comes). */
gboolean store_mark_drop(struct store *st, gint64 id, GError **err);
/* Sets the enrollment's position (and, with set_next, its next slot; 0:
 * none) and bumps its calendar. No state changes. */
gboolean store_enr_repoint(struct store *st, gint64 id, int lesson, gint64 next_send_at, gboolean set_next,
                           gint64 now, GError **err);

/* Puts deliveries a crash left in 'sending' back to 'queued'. Returns how
 * many, or -1 with err. */
int store_recover_sending(struct store *st, GError **err);

/* Appends to the audit trail. via: cli, email, link, daemon. */
gboolean store_event(struct store *st, gint64 now, gint64 subscriber_id, gint64 enrollment_id,
                     const char *kind, const char *via, const char *detail, GError **err);

gboolean store_counts(struct store *st, struct store_counts *out, GError **err);
/* Returns TRUE when nothing is left to do: no active enrollment and no
 * delivery waiting. */
gboolean store_idle(struct store *st, GError **err);
/* Returns the earliest instant at which work is due (next slot or retry),
 * or 0 if none. */
gint64 store_next_due(struct store *st, GError **err);

/* Keeps hash (token_hash_address) as a suppression entry with reason
 * ("complaint"): no import brings the address back; the person's own
 * confirmation lifts it. */
gboolean store_suppress(struct store *st, const char *hash, const char *reason, gint64 now, GError **err);

/* One number for /metrics: name is "sent", "failed", "deferred", "bounced"
 * (label: the course), "queue" (label: lessons or system), "oldest"
 * (seconds the oldest due item has waited), "inbound" or "caused" (label:
 * the event kind an inbound mail caused). */
struct store_metric {
    char *name, *label;
    gint64 value;
};
void store_metric_free(struct store_metric *m);

/* Returns every struct store_metric at now, in one read; NULL with err.
 * g_ptr_array_unref() frees them. */
GPtrArray *store_metrics(struct store *st, gint64 now, GError **err);

/* Returns the subscriber's own time of day for lessons ("HH:MM"), or NULL
 * for the course's (also on error: err set). The subscriber is
 * subscriber_id, or when 0 the one of enrollment_id. g_free(). */
char *store_lesson_time(struct store *st, gint64 enrollment_id, gint64 subscriber_id, GError **err);

/* Sets the subscriber's own time of day ("HH:MM"; NULL: the course's). */
gboolean store_sub_set_lesson_time(struct store *st, gint64 id, const char *lesson_time, gint64 now,
                                   GError **err);

/* Every delivery row of the subscriber's enrollments, oldest first (the
 * right of access export). g_ptr_array_unref(). */
GPtrArray *store_deliveries_of(struct store *st, gint64 subscriber_id, GError **err);

/* One consent record: what a person agreed to and how (README.md, "Consent records").
 * Strings are owned by the row when it comes from store_consents_of();
 * borrowed when it is passed to store_consent_add(). */
struct consent_row {
    gint64 subscriber_id;
    gint64 enrollment_id; /* 0: none (an operator's `sub add`) */
    char *course;         /* NULL with enrollment_id 0 */
    gint64 requested_at;
    char *source;        /* mail, form, import, operator */
    char *detail;        /* import: the file; "" otherwise */
    char *operator_name; /* import, operator: the Unix user; "" otherwise */
    char *shown_sha256;  /* the form page or snippet (hex); NULL if none */
    char *mail_sha256;   /* the confirmation mail as rendered; NULL if none */
    gint64 confirmed_at; /* 0: not confirmed (yet) */
    char *confirmed_via; /* reply, link, operator; NULL while unconfirmed */
    char *ip;            /* [http] record_ip only; NULL otherwise */
    char *user_agent;
};

/* Adds a consent record (inside the caller's transaction). Returns its id,
 * or -1 with err. */
gint64 store_consent_add(struct store *st, const struct consent_row *c, GError **err);
/* Marks the newest unconfirmed record of the enrollment confirmed (via:
 * reply, link, operator). An enrollment with none (requested before
 * consent records existed) is left as it is. FALSE only on error. */
gboolean store_consent_confirm(struct store *st, gint64 enrollment_id, const char *via, gint64 now,
                               GError **err);
/* Sets the SHA-256 (hex) of the confirmation mail as coursed rendered it
 * on the newest open consent record of the enrollment, if not set yet.
 * FALSE only on error. */
gboolean store_consent_mail(struct store *st, gint64 enrollment_id, const char *sha256, GError **err);
/* Records the consent of every enrollment whose id is above after_id (the
 * enrollments of the import running in this transaction), in one
 * statement. */
gboolean store_consent_import(struct store *st, gint64 after_id, const char *file, const char *operator_name,
                              gint64 now, GError **err);
/* Returns the subscriber's consent records, oldest first (free with
 * g_ptr_array_unref), or NULL with err. */
GPtrArray *store_consents_of(struct store *st, gint64 subscriber_id, GError **err);
void store_consent_free(struct consent_row *c);

/* ---- readers' notes (docs/notes.md) ---- */
struct note_row {
    gint64 id;
    gint64 subscriber_id;
    char *email; /* of the subscriber (store_notes only) */
    char *course;
    char *lesson_slug; /* the lesson replied to, or NULL when not known */
    int lesson;        /* its position when the note came, 0 if not known */
    gint64 received_at;
    char *message_id; /* of the reader's mail, or NULL */
    char *body;       /* what the reader wrote (quoted original cut off) */
    char *forward;    /* kept, capped, or the forward's outbox state (queued, sent, failed...) */
    gint64 outbox_id; /* store_note_add only: the forward, 0 for none */
};
/* Stores a note (inside the caller's transaction); n's strings are
 * copied. Returns its id or -1 with err. */
gint64 store_note_add(struct store *st, const struct note_row *n, GError **err);
/* Returns how many notes of subscriber_id since `since` were forwarded, or
 * -1 with err. */
gint64 store_notes_forwarded_since(struct store *st, gint64 subscriber_id, gint64 since, GError **err);
/* Returns every note (of course, or of all when NULL), oldest first, as
 * struct note_row * (the array frees them); NULL with err. */
GPtrArray *store_notes(struct store *st, const char *course, GError **err);
void store_note_free(struct note_row *n);
/* Adds the number of notes on each lesson of course to per_lesson (gint64,
 * index = position - 1, already sized). FALSE with err. */
gboolean store_note_counts(struct store *st, const char *course, GArray *per_lesson, GError **err);

/* ---- bulk import (transfer.c) ---- */
/* Returns the set of every suppression hash (g_hash_table_destroy), or NULL
 * with err. */
GHashTable *store_suppression_set(struct store *st, GError **err);
/* Returns the largest subscriber id (0 when there is none), or -1. */
gint64 store_subs_max_id(struct store *st, GError **err);
struct store_known_sub {
    gint64 id;
    enum sub_state status;
    char *tz;
};
void store_known_sub_free(struct store_known_sub *k);
/* Looks up the n addresses of emails at once (inside a transaction):
 * known gets email (g_strdup) -> struct store_known_sub * for each that is
 * a subscriber, enrolled gets "email\ncourse" (g_strdup) for each of their
 * enrollments. The tables must free what they hold. FALSE with err. */
gboolean store_import_lookup(struct store *st, const char *const *emails, guint n, GHashTable *known,
                             GHashTable *enrolled, GError **err);
/* Writes the 'imported' audit event of every subscriber whose id is above
 * after_id (those an import added in this transaction), in one statement. */
gboolean store_events_imported(struct store *st, gint64 after_id, gint64 now, GError **err);
/* A subscriber or an enrollment an import adds, with the id it chose
 * (above the largest: the import holds the write lock). */
struct store_new_sub {
    gint64 id;
    const char *email, *name, *tz; /* tz NULL or "": the course's */
    enum sub_state status;
};
struct store_new_enr {
    gint64 id, subscriber_id;
    const char *course;
    gint64 next_send_at; /* the first slot; anchor, created and updated are now */
};
/* Rows per INSERT statement of store_subs_insert and
 * store_enrollments_insert; a caller that writes in steps makes each a
 * multiple of it, so that no step ends in a short statement to prepare. */
#define STORE_BULK_ROWS 64
/* Insert n rows, a few dozen per statement, inside the caller's
 * transaction; FALSE with err. A conflict (INSERT OR ROLLBACK) rolls the
 * whole transaction back, so that SQLite keeps no statement journal;
 * store_rollback after it is harmless. */
gboolean store_subs_insert(struct store *st, const struct store_new_sub *subs, guint n, gint64 now,
                           GError **err);
/* As active enrollments at lesson 1. */
gboolean store_enrollments_insert(struct store *st, const struct store_new_enr *enrs, guint n, gint64 now,
                                  GError **err);
/* Returns the largest enrollment id (0 when there is none), or -1. */
gint64 store_enrollments_max_id(struct store *st, GError **err);
/* Begins one large write transaction of about `rows` rows (store_begin
 * with the connection set up for it: a 128 MB page cache, statement
 * journals in memory, foreign keys not checked). The caller keeps the
 * foreign keys true by construction: it writes only rows that name
 * subscribers and enrollments it read or added in the transaction. From
 * 100,000 rows, when no other connection has the database open, the
 * transaction uses SQLite's rollback journal instead of the WAL and holds
 * the database alone. Commit or roll back as usual, then call
 * store_bulk_end (also after a failure here). */
gboolean store_bulk_begin(struct store *st, guint rows, GError **err);
/* Whether the transaction store_bulk_begin opened took the rollback
 * journal (tests/unit/test_store.c checks when it does). */
gboolean store_bulk_alone(const struct store *st);
/* Ends it: rolls the transaction back if it is still open (the caller
 * failed before committing), then sets the connection back (the WAL,
 * SQLite's default cache, foreign keys checked). Accepts NULL. */
void store_bulk_end(struct store *st);
#endif
