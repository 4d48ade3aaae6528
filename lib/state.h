/* state.h - the lifecycle as data: the states of subscribers, enrollments,
 * deliveries and system mails, the events that move them, and the one
 * table of legal transitions (compare Postfix's queue directories or
 * OpenSMTPD's envelope flags). Pure: no I/O, no allocation.
 *
 * store.c writes a state only through this table: every UPDATE of a state
 * column is guarded by the event's set of legal "from" states, so a
 * transition the table does not allow is refused by the database write
 * itself (CD_ERR_STATE), never applied half. lifecycle.c decides which
 * events an outcome or a request causes, and applies all of their
 * consequences in one transaction. */
#ifndef COURSED_STATE_H
#define COURSED_STATE_H
#include <glib.h>

/* The order of each enum is the order of the names in state.c and of the
 * CASE expressions in store.c (tests/unit/test_state.c holds them equal). */
enum sub_state { SUB_PENDING, SUB_ACTIVE, SUB_BOUNCED, SUB_UNSUBSCRIBED, SUB_N_STATES };
enum enr_state { ENR_PENDING, ENR_ACTIVE, ENR_PAUSED, ENR_COMPLETED, ENR_STOPPED, ENR_N_STATES };
enum dlv_state { DLV_QUEUED, DLV_SENDING, DLV_SENT, DLV_DEFERRED, DLV_FAILED, DLV_CANCELLED, DLV_N_STATES };

/* What the state column belongs to. System mails (the outbox) use the
 * delivery states but never 'cancelled'. */
enum state_entity { ENT_SUB, ENT_ENR, ENT_DLV, ENT_MAIL, ENT_N };

/* Why an enrollment is paused or stopped, so that the operator sees it in
 * `status` and `retry` reactivates only what a failure stopped. */
enum enr_reason {
    REASON_NONE,
    REASON_SUBSCRIBER,  /* the person paused or left */
    REASON_OPERATOR,    /* coursectl pause / unenroll */
    REASON_BOUNCED,     /* a hard 5xx or a hard bounce report */
    REASON_POLICY,      /* a 5.7.x refusal or policy bounce */
    REASON_GAVE_UP,     /* still failing after [delivery] give_up */
    REASON_COURSE_GONE, /* the course is no longer loaded */
    REASON_N
};

enum state_event {
    /* subscribers */
    EV_SUB_ACTIVATE, /* confirmed, or enrolled by the operator */
    EV_SUB_BOUNCE,   /* hard bounce: no more mail */
    EV_SUB_LEFT,     /* no course left */
    EV_SUB_REVIVE,   /* the operator retries what bounced */
    /* enrollments */
    EV_ENR_REQUEST, /* a new subscribe request: waits for confirmation */
    EV_ENR_CONFIRM,
    EV_ENR_PAUSE, /* asked for (again: moves the end of the pause) */
    EV_ENR_RESUME,
    EV_ENR_HOLD,     /* the daemon pauses: policy, give-up, course gone */
    EV_ENR_STOP,     /* left, unenrolled, bounced */
    EV_ENR_COMPLETE, /* the last lesson was sent */
    EV_ENR_REOPEN,   /* moved back into a completed course */
    EV_ENR_RESTART,  /* the course again from lesson 1, in a new round */
    EV_ENR_RETRY,    /* the operator retries what a failure stopped */
    EV_ENR_PROGRESS, /* a lesson was sent or skipped: progress, same state */
    /* deliveries */
    EV_DLV_REQUEUE, /* a withdrawn or failed lesson is planned again */
    EV_DLV_CLAIM,
    EV_DLV_UNCLAIM, /* never offered to a server (stopping, recovery) */
    EV_DLV_SENT,
    EV_DLV_DEFER,
    EV_DLV_FAIL,
    EV_DLV_WITHDRAW, /* paused, left, moot, course gone */
    EV_DLV_CANCEL,   /* the operator cancels */
    EV_DLV_RETRY,    /* the operator retries */
    EV_DLV_RESLOT,   /* too late for its slot (late_grace): waits for the next one */
    /* system mails */
    EV_MAIL_CLAIM,
    EV_MAIL_UNCLAIM,
    EV_MAIL_SENT,
    EV_MAIL_DEFER,
    EV_MAIL_FAIL,
    EV_N
};

struct state_transition {
    enum state_event ev;
    enum state_entity ent;
    unsigned from;    /* bit s set: legal from state s */
    int to;           /* the new state */
    const char *name; /* for log lines and errors */
};

/* Returns the row of the table for ev (never NULL for a valid ev). */
const struct state_transition *state_transition(enum state_event ev);
/* TRUE if ev may be applied to an entity in state `from`. */
gboolean state_allows(enum state_event ev, int from);
/* Returns the stored name of state s of ent ("active"), or "?" for a bad
 * value. Static string. */
const char *state_name(enum state_entity ent, int s);
/* Returns the state named `name` for ent, or -1. */
int state_parse(enum state_entity ent, const char *name);
/* Returns the stored name of a reason ("" for none), and back (-1). */
const char *state_reason_name(enum enr_reason r);
int state_reason_parse(const char *name);
/* Returns a sentence for the operator ("paused: the course is no longer
 * loaded"), static. */
const char *state_reason_text(enum enr_reason r);

#endif
