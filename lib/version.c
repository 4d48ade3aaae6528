/* version.c - owns the versions of a course and the rules of what an edit
 * does to the people already in it (docs/course-edits.md):
 *   - a lesson is its slug; its number is only its position;
 *   - nobody gets a lesson twice because of an edit (every lesson they had,
 *     or skipped, keeps its row, renumbered to its new position or, if it
 *     was removed, to -id);
 *   - nobody loses a lesson still ahead of them: the lessons owed are those
 *     of the old version they had not had, wherever the edit put them,
 *     plus new lessons inserted ahead of the furthest one they had;
 *   - a lesson inserted behind them is skipped (a 'skipped' marker) unless
 *     the course says on_insert_behind = send; after completing a course,
 *     new lessons reach them only with completed_get_new = true.
 * One function, plan_enrollment(), decides this for one enrollment; the
 * preview (`course plan`) and the daemon's apply both use it. */
#include <string.h>
#include "version.h"
#include "error.h"
#include "lifecycle.h"
#include "lock.h"
#include "log.h"
#include "store.h"

/* ------------------------------------------------------------ the texts */

static char *lesson_hash(const struct lesson *l)
{
    GChecksum *h = g_checksum_new(G_CHECKSUM_SHA256);
    g_checksum_update(h, (const guchar *)l->subject, (gssize)strlen(l->subject));
    g_checksum_update(h, (const guchar *)"\n", 1);
    g_checksum_update(h, (const guchar *)l->body, (gssize)strlen(l->body));
    char *out = g_strdup(g_checksum_get_string(h));
    g_checksum_free(h);
    return out;
}

char *version_fingerprint(const struct course *c)
{
    GString *out = g_string_new(NULL);
    for (int i = 0; i < c->n_lessons; i++) {
        char *h = lesson_hash(&c->lessons[i]);
        g_string_append_printf(out, "%s %s\n", c->lessons[i].slug, h);
        g_free(h);
    }
    return g_string_free(out, FALSE);
}

/* The lessons of a stored version: slugs[i] and hashes[i], i < *n. */
struct vlist {
    int n;
    char **slugs, **hashes;
};

static void vlist_clear(struct vlist *v)
{
    for (int i = 0; i < v->n; i++) {
        g_free(v->slugs[i]);
        g_free(v->hashes[i]);
    }
    g_free(v->slugs);
    g_free(v->hashes);
    memset(v, 0, sizeof *v);
}

static void vlist_parse(const char *text, struct vlist *v)
{
    char **lines = g_strsplit(text ? text : "", "\n", -1);
    int n = 0;
    for (char **l = lines; *l; l++)
        n += **l != '\0';
    v->slugs = g_new0(char *, n + 1);
    v->hashes = g_new0(char *, n + 1);
    v->n = 0;
    for (char **l = lines; *l; l++) {
        if (!**l)
            continue;
        char *sp = strchr(*l, ' ');
        v->slugs[v->n] = sp ? g_strndup(*l, (gsize)(sp - *l)) : g_strdup(*l);
        v->hashes[v->n] = g_strdup(sp ? sp + 1 : "");
        v->n++;
    }
    g_strfreev(lines);
}

static int vlist_find(const struct vlist *v, const char *slug)
{
    for (int i = 0; i < v->n; i++)
        if (strcmp(v->slugs[i], slug) == 0)
            return i + 1;
    return 0;
}

static int course_find_slug(const struct course *c, const char *slug)
{
    for (int i = 0; i < c->n_lessons; i++)
        if (strcmp(c->lessons[i].slug, slug) == 0)
            return i + 1;
    return 0;
}

/* ------------------------------------------------------ one enrollment */

enum fate { F_OWED, F_INFLIGHT, F_HAD, F_SKIP_BEHIND, F_SKIP_DONE, F_NEW };

struct enr_plan {
    enum fate *fate;   /* per new position, [1..n] */
    int pointer;       /* the new next_lesson (n + 1: none left) */
    int owed_before;   /* lessons still to come in the old version */
    int owed_after;    /* ... and in the new one */
    gboolean withdraw; /* the lesson in flight was removed: not sent */
    gint64 withdraw_slot;
    gint64 drop_row; /* a withdrawn pointer row the edit no longer puts next */
    enum { A_NONE, A_COMPLETE, A_REOPEN } action;
    gboolean touched; /* the lessons still to come changed */
    const char *was_next, *now_next;
};

static gboolean in_flight(enum dlv_state s)
{
    return s == DLV_QUEUED || s == DLV_SENDING || s == DLV_DEFERRED;
}

/* Decides, for enrollment e with delivery rows marks (slugs filled) and
 * the old version old, what the new course c means for it. Pure. */
static void plan_enrollment(const struct vlist *old, const struct course *c, const struct enrollment_row *e,
                            GPtrArray *marks, struct enr_plan *p)
{
    int n = c->n_lessons;
    p->fate = g_new0(enum fate, n + 2);
    GHashTable *row_of = g_hash_table_new(g_str_hash, g_str_equal);
    for (guint i = 0; i < marks->len; i++) {
        struct store_mark *m = marks->pdata[i];
        if (m->slug)
            g_hash_table_insert(row_of, m->slug, m);
    }
    const char *ptr_slug = e->next_lesson >= 1 && e->next_lesson <= old->n ? old->slugs[e->next_lesson - 1]
                                                                           : NULL;
    struct store_mark *ptr_row = ptr_slug ? g_hash_table_lookup(row_of, ptr_slug) : NULL;
    gboolean inflight = ptr_row && in_flight(ptr_row->state);
    /* the pointer's own row, withdrawn by a pause or a failure, is still owed */
    gboolean ptr_owed = ptr_slug && !inflight;
    p->was_next = ptr_slug;
    for (int q = 1; q <= old->n; q++) {
        const char *s = old->slugs[q - 1];
        p->owed_before += (q == e->next_lesson) || !g_hash_table_contains(row_of, s);
    }
    int furthest = 0;
    for (int k = 1; k <= n; k++) {
        const char *s = c->lessons[k - 1].slug;
        gboolean is_ptr = ptr_slug && strcmp(s, ptr_slug) == 0;
        if (is_ptr && inflight)
            p->fate[k] = F_INFLIGHT;
        else if (is_ptr && ptr_owed)
            p->fate[k] = F_OWED;
        else if (g_hash_table_contains(row_of, s))
            p->fate[k] = F_HAD;
        else if (vlist_find(old, s))
            p->fate[k] = F_OWED;
        else
            p->fate[k] = F_NEW;
        if (p->fate[k] == F_HAD || p->fate[k] == F_INFLIGHT)
            furthest = k;
    }
    for (int k = 1; k <= n; k++) {
        if (p->fate[k] != F_NEW)
            continue;
        if (e->state == ENR_COMPLETED)
            /* reopened only for someone still with us: a person who left
             * every course, or whose address bounced, keeps it finished */
            p->fate[k] = c->completed_get_new && e->sub_status == SUB_ACTIVE && k > furthest ? F_OWED
                                                                                             : F_SKIP_DONE;
        else if (k > furthest || c->insert_behind_send)
            p->fate[k] = F_OWED;
        else
            p->fate[k] = F_SKIP_BEHIND;
    }
    p->pointer = n + 1;
    for (int k = 1; k <= n; k++)
        if (p->fate[k] == F_INFLIGHT)
            p->pointer = k;
    if (p->pointer == n + 1)
        for (int k = 1; k <= n; k++)
            if (p->fate[k] == F_OWED) {
                p->pointer = k;
                break;
            }
    for (int k = 1; k <= n; k++)
        p->owed_after += p->fate[k] == F_OWED || p->fate[k] == F_INFLIGHT;
    if (inflight && !course_find_slug(c, ptr_slug)) {
        p->withdraw = TRUE;
        p->withdraw_slot = ptr_row->slot_at;
    }
    if (ptr_row && ptr_owed && !ptr_row->skipped &&
        (ptr_row->state == DLV_CANCELLED || ptr_row->state == DLV_FAILED) &&
        course_find_slug(c, ptr_slug) != p->pointer)
        p->drop_row = ptr_row->id;
    p->now_next = p->pointer <= n ? c->lessons[p->pointer - 1].slug : NULL;
    if (e->state == ENR_ACTIVE && p->owed_after == 0)
        p->action = A_COMPLETE;
    else if (e->state == ENR_COMPLETED && p->owed_after > 0)
        p->action = A_REOPEN;
    /* touched: what is still to come is not the same list of lessons */
    GString *before = g_string_new(NULL), *after = g_string_new(NULL);
    for (int q = 1; q <= old->n; q++)
        if (q == e->next_lesson || !g_hash_table_contains(row_of, old->slugs[q - 1]))
            g_string_append_printf(before, "%s ", old->slugs[q - 1]);
    for (int k = 1; k <= n; k++)
        if (p->fate[k] == F_OWED || p->fate[k] == F_INFLIGHT)
            g_string_append_printf(after, "%s ", c->lessons[k - 1].slug);
    p->touched = strcmp(before->str, after->str) != 0 || p->withdraw;
    g_string_free(before, TRUE);
    g_string_free(after, TRUE);
    g_hash_table_unref(row_of);
}

/* --------------------------------------------------------------- diff */

/* A short line diff (at most 12 lines) of two texts: the lines only in a
 * ("- ") and only in b ("+ "), in order, by a longest common subsequence. */
static char *text_diff(const char *a, const char *b)
{
    char **x = g_strsplit(a, "\n", -1), **y = g_strsplit(b, "\n", -1);
    int n = (int)g_strv_length(x), m = (int)g_strv_length(y);
    if ((gint64)n * m > 4000000) { /* bounded: a whole book would be silly here */
        g_strfreev(x);
        g_strfreev(y);
        return g_strdup("  (the text changed throughout)\n");
    }
    /* L[i][j]: the longest common run of x[i..] and y[j..]; indices are
     * unsigned and counted down to 0, so none is ever below the block */
    gsize rows = (gsize)n + 1, cols = (gsize)m + 1;
    int *L = g_new0(int, rows *cols);
#define AT(i, j) L[(gsize)(i)*cols + (gsize)(j)]
    for (gsize ii = (gsize)n; ii-- > 0;)
        for (gsize jj = (gsize)m; jj-- > 0;)
            AT(ii, jj) = strcmp(x[ii], y[jj]) == 0 ? AT(ii + 1, jj + 1) + 1
                                                   : MAX(AT(ii + 1, jj), AT(ii, jj + 1));
    GString *out = g_string_new(NULL);
    int shown = 0, more = 0;
    int i = 0, j = 0;
    while (i < n || j < m) {
        if (i < n && j < m && strcmp(x[i], y[j]) == 0) {
            i++, j++;
        } else if (j < m && (i == n || AT(i, j + 1) > AT(i + 1, j))) { /* a tie: "-" first, as diff does */
            if (shown++ < 12)
                g_string_append_printf(out, "  + %s\n", y[j]);
            else
                more++;
            j++;
        } else {
            if (shown++ < 12)
                g_string_append_printf(out, "  - %s\n", x[i]);
            else
                more++;
            i++;
        }
    }
#undef AT
    if (more)
        g_string_append_printf(out, "  (%d more changed lines)\n", more);
    g_free(L);
    g_strfreev(x);
    g_strfreev(y);
    return g_string_free(out, FALSE);
}

static void change_free(gpointer p)
{
    struct version_change *ch = p;
    g_free(ch->slug);
    g_free(ch->old_slug);
    g_free(ch->diff);
    g_free(ch);
}

static struct version_change *change_new(enum version_change_kind k, const char *slug, int old_pos,
                                         int new_pos)
{
    struct version_change *ch = g_new0(struct version_change, 1);
    ch->kind = k;
    ch->slug = g_strdup(slug);
    ch->old_pos = old_pos;
    ch->new_pos = new_pos;
    return ch;
}

/* The old text of a lesson as "Subject: ...\n\nbody", or NULL if unknown. */
static char *old_text(struct app *app, const char *hash)
{
    char *subject = NULL, *body = NULL;
    GError *e = NULL;
    if (!store_text_get(app->st, hash, &subject, &body, &e)) {
        g_clear_error(&e);
        return NULL;
    }
    char *t = subject ? g_strdup_printf("Subject: %s\n\n%s", subject, body) : NULL;
    g_free(subject);
    g_free(body);
    return t;
}

/* The common lessons out of their old relative order: those not on a
 * longest increasing run of old positions (taken in the new order). */
static void moved_lessons(const struct vlist *old, const struct course *c, GPtrArray *changes)
{
    int n = c->n_lessons;
    int *oldpos = g_new0(int, n + 1), *len = g_new0(int, n + 1), *prev = g_new0(int, n + 1);
    gboolean *keep = g_new0(gboolean, n + 1);
    int best = 0;
    for (int k = 1; k <= n; k++) {
        oldpos[k] = vlist_find(old, c->lessons[k - 1].slug);
        if (!oldpos[k])
            continue;
        len[k] = 1;
        for (int j = 1; j < k; j++)
            if (oldpos[j] && oldpos[j] < oldpos[k] && len[j] + 1 > len[k]) {
                len[k] = len[j] + 1;
                prev[k] = j;
            }
        if (!best || len[k] > len[best])
            best = k;
    }
    for (int k = best; k; k = prev[k])
        keep[k] = TRUE;
    for (int k = 1; k <= n; k++)
        if (oldpos[k] && !keep[k])
            g_ptr_array_add(changes, change_new(VC_MOVED, c->lessons[k - 1].slug, oldpos[k], k));
    g_free(oldpos);
    g_free(len);
    g_free(prev);
    g_free(keep);
}

/* The same text under another name: the whole text, or the body alone
 * (a subject often names the lesson). */
static gboolean same_body(struct app *app, const char *old_hash, const char *hash, const struct lesson *l)
{
    if (strcmp(old_hash, hash) == 0)
        return TRUE;
    char *subject = NULL, *body = NULL;
    GError *e = NULL;
    gboolean same = store_text_get(app->st, old_hash, &subject, &body, &e) && body && !strcmp(body, l->body);
    g_clear_error(&e);
    g_free(subject);
    g_free(body);
    return same;
}

static GPtrArray *diff_versions(struct app *app, const struct vlist *old, const struct course *c)
{
    GPtrArray *changes = g_ptr_array_new_with_free_func(change_free);
    for (int q = 1; q <= old->n; q++)
        if (!course_find_slug(c, old->slugs[q - 1]))
            g_ptr_array_add(changes, change_new(VC_REMOVED, old->slugs[q - 1], q, 0));
    for (int k = 1; k <= c->n_lessons; k++) {
        const struct lesson *l = &c->lessons[k - 1];
        int q = vlist_find(old, l->slug);
        char *h = lesson_hash(l);
        if (!q) {
            /* a removed lesson with the same text: renamed, which makes it
             * a new lesson (docs/course-edits.md) */
            struct version_change *ch = change_new(VC_ADDED, l->slug, 0, k);
            for (int r = 0; r < old->n && !ch->old_slug; r++)
                if (!course_find_slug(c, old->slugs[r]) && same_body(app, old->hashes[r], h, l)) {
                    ch->kind = VC_RENAMED;
                    ch->old_slug = g_strdup(old->slugs[r]);
                    ch->old_pos = r + 1;
                }
            g_ptr_array_add(changes, ch);
        } else if (strcmp(old->hashes[q - 1], h) != 0) {
            struct version_change *ch = change_new(VC_EDITED, l->slug, q, k);
            char *was = old_text(app, old->hashes[q - 1]);
            char *now = g_strdup_printf("Subject: %s\n\n%s", l->subject, l->body);
            ch->diff = was ? text_diff(was, now) : g_strdup("  (the earlier text is not kept)\n");
            g_free(was);
            g_free(now);
            g_ptr_array_add(changes, ch);
        }
        g_free(h);
    }
    moved_lessons(old, c, changes);
    return changes;
}

/* --------------------------------------------------------------- plan */

void version_plan_free(struct version_plan *p)
{
    if (!p)
        return;
    g_free(p->course);
    if (p->changes)
        g_ptr_array_unref(p->changes);
    g_free(p->lessons);
    if (p->samples)
        g_ptr_array_unref(p->samples);
    g_free(p);
}

static void sample_free(gpointer p)
{
    struct version_sample *s = p;
    g_free(s->email);
    g_free(s->next_slug);
    g_free(s);
}

/* Rows of e with their slugs; a row from before versions has none and is
 * named by its position in the old version. */
static GPtrArray *marks_of(struct app *app, const struct vlist *old, gint64 enr_id, GError **err)
{
    GPtrArray *marks = store_marks(app->st, enr_id, err);
    for (guint i = 0; marks && i < marks->len; i++) {
        struct store_mark *m = marks->pdata[i];
        if (!m->slug && m->lesson >= 1 && m->lesson <= old->n)
            m->slug = g_strdup(old->slugs[m->lesson - 1]);
    }
    return marks;
}

static void tally(struct version_plan *vp, const struct enrollment_row *e, const struct enr_plan *p)
{
    for (int k = 1; k <= vp->n_lessons; k++) {
        struct version_lesson_plan *lp = &vp->lessons[k - 1];
        switch (p->fate[k]) {
        case F_OWED:
        case F_INFLIGHT:
            if (e->state == ENR_STOPPED)
                break;
            if (k == p->pointer)
                lp->next++;
            else
                lp->later++;
            break;
        case F_HAD: lp->had++; break;
        case F_SKIP_BEHIND: lp->skip_behind++; break;
        case F_SKIP_DONE: lp->skip_done++; break;
        case F_NEW: break;
        }
    }
    vp->touched += p->touched;
    vp->earlier += p->touched && p->owed_after < p->owed_before;
    vp->later_end += p->touched && p->owed_after > p->owed_before;
    vp->reopened += p->action == A_REOPEN;
    vp->completed += p->action == A_COMPLETE;
    vp->withdrawn += p->withdraw;
    if (p->touched && vp->samples->len < 5) {
        struct version_sample *s = g_new0(struct version_sample, 1);
        s->email = g_strdup(e->email);
        s->next_slug = g_strdup(p->now_next);
        s->next_at = e->state == ENR_ACTIVE && !p->withdraw ? e->next_send_at : 0;
        if (p->withdraw)
            s->next_at = p->withdraw_slot;
        g_ptr_array_add(vp->samples, s);
    }
}

static struct version_plan *plan_new(const struct course *c, int running)
{
    struct version_plan *vp = g_new0(struct version_plan, 1);
    vp->course = g_strdup(c->slug);
    vp->running = running;
    vp->n_lessons = c->n_lessons;
    vp->lessons = g_new0(struct version_lesson_plan, c->n_lessons);
    for (int k = 1; k <= c->n_lessons; k++) {
        vp->lessons[k - 1].pos = k;
        vp->lessons[k - 1].slug = c->lessons[k - 1].slug;
    }
    vp->samples = g_ptr_array_new_with_free_func(sample_free);
    return vp;
}

/* Plans (and with apply, applies) course c against its stored version. */
static struct version_plan *plan_course(struct app *app, const struct course *c, gboolean apply, gint64 now,
                                        GError **err);

struct version_plan *version_plan(struct app *app, const struct course *c, gint64 now, GError **err)
{
    return plan_course(app, c, FALSE, now, err);
}

/* -------------------------------------------------------------- apply */

static gboolean apply_enrollment(struct app *app, const struct course *c, int version,
                                 const struct enrollment_row *e, GPtrArray *marks, const struct enr_plan *p,
                                 gint64 now, GError **err)
{
    /* Rows to their new positions: those that move go to -id first, so
     * that no two rows of one enrollment ever share a position. */
    for (guint pass = 0; pass < 2; pass++)
        for (guint i = 0; i < marks->len; i++) {
            struct store_mark *m = marks->pdata[i];
            int to = m->slug ? course_find_slug(c, m->slug) : 0;
            if (to == 0)
                to = (int)-m->id;
            if (to == m->lesson)
                continue;
            if (!store_mark_place(app->st, m->id, pass == 0 ? (int)-m->id : to, err))
                return FALSE;
        }
    for (int k = 1; k <= c->n_lessons; k++)
        if ((p->fate[k] == F_SKIP_BEHIND || p->fate[k] == F_SKIP_DONE) &&
            !store_mark_skip(app->st, e->id, k, c->lessons[k - 1].slug, err))
            return FALSE;
    if (p->withdraw && store_dlv_withdraw(app->st, e->id, "lesson removed from the course", err) < 0)
        return FALSE;
    if (p->drop_row && !store_mark_drop(app->st, p->drop_row, err))
        return FALSE;
    gboolean set_next = p->withdraw && e->state == ENR_ACTIVE;
    if ((p->pointer != e->next_lesson || set_next || p->touched) &&
        !store_enr_repoint(app->st, e->id, p->pointer, p->withdraw_slot, set_next, now, err))
        return FALSE;
    if (p->action == A_COMPLETE) {
        struct enr_change ch = { .set_next = TRUE };
        if (!store_enr_apply(app->st, e->id, EV_ENR_COMPLETE, &ch, now, err))
            return FALSE;
    } else if (p->action == A_REOPEN) {
        gint64 slot = life_slot_after(app, c, e->id, e->tz, e->anchor_at, now, err);
        if (slot == -2)
            return FALSE;
        struct enr_change ch = { .set_next = TRUE, .next_send_at = slot > 0 ? slot : 0, .replan = TRUE };
        if (!store_enr_apply(app->st, e->id, EV_ENR_REOPEN, &ch, now, err))
            return FALSE;
    }
    if (!p->touched) /* renumbered only: what comes next is the same */
        return TRUE;
    char *detail = g_strdup_printf("%s v%d: next %s (was %s); %d still to come (was %d)%s", c->slug, version,
                                   p->now_next ? p->now_next : "none", p->was_next ? p->was_next : "none",
                                   p->owed_after, p->owed_before,
                                   p->action == A_COMPLETE ? "; completed"
                                   : p->action == A_REOPEN ? "; reopened"
                                   : p->withdraw           ? "; the lesson in flight was removed"
                                                           : "");
    gboolean ok = store_event(app->st, now, e->subscriber_id, e->id, "version", "daemon", detail, err);
    g_free(detail);
    return ok;
}

static gboolean keep_texts(struct app *app, const struct course *c, GError **err)
{
    for (int i = 0; i < c->n_lessons; i++) {
        char *h = lesson_hash(&c->lessons[i]);
        gboolean ok = store_text_put(app->st, h, c->lessons[i].subject, c->lessons[i].body, err);
        g_free(h);
        if (!ok)
            return FALSE;
    }
    return TRUE;
}

static struct version_plan *plan_course(struct app *app, const struct course *c, gboolean apply, gint64 now,
                                        GError **err)
{
    struct store_version *sv = store_version_latest(app->st, c->slug, err);
    if (!sv && err && *err)
        return NULL;
    char *fp = version_fingerprint(c);
    struct vlist old = { 0 };
    /* No version yet: the files are taken as what ran (the rows are
     * positions of them). */
    vlist_parse(sv ? sv->lessons : fp, &old);
    struct version_plan *vp = plan_new(c, sv ? sv->version : 0);
    vp->changed = sv && strcmp(sv->lessons, fp) != 0;
    vp->changes = sv ? diff_versions(app, &old, c) : g_ptr_array_new_with_free_func(change_free);
    /* Only a change is planned: an unchanged course (every start and
     * SIGHUP) costs its hashes and one query, not a read of its people. */
    GPtrArray *es = vp->changed ? store_course_enrollments(app->st, c->slug, -1, err)
                                : g_ptr_array_new_with_free_func((GDestroyNotify)store_enrollment_free);
    gboolean ok = es != NULL;
    int version = (sv ? sv->version : 0) + 1;
    for (guint i = 0; ok && i < es->len; i++) {
        const struct enrollment_row *e = es->pdata[i];
        GPtrArray *marks = marks_of(app, &old, e->id, err);
        if (!marks) {
            ok = FALSE;
            break;
        }
        struct enr_plan p = { 0 };
        plan_enrollment(&old, c, e, marks, &p);
        tally(vp, e, &p);
        if (apply)
            ok = apply_enrollment(app, c, version, e, marks, &p, now, err);
        g_free(p.fate);
        g_ptr_array_unref(marks);
    }
    vp->enrollments = es ? (int)es->len : 0;
    if (ok && !vp->changed) {
        int n = store_course_count(app->st, c->slug, err);
        ok = n >= 0;
        vp->enrollments = n;
    }
    if (ok && apply && !sv)
        for (int k = 1; ok && k <= c->n_lessons; k++)
            ok = store_fill_slugs(app->st, c->slug, k, c->lessons[k - 1].slug, err);
    if (ok && apply && (!sv || vp->changed)) {
        GString *summary = g_string_new(NULL);
        if (sv)
            version_plan_summary(vp, summary);
        ok = keep_texts(app, c, err) &&
             (vp->running = store_version_add(app->st, c->slug, fp, summary->str, now, err)) > 0;
        g_string_free(summary, TRUE);
    }
    if (es)
        g_ptr_array_unref(es);
    vlist_clear(&old);
    g_free(fp);
    store_version_free(sv);
    if (!ok) {
        version_plan_free(vp);
        return NULL;
    }
    return vp;
}

/* Active enrollments of a course no longer loaded: held (once, here,
 * rather than one log line per due lesson); held ones of a course that is
 * back: resumed. */
static gboolean gone_and_back(struct app *app, const char *slug, gboolean loaded, gint64 now, GError **err)
{
    /* the (course, state) index: the held ones, or the active ones */
    GPtrArray *es = store_course_enrollments(app->st, slug, loaded ? ENR_PAUSED : ENR_ACTIVE, err);
    if (!es)
        return FALSE;
    int n = 0;
    gboolean ok = TRUE;
    for (guint i = 0; ok && i < es->len; i++) {
        const struct enrollment_row *e = es->pdata[i];
        if (!loaded && e->state == ENR_ACTIVE) {
            ok = life_course_gone(app, e->id, e->subscriber_id, 0, now, err);
            n++;
        } else if (loaded && e->state == ENR_PAUSED && e->reason == REASON_COURSE_GONE) {
            ok = life_resume(app, e, "daemon", now, err);
            n++;
        }
    }
    if (ok && n)
        log_warn("operator: course '%s' is %s: %d enrollment%s %s", slug, loaded ? "back" : "not loaded", n,
                 n == 1 ? "" : "s", loaded ? "resumed" : "paused until it is back");
    g_ptr_array_unref(es);
    return ok;
}

gboolean version_sync(struct app *app, gint64 now, GString *report, GError **err)
{
    /* coursed calls this between ticks, when nothing is on the wire: a row
     * still 'sending' was left so by a crash, and is queued again first,
     * as the next tick would, so that an edit removing its lesson withdraws
     * it like any lesson in flight (left 'sending', it stayed in flight at
     * a position outside the course beside a new slot). Not while a tick's
     * outcomes wait to be written: the rows they name were sent. */
    if (!app->unrecorded || app->unrecorded->len == 0) {
        int orphans = store_recover_sending(app->st, err);
        if (orphans < 0)
            return FALSE;
        /* The lock file says whether the run before stopped cleanly
         * (lock.c): a SIGTERM that abandoned sessions after stop_timeout
         * is not a crash, and the log must not say it is. */
        if (orphans > 0 && lock_clean_stop())
            log_warn(
                "queued again %d deliveries the last stop left in flight (abandoned after [coursed] "
                "stop_timeout: a recipient may get one twice)",
                orphans);
        else if (orphans > 0)
            log_warn("recovered %d deliveries a crash left in 'sending'; queued again", orphans);
    }
    for (guint i = 0; i < app->courses->len; i++) {
        const struct course *c = app->courses->pdata[i];
        if (!store_begin(app->st, err))
            return FALSE;
        struct version_plan *vp = plan_course(app, c, TRUE, now, err);
        gboolean ok = vp && gone_and_back(app, c->slug, TRUE, now, err) && store_commit(app->st, err);
        if (!ok) {
            store_rollback(app->st);
            version_plan_free(vp);
            return FALSE;
        }
        if (vp->changed) {
            GString *s = g_string_new(NULL);
            version_plan_summary(vp, s);
            log_info("course %s: version %d applied\n%s", c->slug, vp->running, s->str);
            if (report)
                g_string_append_printf(report, "course %s: version %d applied\n%s", c->slug, vp->running,
                                       s->str);
            g_string_free(s, TRUE);
        }
        version_plan_free(vp);
    }
    GPtrArray *known = store_version_courses(app->st, err);
    if (!known)
        return FALSE;
    gboolean ok = TRUE;
    for (guint i = 0; ok && i < known->len; i++)
        if (!course_find(app->courses, known->pdata[i]))
            ok = gone_and_back(app, known->pdata[i], FALSE, now, err);
    g_ptr_array_unref(known);
    return ok;
}

/* ------------------------------------------------------------ summary */

static const char *kind_name(enum version_change_kind k)
{
    static const char *names[] = { "added", "removed", "moved", "edited", "renamed" };
    return names[k];
}

void version_plan_summary(const struct version_plan *p, GString *out)
{
    if (!p->changed) {
        g_string_append_printf(out, "  %s: unchanged (version %d)\n", p->course, p->running);
        return;
    }
    for (guint i = 0; i < p->changes->len; i++) {
        const struct version_change *ch = p->changes->pdata[i];
        if (ch->kind == VC_RENAMED)
            g_string_append_printf(out, "  renamed %s -> %s (lesson %d; a new lesson)\n", ch->old_slug,
                                   ch->slug, ch->new_pos);
        else if (ch->kind == VC_REMOVED)
            g_string_append_printf(out, "  removed %s (was lesson %d)\n", ch->slug, ch->old_pos);
        else if (ch->kind == VC_ADDED)
            g_string_append_printf(out, "  added %s (lesson %d)\n", ch->slug, ch->new_pos);
        else
            g_string_append_printf(out, "  %s %s (lesson %d, was %d)\n", kind_name(ch->kind), ch->slug,
                                   ch->new_pos, ch->old_pos);
    }
    g_string_append_printf(out,
                           "  %d enrolled, %d touched: %d finish with fewer lessons to come, %d with more,"
                           " %d completed now, %d reopened, %d lesson%s in flight withdrawn\n",
                           p->enrollments, p->touched, p->earlier, p->later_end, p->completed, p->reopened,
                           p->withdrawn, p->withdrawn == 1 ? "" : "s");
}
