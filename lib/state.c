/* state.c - owns the table of legal transitions and the names of states as
 * they are stored. Everything that moves a state reads this table: the
 * guarded UPDATEs of store.c take their "from" sets from here, and the
 * lifecycle events of lifecycle.c ask state_allows() which rows an event
 * applies to. */
#include <string.h>
#include "state.h"

#define B(s) (1u << (s))

static const char *const names[ENT_N][8] = {
    [ENT_SUB] = { "pending", "active", "bounced", "unsubscribed" },
    [ENT_ENR] = { "pending", "active", "paused", "completed", "stopped" },
    [ENT_DLV] = { "queued", "sending", "sent", "deferred", "failed", "cancelled" },
    [ENT_MAIL] = { "queued", "sending", "sent", "deferred", "failed" },
};
static const int counts[ENT_N] = { SUB_N_STATES, ENR_N_STATES, DLV_N_STATES, DLV_N_STATES - 1 };

/* The one table. A row's "from" set is every state the event may find;
 * anything else is a bug (or a race another transaction won) and is
 * refused. */
static const struct state_transition table[EV_N] = {
    { EV_SUB_ACTIVATE, ENT_SUB, B(SUB_PENDING) | B(SUB_ACTIVE) | B(SUB_BOUNCED) | B(SUB_UNSUBSCRIBED),
      SUB_ACTIVE, "activate subscriber" },
    { EV_SUB_BOUNCE, ENT_SUB, B(SUB_PENDING) | B(SUB_ACTIVE) | B(SUB_BOUNCED), SUB_BOUNCED,
      "mark subscriber bounced" },
    { EV_SUB_LEFT, ENT_SUB, B(SUB_PENDING) | B(SUB_ACTIVE) | B(SUB_UNSUBSCRIBED), SUB_UNSUBSCRIBED,
      "mark subscriber unsubscribed" },
    { EV_SUB_REVIVE, ENT_SUB, B(SUB_BOUNCED) | B(SUB_ACTIVE), SUB_ACTIVE, "revive bounced subscriber" },

    { EV_ENR_REQUEST, ENT_ENR, B(ENR_PENDING) | B(ENR_STOPPED), ENR_PENDING, "request enrollment" },
    { EV_ENR_CONFIRM, ENT_ENR, B(ENR_PENDING), ENR_ACTIVE, "confirm enrollment" },
    { EV_ENR_PAUSE, ENT_ENR, B(ENR_ACTIVE) | B(ENR_PAUSED), ENR_PAUSED, "pause enrollment" },
    { EV_ENR_RESUME, ENT_ENR, B(ENR_PAUSED), ENR_ACTIVE, "resume enrollment" },
    { EV_ENR_HOLD, ENT_ENR, B(ENR_ACTIVE) | B(ENR_PAUSED), ENR_PAUSED, "hold enrollment" },
    { EV_ENR_STOP, ENT_ENR,
      B(ENR_PENDING) | B(ENR_ACTIVE) | B(ENR_PAUSED) | B(ENR_COMPLETED) | B(ENR_STOPPED), ENR_STOPPED,
      "stop enrollment" },
    { EV_ENR_COMPLETE, ENT_ENR, B(ENR_ACTIVE), ENR_COMPLETED, "complete enrollment" },
    { EV_ENR_REOPEN, ENT_ENR, B(ENR_COMPLETED), ENR_ACTIVE, "reopen enrollment" },
    { EV_ENR_RESTART, ENT_ENR, B(ENR_ACTIVE) | B(ENR_PAUSED) | B(ENR_COMPLETED), ENR_ACTIVE,
      "restart enrollment" },
    { EV_ENR_RETRY, ENT_ENR, B(ENR_PAUSED) | B(ENR_STOPPED), ENR_ACTIVE, "retry enrollment" },
    { EV_ENR_PROGRESS, ENT_ENR, B(ENR_ACTIVE), ENR_ACTIVE, "advance enrollment" },

    { EV_DLV_REQUEUE, ENT_DLV, B(DLV_CANCELLED) | B(DLV_FAILED), DLV_QUEUED, "queue lesson again" },
    { EV_DLV_CLAIM, ENT_DLV, B(DLV_QUEUED) | B(DLV_DEFERRED), DLV_SENDING, "claim delivery" },
    { EV_DLV_UNCLAIM, ENT_DLV, B(DLV_SENDING), DLV_QUEUED, "give back delivery" },
    { EV_DLV_SENT, ENT_DLV, B(DLV_SENDING), DLV_SENT, "record delivery sent" },
    { EV_DLV_DEFER, ENT_DLV, B(DLV_SENDING), DLV_DEFERRED, "record delivery deferred" },
    { EV_DLV_FAIL, ENT_DLV, B(DLV_SENDING), DLV_FAILED, "record delivery failed" },
    { EV_DLV_WITHDRAW, ENT_DLV, B(DLV_QUEUED) | B(DLV_DEFERRED), DLV_CANCELLED, "withdraw delivery" },
    { EV_DLV_CANCEL, ENT_DLV, B(DLV_QUEUED) | B(DLV_DEFERRED) | B(DLV_FAILED), DLV_CANCELLED,
      "cancel delivery" },
    { EV_DLV_RETRY, ENT_DLV, B(DLV_FAILED) | B(DLV_DEFERRED), DLV_QUEUED, "retry delivery" },
    { EV_DLV_RESLOT, ENT_DLV, B(DLV_QUEUED) | B(DLV_DEFERRED), DLV_DEFERRED,
      "move delivery to a later slot" },

    { EV_MAIL_CLAIM, ENT_MAIL, B(DLV_QUEUED) | B(DLV_DEFERRED), DLV_SENDING, "claim system mail" },
    { EV_MAIL_UNCLAIM, ENT_MAIL, B(DLV_SENDING), DLV_QUEUED, "give back system mail" },
    { EV_MAIL_SENT, ENT_MAIL, B(DLV_SENDING), DLV_SENT, "record system mail sent" },
    { EV_MAIL_DEFER, ENT_MAIL, B(DLV_SENDING), DLV_DEFERRED, "record system mail deferred" },
    { EV_MAIL_FAIL, ENT_MAIL, B(DLV_SENDING), DLV_FAILED, "record system mail failed" },
};

const struct state_transition *state_transition(enum state_event ev)
{
    g_return_val_if_fail(ev < EV_N && table[ev].ev == ev, &table[0]);
    return &table[ev];
}

gboolean state_allows(enum state_event ev, int from)
{
    return from >= 0 && from < 32 && (state_transition(ev)->from & B(from)) != 0;
}

const char *state_name(enum state_entity ent, int s)
{
    if (ent >= ENT_N || s < 0 || s >= counts[ent])
        return "?";
    return names[ent][s];
}

int state_parse(enum state_entity ent, const char *name)
{
    for (int s = 0; name && ent < ENT_N && s < counts[ent]; s++)
        if (strcmp(names[ent][s], name) == 0)
            return s;
    return -1;
}

static const char *const reasons[REASON_N] = {
    "", "subscriber", "operator", "bounced", "policy", "gave-up", "course-gone",
};
static const char *const reason_texts[REASON_N] = {
    "",
    "at the subscriber's request",
    "by the operator",
    "the address bounced (hard)",
    "refused by the recipient's server for policy (5.7.x); look into it, then 'coursectl retry'",
    "delivery kept failing until [delivery] give_up; 'coursectl retry' sends it again",
    "the course is not loaded; it resumes when the course is back and coursed reloads",
};

const char *state_reason_name(enum enr_reason r)
{
    return r < REASON_N ? reasons[r] : "";
}

int state_reason_parse(const char *name)
{
    for (int r = 0; name && r < REASON_N; r++)
        if (strcmp(reasons[r], name) == 0)
            return r;
    return name && *name ? -1 : REASON_NONE;
}

const char *state_reason_text(enum enr_reason r)
{
    return r < REASON_N ? reason_texts[r] : "";
}
