/*
 * failover.c - the backend of a client configured with several servers
 * (one cluster, ARCHITECTURE section 11): each server is reached through
 * a remote backend of its own (remote.c, one server each), and this file
 * makes them one HSM for the caller.
 *
 * - server_spread = application (the default): every session of the
 *   application goes to one server, the primary (applications start on
 *   different ones, by process id), so that all its sessions see its
 *   session objects, as PKCS#11 wants. server_spread = sessions: a new
 *   session goes to the next server, round robin, that answers. Either
 *   way every call of a session (a multi-part operation, a find) goes to
 *   that session's server.
 * - Calls without a session (login, users, management) go to the primary
 *   server: the first that answered, or the next one once it is gone.
 * - The login is made with the password on the primary; a login ticket
 *   (hsm.h) is fetched at once and redeemed on every other server a
 *   session lands on. The password is never kept; the ticket is kept in
 *   a page of our own that no core dump holds and a forked child reads
 *   as zeros, and is wiped at logout and close.
 * - A server dies (its connection is lost, or a call passes call_timeout):
 *   the call in flight answers CKR_DEVICE_ERROR, and the next call of each
 *   of its sessions moves that session to a server that answers: a new
 *   session there with the same flags under the application's same
 *   session id, logged in with the ticket. What the old session held on
 *   that server is gone: its operations (a continuing C_SignUpdate
 *   answers CKR_OPERATION_NOT_INITIALIZED), its context login and the
 *   session objects made on that server. A ticket the new server refuses
 *   (password changed, user deleted or locked, expired, tickets off)
 *   leaves the moved session logged out.
 * - Token object ids are global (every server of one cluster, or of one
 *   store, gives a key the same id). Session object ids are not: each
 *   server numbers its own. Here a session object id carries its server
 *   and that connection's generation in bits 48-62 (the core's session ids
 *   use bit 63 and a small counter), so that a handle of another server's
 *   session object (or of a connection that died) is refused
 *   (CKR_OBJECT_HANDLE_INVALID, CKR_KEY_HANDLE_INVALID ...) instead of
 *   naming another object that happens to have the same number. A
 *   session object is therefore usable only from sessions on the server
 *   that made it.
 * - While no server answers, calls answer CKR_DEVICE_REMOVED and the
 *   sessions stay; once one is back they move there. The connection is
 *   never "lost" for the caller (backend_conn_lost is false): the login
 *   survives in the ticket, at most login_ticket_lifetime.
 *
 * Locking: fo_conn.mu guards the links, the session table and the ticket.
 * Calls themselves run without it; a call holds a reference on its link,
 * so a link that dies meanwhile is closed only once its last call and
 * session let go. Connecting to a server runs without mu (a stopped
 * server holds the connect up to its bound; the other servers' calls go
 * on meanwhile, and other threads skip that server); the ticket's
 * redemption on a new connection, opening a session to move one there,
 * and carrying a new login to the others are calls made under mu (rare,
 * each bounded by call_timeout).
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend_impl.h"
#include "common/log.h"
#include "common/mechparam.h"
#include "common/util.h"

/* A server whose connection failed is not tried again for this long,
 * doubled at each failure in a row up to FO_RETRY_MAX_NS (unless no
 * other server answers): a stopped server costs a connect bound now and
 * then, not on every call. */
#define FO_RETRY_NS (1000ull * 1000ull * 1000ull)
#define FO_RETRY_MAX_NS (30ull * FO_RETRY_NS)

/* Session object ids: bits 48-62 name the link (server and generation). */
#define FO_TAG_SHIFT 48
#define FO_TAG_MASK (UINT64_C(0x7fff) << FO_TAG_SHIFT)
#define FO_SERVER_BITS 3
#define FO_EPOCH_MASK 0xfffu

_Static_assert(CONFIG_ENDPOINTS_MAX <= (1 << FO_SERVER_BITS),
               "a server index fits the tag");

/* One connection to one server. */
struct fo_link {
    backend_conn_t *c;
    size_t m;       /* the server */
    unsigned epoch; /* which connection to that server */
    unsigned refs;  /* calls under way, sessions on it, the current slot */
    bool dead;      /* answered CKR_DEVICE_REMOVED or found lost */
    bool logged_in; /* the application's login stands on it */
};

struct fo_sess {
    hsm_sid_t vsid; /* the caller's; 0: free slot */
    bool rw;
    struct fo_link *l; /* NULL: to be moved to a server that answers */
    hsm_sid_t sid;     /* on l's server */
};

struct fo {
    struct backend base;
    struct config cfg;
    size_t n;
    backend_t *mem[CONFIG_ENDPOINTS_MAX]; /* one remote backend each */
};

struct fo_conn {
    struct backend_conn base;
    struct fo *fo;
    pthread_mutex_t mu;
    struct fo_link *cur[CONFIG_ENDPOINTS_MAX]; /* NULL: not connected */
    unsigned epoch[CONFIG_ENDPOINTS_MAX];
    uint64_t retry_ns[CONFIG_ENDPOINTS_MAX];
    unsigned fails[CONFIG_ENDPOINTS_MAX];  /* connects failed in a row */
    bool connecting[CONFIG_ENDPOINTS_MAX]; /* a thread connects (no mu) */
    size_t primary;
    size_t rr;
    struct fo_sess *sess;
    size_t nsess;
    hsm_sid_t next_vsid;
    bool logged_in; /* the application is logged in */
    /* The ticket: a page of its own (no core dump, zeros after fork). */
    uint8_t *secret;
    size_t secret_size;
    size_t ticket_len; /* 0: none */
};

static struct fo *FO(backend_t *be)
{
    return (struct fo *)be;
}

static struct fo_conn *FC(backend_conn_t *c)
{
    return (struct fo_conn *)c;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------ the ticket */

static uint8_t *secret_page(size_t *size)
{
    long pg = sysconf(_SC_PAGESIZE);
    void *p;

    *size = pg > 0 ? (size_t)pg : 4096;
    p = mmap(NULL, *size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
             -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_DONTDUMP
    (void)madvise(p, *size, MADV_DONTDUMP);
#endif
#ifdef MADV_WIPEONFORK
    (void)madvise(p, *size, MADV_WIPEONFORK);
#endif
    return p;
}

static void ticket_forget_locked(struct fo_conn *fc)
{
    if (fc->secret != NULL)
        util_wipe(fc->secret, fc->secret_size);
    fc->ticket_len = 0;
}

/* ------------------------------------------------------------ links */

static void link_unref_locked(struct fo_conn *fc, struct fo_link *l)
{
    (void)fc;
    if (--l->refs > 0)
        return;
    backend_conn_close(l->c);
    free(l);
}

/* l is dead: no new call or session goes to it. */
static void link_kill_locked(struct fo_conn *fc, struct fo_link *l)
{
    if (!l->dead) {
        l->dead = true;
        log_info("failover: server %zu lost; its sessions move on their "
                 "next call",
                 l->m + 1);
    }
    if (fc->cur[l->m] == l) {
        fc->cur[l->m] = NULL;
        fc->retry_ns[l->m] = mono_ns() + FO_RETRY_NS;
        link_unref_locked(fc, l);
    }
}

static bool link_ok_locked(struct fo_conn *fc, struct fo_link *l)
{
    if (l == NULL)
        return false;
    if (!l->dead && backend_conn_lost(l->c))
        link_kill_locked(fc, l);
    return !l->dead;
}

/* The application's login on a new link: the ticket redeemed. */
static void link_login_locked(struct fo_conn *fc, struct fo_link *l)
{
    CK_RV rv;

    if (!fc->logged_in || l->logged_in)
        return;
    if (fc->ticket_len == 0) {
        log_info("failover: no login ticket: server %zu is not logged in",
                 l->m + 1);
        return;
    }
    rv = backend_login_redeem(l->c, fc->secret, fc->ticket_len);
    if (rv == CKR_DEVICE_REMOVED) {
        link_kill_locked(fc, l);
        return;
    }
    l->logged_in = rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN;
    if (!l->logged_in)
        log_info("failover: server %zu refused the login ticket (0x%lx): "
                 "its sessions are not logged in",
                 l->m + 1, (unsigned long)rv);
}

/*
 * The live link to server m, connected (and logged in) now if needed.
 * force: try even while the server is in its retry pause. NULL when it
 * does not answer, or another thread is connecting to it. The connect
 * lets mu go: the caller's pointers into the session table do not
 * survive the call.
 */
static struct fo_link *link_get_locked(struct fo_conn *fc, size_t m, bool force)
{
    struct fo_link *l = fc->cur[m];
    backend_conn_t *c = NULL;
    uint64_t pause = FO_RETRY_NS;
    CK_RV rv;

    if (link_ok_locked(fc, l))
        return l;
    if (fc->connecting[m] || (!force && mono_ns() < fc->retry_ns[m]))
        return NULL;
    fc->connecting[m] = true;
    pthread_mutex_unlock(&fc->mu);
    rv = backend_conn_open(fc->fo->mem[m], &c);
    pthread_mutex_lock(&fc->mu);
    fc->connecting[m] = false;
    if (rv != CKR_OK) {
        for (unsigned i = 0; i < fc->fails[m] && pause < FO_RETRY_MAX_NS; i++)
            pause *= 2;
        fc->fails[m]++;
        fc->retry_ns[m] =
            mono_ns() + (pause < FO_RETRY_MAX_NS ? pause : FO_RETRY_MAX_NS);
        return NULL;
    }
    fc->fails[m] = 0;
    l = calloc(1, sizeof(*l));
    if (l == NULL || fc->cur[m] != NULL) {
        /* (only one thread connects to a server at a time) */
        free(l);
        backend_conn_close(c);
        return fc->cur[m];
    }
    l->c = c;
    l->m = m;
    l->epoch = ++fc->epoch[m] & FO_EPOCH_MASK;
    l->refs = 1; /* the slot */
    fc->cur[m] = l;
    link_login_locked(fc, l);
    return fc->cur[m]; /* NULL if the login found it dead */
}

/*
 * A link that answers, starting with server first: each server once out
 * of its retry pause, then every one regardless. *m_out: which.
 */
static struct fo_link *link_any_locked(struct fo_conn *fc, size_t first,
                                       size_t *m_out)
{
    size_t n = fc->fo->n;

    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            size_t m = (first + i) % n;
            struct fo_link *l = link_get_locked(fc, m, pass == 1);

            if (l != NULL) {
                *m_out = m;
                return l;
            }
        }
    }
    return NULL;
}

/* The primary's link, with a reference (link_put). */
static CK_RV prim_get(struct fo_conn *fc, struct fo_link **out)
{
    struct fo_link *l;
    size_t m = 0;

    pthread_mutex_lock(&fc->mu);
    l = link_any_locked(fc, fc->primary, &m);
    if (l != NULL) {
        fc->primary = m;
        l->refs++;
    }
    pthread_mutex_unlock(&fc->mu);
    *out = l;
    return l != NULL ? CKR_OK : CKR_DEVICE_REMOVED;
}

/*
 * A call on l ended with rv: returns what the caller answers. A link
 * that broke under the call makes it CKR_DEVICE_ERROR (it may or may not
 * have run); the next call goes elsewhere.
 */
static CK_RV link_put(struct fo_conn *fc, struct fo_link *l, CK_RV rv)
{
    pthread_mutex_lock(&fc->mu);
    if (rv == CKR_DEVICE_REMOVED || backend_conn_lost(l->c)) {
        link_kill_locked(fc, l);
        if (rv == CKR_DEVICE_REMOVED)
            rv = CKR_DEVICE_ERROR;
    }
    link_unref_locked(fc, l);
    pthread_mutex_unlock(&fc->mu);
    return rv;
}

/* ------------------------------------------------------------ sessions */

static struct fo_sess *sess_find_locked(struct fo_conn *fc, hsm_sid_t vsid)
{
    for (size_t i = 0; i < fc->nsess; i++)
        if (fc->sess[i].vsid == vsid && vsid != 0)
            return &fc->sess[i];
    return NULL;
}

/* A session on the next server that answers, from the round robin. */
static CK_RV sess_place_locked(struct fo_conn *fc, bool rw,
                               struct fo_link **lout, hsm_sid_t *sid)
{
    size_t n = fc->fo->n;

    for (size_t tries = 0; tries < 2 * n; tries++) {
        struct fo_link *l;
        size_t m = 0;
        CK_RV rv;

        /* server_spread = application: the primary's server, which then
         * serves every session (and follows the sessions when it dies) */
        l = link_any_locked(
            fc, fc->fo->cfg.spread_sessions ? fc->rr : fc->primary, &m);
        if (l == NULL)
            return CKR_DEVICE_REMOVED;
        if (fc->fo->cfg.spread_sessions)
            fc->rr = (m + 1) % n;
        else
            fc->primary = m;
        rv = backend_session_open(l->c, rw, sid);
        if (rv == CKR_DEVICE_REMOVED) {
            link_kill_locked(fc, l);
            continue;
        }
        if (rv != CKR_OK)
            return rv;
        l->refs++; /* the session's */
        *lout = l;
        return CKR_OK;
    }
    return CKR_DEVICE_REMOVED;
}

/*
 * Session vsid's link (a reference, link_put) and id there; a session
 * whose server is gone moves first.
 */
static CK_RV sess_get(struct fo_conn *fc, hsm_sid_t vsid, struct fo_link **l,
                      hsm_sid_t *sid)
{
    struct fo_sess *s;
    CK_RV rv = CKR_OK;

    pthread_mutex_lock(&fc->mu);
    s = sess_find_locked(fc, vsid);
    if (s == NULL) {
        rv = CKR_SESSION_HANDLE_INVALID;
        goto out;
    }
    if (s->l != NULL && !link_ok_locked(fc, s->l)) {
        link_unref_locked(fc, s->l);
        s->l = NULL;
    }
    if (s->l == NULL) {
        struct fo_link *nl = NULL;
        hsm_sid_t nsid = 0;

        /* mu may be let go while placing: s is looked up again after */
        if ((rv = sess_place_locked(fc, s->rw, &nl, &nsid)) != CKR_OK)
            goto out;
        s = sess_find_locked(fc, vsid);
        if (s == NULL || s->l != NULL) {
            /* closed meanwhile, or moved by another call: drop ours */
            (void)backend_session_close(nl->c, nsid);
            link_unref_locked(fc, nl);
            if (s == NULL) {
                rv = CKR_SESSION_HANDLE_INVALID;
                goto out;
            }
        } else {
            s->l = nl;
            s->sid = nsid;
            log_info("failover: session %u moved to server %zu", vsid,
                     nl->m + 1);
        }
    }
    s->l->refs++;
    *l = s->l;
    *sid = s->sid;
out:
    pthread_mutex_unlock(&fc->mu);
    return rv;
}

/* ------------------------------------------------------ session objects */

static uint64_t link_tag(const struct fo_link *l)
{
    return ((uint64_t)(l->epoch & FO_EPOCH_MASK) << FO_SERVER_BITS) | l->m;
}

/* An id from l's server as the caller sees it. */
static hsm_oid_t oid_out(const struct fo_link *l, hsm_oid_t oid)
{
    if ((oid & HSM_SESSION_OID_BIT) == 0)
        return oid;
    return (oid & ~FO_TAG_MASK) | (link_tag(l) << FO_TAG_SHIFT);
}

/* The caller's id as l's server knows it; false: another server's (or an
 * earlier connection's) session object. */
static bool oid_in(const struct fo_link *l, hsm_oid_t oid, hsm_oid_t *real)
{
    *real = oid;
    if ((oid & HSM_SESSION_OID_BIT) == 0)
        return true;
    if (((oid & FO_TAG_MASK) >> FO_TAG_SHIFT) != link_tag(l))
        return false;
    *real = oid & ~FO_TAG_MASK;
    return true;
}

/* A mechanism whose parameter names an object, translated for l. */
static bool mech_in(const struct fo_link *l, const hsm_mech_t *in,
                    hsm_mech_t *copy, const hsm_mech_t **out)
{
    uint64_t *ref;

    *out = in;
    if (in == NULL)
        return true;
    *copy = *in;
    ref = hsm_mech_key_ref(copy);
    if (ref == NULL)
        return true;
    if (!oid_in(l, *ref, ref))
        return false;
    *out = copy;
    return true;
}

/* The link for a session-less call on object oid: a session object's own
 * server, else the primary. */
static CK_RV oid_link(struct fo_conn *fc, hsm_oid_t oid, struct fo_link **out,
                      hsm_oid_t *real)
{
    struct fo_link *l;
    size_t m;

    if ((oid & HSM_SESSION_OID_BIT) == 0) {
        *real = oid;
        return prim_get(fc, out);
    }
    m = (size_t)((oid & FO_TAG_MASK) >> FO_TAG_SHIFT) &
        ((1u << FO_SERVER_BITS) - 1);
    pthread_mutex_lock(&fc->mu);
    l = m < fc->fo->n ? fc->cur[m] : NULL;
    if (!link_ok_locked(fc, l) || !oid_in(l, oid, real)) {
        pthread_mutex_unlock(&fc->mu);
        return CKR_OBJECT_HANDLE_INVALID;
    }
    l->refs++;
    pthread_mutex_unlock(&fc->mu);
    *out = l;
    return CKR_OK;
}

/* ------------------------------------------------------------ call forms */

/* A call on the primary: expr uses c_. */
#define PCALL(conn, expr)                                                      \
    do {                                                                       \
        struct fo_conn *fc_ = FC(conn);                                        \
        struct fo_link *l_;                                                    \
        CK_RV rv_ = prim_get(fc_, &l_);                                        \
        if (rv_ != CKR_OK)                                                     \
            return rv_;                                                        \
        backend_conn_t *c_ = l_->c;                                            \
        rv_ = (expr);                                                          \
        return link_put(fc_, l_, rv_);                                         \
    } while (0)

/* A call of session vsid: expr uses c_ and sid_; post (with l_) runs
 * after a success: the ids it made, as the caller sees them. */
#define SCALLP(conn, vsid, expr, post)                                         \
    do {                                                                       \
        struct fo_conn *fc_ = FC(conn);                                        \
        struct fo_link *l_;                                                    \
        hsm_sid_t sid_;                                                        \
        CK_RV rv_ = sess_get(fc_, (vsid), &l_, &sid_);                         \
        if (rv_ != CKR_OK)                                                     \
            return rv_;                                                        \
        backend_conn_t *c_ = l_->c;                                            \
        rv_ = (expr);                                                          \
        if (rv_ == CKR_OK) {                                                   \
            post;                                                              \
        }                                                                      \
        return link_put(fc_, l_, rv_);                                         \
    } while (0)
#define SCALL(conn, vsid, expr) SCALLP(conn, vsid, expr, (void)0)

/* ------------------------------------------------------------ backend */

static void fo_close(backend_t *be)
{
    struct fo *fo = FO(be);

    for (size_t i = 0; i < fo->n; i++)
        backend_close(fo->mem[i]);
    free(fo);
}

/* Calls on the backend itself: the first server that answers. */
#define BCALL(be, expr)                                                        \
    do {                                                                       \
        struct fo *fo_ = FO(be);                                               \
        CK_RV rv_ = CKR_DEVICE_REMOVED;                                        \
        for (size_t i_ = 0; i_ < fo_->n; i_++) {                               \
            backend_t *m_ = fo_->mem[i_];                                      \
            rv_ = (expr);                                                      \
            if (rv_ != CKR_DEVICE_REMOVED && rv_ != CKR_DEVICE_ERROR)          \
                break;                                                         \
        }                                                                      \
        return rv_;                                                            \
    } while (0)

static CK_RV fo_token_info(backend_t *be, backend_conn_t *conn,
                           hsm_token_info_t *info)
{
    if (conn != NULL)
        PCALL(conn, backend_token_info(c_->be, c_, info));
    BCALL(be, backend_token_info(m_, NULL, info));
}

static CK_RV fo_init_token(backend_t *be, const char *name, const uint8_t *pw,
                           size_t pwlen, const char *label)
{
    /* Not retried on another server once one took it: a re-initialization
     * that answered nothing may have run. */
    struct fo *fo = FO(be);
    CK_RV rv = CKR_DEVICE_REMOVED;

    for (size_t i = 0; i < fo->n && rv == CKR_DEVICE_REMOVED; i++)
        rv = backend_init_token(fo->mem[i], name, pw, pwlen, label);
    return rv;
}

static CK_RV fo_mech_list(backend_t *be, CK_MECHANISM_TYPE **list, size_t *n)
{
    BCALL(be, backend_mech_list(m_, list, n));
}

static CK_RV fo_mech_info(backend_t *be, CK_MECHANISM_TYPE type,
                          hsm_mech_info_t *info)
{
    BCALL(be, backend_mech_info(m_, type, info));
}

static void fo_attrs_free(backend_t *be, hsm_attr_t *attrs, size_t n)
{
    backend_attrs_free(FO(be)->mem[0], attrs, n);
}

static CK_RV fo_template_parse(backend_t *be, const uint8_t *blob, size_t len,
                               hsm_attr_t **attrs, size_t *n)
{
    return backend_template_parse(FO(be)->mem[0], blob, len, attrs, n);
}

/* ------------------------------------------------- connections, login */

static CK_RV fo_conn_open(backend_t *be, backend_conn_t **out)
{
    struct fo *fo = FO(be);
    struct fo_conn *fc;
    size_t m = 0;

    *out = NULL;
    fc = calloc(1, sizeof(*fc));
    if (fc == NULL)
        return CKR_HOST_MEMORY;
    fc->base.be = be;
    fc->fo = fo;
    fc->next_vsid = 1;
    fc->secret = secret_page(&fc->secret_size);
    if (fc->secret == NULL || fc->secret_size < HSM_TICKET_LEN) {
        free(fc);
        return CKR_HOST_MEMORY;
    }
    if (util_mutex_init(&fc->mu) != 0) {
        munmap(fc->secret, fc->secret_size);
        free(fc);
        return CKR_GENERAL_ERROR;
    }
    /* As with one server: no connection when none answers. Each
     * application starts on a server of its own (by process id) when its
     * sessions stay together, so that applications spread. */
    pthread_mutex_lock(&fc->mu);
    if (link_any_locked(fc,
                        fo->cfg.spread_sessions ? 0 : (size_t)getpid() % fo->n,
                        &m) == NULL) {
        pthread_mutex_unlock(&fc->mu);
        pthread_mutex_destroy(&fc->mu);
        munmap(fc->secret, fc->secret_size);
        free(fc);
        return CKR_DEVICE_REMOVED;
    }
    fc->primary = m;
    fc->rr = m;
    pthread_mutex_unlock(&fc->mu);
    *out = &fc->base;
    return CKR_OK;
}

static void fo_conn_close(backend_conn_t *conn)
{
    struct fo_conn *fc = FC(conn);

    pthread_mutex_lock(&fc->mu);
    for (size_t i = 0; i < fc->nsess; i++) {
        if (fc->sess[i].vsid != 0 && fc->sess[i].l != NULL)
            link_unref_locked(fc, fc->sess[i].l);
    }
    for (size_t m = 0; m < fc->fo->n; m++) {
        if (fc->cur[m] != NULL) {
            struct fo_link *l = fc->cur[m];

            fc->cur[m] = NULL;
            link_unref_locked(fc, l);
        }
    }
    ticket_forget_locked(fc);
    pthread_mutex_unlock(&fc->mu);
    pthread_mutex_destroy(&fc->mu);
    munmap(fc->secret, fc->secret_size);
    free(fc->sess);
    free(fc);
}

/* Never: a dead server's sessions move, and while none answers the calls
 * say CKR_DEVICE_REMOVED; the login lives on in the ticket. */
static bool fo_conn_lost(backend_conn_t *conn)
{
    (void)conn;
    return false;
}

static hsm_user_type_t fo_conn_user_type(backend_conn_t *conn, hsm_uid_t *uid)
{
    struct fo_conn *fc = FC(conn);
    struct fo_link *l;
    hsm_user_type_t t;

    if (uid != NULL)
        *uid = 0;
    if (prim_get(fc, &l) != CKR_OK)
        return HSM_USER_NONE;
    t = backend_conn_user_type(l->c, uid);
    (void)link_put(fc, l, CKR_OK);
    return t;
}

/*
 * After a password login on the primary (or a password change that ended
 * the other servers' logins): a fresh ticket, redeemed on every other
 * connected server. Caller holds mu; prim is the primary's link.
 */
static void ticket_spread_locked(struct fo_conn *fc, struct fo_link *prim,
                                 bool again)
{
    uint8_t t[HSM_TICKET_LEN];
    CK_RV rv;

    ticket_forget_locked(fc);
    rv = backend_login_ticket(prim->c, t);
    if (rv == CKR_OK) {
        memcpy(fc->secret, t, HSM_TICKET_LEN);
        fc->ticket_len = HSM_TICKET_LEN;
    } else {
        log_info("failover: no login ticket from server %zu (0x%lx): other "
                 "servers' sessions are not logged in",
                 prim->m + 1, (unsigned long)rv);
    }
    util_wipe(t, sizeof(t));
    for (size_t m = 0; m < fc->fo->n; m++) {
        struct fo_link *l = fc->cur[m];

        if (l == NULL || l == prim || l->dead)
            continue;
        if (again && l->logged_in)
            (void)backend_logout(l->c);
        l->logged_in = false;
        link_login_locked(fc, l);
    }
}

static CK_RV fo_login(backend_conn_t *conn, hsm_login_kind_t kind,
                      const char *name, const uint8_t *pw, size_t pwlen)
{
    struct fo_conn *fc = FC(conn);
    struct fo_link *l;
    CK_RV rv;

    if ((rv = prim_get(fc, &l)) != CKR_OK)
        return rv;
    rv = backend_login(l->c, kind, name, pw, pwlen);
    if (rv == CKR_OK) {
        pthread_mutex_lock(&fc->mu);
        fc->logged_in = true;
        l->logged_in = true;
        ticket_spread_locked(fc, l, false);
        pthread_mutex_unlock(&fc->mu);
    }
    return link_put(fc, l, rv);
}

static CK_RV fo_logout(backend_conn_t *conn)
{
    struct fo_conn *fc = FC(conn);
    struct fo_link *l;
    CK_RV rv;

    if ((rv = prim_get(fc, &l)) != CKR_OK)
        return rv;
    rv = backend_logout(l->c);
    pthread_mutex_lock(&fc->mu);
    if (rv == CKR_OK || rv == CKR_USER_NOT_LOGGED_IN) {
        for (size_t m = 0; m < fc->fo->n; m++) {
            struct fo_link *o = fc->cur[m];

            if (o != NULL && o != l && !o->dead && o->logged_in)
                (void)backend_logout(o->c);
            if (o != NULL)
                o->logged_in = false;
        }
        l->logged_in = false;
        fc->logged_in = false;
        ticket_forget_locked(fc);
    }
    pthread_mutex_unlock(&fc->mu);
    return link_put(fc, l, rv);
}

static CK_RV fo_set_password(backend_conn_t *conn, const char *name,
                             const uint8_t *old_pw, size_t old_len,
                             const uint8_t *new_pw, size_t new_len)
{
    struct fo_conn *fc = FC(conn);
    struct fo_link *l;
    CK_RV rv;

    if ((rv = prim_get(fc, &l)) != CKR_OK)
        return rv;
    rv = backend_set_password(l->c, name, old_pw, old_len, new_pw, new_len);
    /* The user's record changed: the other servers' logins of it end and
     * the old ticket is refused; carry the login on with a new one. */
    if (rv == CKR_OK) {
        pthread_mutex_lock(&fc->mu);
        if (fc->logged_in)
            ticket_spread_locked(fc, l, true);
        pthread_mutex_unlock(&fc->mu);
    }
    return link_put(fc, l, rv);
}

static CK_RV fo_init_pin(backend_conn_t *conn, const char *name,
                         const uint8_t *pw, size_t pwlen)
{
    PCALL(conn, backend_init_pin(c_, name, pw, pwlen));
}

static CK_RV fo_user_list(backend_conn_t *conn, hsm_user_info_t **users,
                          size_t *count)
{
    PCALL(conn, backend_user_list(c_, users, count));
}

static CK_RV fo_user_create(backend_conn_t *conn, hsm_user_type_t type,
                            const char *name, const uint8_t *pw, size_t pwlen,
                            hsm_uid_t *uid)
{
    PCALL(conn, backend_user_create(c_, type, name, pw, pwlen, uid));
}

static CK_RV fo_user_delete(backend_conn_t *conn, const char *name)
{
    PCALL(conn, backend_user_delete(c_, name));
}

/* ------------------------------------------------------------ sessions */

static CK_RV fo_context_login(backend_conn_t *conn, hsm_sid_t sid,
                              const char *name, const uint8_t *pw, size_t pwlen)
{
    SCALL(conn, sid, backend_context_login(c_, sid_, name, pw, pwlen));
}

static CK_RV fo_session_open(backend_conn_t *conn, bool rw, hsm_sid_t *sid)
{
    struct fo_conn *fc = FC(conn);
    struct fo_sess *s = NULL;
    struct fo_link *l = NULL;
    hsm_sid_t rsid = 0;
    CK_RV rv;

    *sid = 0;
    pthread_mutex_lock(&fc->mu);
    /* placed first: mu may be let go while connecting */
    if ((rv = sess_place_locked(fc, rw, &l, &rsid)) != CKR_OK)
        goto out;
    for (size_t i = 0; i < fc->nsess && s == NULL; i++)
        if (fc->sess[i].vsid == 0)
            s = &fc->sess[i];
    if (s == NULL) {
        struct fo_sess *grown =
            realloc(fc->sess, (fc->nsess + 16) * sizeof(*grown));

        if (grown == NULL) {
            (void)backend_session_close(l->c, rsid);
            link_unref_locked(fc, l);
            rv = CKR_HOST_MEMORY;
            goto out;
        }
        memset(grown + fc->nsess, 0, 16 * sizeof(*grown));
        fc->sess = grown;
        s = &fc->sess[fc->nsess];
        fc->nsess += 16;
    }
    /* ids are never reused while the connection lives (0 is none) */
    if (fc->next_vsid == 0)
        fc->next_vsid = 1;
    s->vsid = fc->next_vsid++;
    s->rw = rw;
    s->l = l;
    s->sid = rsid;
    *sid = s->vsid;
out:
    pthread_mutex_unlock(&fc->mu);
    return rv;
}

static CK_RV fo_session_close(backend_conn_t *conn, hsm_sid_t sid)
{
    struct fo_conn *fc = FC(conn);
    struct fo_sess *s;
    struct fo_link *l;
    hsm_sid_t rsid;
    bool dead;
    CK_RV rv = CKR_OK;

    pthread_mutex_lock(&fc->mu);
    s = sess_find_locked(fc, sid);
    if (s == NULL) {
        pthread_mutex_unlock(&fc->mu);
        return CKR_SESSION_HANDLE_INVALID;
    }
    /* the session's reference on l passes to this call */
    l = s->l;
    rsid = s->sid;
    dead = l == NULL || l->dead;
    memset(s, 0, sizeof(*s));
    pthread_mutex_unlock(&fc->mu);
    if (l == NULL)
        return CKR_OK; /* its server is gone, and the session with it */
    if (!dead)
        rv = backend_session_close(l->c, rsid);
    /* a server that went away closed it */
    if (link_put(fc, l, rv) == CKR_DEVICE_ERROR)
        rv = CKR_OK;
    return rv;
}

/* ------------------------------------------------------------ objects */

#define OID_IN(l, oid, real, bad)                                              \
    do {                                                                       \
        if (!oid_in((l), (oid), (real)))                                       \
            return link_put(fc_, (l), (bad));                                  \
    } while (0)

static CK_RV fo_object_create(backend_conn_t *conn, hsm_sid_t sid,
                              const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                              hsm_oid_t *oid)
{
    SCALLP(conn, sid, backend_object_create(c_, sid_, tmpl, count, oid),
           *oid = oid_out(l_, *oid));
}

static CK_RV fo_object_copy(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                            const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                            hsm_oid_t *new_oid)
{
    struct fo_conn *fc_ = FC(conn);
    struct fo_link *l;
    hsm_sid_t rs;
    hsm_oid_t ro;
    CK_RV rv = sess_get(fc_, sid, &l, &rs);

    if (rv != CKR_OK)
        return rv;
    OID_IN(l, oid, &ro, CKR_OBJECT_HANDLE_INVALID);
    rv = backend_object_copy(l->c, rs, ro, tmpl, count, new_oid);
    if (rv == CKR_OK)
        *new_oid = oid_out(l, *new_oid);
    return link_put(fc_, l, rv);
}

/* The calls of a session on one object: oid translated, fn called. */
#define SOBJ(conn, sid, oid, bad, call)                                        \
    do {                                                                       \
        struct fo_conn *fc_ = FC(conn);                                        \
        struct fo_link *l_;                                                    \
        hsm_sid_t sid_;                                                        \
        hsm_oid_t oid_;                                                        \
        CK_RV rv_ = sess_get(fc_, (sid), &l_, &sid_);                          \
        if (rv_ != CKR_OK)                                                     \
            return rv_;                                                        \
        OID_IN(l_, (oid), &oid_, (bad));                                       \
        backend_conn_t *c_ = l_->c;                                            \
        rv_ = (call);                                                          \
        return link_put(fc_, l_, rv_);                                         \
    } while (0)

static CK_RV fo_object_destroy(backend_conn_t *conn, hsm_sid_t sid,
                               hsm_oid_t oid)
{
    SOBJ(conn, sid, oid, CKR_OBJECT_HANDLE_INVALID,
         backend_object_destroy(c_, sid_, oid_));
}

static CK_RV fo_object_size(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                            CK_ULONG *size)
{
    SOBJ(conn, sid, oid, CKR_OBJECT_HANDLE_INVALID,
         backend_object_size(c_, sid_, oid_, size));
}

static CK_RV fo_object_get(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                           const CK_ATTRIBUTE_TYPE *types, size_t n,
                           hsm_attr_t *out)
{
    SOBJ(conn, sid, oid, CKR_OBJECT_HANDLE_INVALID,
         backend_object_get(c_, sid_, oid_, types, n, out));
}

static CK_RV fo_object_set(backend_conn_t *conn, hsm_sid_t sid, hsm_oid_t oid,
                           const CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
    SOBJ(conn, sid, oid, CKR_OBJECT_HANDLE_INVALID,
         backend_object_set(c_, sid_, oid_, tmpl, count));
}

static void oids_out(const struct fo_link *l, hsm_oid_t *oids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        oids[i] = oid_out(l, oids[i]);
}

static CK_RV fo_object_find(backend_conn_t *conn, hsm_sid_t sid,
                            const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                            hsm_oid_t **oids, size_t *n)
{
    SCALLP(conn, sid, backend_object_find(c_, sid_, tmpl, count, oids, n),
           oids_out(l_, *oids, *n));
}

/* A session-less call on an object (its own server for a session
 * object). */
#define OCALL(conn, oid, call)                                                 \
    do {                                                                       \
        struct fo_conn *fc_ = FC(conn);                                        \
        struct fo_link *l_;                                                    \
        hsm_oid_t oid_;                                                        \
        CK_RV rv_ = oid_link(fc_, (oid), &l_, &oid_);                          \
        if (rv_ != CKR_OK)                                                     \
            return rv_;                                                        \
        backend_conn_t *c_ = l_->c;                                            \
        rv_ = (call);                                                          \
        return link_put(fc_, l_, rv_);                                         \
    } while (0)

static CK_RV fo_object_is_private(backend_conn_t *conn, hsm_oid_t oid,
                                  bool *priv)
{
    OCALL(conn, oid, backend_object_is_private(c_, oid_, priv));
}

static CK_RV fo_object_share(backend_conn_t *conn, hsm_oid_t oid, hsm_uid_t uid,
                             bool share)
{
    OCALL(conn, oid, backend_object_share(c_, oid_, uid, share));
}

/* ------------------------------------------------------------ crypto */

/* A session call with a key and a mechanism that may name an object;
 * post as for SCALLP. */
#define SKEYP(conn, sid, mech, key, bad, call, post)                           \
    do {                                                                       \
        struct fo_conn *fc_ = FC(conn);                                        \
        struct fo_link *l_;                                                    \
        hsm_sid_t sid_;                                                        \
        hsm_oid_t key_;                                                        \
        hsm_mech_t mcopy_;                                                     \
        const hsm_mech_t *mech_;                                               \
        CK_RV rv_ = sess_get(fc_, (sid), &l_, &sid_);                          \
        if (rv_ != CKR_OK)                                                     \
            return rv_;                                                        \
        OID_IN(l_, (key), &key_, (bad));                                       \
        if (!mech_in(l_, (mech), &mcopy_, &mech_))                             \
            return link_put(fc_, l_, CKR_KEY_HANDLE_INVALID);                  \
        backend_conn_t *c_ = l_->c;                                            \
        rv_ = (call);                                                          \
        if (rv_ == CKR_OK) {                                                   \
            post;                                                              \
        }                                                                      \
        return link_put(fc_, l_, rv_);                                         \
    } while (0)
#define SKEY(conn, sid, mech, key, bad, call)                                  \
    SKEYP(conn, sid, mech, key, bad, call, (void)0)

static CK_RV fo_op_init(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                        const hsm_mech_t *mech, hsm_oid_t key)
{
    SKEY(conn, sid, mech, key, CKR_KEY_HANDLE_INVALID,
         backend_op_init(c_, sid_, kind, mech_, key_));
}

static CK_RV fo_op_init_iv(backend_conn_t *conn, hsm_sid_t sid,
                           hsm_opkind_t kind, const hsm_mech_t *mech,
                           hsm_oid_t key, uint8_t *iv, size_t ivroom,
                           size_t *ivlen)
{
    SKEY(conn, sid, mech, key, CKR_KEY_HANDLE_INVALID,
         backend_op_init_iv(c_, sid_, kind, mech_, key_, iv, ivroom, ivlen));
}

static CK_RV fo_op_output_len(backend_conn_t *conn, hsm_sid_t sid,
                              hsm_opkind_t kind, bool final, size_t inlen,
                              size_t *outlen)
{
    SCALL(conn, sid,
          backend_op_output_len(c_, sid_, kind, final, inlen, outlen));
}

static CK_RV fo_op_oneshot(backend_conn_t *conn, hsm_sid_t sid,
                           hsm_opkind_t kind, const uint8_t *in, size_t inlen,
                           uint8_t *out, size_t *outlen)
{
    SCALL(conn, sid,
          backend_op_oneshot(c_, sid_, kind, in, inlen, out, outlen));
}

static CK_RV fo_op_update(backend_conn_t *conn, hsm_sid_t sid,
                          hsm_opkind_t kind, const uint8_t *in, size_t inlen,
                          uint8_t *out, size_t *outlen)
{
    SCALL(conn, sid, backend_op_update(c_, sid_, kind, in, inlen, out, outlen));
}

static CK_RV fo_op_final(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind,
                         uint8_t *out, size_t *outlen)
{
    SCALL(conn, sid, backend_op_final(c_, sid_, kind, out, outlen));
}

static CK_RV fo_op_verify(backend_conn_t *conn, hsm_sid_t sid,
                          const uint8_t *data, size_t datalen, bool oneshot,
                          const uint8_t *sig, size_t siglen)
{
    SCALL(conn, sid,
          backend_op_verify(c_, sid_, data, datalen, oneshot, sig, siglen));
}

static CK_RV fo_op_digest_key(backend_conn_t *conn, hsm_sid_t sid,
                              hsm_oid_t key)
{
    SOBJ(conn, sid, key, CKR_KEY_HANDLE_INVALID,
         backend_op_digest_key(c_, sid_, oid_));
}

static CK_RV op_abort_call(backend_conn_t *conn, hsm_sid_t sid,
                           hsm_opkind_t kind)
{
    SCALL(conn, sid, (backend_op_abort(c_, sid_, kind), CKR_OK));
}

static void fo_op_abort(backend_conn_t *conn, hsm_sid_t sid, hsm_opkind_t kind)
{
    (void)op_abort_call(conn, sid, kind);
}

/* ------------------------------------------------------------ keys */

static CK_RV fo_generate_key(backend_conn_t *conn, hsm_sid_t sid,
                             const hsm_mech_t *mech, const CK_ATTRIBUTE *tmpl,
                             CK_ULONG count, hsm_oid_t *oid)
{
    SCALLP(conn, sid, backend_generate_key(c_, sid_, mech, tmpl, count, oid),
           *oid = oid_out(l_, *oid));
}

static CK_RV
fo_generate_key_pair(backend_conn_t *conn, hsm_sid_t sid,
                     const hsm_mech_t *mech, const CK_ATTRIBUTE *pub_tmpl,
                     CK_ULONG pub_count, const CK_ATTRIBUTE *priv_tmpl,
                     CK_ULONG priv_count, hsm_oid_t *pub, hsm_oid_t *priv)
{
    SCALLP(conn, sid,
           backend_generate_key_pair(c_, sid_, mech, pub_tmpl, pub_count,
                                     priv_tmpl, priv_count, pub, priv),
           (*pub = oid_out(l_, *pub), *priv = oid_out(l_, *priv)));
}

static CK_RV fo_derive_key(backend_conn_t *conn, hsm_sid_t sid,
                           const hsm_mech_t *mech, hsm_oid_t base,
                           const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                           hsm_oid_t *oid)
{
    SKEYP(conn, sid, mech, base, CKR_KEY_HANDLE_INVALID,
          backend_derive_key(c_, sid_, mech_, key_, tmpl, count, oid),
          *oid = oid_out(l_, *oid));
}

static CK_RV fo_wrap_key(backend_conn_t *conn, hsm_sid_t sid,
                         const hsm_mech_t *mech, hsm_oid_t wrapping,
                         hsm_oid_t key, uint8_t **out, size_t *outlen)
{
    struct fo_conn *fc_ = FC(conn);
    struct fo_link *l;
    hsm_sid_t rs;
    hsm_oid_t rw, rk;
    CK_RV rv = sess_get(fc_, sid, &l, &rs);

    *out = NULL;
    *outlen = 0;
    if (rv != CKR_OK)
        return rv;
    OID_IN(l, wrapping, &rw, CKR_WRAPPING_KEY_HANDLE_INVALID);
    OID_IN(l, key, &rk, CKR_KEY_HANDLE_INVALID);
    rv = backend_wrap_key(l->c, rs, mech, rw, rk, out, outlen);
    return link_put(fc_, l, rv);
}

static CK_RV fo_unwrap_key(backend_conn_t *conn, hsm_sid_t sid,
                           const hsm_mech_t *mech, hsm_oid_t unwrapping,
                           const uint8_t *in, size_t inlen,
                           const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                           hsm_oid_t *oid)
{
    SKEYP(
        conn, sid, mech, unwrapping, CKR_UNWRAPPING_KEY_HANDLE_INVALID,
        backend_unwrap_key(c_, sid_, mech_, key_, in, inlen, tmpl, count, oid),
        *oid = oid_out(l_, *oid));
}

/* ------------------------------------------------- message-based AEAD */

static CK_RV fo_msg_init(backend_conn_t *conn, hsm_sid_t sid,
                         hsm_msgkind_t kind, const hsm_mech_t *mech,
                         hsm_oid_t key)
{
    SKEY(conn, sid, mech, key, CKR_KEY_HANDLE_INVALID,
         backend_msg_init(c_, sid_, kind, mech_, key_));
}

static CK_RV fo_msg_oneshot(backend_conn_t *conn, hsm_sid_t sid,
                            hsm_msgkind_t kind, const hsm_mech_t *param,
                            const uint8_t *aad, size_t aadlen,
                            const uint8_t *in, size_t inlen, uint8_t *out,
                            size_t *outlen, hsm_msg_result_t *res)
{
    SCALL(conn, sid,
          backend_msg_oneshot(c_, sid_, kind, param, aad, aadlen, in, inlen,
                              out, outlen, res));
}

static CK_RV fo_msg_begin(backend_conn_t *conn, hsm_sid_t sid,
                          hsm_msgkind_t kind, const hsm_mech_t *param,
                          const uint8_t *aad, size_t aadlen,
                          hsm_msg_result_t *res)
{
    SCALL(conn, sid,
          backend_msg_begin(c_, sid_, kind, param, aad, aadlen, res));
}

static CK_RV fo_msg_next(backend_conn_t *conn, hsm_sid_t sid,
                         hsm_msgkind_t kind, const hsm_mech_t *param,
                         const uint8_t *in, size_t inlen, bool last,
                         uint8_t *out, size_t *outlen, hsm_msg_result_t *res)
{
    SCALL(conn, sid,
          backend_msg_next(c_, sid_, kind, param, in, inlen, last, out, outlen,
                           res));
}

static CK_RV fo_msg_output_len(backend_conn_t *conn, hsm_sid_t sid,
                               hsm_msgkind_t kind, bool last, size_t inlen,
                               size_t *outlen)
{
    SCALL(conn, sid,
          backend_msg_output_len(c_, sid_, kind, last, inlen, outlen));
}

static CK_RV fo_msg_final(backend_conn_t *conn, hsm_sid_t sid,
                          hsm_msgkind_t kind)
{
    SCALL(conn, sid, backend_msg_final(c_, sid_, kind));
}

static CK_RV msg_abort_call(backend_conn_t *conn, hsm_sid_t sid,
                            hsm_msgkind_t kind)
{
    SCALL(conn, sid, (backend_msg_abort(c_, sid_, kind), CKR_OK));
}

static void fo_msg_abort(backend_conn_t *conn, hsm_sid_t sid,
                         hsm_msgkind_t kind)
{
    (void)msg_abort_call(conn, sid, kind);
}

static CK_RV fo_random(backend_conn_t *conn, hsm_sid_t sid, uint8_t *buf,
                       size_t len)
{
    SCALL(conn, sid, backend_random(c_, sid_, buf, len));
}

/* ------------------------------------------------------------ management */

static CK_RV fo_user_set_password(backend_conn_t *conn, const char *name,
                                  const uint8_t *pw, size_t pwlen)
{
    PCALL(conn, backend_user_set_password(c_, name, pw, pwlen));
}

static CK_RV fo_key_list(backend_conn_t *conn, hsm_uid_t uid,
                         hsm_key_ref_t **keys, size_t *n,
                         uint8_t digest[HSM_DIGEST_LEN])
{
    PCALL(conn, backend_key_list(c_, uid, keys, n, digest));
}

static CK_RV fo_key_info(backend_conn_t *conn, hsm_oid_t oid, hsm_uid_t *owner,
                         hsm_uid_t **shared, size_t *nshared)
{
    OCALL(conn, oid, backend_key_info(c_, oid_, owner, shared, nshared));
}

static CK_RV fo_audit_read(backend_conn_t *conn, uint64_t after, size_t max,
                           hsm_audit_record_t **recs, size_t *n)
{
    PCALL(conn, backend_audit_read(c_, after, max, recs, n));
}

static CK_RV fo_audit_verify(backend_conn_t *conn, hsm_audit_check_t *check)
{
    PCALL(conn, backend_audit_verify(c_, check));
}

static CK_RV fo_object_set_trusted(backend_conn_t *conn, hsm_oid_t oid,
                                   bool trusted)
{
    OCALL(conn, oid, backend_object_set_trusted(c_, oid_, trusted));
}

static CK_RV fo_client_list(backend_conn_t *conn, backend_client_t **list,
                            size_t *n)
{
    PCALL(conn, backend_client_list(c_, list, n));
}

static CK_RV fo_login_challenge(backend_conn_t *conn, hsm_login_kind_t kind,
                                const char *name,
                                uint8_t digest[HSM_DIGEST_LEN])
{
    PCALL(conn, backend_login_challenge(c_, kind, name, digest));
}

/* A 2FA login is a login: its ticket carries it to the other servers. */
static CK_RV fo_login_2fa(backend_conn_t *conn, hsm_login_kind_t kind,
                          const char *name, const uint8_t *pw, size_t pwlen,
                          const uint8_t *sig, size_t siglen)
{
    struct fo_conn *fc = FC(conn);
    struct fo_link *l;
    CK_RV rv;

    if ((rv = prim_get(fc, &l)) != CKR_OK)
        return rv;
    rv = backend_login_2fa(l->c, kind, name, pw, pwlen, sig, siglen);
    if (rv == CKR_OK) {
        pthread_mutex_lock(&fc->mu);
        fc->logged_in = true;
        l->logged_in = true;
        ticket_spread_locked(fc, l, false);
        pthread_mutex_unlock(&fc->mu);
    }
    return link_put(fc, l, rv);
}

static CK_RV fo_user_create_2fa(backend_conn_t *conn, const char *name,
                                const uint8_t *pw, size_t pwlen,
                                const uint8_t *pubkey, size_t pubkey_len,
                                const uint8_t *sig, size_t siglen,
                                hsm_uid_t *uid)
{
    PCALL(conn, backend_user_create_2fa(c_, name, pw, pwlen, pubkey, pubkey_len,
                                        sig, siglen, uid));
}

static CK_RV fo_user_set_password_2fa(backend_conn_t *conn, const char *name,
                                      const uint8_t *pw, size_t pwlen,
                                      const uint8_t *pubkey, size_t pubkey_len,
                                      const uint8_t *sig, size_t siglen)
{
    PCALL(conn, backend_user_set_password_2fa(c_, name, pw, pwlen, pubkey,
                                              pubkey_len, sig, siglen));
}

/* ------------------------------------------------------------ quorum */

static CK_RV fo_quorum_register_key(backend_conn_t *conn, const char *name,
                                    const uint8_t *reg_token, size_t token_len,
                                    const uint8_t *sig, size_t sig_len,
                                    const uint8_t *pubkey, size_t pubkey_len)
{
    PCALL(conn, backend_quorum_register_key(c_, name, reg_token, token_len, sig,
                                            sig_len, pubkey, pubkey_len));
}

static CK_RV fo_quorum_set_m(backend_conn_t *conn, unsigned service, unsigned m)
{
    PCALL(conn, backend_quorum_set_m(c_, service, m));
}

static CK_RV fo_quorum_get_m(backend_conn_t *conn, unsigned service,
                             unsigned *m)
{
    PCALL(conn, backend_quorum_get_m(c_, service, m));
}

static CK_RV fo_quorum_get_token(backend_conn_t *conn, unsigned service,
                                 const char *name, uint8_t *token, size_t *len)
{
    PCALL(conn, backend_quorum_get_token(c_, service, name, token, len));
}

static CK_RV fo_quorum_approve(backend_conn_t *conn, const uint8_t *token,
                               size_t token_len, const hsm_quorum_approval_t *a,
                               size_t n, CK_RV *results)
{
    PCALL(conn, backend_quorum_approve(c_, token, token_len, a, n, results));
}

static CK_RV fo_quorum_list_tokens(backend_conn_t *conn,
                                   hsm_quorum_token_info_t **out, size_t *n)
{
    PCALL(conn, backend_quorum_list_tokens(c_, out, n));
}

static CK_RV fo_quorum_del_token(backend_conn_t *conn, uint32_t id)
{
    PCALL(conn, backend_quorum_del_token(c_, id));
}

static CK_RV fo_login_ticket(backend_conn_t *conn, uint8_t out[HSM_TICKET_LEN])
{
    PCALL(conn, backend_login_ticket(c_, out));
}

static CK_RV fo_login_redeem(backend_conn_t *conn, const uint8_t *ticket,
                             size_t len)
{
    PCALL(conn, backend_login_redeem(c_, ticket, len));
}

/* The primary's view of the cluster (nimbus-mgmt speaks to each server
 * on its own; an application of several servers asks the one it uses). */
static CK_RV fo_masked_extract(backend_conn_t *conn, hsm_oid_t oid,
                               uint8_t **file, size_t *len)
{
    PCALL(conn, backend_masked_extract(c_, oid, file, len));
}

static CK_RV fo_masked_insert(backend_conn_t *conn, const uint8_t *file,
                              size_t len, hsm_oid_t *oid)
{
    PCALL(conn, backend_masked_insert(c_, file, len, oid));
}

static CK_RV fo_backup(backend_conn_t *conn, uint8_t **file, size_t *len,
                       hsm_backup_info_t *info)
{
    PCALL(conn, backend_backup(c_, file, len, info));
}

static CK_RV fo_restore(backend_conn_t *conn, const uint8_t *file, size_t len,
                        hsm_backup_info_t *info, size_t *nodes)
{
    PCALL(conn, backend_restore(c_, file, len, info, nodes));
}

static CK_RV fo_cluster_status(backend_conn_t *conn, backend_cluster_t *out)
{
    PCALL(conn, backend_cluster_status(c_, out));
}

static CK_RV fo_cluster_add(backend_conn_t *conn, uint64_t id,
                            const char *address)
{
    PCALL(conn, backend_cluster_add(c_, id, address));
}

static CK_RV fo_cluster_remove(backend_conn_t *conn, uint64_t id)
{
    PCALL(conn, backend_cluster_remove(c_, id));
}

static CK_RV fo_cluster_transfer(backend_conn_t *conn, uint64_t id)
{
    PCALL(conn, backend_cluster_transfer(c_, id));
}

const struct backend_ops backend_failover_ops = {
    .kind = "remote",
    .close = fo_close,
    .token_info = fo_token_info,
    .init_token = fo_init_token,
    .mech_list = fo_mech_list,
    .mech_info = fo_mech_info,
    .attrs_free = fo_attrs_free,
    .template_parse = fo_template_parse,
    .conn_open = fo_conn_open,
    .conn_close = fo_conn_close,
    .conn_lost = fo_conn_lost,
    .conn_user_type = fo_conn_user_type,
    .login = fo_login,
    .logout = fo_logout,
    .set_password = fo_set_password,
    .init_pin = fo_init_pin,
    .user_list = fo_user_list,
    .user_create = fo_user_create,
    .user_delete = fo_user_delete,
    .context_login = fo_context_login,
    .session_open = fo_session_open,
    .session_close = fo_session_close,
    .object_create = fo_object_create,
    .object_copy = fo_object_copy,
    .object_destroy = fo_object_destroy,
    .object_size = fo_object_size,
    .object_get = fo_object_get,
    .object_set = fo_object_set,
    .object_find = fo_object_find,
    .object_is_private = fo_object_is_private,
    .object_share = fo_object_share,
    .op_init = fo_op_init,
    .op_init_iv = fo_op_init_iv,
    .op_output_len = fo_op_output_len,
    .op_oneshot = fo_op_oneshot,
    .op_update = fo_op_update,
    .op_final = fo_op_final,
    .op_verify = fo_op_verify,
    .op_digest_key = fo_op_digest_key,
    .op_abort = fo_op_abort,
    .generate_key = fo_generate_key,
    .generate_key_pair = fo_generate_key_pair,
    .derive_key = fo_derive_key,
    .wrap_key = fo_wrap_key,
    .unwrap_key = fo_unwrap_key,
    .msg_init = fo_msg_init,
    .msg_oneshot = fo_msg_oneshot,
    .msg_begin = fo_msg_begin,
    .msg_next = fo_msg_next,
    .msg_output_len = fo_msg_output_len,
    .msg_final = fo_msg_final,
    .msg_abort = fo_msg_abort,
    .random = fo_random,
    .user_set_password = fo_user_set_password,
    .key_list = fo_key_list,
    .key_info = fo_key_info,
    .audit_read = fo_audit_read,
    .audit_verify = fo_audit_verify,
    .object_set_trusted = fo_object_set_trusted,
    .client_list = fo_client_list,
    .quorum_register_key = fo_quorum_register_key,
    .quorum_set_m = fo_quorum_set_m,
    .quorum_get_m = fo_quorum_get_m,
    .quorum_get_token = fo_quorum_get_token,
    .quorum_approve = fo_quorum_approve,
    .quorum_list_tokens = fo_quorum_list_tokens,
    .quorum_del_token = fo_quorum_del_token,
    .login_challenge = fo_login_challenge,
    .login_2fa = fo_login_2fa,
    .user_create_2fa = fo_user_create_2fa,
    .user_set_password_2fa = fo_user_set_password_2fa,
    .login_ticket = fo_login_ticket,
    .login_redeem = fo_login_redeem,
    .cluster_status = fo_cluster_status,
    .masked_extract = fo_masked_extract,
    .masked_insert = fo_masked_insert,
    .backup = fo_backup,
    .restore = fo_restore,
    .cluster_add = fo_cluster_add,
    .cluster_remove = fo_cluster_remove,
    .cluster_transfer = fo_cluster_transfer,
};

/* ------------------------------------------------------------ open */

CK_RV backend_failover_open(const struct config *cfg, backend_t **out)
{
    struct fo *fo;
    CK_RV rv = CKR_OK;

    *out = NULL;
    fo = calloc(1, sizeof(*fo));
    if (fo == NULL)
        return CKR_HOST_MEMORY;
    fo->base.ops = &backend_failover_ops;
    memcpy(&fo->cfg, cfg, sizeof(fo->cfg));
    for (size_t i = 0; i < cfg->nservers && rv == CKR_OK; i++) {
        struct config one;

        memcpy(&one, cfg, sizeof(one));
        one.servers[0] = cfg->servers[i];
        one.nservers = 1;
        rv = backend_remote_open(&one, &fo->mem[i]);
        if (rv == CKR_OK)
            fo->n++;
    }
    if (rv != CKR_OK) {
        fo_close(&fo->base);
        return rv;
    }
    *out = &fo->base;
    return CKR_OK;
}
