/*
 * server.c - the server side of the wire (server.h): one request payload
 * in, one hsm.h call, one reply payload out.
 *
 * Every request is decoded with a bounded allocator (proto.h), then every
 * count and length the client chose is checked against the limits before
 * anything is allocated for the call: templates, attribute values, output
 * room, session count. Session ids on the wire are this connection's own
 * (a counter, never reused) and map to the core's; an id another
 * connection holds is simply not in this connection's table, so it is
 * answered CKR_SESSION_HANDLE_INVALID like one that never existed. Object
 * ids are checked by the core against the connection's login (visibility,
 * ownership), exactly as for the embedded module.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mechparam.h"
#include "common/util.h"
#include "hsm/policy.h"
#include "wire/proto.h"
#include "wire/server.h"

#define SERVER_NAME "nimbusd " PACKAGE_VERSION
/* A name, label or user name on the wire (the front end's PIN limit). */
#define NAME_MAX_WIRE 256

/* One client session: the id on the wire and the core's. */
struct wsess {
    uint32_t wid;
    hsm_sid_t sid;
};

/* One connection (hsm_conn_t) and the channels attached to it. */
struct wconn {
    wire_server_t *srv;
    hsm_conn_t *conn;
    uint8_t token[WIRE_ATTACH_TOKEN_LEN];
    /* who may attach: the peer of the first channel */
    bool tls;
    long uid;
    char cert_sha256[65];
    /* who it is, for info server: the first channel's peer */
    char peer[HSM_PEER_MAX + 1];
    char addr[sizeof(((wire_peer_t *)0)->addr)];
    char client_name[96];
    size_t channels; /* under srv->lock */
    struct wconn *next;

    pthread_mutex_t lock; /* the session table */
    struct wsess *sess;
    size_t nsess, cap;
    size_t opening; /* session opens under way (counted against the max) */
    uint32_t next_wid;
};

struct wire_server {
    hsm_t *hsm;
    size_t max_frame;
    size_t max_sessions;
    size_t max_channels;
    pthread_mutex_t lock;
    size_t nchannels;
    size_t nshm; /* channels with a shared bulk region */
    struct wconn *conns;
    /* nimbusd's cluster (NULL: not in one) */
    _Atomic(const struct wire_cluster_ops *) cluster;
};

struct call;

struct wire_chan {
    wire_server_t *srv;
    wire_peer_t peer;
    struct wconn *wc; /* NULL until the handshake */
    /* The output room of a step, kept across calls so that a bulk call
     * neither maps nor zeroes fresh pages: all zero between calls (it is
     * wiped after each), so it starts as calloc's would. */
    wire_buf_t room;
    /* The call whose reply is out (wire_chan_handle_vec until
     * wire_chan_reply_done): its pieces point into these. */
    struct call *pend;
    Nimbus__Request *pend_q;
    wire_alloc_t pend_wa;
    wire_lifted_t pend_lift;
    /* The shared bulk region (ShmAttachReq; NULL: none), the descriptor
     * the reply to pass (-1: none), and a private copy of an input taken
     * from the region: the client may change the region while the core
     * reads, so the core never reads it. */
    uint8_t *shm;
    int shm_fd;
    wire_buf_t shm_in;
    size_t shm_in_len;
};

/* ------------------------------------------------------------ server */

CK_RV wire_server_new(hsm_t *hsm, const struct config *cfg, wire_server_t **out)
{
    wire_server_t *srv;

    return_val_if_fail(hsm != NULL && cfg != NULL && out != NULL,
                       CKR_ARGUMENTS_BAD);
    *out = NULL;
    srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        return CKR_HOST_MEMORY;
    }
    if (util_mutex_init(&srv->lock) != 0) {
        free(srv);
        return CKR_GENERAL_ERROR;
    }
    srv->hsm = hsm;
    srv->max_frame = cfg->max_frame;
    if (srv->max_frame < CONFIG_MIN_MAX_FRAME) {
        srv->max_frame = CONFIG_MIN_MAX_FRAME;
    }
    srv->max_sessions = cfg->max_sessions_per_connection;
    if (srv->max_sessions == 0 || srv->max_sessions > HSM_MAX_SESSIONS) {
        srv->max_sessions = HSM_MAX_SESSIONS;
    }
    srv->max_channels = cfg->max_connections;
    *out = srv;
    return CKR_OK;
}

void wire_server_set_cluster(wire_server_t *srv,
                             const struct wire_cluster_ops *ops)
{
    if (srv != NULL) {
        atomic_store(&srv->cluster, ops);
    }
}

void wire_server_free(wire_server_t *srv)
{
    if (srv == NULL) {
        return;
    }
    /* Channels still open are the daemon's bug: their connections are
     * closed here so that nothing of the core outlives the server. */
    while (srv->conns != NULL) {
        struct wconn *wc = srv->conns;

        srv->conns = wc->next;
        hsm_conn_close(wc->conn);
        pthread_mutex_destroy(&wc->lock);
        free(wc->sess);
        util_wipe(wc->token, sizeof(wc->token));
        free(wc);
    }
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}

/* ------------------------------------------------------------ channels */

wire_chan_t *wire_chan_new(wire_server_t *srv, const wire_peer_t *peer)
{
    wire_chan_t *ch;

    return_val_if_fail(srv != NULL && peer != NULL, NULL);
    ch = calloc(1, sizeof(*ch));
    if (ch == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&srv->lock);
    if (srv->nchannels >= srv->max_channels) {
        pthread_mutex_unlock(&srv->lock);
        log_warn("wire: %s refused: max_connections (%zu) reached", peer->addr,
                 srv->max_channels);
        free(ch);
        return NULL;
    }
    srv->nchannels++;
    pthread_mutex_unlock(&srv->lock);
    ch->srv = srv;
    ch->shm_fd = -1;
    ch->peer = *peer;
    ch->peer.addr[sizeof(ch->peer.addr) - 1] = '\0';
    ch->peer.cert_subject[sizeof(ch->peer.cert_subject) - 1] = '\0';
    ch->peer.cert_sha256[sizeof(ch->peer.cert_sha256) - 1] = '\0';
    return ch;
}

/* Drops one channel of wc; the last one closes the connection. */
static void conn_release(wire_server_t *srv, struct wconn *wc)
{
    struct wconn **pp;
    bool last;

    pthread_mutex_lock(&srv->lock);
    last = --wc->channels == 0;
    if (last) {
        for (pp = &srv->conns; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == wc) {
                *pp = wc->next;
                break;
            }
        }
    }
    pthread_mutex_unlock(&srv->lock);
    if (!last) {
        return;
    }
    /* Unreachable now (no channel, not in the list): ends every session
     * and the login. */
    hsm_conn_close(wc->conn);
    pthread_mutex_destroy(&wc->lock);
    free(wc->sess);
    util_wipe(wc->token, sizeof(wc->token));
    free(wc);
}

void wire_chan_free(wire_chan_t *ch)
{
    if (ch == NULL) {
        return;
    }
    wire_chan_reply_done(ch, NULL);
    wire_buf_done(&ch->room, ch->room.cap, true);
    wire_buf_done(&ch->shm_in, ch->shm_in.cap, true);
    if (ch->shm != NULL) {
        munmap(ch->shm, WIRE_SHM_SIZE);
        pthread_mutex_lock(&ch->srv->lock);
        ch->srv->nshm--;
        pthread_mutex_unlock(&ch->srv->lock);
    }
    if (ch->wc != NULL) {
        conn_release(ch->srv, ch->wc);
    }
    pthread_mutex_lock(&ch->srv->lock);
    ch->srv->nchannels--;
    pthread_mutex_unlock(&ch->srv->lock);
    free(ch);
}

/* Whether peer may attach to wc: the same uid over a unix socket, the
 * same client certificate over TLS. */
static bool same_peer(const struct wconn *wc, const wire_peer_t *peer)
{
    if (wc->tls != peer->tls) {
        return false;
    }
    if (peer->tls) {
        return wc->cert_sha256[0] != '\0' &&
               strcmp(wc->cert_sha256, peer->cert_sha256) == 0;
    }
    return wc->uid == peer->uid;
}

/* The transport's peer as text: what the transport proved, never what
 * the client says. A control character (a hostile certificate subject)
 * becomes '?'. buf has HSM_PEER_MAX + 1 bytes. */
#define PEER_TEXT_LEN (HSM_PEER_MAX + 1)
static void peer_text(const wire_peer_t *p, char *buf)
{
    if (p->tls) {
        /* a longer subject is cut: the log keeps its first 251 bytes */
        snprintf(buf, PEER_TEXT_LEN, "tls %.*s", PEER_TEXT_LEN - 5,
                 p->cert_subject);
    } else {
        snprintf(buf, PEER_TEXT_LEN, "uid=%ld gid=%ld pid=%ld", p->uid, p->gid,
                 p->pid);
    }
    for (char *c = buf; *c != '\0'; c++) {
        if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f) {
            *c = '?';
        }
    }
}

/* Names the peer to the core for the audit log, and keeps the name for
 * info server. */
static void conn_name_peer(struct wconn *wc, hsm_conn_t *conn,
                           const wire_peer_t *p)
{
    char buf[PEER_TEXT_LEN];

    peer_text(p, buf);
    snprintf(wc->peer, sizeof(wc->peer), "%s", buf);
    if (hsm_conn_set_peer(conn, buf) != CKR_OK) {
        log_warn("wire: cannot name the peer %s in the audit log", p->addr);
    }
    /* What a login ticket is bound to: the account (not the process: the
     * same application's other processes may carry it), or the
     * certificate's subject, whole. */
    if (p->tls) {
        snprintf(buf, PEER_TEXT_LEN, "tls %.*s", PEER_TEXT_LEN - 5,
                 p->cert_subject);
    } else {
        snprintf(buf, PEER_TEXT_LEN, "uid=%ld", p->uid);
    }
    if (hsm_conn_set_peer_class(conn, buf) != CKR_OK) {
        log_warn("wire: cannot bind tickets to the peer %s", p->addr);
    }
}

static CK_RV conn_create(wire_chan_t *ch, struct wconn **out)
{
    wire_server_t *srv = ch->srv;
    struct wconn *wc;
    CK_RV rv;

    wc = calloc(1, sizeof(*wc));
    if (wc == NULL) {
        return CKR_HOST_MEMORY;
    }
    if (getrandom(wc->token, sizeof(wc->token), 0) !=
        (ssize_t)sizeof(wc->token)) {
        free(wc);
        return CKR_FUNCTION_FAILED;
    }
    if (util_mutex_init(&wc->lock) != 0) {
        free(wc);
        return CKR_GENERAL_ERROR;
    }
    rv = hsm_conn_open(srv->hsm, &wc->conn);
    if (rv != CKR_OK) {
        pthread_mutex_destroy(&wc->lock);
        free(wc);
        return rv;
    }
    conn_name_peer(wc, wc->conn, &ch->peer);
    wc->srv = srv;
    wc->tls = ch->peer.tls;
    wc->uid = ch->peer.uid;
    memcpy(wc->cert_sha256, ch->peer.cert_sha256, sizeof(wc->cert_sha256));
    snprintf(wc->addr, sizeof(wc->addr), "%s", ch->peer.addr);
    wc->next_wid = 1;
    wc->channels = 1;
    pthread_mutex_lock(&srv->lock);
    wc->next = srv->conns;
    srv->conns = wc;
    pthread_mutex_unlock(&srv->lock);
    *out = wc;
    return CKR_OK;
}

/* The connection token names, when peer may attach to it. */
static struct wconn *conn_attach(wire_chan_t *ch, const uint8_t *token)
{
    wire_server_t *srv = ch->srv;
    struct wconn *wc, *found = NULL;

    pthread_mutex_lock(&srv->lock);
    for (wc = srv->conns; wc != NULL; wc = wc->next) {
        /* every connection is compared: the time says nothing */
        bool match = util_ct_memcmp(wc->token, token, sizeof(wc->token)) == 0;

        if (match && same_peer(wc, &ch->peer) && found == NULL) {
            found = wc;
        }
    }
    if (found != NULL) {
        found->channels++;
    }
    pthread_mutex_unlock(&srv->lock);
    return found;
}

/* ------------------------------------------------------------ sessions */

static bool sess_lookup(struct wconn *wc, uint32_t wid, hsm_sid_t *sid)
{
    bool ok = false;

    pthread_mutex_lock(&wc->lock);
    for (size_t i = 0; i < wc->nsess; i++) {
        if (wc->sess[i].wid == wid) {
            *sid = wc->sess[i].sid;
            ok = true;
            break;
        }
    }
    pthread_mutex_unlock(&wc->lock);
    return ok;
}

/* Any session open on any connection (C_InitToken wants none). */
static bool any_session(wire_server_t *srv)
{
    bool any = false;

    pthread_mutex_lock(&srv->lock);
    for (struct wconn *wc = srv->conns; wc != NULL && !any; wc = wc->next) {
        pthread_mutex_lock(&wc->lock);
        any = wc->nsess > 0 || wc->opening > 0;
        pthread_mutex_unlock(&wc->lock);
    }
    pthread_mutex_unlock(&srv->lock);
    return any;
}

/* ------------------------------------------------------------ one call */

/* Everything a reply points to, freed (wiped) once it is packed. */
#define OUT_BUFS 4
struct call {
    wire_chan_t *ch;
    struct wconn *wc;
    size_t out_max; /* most output bytes one reply may carry */
    Nimbus__Reply rep;
    union {
        Nimbus__HelloReply hello;
        Nimbus__TokenInfoReply token_info;
        Nimbus__UserTypeReply user_type;
        Nimbus__UserListReply user_list;
        Nimbus__UidReply uid;
        Nimbus__SidReply sid;
        Nimbus__OidReply oid;
        Nimbus__KeyPairReply key_pair;
        Nimbus__LenReply len;
        Nimbus__AttrsReply attrs;
        Nimbus__OidsReply oids;
        Nimbus__BoolReply flag;
        Nimbus__MechListReply mech_list;
        Nimbus__MechInfoReply mech_info;
        Nimbus__OutputReply output;
        Nimbus__IvReply iv;
        Nimbus__MsgReply msg;
        Nimbus__KeyListReply key_list;
        Nimbus__KeyInfoReply key_info;
        Nimbus__AuditReadReply audit_read;
        Nimbus__AuditVerifyReply audit_verify;
        Nimbus__ClientListReply client_list;
        Nimbus__ShmAttachReply shm_attach;
        Nimbus__ClusterStatusReply cluster_status;
        struct {
            Nimbus__DigestReply reply;
            uint8_t digest[HSM_DIGEST_LEN];
        } tfa;
        Nimbus__QuorumMReply quorum_m;
        Nimbus__TicketReply ticket;
        Nimbus__MaskedReply masked;
        struct {
            Nimbus__BackupReply reply;
            hsm_backup_info_t info;
        } backup;
        Nimbus__QuorumApproveReply quorum_approve;
        Nimbus__QuorumTokenListReply quorum_tokens;
    } u;
    /* heap blocks the reply points into: (pointer, length to wipe) */
    struct {
        void *p;
        size_t len;
    } bufs[OUT_BUFS];
    size_t nbufs;
    size_t room_len; /* bytes of ch->room this call handed out */
    bool room_taken;
    /* hsm_attrs_free after packing */
    hsm_attr_t *attrs;
    size_t nattrs;
    /* strings of the reply (audit records, user names) */
    char text[2][HSM_AUDIT_TEXT_MAX + HSM_USER_NAME_MAX + 2];
};

static const uint8_t empty_bytes[1];

/* A byte field as a pointer the core may read (never NULL). */
static const uint8_t *bp(const ProtobufCBinaryData *b)
{
    return b->data != NULL ? b->data : empty_bytes;
}

/* Keeps p (wiped and freed after packing). */
static void *keep(struct call *c, void *p, size_t len)
{
    if (p == NULL || c->nbufs == OUT_BUFS) {
        util_free_wipe(p, len);
        return NULL;
    }
    c->bufs[c->nbufs].p = p;
    c->bufs[c->nbufs].len = len;
    c->nbufs++;
    return p;
}

static void *call_alloc(struct call *c, size_t len)
{
    return keep(c, calloc(1, len == 0 ? 1 : len), len);
}

/*
 * A name, label or user name: bytes without a NUL into buf (NULL when
 * absent and absent_ok). Too long or with a NUL: CKR_ARGUMENTS_BAD.
 */
static CK_RV text_in(bool has, const ProtobufCBinaryData *b, char *buf,
                     size_t room, const char **out)
{
    *out = NULL;
    if (!has) {
        return CKR_OK;
    }
    if (b->len >= room || (b->len > 0 && memchr(b->data, '\0', b->len))) {
        return CKR_ARGUMENTS_BAD;
    }
    if (b->len > 0) {
        memcpy(buf, b->data, b->len);
    }
    buf[b->len] = '\0';
    *out = buf;
    return CKR_OK;
}

/* A client session id into the core's. */
static CK_RV sid_in(struct call *c, uint32_t wid, hsm_sid_t *sid)
{
    if (wid == 0 || !sess_lookup(c->wc, wid, sid)) {
        return CKR_SESSION_HANDLE_INVALID;
    }
    return CKR_OK;
}

/*
 * A template: at most HSM_TEMPLATE_MAX attributes (CKR_ARGUMENTS_BAD),
 * each value at most HSM_ATTR_VALUE_MAX (CKR_ATTRIBUTE_VALUE_INVALID), as
 * the front end checks its caller's. t has HSM_TEMPLATE_MAX entries. An
 * array attribute (CKA_WRAP_TEMPLATE ...) is bytes like any other value:
 * the core's serialized list, which the core parses with every limit
 * (hsm.h); nothing in it is taken as a pointer here.
 */
static CK_RV tmpl_in(size_t n, Nimbus__Attribute *const *a, CK_ATTRIBUTE *t,
                     CK_ULONG *count)
{
    if (n > HSM_TEMPLATE_MAX) {
        return CKR_ARGUMENTS_BAD;
    }
    for (size_t i = 0; i < n; i++) {
        t[i].type = a[i]->type;
        t[i].pValue = NULL;
        t[i].ulValueLen = 0;
        if (a[i]->has_value) {
            if (a[i]->value.len > HSM_ATTR_VALUE_MAX) {
                return CKR_ATTRIBUTE_VALUE_INVALID;
            }
            t[i].pValue = a[i]->value.len > 0 ? a[i]->value.data : NULL;
            t[i].ulValueLen = a[i]->value.len;
        }
    }
    *count = n;
    return CKR_OK;
}

static CK_RV opkind_in(uint32_t k, hsm_opkind_t *kind)
{
    if (k >= HSM_OPK_COUNT) {
        return CKR_ARGUMENTS_BAD;
    }
    *kind = (hsm_opkind_t)k;
    return CKR_OK;
}

static CK_RV msgkind_in(uint32_t k, hsm_msgkind_t *kind)
{
    if (k != HSM_MSG_ENCRYPT && k != HSM_MSG_DECRYPT) {
        return CKR_ARGUMENTS_BAD;
    }
    *kind = (hsm_msgkind_t)k;
    return CKR_OK;
}

/*
 * Output room the client asked for, as a buffer: at most what one reply
 * can carry (a larger output is split by the client into parts).
 */
static uint8_t *room_in(struct call *c, uint64_t asked, size_t *room)
{
    *room = asked > c->out_max ? c->out_max : (size_t)asked;
    return call_alloc(c, *room);
}

/* room_in's, from the channel's kept buffer (once per call). */
static uint8_t *room_kept(struct call *c, uint64_t asked, size_t *room)
{
    wire_buf_t *b = &c->ch->room;
    size_t n;

    if (c->room_taken) {
        return room_in(c, asked, room);
    }
    n = asked > c->out_max ? c->out_max : (size_t)asked;
    if (b->p == NULL || b->cap < n) {
        uint8_t *q = calloc(1, n == 0 ? 1 : n);
        if (q == NULL) {
            return NULL;
        }
        free(b->p); /* all zero: wiped after its last call */
        b->p = q;
        b->cap = n == 0 ? 1 : n;
    }
    c->room_taken = true;
    c->room_len = n;
    *room = n;
    return b->p;
}

/* The output buffer of a step: none when the client has none (a length
 * query), else room_in's. */
static CK_RV out_in(struct call *c, bool has, uint64_t asked, uint8_t **out,
                    size_t *room)
{
    *out = NULL;
    *room = 0;
    if (!has) {
        return CKR_OK;
    }
    *out = room_kept(c, asked, room);
    return *out == NULL ? CKR_HOST_MEMORY : CKR_OK;
}

static void output_out(struct call *c, CK_RV rv, uint8_t *out, size_t outlen)
{
    nimbus__output_reply__init(&c->u.output);
    c->u.output.out_len = outlen;
    if (rv == CKR_OK && out != NULL) {
        c->u.output.has_out = true;
        c->u.output.out.data = out;
        c->u.output.out.len = outlen;
    }
    c->rep.result_case = NIMBUS__REPLY__RESULT_OUTPUT;
    c->rep.output = &c->u.output;
}

static void oid_out(struct call *c, hsm_oid_t oid)
{
    nimbus__oid_reply__init(&c->u.oid);
    c->u.oid.oid = oid;
    c->rep.result_case = NIMBUS__REPLY__RESULT_OID;
    c->rep.oid = &c->u.oid;
}

static void len_out(struct call *c, uint64_t len)
{
    nimbus__len_reply__init(&c->u.len);
    c->u.len.len = len;
    c->rep.result_case = NIMBUS__REPLY__RESULT_LEN;
    c->rep.len = &c->u.len;
}

/* ------------------------------------------------------------ token, users */

static CK_RV do_token_info(struct call *c)
{
    hsm_token_info_t ti;
    Nimbus__TokenInfoReply *r = &c->u.token_info;
    CK_RV rv;

    memset(&ti, 0, sizeof(ti));
    rv = hsm_token_info(c->ch->srv->hsm, c->wc->conn, &ti);
    if (rv != CKR_OK) {
        return rv;
    }
    nimbus__token_info_reply__init(r);
    memcpy(c->text[0], ti.label, sizeof(ti.label));
    c->text[0][sizeof(ti.label) - 1] = '\0';
    memcpy(c->text[1], ti.serial, sizeof(ti.serial));
    c->text[1][sizeof(ti.serial) - 1] = '\0';
    r->label = c->text[0];
    r->serial = c->text[1];
    r->activated = ti.activated;
    r->preco = ti.preco;
    r->cu_exists = ti.cu_exists;
    r->so_failures = ti.so_failures;
    r->user_failures = ti.user_failures;
    r->failure_limit = ti.failure_limit;
    r->objects_private_mem = ti.objects_private_mem;
    c->rep.result_case = NIMBUS__REPLY__RESULT_TOKEN_INFO;
    c->rep.token_info = r;
    return CKR_OK;
}

static CK_RV do_init_token(struct call *c, const Nimbus__InitTokenReq *r)
{
    char name[NAME_MAX_WIRE + 1], label[CONFIG_LABEL_MAX + 1];
    const char *n, *l;
    CK_RV rv;

    if ((rv = text_in(r->has_name, &r->name, name, sizeof(name), &n)) !=
            CKR_OK ||
        (rv = text_in(true, &r->label, label, sizeof(label), &l)) != CKR_OK) {
        return rv;
    }
    /* The front end's rule, for every client of the token: reinitialising
     * destroys objects other sessions hold. */
    if (any_session(c->ch->srv)) {
        return CKR_SESSION_EXISTS;
    }
    rv = hsm_init_token(c->ch->srv->hsm, n, bp(&r->password), r->password.len,
                        l);
    util_wipe(name, sizeof(name));
    return rv;
}

static CK_RV do_conn_user_type(struct call *c)
{
    hsm_uid_t uid = 0;
    hsm_user_type_t t = hsm_conn_user_type(c->wc->conn, &uid);

    nimbus__user_type_reply__init(&c->u.user_type);
    c->u.user_type.type = t;
    c->u.user_type.uid = t == HSM_USER_NONE ? 0 : uid;
    c->rep.result_case = NIMBUS__REPLY__RESULT_USER_TYPE;
    c->rep.user_type = &c->u.user_type;
    return CKR_OK;
}

static CK_RV do_login(struct call *c, const Nimbus__LoginReq *r)
{
    char name[NAME_MAX_WIRE + 1];
    const char *n;
    CK_RV rv;

    if (r->kind > HSM_LOGIN_AU) {
        return CKR_USER_TYPE_INVALID;
    }
    if ((rv = text_in(r->has_name, &r->name, name, sizeof(name), &n)) !=
        CKR_OK) {
        return rv;
    }
    return hsm_login(c->wc->conn, (hsm_login_kind_t)r->kind, n,
                     bp(&r->password), r->password.len);
}

static CK_RV do_login_ticket(struct call *c, const Nimbus__LoginTicketReq *r)
{
    uint8_t *t = call_alloc(c, HSM_TICKET_LEN);
    CK_RV rv;

    (void)r;
    if (t == NULL) {
        return CKR_HOST_MEMORY;
    }
    rv = hsm_login_ticket(c->wc->conn, t);
    if (rv == CKR_OK) {
        nimbus__ticket_reply__init(&c->u.ticket);
        c->u.ticket.ticket.data = t;
        c->u.ticket.ticket.len = HSM_TICKET_LEN;
        c->rep.result_case = NIMBUS__REPLY__RESULT_TICKET;
        c->rep.ticket = &c->u.ticket;
    }
    return rv;
}

/* Any length reaches the core, which refuses a wrong one as a bad ticket
 * (audited). */
static CK_RV do_login_redeem(struct call *c, const Nimbus__LoginRedeemReq *r)
{
    return hsm_login_redeem(c->wc->conn, bp(&r->ticket), r->ticket.len);
}

static CK_RV do_set_password(struct call *c, const Nimbus__SetPasswordReq *r)
{
    char name[NAME_MAX_WIRE + 1];
    const char *n;
    CK_RV rv;

    if ((rv = text_in(r->has_name, &r->name, name, sizeof(name), &n)) !=
        CKR_OK) {
        return rv;
    }
    return hsm_set_password(c->wc->conn, n, bp(&r->old_password),
                            r->old_password.len, bp(&r->new_password),
                            r->new_password.len);
}

static CK_RV do_init_pin(struct call *c, const Nimbus__InitPinReq *r)
{
    char name[NAME_MAX_WIRE + 1];
    const char *n;
    CK_RV rv;

    if ((rv = text_in(r->has_name, &r->name, name, sizeof(name), &n)) !=
        CKR_OK) {
        return rv;
    }
    return hsm_init_pin(c->wc->conn, n, bp(&r->password), r->password.len);
}

static CK_RV do_user_list(struct call *c)
{
    hsm_user_info_t *users = NULL;
    size_t n = 0;
    Nimbus__UserInfo *infos, **ptrs;
    CK_RV rv;

    rv = hsm_user_list(c->wc->conn, &users, &n);
    if (rv != CKR_OK) {
        return rv;
    }
    if (keep(c, users, n * sizeof(*users)) == NULL && n > 0) {
        return CKR_HOST_MEMORY;
    }
    infos = call_alloc(c, n * sizeof(*infos));
    ptrs = call_alloc(c, n * sizeof(*ptrs));
    if (infos == NULL || ptrs == NULL) {
        return CKR_HOST_MEMORY;
    }
    for (size_t i = 0; i < n; i++) {
        nimbus__user_info__init(&infos[i]);
        users[i].name[sizeof(users[i].name) - 1] = '\0';
        infos[i].id = users[i].id;
        infos[i].type = users[i].type;
        infos[i].primary = users[i].primary;
        infos[i].name = users[i].name;
        infos[i].login_failures = users[i].login_failures;
        infos[i].locked = users[i].locked;
        infos[i].has_mofn_pubkey = true;
        infos[i].mofn_pubkey = users[i].mofn_pubkey;
        infos[i].has_twofa = true;
        infos[i].twofa = users[i].twofa;
        ptrs[i] = &infos[i];
    }
    nimbus__user_list_reply__init(&c->u.user_list);
    c->u.user_list.n_users = n;
    c->u.user_list.users = ptrs;
    c->rep.result_case = NIMBUS__REPLY__RESULT_USER_LIST;
    c->rep.user_list = &c->u.user_list;
    return CKR_OK;
}

static CK_RV do_user_create(struct call *c, const Nimbus__UserCreateReq *r)
{
    char name[NAME_MAX_WIRE + 1];
    const char *n;
    hsm_uid_t uid = 0;
    CK_RV rv;

    if (r->type != HSM_USER_CO && r->type != HSM_USER_CU) {
        return CKR_ARGUMENTS_BAD;
    }
    if ((rv = text_in(true, &r->name, name, sizeof(name), &n)) != CKR_OK) {
        return rv;
    }
    rv = hsm_user_create(c->wc->conn, (hsm_user_type_t)r->type, n,
                         bp(&r->password), r->password.len, &uid);
    if (rv == CKR_OK) {
        nimbus__uid_reply__init(&c->u.uid);
        c->u.uid.uid = uid;
        c->rep.result_case = NIMBUS__REPLY__RESULT_UID;
        c->rep.uid = &c->u.uid;
    }
    return rv;
}

static CK_RV do_user_delete(struct call *c, const Nimbus__UserDeleteReq *r)
{
    char name[NAME_MAX_WIRE + 1];
    const char *n;
    CK_RV rv;

    if ((rv = text_in(true, &r->name, name, sizeof(name), &n)) != CKR_OK) {
        return rv;
    }
    return hsm_user_delete(c->wc->conn, n);
}

static CK_RV do_context_login(struct call *c, const Nimbus__ContextLoginReq *r)
{
    char name[NAME_MAX_WIRE + 1];
    const char *n;
    hsm_sid_t sid;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = text_in(r->has_name, &r->name, name, sizeof(name), &n)) !=
            CKR_OK) {
        return rv;
    }
    return hsm_context_login(c->wc->conn, sid, n, bp(&r->password),
                             r->password.len);
}

/* ------------------------------------------------------------ sessions */

static CK_RV do_session_open(struct call *c, const Nimbus__SessionOpenReq *r)
{
    struct wconn *wc = c->wc;
    hsm_sid_t sid;
    uint32_t wid = 0;
    CK_RV rv;

    /* The slot is reserved before the core is asked: two channels of one
     * connection cannot pass the limit together. */
    pthread_mutex_lock(&wc->lock);
    if (wc->nsess + wc->opening >= c->ch->srv->max_sessions ||
        wc->next_wid == UINT32_MAX) {
        pthread_mutex_unlock(&wc->lock);
        return CKR_SESSION_COUNT;
    }
    if (wc->nsess + wc->opening >= wc->cap) {
        size_t cap = wc->cap == 0 ? 8 : wc->cap * 2;
        struct wsess *s = realloc(wc->sess, cap * sizeof(*s));

        if (s == NULL) {
            pthread_mutex_unlock(&wc->lock);
            return CKR_HOST_MEMORY;
        }
        wc->sess = s;
        wc->cap = cap;
    }
    wc->opening++;
    pthread_mutex_unlock(&wc->lock);

    rv = hsm_session_open(wc->conn, r->rw, &sid);

    pthread_mutex_lock(&wc->lock);
    wc->opening--;
    if (rv == CKR_OK) {
        wid = wc->next_wid++;
        wc->sess[wc->nsess].wid = wid;
        wc->sess[wc->nsess].sid = sid;
        wc->nsess++;
    }
    pthread_mutex_unlock(&wc->lock);
    if (rv == CKR_OK) {
        nimbus__sid_reply__init(&c->u.sid);
        c->u.sid.sid = wid;
        c->rep.result_case = NIMBUS__REPLY__RESULT_SID;
        c->rep.sid = &c->u.sid;
    }
    return rv;
}

static CK_RV do_session_close(struct call *c, const Nimbus__SessionCloseReq *r)
{
    struct wconn *wc = c->wc;
    hsm_sid_t sid = 0;
    bool found = false;

    /* Out of the table first: no other channel starts a call on it. */
    pthread_mutex_lock(&wc->lock);
    for (size_t i = 0; i < wc->nsess && r->sid != 0; i++) {
        if (wc->sess[i].wid == r->sid) {
            sid = wc->sess[i].sid;
            wc->sess[i] = wc->sess[--wc->nsess];
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&wc->lock);
    if (!found) {
        return CKR_SESSION_HANDLE_INVALID;
    }
    return hsm_session_close(wc->conn, sid);
}

/* ------------------------------------------------------------ objects */

static CK_RV do_object_create(struct call *c, const Nimbus__ObjectCreateReq *r)
{
    CK_ATTRIBUTE t[HSM_TEMPLATE_MAX];
    CK_ULONG n;
    hsm_sid_t sid;
    hsm_oid_t oid = 0;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = tmpl_in(r->n_template_, r->template_, t, &n)) != CKR_OK) {
        return rv;
    }
    rv = hsm_object_create(c->wc->conn, sid, t, n, &oid);
    if (rv == CKR_OK) {
        oid_out(c, oid);
    }
    return rv;
}

static CK_RV do_object_copy(struct call *c, const Nimbus__ObjectCopyReq *r)
{
    CK_ATTRIBUTE t[HSM_TEMPLATE_MAX];
    CK_ULONG n;
    hsm_sid_t sid;
    hsm_oid_t oid = 0;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = tmpl_in(r->n_template_, r->template_, t, &n)) != CKR_OK) {
        return rv;
    }
    rv = hsm_object_copy(c->wc->conn, sid, r->oid, t, n, &oid);
    if (rv == CKR_OK) {
        oid_out(c, oid);
    }
    return rv;
}

static CK_RV do_object_destroy(struct call *c,
                               const Nimbus__ObjectDestroyReq *r)
{
    hsm_sid_t sid;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK) {
        return rv;
    }
    return hsm_object_destroy(c->wc->conn, sid, r->oid);
}

static CK_RV do_object_size(struct call *c, const Nimbus__ObjectSizeReq *r)
{
    hsm_sid_t sid;
    CK_ULONG size = 0;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK) {
        return rv;
    }
    rv = hsm_object_size(c->wc->conn, sid, r->oid, &size);
    if (rv == CKR_OK) {
        len_out(c, size);
    }
    return rv;
}

static CK_RV do_object_get(struct call *c, const Nimbus__ObjectGetReq *r)
{
    CK_ATTRIBUTE_TYPE types[HSM_TEMPLATE_MAX];
    Nimbus__AttrValue *vals, **ptrs;
    hsm_attr_t *out;
    hsm_sid_t sid;
    size_t n = r->n_types;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK) {
        return rv;
    }
    if (n > HSM_TEMPLATE_MAX) {
        return CKR_ARGUMENTS_BAD;
    }
    for (size_t i = 0; i < n; i++) {
        types[i] = r->types[i];
    }
    out = calloc(n == 0 ? 1 : n, sizeof(*out));
    if (out == NULL) {
        return CKR_HOST_MEMORY;
    }
    c->attrs = out;
    c->nattrs = n;
    rv = hsm_object_get(c->wc->conn, sid, r->oid, types, n, out);
    if (rv != CKR_OK && rv != CKR_ATTRIBUTE_SENSITIVE &&
        rv != CKR_ATTRIBUTE_TYPE_INVALID) {
        return rv;
    }
    vals = call_alloc(c, n * sizeof(*vals));
    ptrs = call_alloc(c, n * sizeof(*ptrs));
    if (vals == NULL || ptrs == NULL) {
        return CKR_HOST_MEMORY;
    }
    for (size_t i = 0; i < n; i++) {
        nimbus__attr_value__init(&vals[i]);
        vals[i].type = out[i].type;
        vals[i].status = out[i].status;
        if (out[i].status == HSM_ATTR_OK) {
            vals[i].has_value = true;
            vals[i].value.data = out[i].value;
            vals[i].value.len = out[i].len;
        }
        ptrs[i] = &vals[i];
    }
    nimbus__attrs_reply__init(&c->u.attrs);
    c->u.attrs.n_attrs = n;
    c->u.attrs.attrs = ptrs;
    c->rep.result_case = NIMBUS__REPLY__RESULT_ATTRS;
    c->rep.attrs = &c->u.attrs;
    return rv;
}

static CK_RV do_object_set(struct call *c, const Nimbus__ObjectSetReq *r)
{
    CK_ATTRIBUTE t[HSM_TEMPLATE_MAX];
    CK_ULONG n;
    hsm_sid_t sid;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = tmpl_in(r->n_template_, r->template_, t, &n)) != CKR_OK) {
        return rv;
    }
    return hsm_object_set(c->wc->conn, sid, r->oid, t, n);
}

static CK_RV do_object_find(struct call *c, const Nimbus__ObjectFindReq *r)
{
    CK_ATTRIBUTE t[HSM_TEMPLATE_MAX];
    CK_ULONG n;
    hsm_sid_t sid;
    hsm_oid_t *oids = NULL;
    size_t count = 0;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = tmpl_in(r->n_template_, r->template_, t, &n)) != CKR_OK) {
        return rv;
    }
    rv = hsm_object_find(c->wc->conn, sid, t, n, &oids, &count);
    if (rv != CKR_OK) {
        return rv;
    }
    if (keep(c, oids, count * sizeof(*oids)) == NULL && count > 0) {
        return CKR_HOST_MEMORY;
    }
    nimbus__oids_reply__init(&c->u.oids);
    c->u.oids.n_oids = count;
    c->u.oids.oids = oids;
    c->rep.result_case = NIMBUS__REPLY__RESULT_OIDS;
    c->rep.oids = &c->u.oids;
    return CKR_OK;
}

static CK_RV do_object_is_private(struct call *c,
                                  const Nimbus__ObjectIsPrivateReq *r)
{
    bool priv = false;
    CK_RV rv = hsm_object_is_private(c->wc->conn, r->oid, &priv);

    if (rv == CKR_OK) {
        nimbus__bool_reply__init(&c->u.flag);
        c->u.flag.value = priv;
        c->rep.result_case = NIMBUS__REPLY__RESULT_FLAG;
        c->rep.flag = &c->u.flag;
    }
    return rv;
}

/* ------------------------------------------------------------ mechanisms */

static CK_RV do_mech_list(struct call *c)
{
    CK_MECHANISM_TYPE *list = NULL;
    size_t n = 0;
    uint64_t *types;
    CK_RV rv;

    rv = hsm_mech_list(c->ch->srv->hsm, &list, &n);
    if (rv != CKR_OK) {
        return rv;
    }
    types = call_alloc(c, n * sizeof(*types));
    for (size_t i = 0; types != NULL && i < n; i++) {
        types[i] = list[i];
    }
    free(list);
    if (types == NULL) {
        return CKR_HOST_MEMORY;
    }
    nimbus__mech_list_reply__init(&c->u.mech_list);
    c->u.mech_list.n_types = n;
    c->u.mech_list.types = types;
    c->rep.result_case = NIMBUS__REPLY__RESULT_MECH_LIST;
    c->rep.mech_list = &c->u.mech_list;
    return CKR_OK;
}

static CK_RV do_mech_info(struct call *c, const Nimbus__MechInfoReq *r)
{
    hsm_mech_info_t mi;
    CK_RV rv;

    memset(&mi, 0, sizeof(mi));
    /* A type wider than CK_MECHANISM_TYPE names no mechanism. */
    if ((CK_MECHANISM_TYPE)r->type != r->type) {
        return CKR_MECHANISM_INVALID;
    }
    rv = hsm_mech_info(c->ch->srv->hsm, (CK_MECHANISM_TYPE)r->type, &mi);
    if (rv == CKR_OK) {
        nimbus__mech_info_reply__init(&c->u.mech_info);
        c->u.mech_info.min_key = mi.min_key;
        c->u.mech_info.max_key = mi.max_key;
        c->u.mech_info.flags = mi.flags;
        c->rep.result_case = NIMBUS__REPLY__RESULT_MECH_INFO;
        c->rep.mech_info = &c->u.mech_info;
    }
    return rv;
}

/* ------------------------------------------------------------ operations */

static CK_RV do_op_output_len(struct call *c, const Nimbus__OpOutputLenReq *r)
{
    hsm_opkind_t kind;
    hsm_sid_t sid;
    size_t outlen = 0;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = opkind_in(r->kind, &kind)) != CKR_OK) {
        return rv;
    }
    if (r->in_len > SIZE_MAX) {
        return CKR_DATA_LEN_RANGE;
    }
    rv = hsm_op_output_len(c->wc->conn, sid, kind, r->final, (size_t)r->in_len,
                           &outlen);
    if (rv == CKR_OK) {
        len_out(c, outlen);
    }
    return rv;
}

/* The input of a step from the shared region: copied out first (the
 * client may change the region at any time), n checked before. */
static CK_RV shm_input(struct call *c, uint64_t n, const uint8_t **in,
                       size_t *inlen)
{
    wire_chan_t *ch = c->ch;
    wire_buf_t *b = &ch->shm_in;

    if (ch->shm == NULL) {
        return CKR_ARGUMENTS_BAD;
    }
    if (n > WIRE_SHM_HALF) {
        return CKR_ARGUMENTS_BAD;
    }
    if (b->p == NULL || b->cap < n) {
        uint8_t *q = malloc(n == 0 ? 1 : (size_t)n);

        if (q == NULL) {
            return CKR_HOST_MEMORY;
        }
        free(b->p); /* wiped after its last call */
        b->p = q;
        b->cap = n == 0 ? 1 : (size_t)n;
    }
    memcpy(b->p, ch->shm, (size_t)n);
    ch->shm_in_len = (size_t)n;
    *in = b->p;
    *inlen = (size_t)n;
    return CKR_OK;
}

static CK_RV do_op_oneshot(struct call *c, const Nimbus__OpOneshotReq *r)
{
    hsm_opkind_t kind;
    hsm_sid_t sid;
    uint8_t *out = NULL;
    size_t outlen = 0, inlen = r->in.len;
    const uint8_t *in = bp(&r->in);
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = opkind_in(r->kind, &kind)) != CKR_OK) {
        return rv;
    }
    if ((r->has_shm_out && r->shm_out && c->ch->shm == NULL) ||
        (r->has_shm_in && r->has_in)) {
        return CKR_ARGUMENTS_BAD;
    }
    if (r->has_shm_in &&
        (rv = shm_input(c, r->shm_in, &in, &inlen)) != CKR_OK) {
        return rv;
    }
    if ((rv = out_in(c, r->has_out_room, r->out_room, &out, &outlen)) !=
        CKR_OK) {
        return rv;
    }
    rv = hsm_op_oneshot(c->wc->conn, sid, kind, in, inlen, out, &outlen);
    if (rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL) {
        output_out(c, rv, out, outlen);
        /* Only a finished step's output reaches the region (a GCM
         * decrypt's plaintext once its tag checked), and only when the
         * client asked for it and it fits. */
        if (rv == CKR_OK && out != NULL && r->has_shm_out && r->shm_out &&
            outlen <= WIRE_SHM_HALF) {
            memcpy(c->ch->shm + WIRE_SHM_HALF, out, outlen);
            c->u.output.has_out = false;
            c->u.output.out.data = NULL;
            c->u.output.out.len = 0;
            c->u.output.has_shm = true;
            c->u.output.shm = true;
        }
    }
    return rv;
}

static CK_RV do_op_update(struct call *c, const Nimbus__OpUpdateReq *r)
{
    hsm_opkind_t kind;
    hsm_sid_t sid;
    uint8_t *out;
    size_t outlen;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = opkind_in(r->kind, &kind)) != CKR_OK) {
        return rv;
    }
    if ((rv = out_in(c, r->has_out_room, r->out_room, &out, &outlen)) !=
        CKR_OK) {
        return rv;
    }
    rv = hsm_op_update(c->wc->conn, sid, kind, bp(&r->in), r->in.len, out,
                       &outlen);
    if (rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL) {
        output_out(c, rv, out, outlen);
    }
    return rv;
}

static CK_RV do_op_final(struct call *c, const Nimbus__OpFinalReq *r)
{
    hsm_opkind_t kind;
    hsm_sid_t sid;
    uint8_t *out;
    size_t outlen;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = opkind_in(r->kind, &kind)) != CKR_OK) {
        return rv;
    }
    if ((rv = out_in(c, r->has_out_room, r->out_room, &out, &outlen)) !=
        CKR_OK) {
        return rv;
    }
    rv = hsm_op_final(c->wc->conn, sid, kind, out, &outlen);
    if (rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL) {
        output_out(c, rv, out, outlen);
    }
    return rv;
}

static CK_RV do_op_verify(struct call *c, const Nimbus__OpVerifyReq *r)
{
    hsm_sid_t sid;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK) {
        return rv;
    }
    return hsm_op_verify(c->wc->conn, sid, r->has_data ? bp(&r->data) : NULL,
                         r->data.len, r->oneshot, bp(&r->signature),
                         r->signature.len);
}

static CK_RV do_op_digest_key(struct call *c, const Nimbus__OpDigestKeyReq *r)
{
    hsm_sid_t sid;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK) {
        return rv;
    }
    return hsm_op_digest_key(c->wc->conn, sid, r->key);
}

static CK_RV do_op_abort(struct call *c, const Nimbus__OpAbortReq *r)
{
    hsm_opkind_t kind;
    hsm_sid_t sid;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = opkind_in(r->kind, &kind)) != CKR_OK) {
        return rv;
    }
    hsm_op_abort(c->wc->conn, sid, kind);
    return CKR_OK;
}

/* ------------------------------------------------------------ mechanisms in */

/*
 * A Mechanism message as hsm_mech_t: its byte strings point into the
 * decoded request (nothing is copied or owned; the request outlives the
 * call). Only sizes are checked here, with the codec's caps
 * (CKR_MECHANISM_PARAM_INVALID); the core checks the meaning and that the
 * layout fits the mechanism type.
 */
struct mech_in {
    hsm_mech_t m;
    hsm_mp_prf_data_t params[HSM_MECH_DATA_PARAMS_MAX];
};

/* A value for a CK_ULONG (or a narrower PKCS#11 integer). */
#define UL_IN(dst, v)                                                          \
    do {                                                                       \
        uint64_t v_ = (v);                                                     \
        (dst) = v_;                                                            \
        if ((uint64_t)(dst) != v_) {                                           \
            return CKR_MECHANISM_PARAM_INVALID;                                \
        }                                                                      \
    } while (0)

static CK_RV bytes_in(protobuf_c_boolean has, const ProtobufCBinaryData *b,
                      size_t max, hsm_bytes_t *o)
{
    o->present = has;
    o->data = NULL;
    o->len = 0;
    if (!has) {
        return CKR_OK;
    }
    if (b->len > max) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    o->len = b->len;
    o->data = b->len > 0 ? b->data : NULL;
    return CKR_OK;
}

#define BYTES_IN(msg, field, dst)                                              \
    do {                                                                       \
        CK_RV rv_ = bytes_in((msg)->has_##field, &(msg)->field,                \
                             HSM_MECH_BYTES_MAX, (dst));                       \
        if (rv_ != CKR_OK) {                                                   \
            return rv_;                                                        \
        }                                                                      \
    } while (0)

static CK_RV oaep_in(const Nimbus__OaepParams *o, hsm_mp_oaep_t *d)
{
    UL_IN(d->hash_alg, o->hash_alg);
    UL_IN(d->mgf, o->mgf);
    UL_IN(d->source, o->source);
    BYTES_IN(o, source_data, &d->source_data);
    return CKR_OK;
}

static CK_RV kbkdf_in(const Nimbus__Sp800108Params *k, struct mech_in *mi)
{
    hsm_mech_t *m = &mi->m;

    if (k->n_params > HSM_MECH_DATA_PARAMS_MAX) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    UL_IN(m->u.kbkdf.prf_type, k->prf_type);
    UL_IN(m->u.kbkdf.additional_keys, k->additional_keys);
    BYTES_IN(k, iv, &m->u.kbkdf.iv);
    for (size_t i = 0; i < k->n_params; i++) {
        const Nimbus__KdfDataParam *p = k->params[i];
        hsm_mp_prf_data_t *d = &mi->params[i];

        memset(d, 0, sizeof(*d));
        UL_IN(d->type, p->type);
        d->has_format = p->has_has_format && p->has_format;
        UL_IN(d->little_endian, p->little_endian);
        UL_IN(d->width_bits, p->width_bits);
        UL_IN(d->dkm_method, p->dkm_method);
        BYTES_IN(p, bytes, &d->bytes);
    }
    m->u.kbkdf.params = k->n_params > 0 ? mi->params : NULL;
    m->u.kbkdf.n_params = k->n_params;
    return CKR_OK;
}

static CK_RV mech_fill(const Nimbus__Mechanism *w, struct mech_in *mi)
{
    hsm_mech_t *m = &mi->m;

    memset(m, 0, sizeof(*m));
    if (w == NULL) {
        return CKR_MECHANISM_INVALID;
    }
    /* A type wider than CK_MECHANISM_TYPE names no mechanism. */
    m->type = (CK_MECHANISM_TYPE)w->type;
    if ((uint64_t)m->type != w->type) {
        return CKR_MECHANISM_INVALID;
    }
    /* A field this server does not know (a later version's layout) is
     * never taken for "no parameter". */
    if (w->base.n_unknown_fields > 0) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    switch (w->param_case) {
    case NIMBUS__MECHANISM__PARAM__NOT_SET:
        m->layout = HSM_MP_NONE;
        return CKR_OK;
    case NIMBUS__MECHANISM__PARAM_UNKNOWN:
        m->layout = HSM_MP_UNKNOWN;
        return CKR_OK;
    case NIMBUS__MECHANISM__PARAM_BYTES:
        m->layout = HSM_MP_BYTES;
        return bytes_in(true, &w->bytes, HSM_MECH_BYTES_MAX, &m->u.bytes);
    case NIMBUS__MECHANISM__PARAM_ULONG:
        m->layout = HSM_MP_ULONG;
        UL_IN(m->u.ulong, w->ulong);
        return CKR_OK;
    case NIMBUS__MECHANISM__PARAM_OBJECT:
        m->layout = HSM_MP_OBJECT;
        m->u.object = w->object;
        return CKR_OK;
    case NIMBUS__MECHANISM__PARAM_PSS:
        m->layout = HSM_MP_RSA_PSS;
        UL_IN(m->u.pss.hash_alg, w->pss->hash_alg);
        UL_IN(m->u.pss.mgf, w->pss->mgf);
        UL_IN(m->u.pss.salt_len, w->pss->salt_len);
        return CKR_OK;
    case NIMBUS__MECHANISM__PARAM_OAEP:
        m->layout = HSM_MP_RSA_OAEP;
        return oaep_in(w->oaep, &m->u.oaep);
    case NIMBUS__MECHANISM__PARAM_EDDSA:
        m->layout = HSM_MP_EDDSA;
        UL_IN(m->u.eddsa.ph_flag, w->eddsa->ph_flag);
        BYTES_IN(w->eddsa, context, &m->u.eddsa.context);
        return CKR_OK;
    case NIMBUS__MECHANISM__PARAM_ECDH1:
        m->layout = HSM_MP_ECDH1;
        UL_IN(m->u.ecdh1.kdf, w->ecdh1->kdf);
        BYTES_IN(w->ecdh1, shared_data, &m->u.ecdh1.shared_data);
        BYTES_IN(w->ecdh1, public_data, &m->u.ecdh1.public_data);
        return CKR_OK;
    case NIMBUS__MECHANISM__PARAM_CTR:
        m->layout = HSM_MP_AES_CTR;
        UL_IN(m->u.ctr.counter_bits, w->ctr->counter_bits);
        if (w->ctr->cb.len != sizeof(m->u.ctr.cb)) {
            return CKR_MECHANISM_PARAM_INVALID;
        }
        memcpy(m->u.ctr.cb, w->ctr->cb.data, sizeof(m->u.ctr.cb));
        return CKR_OK;
    case NIMBUS__MECHANISM__PARAM_GCM:
        m->layout = HSM_MP_GCM;
        UL_IN(m->u.gcm.iv_len, w->gcm->iv_len);
        UL_IN(m->u.gcm.iv_bits, w->gcm->iv_bits);
        UL_IN(m->u.gcm.tag_bits, w->gcm->tag_bits);
        m->u.gcm.short_layout =
            w->gcm->has_short_layout && w->gcm->short_layout;
        BYTES_IN(w->gcm, iv, &m->u.gcm.iv);
        BYTES_IN(w->gcm, aad, &m->u.gcm.aad);
        /* the codec's invariant: a given IV is iv_len bytes */
        if (m->u.gcm.iv.present && m->u.gcm.iv.len != m->u.gcm.iv_len) {
            return CKR_MECHANISM_PARAM_INVALID;
        }
        return CKR_OK;
    case NIMBUS__MECHANISM__PARAM_CCM:
        m->layout = HSM_MP_CCM;
        UL_IN(m->u.ccm.data_len, w->ccm->data_len);
        UL_IN(m->u.ccm.mac_len, w->ccm->mac_len);
        BYTES_IN(w->ccm, nonce, &m->u.ccm.nonce);
        BYTES_IN(w->ccm, aad, &m->u.ccm.aad);
        return CKR_OK;
    case NIMBUS__MECHANISM__PARAM_CHACHA:
        m->layout = HSM_MP_CHACHA20_POLY1305;
        BYTES_IN(w->chacha, nonce, &m->u.chacha.nonce);
        BYTES_IN(w->chacha, aad, &m->u.chacha.aad);
        return CKR_OK;
    case NIMBUS__MECHANISM__PARAM_RSA_AES:
        m->layout = HSM_MP_RSA_AES_KEY_WRAP;
        UL_IN(m->u.rsa_aes.aes_key_bits, w->rsa_aes->aes_key_bits);
        m->u.rsa_aes.has_oaep = w->rsa_aes->oaep != NULL;
        return m->u.rsa_aes.has_oaep
                   ? oaep_in(w->rsa_aes->oaep, &m->u.rsa_aes.oaep)
                   : CKR_OK;
    case NIMBUS__MECHANISM__PARAM_HKDF:
        m->layout = HSM_MP_HKDF;
        UL_IN(m->u.hkdf.extract, w->hkdf->extract);
        UL_IN(m->u.hkdf.expand, w->hkdf->expand);
        UL_IN(m->u.hkdf.prf_hash, w->hkdf->prf_hash);
        UL_IN(m->u.hkdf.salt_type, w->hkdf->salt_type);
        m->u.hkdf.salt_key = w->hkdf->salt_key;
        BYTES_IN(w->hkdf, salt, &m->u.hkdf.salt);
        BYTES_IN(w->hkdf, info, &m->u.hkdf.info);
        return CKR_OK;
    case NIMBUS__MECHANISM__PARAM_SP800108:
        m->layout = HSM_MP_SP800_108;
        return kbkdf_in(w->sp800108, mi);
    case NIMBUS__MECHANISM__PARAM_SP800108_FEEDBACK:
        m->layout = HSM_MP_SP800_108_FEEDBACK;
        return kbkdf_in(w->sp800108_feedback, mi);
    case NIMBUS__MECHANISM__PARAM_PBKDF2:
        m->layout = HSM_MP_PBKDF2;
        UL_IN(m->u.pbkdf2.salt_source, w->pbkdf2->salt_source);
        UL_IN(m->u.pbkdf2.iterations, w->pbkdf2->iterations);
        UL_IN(m->u.pbkdf2.prf, w->pbkdf2->prf);
        BYTES_IN(w->pbkdf2, salt, &m->u.pbkdf2.salt);
        BYTES_IN(w->pbkdf2, prf_data, &m->u.pbkdf2.prf_data);
        BYTES_IN(w->pbkdf2, password, &m->u.pbkdf2.password);
        return CKR_OK;
    case NIMBUS__MECHANISM__PARAM_STRING_DATA:
        m->layout = HSM_MP_KEY_DERIVATION_STRING;
        return bytes_in(true, &w->string_data, HSM_MECH_BYTES_MAX,
                        &m->u.string);
    case NIMBUS__MECHANISM__PARAM_AES_CBC_DATA:
        m->layout = HSM_MP_AES_CBC_ENCRYPT_DATA;
        if (w->aes_cbc_data->iv.len != sizeof(m->u.cbc_data.iv)) {
            return CKR_MECHANISM_PARAM_INVALID;
        }
        memcpy(m->u.cbc_data.iv, w->aes_cbc_data->iv.data,
               sizeof(m->u.cbc_data.iv));
        BYTES_IN(w->aes_cbc_data, data, &m->u.cbc_data.data);
        return CKR_OK;
    case NIMBUS__MECHANISM__PARAM_GCM_MSG:
        m->layout = HSM_MP_GCM_MESSAGE;
        UL_IN(m->u.gcm_msg.iv_fixed_bits, w->gcm_msg->iv_fixed_bits);
        UL_IN(m->u.gcm_msg.generator, w->gcm_msg->generator);
        UL_IN(m->u.gcm_msg.tag_bits, w->gcm_msg->tag_bits);
        BYTES_IN(w->gcm_msg, iv, &m->u.gcm_msg.iv);
        return bytes_in(w->gcm_msg->has_tag, &w->gcm_msg->tag, HSM_MECH_TAG_MAX,
                        &m->u.gcm_msg.tag);
    case NIMBUS__MECHANISM__PARAM_CCM_MSG:
        m->layout = HSM_MP_CCM_MESSAGE;
        UL_IN(m->u.ccm_msg.data_len, w->ccm_msg->data_len);
        UL_IN(m->u.ccm_msg.nonce_fixed_bits, w->ccm_msg->nonce_fixed_bits);
        UL_IN(m->u.ccm_msg.generator, w->ccm_msg->generator);
        UL_IN(m->u.ccm_msg.mac_len, w->ccm_msg->mac_len);
        BYTES_IN(w->ccm_msg, nonce, &m->u.ccm_msg.nonce);
        return bytes_in(w->ccm_msg->has_mac, &w->ccm_msg->mac, HSM_MECH_TAG_MAX,
                        &m->u.ccm_msg.mac);
    case NIMBUS__MECHANISM__PARAM_CHACHA_MSG:
        m->layout = HSM_MP_CHACHA20_POLY1305_MESSAGE;
        BYTES_IN(w->chacha_msg, nonce, &m->u.chacha_msg.nonce);
        return bytes_in(w->chacha_msg->has_tag, &w->chacha_msg->tag,
                        HSM_MECH_TAG_MAX, &m->u.chacha_msg.tag);
    default:
        /* a layout of a later version */
        return CKR_MECHANISM_PARAM_INVALID;
    }
}

/* The Mechanism as hsm_mech_t, with the invariants the codec's decoders
 * give (hsm_mech_check: the core checks them again). */
static CK_RV mech_in(const Nimbus__Mechanism *w, struct mech_in *mi)
{
    CK_RV rv = mech_fill(w, mi);

    return rv == CKR_OK ? hsm_mech_check(&mi->m) : rv;
}

/* ------------------------------------------------------------ crypto calls */

static CK_RV do_op_init(struct call *c, const Nimbus__OpInitReq *r)
{
    struct mech_in mi;
    hsm_opkind_t kind;
    hsm_sid_t sid;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = opkind_in(r->kind, &kind)) != CKR_OK ||
        (rv = mech_in(r->mech, &mi)) != CKR_OK) {
        return rv;
    }
    return hsm_op_init(c->wc->conn, sid, kind, &mi.m, r->key);
}

static CK_RV do_op_init_iv(struct call *c, const Nimbus__OpInitIvReq *r)
{
    struct mech_in mi;
    hsm_opkind_t kind;
    hsm_sid_t sid;
    uint8_t *iv;
    size_t room, ivlen = 0;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = opkind_in(r->kind, &kind)) != CKR_OK ||
        (rv = mech_in(r->mech, &mi)) != CKR_OK) {
        return rv;
    }
    room = r->iv_room > HSM_MSG_IV_MAX ? HSM_MSG_IV_MAX : (size_t)r->iv_room;
    if ((iv = call_alloc(c, room)) == NULL) {
        return CKR_HOST_MEMORY;
    }
    rv =
        hsm_op_init_iv(c->wc->conn, sid, kind, &mi.m, r->key, iv, room, &ivlen);
    if (rv == CKR_OK) {
        nimbus__iv_reply__init(&c->u.iv);
        if (ivlen > 0 && ivlen <= room) {
            c->u.iv.has_iv = true;
            c->u.iv.iv.data = iv;
            c->u.iv.iv.len = ivlen;
        }
        c->rep.result_case = NIMBUS__REPLY__RESULT_IV;
        c->rep.iv = &c->u.iv;
    }
    return rv;
}

static CK_RV do_generate_key(struct call *c, const Nimbus__GenerateKeyReq *r)
{
    CK_ATTRIBUTE t[HSM_TEMPLATE_MAX];
    struct mech_in mi;
    CK_ULONG n;
    hsm_sid_t sid;
    hsm_oid_t oid = 0;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = tmpl_in(r->n_template_, r->template_, t, &n)) != CKR_OK ||
        (rv = mech_in(r->mech, &mi)) != CKR_OK) {
        return rv;
    }
    rv = hsm_generate_key(c->wc->conn, sid, &mi.m, t, n, &oid);
    if (rv == CKR_OK) {
        oid_out(c, oid);
    }
    return rv;
}

static CK_RV do_generate_key_pair(struct call *c,
                                  const Nimbus__GenerateKeyPairReq *r)
{
    CK_ATTRIBUTE pt[HSM_TEMPLATE_MAX], st[HSM_TEMPLATE_MAX];
    struct mech_in mi;
    CK_ULONG pn, sn;
    hsm_sid_t sid;
    hsm_oid_t pub = 0, priv = 0;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = tmpl_in(r->n_pub_template, r->pub_template, pt, &pn)) != CKR_OK ||
        (rv = tmpl_in(r->n_priv_template, r->priv_template, st, &sn)) !=
            CKR_OK ||
        (rv = mech_in(r->mech, &mi)) != CKR_OK) {
        return rv;
    }
    rv = hsm_generate_key_pair(c->wc->conn, sid, &mi.m, pt, pn, st, sn, &pub,
                               &priv);
    if (rv == CKR_OK) {
        nimbus__key_pair_reply__init(&c->u.key_pair);
        c->u.key_pair.pub = pub;
        c->u.key_pair.priv = priv;
        c->rep.result_case = NIMBUS__REPLY__RESULT_KEY_PAIR;
        c->rep.key_pair = &c->u.key_pair;
    }
    return rv;
}

static CK_RV do_derive_key(struct call *c, const Nimbus__DeriveKeyReq *r)
{
    CK_ATTRIBUTE t[HSM_TEMPLATE_MAX];
    struct mech_in mi;
    CK_ULONG n;
    hsm_sid_t sid;
    hsm_oid_t oid = 0;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = tmpl_in(r->n_template_, r->template_, t, &n)) != CKR_OK ||
        (rv = mech_in(r->mech, &mi)) != CKR_OK) {
        return rv;
    }
    rv = hsm_derive_key(c->wc->conn, sid, &mi.m, r->base_key, t, n, &oid);
    if (rv == CKR_OK) {
        oid_out(c, oid);
    }
    return rv;
}

static CK_RV do_wrap_key(struct call *c, const Nimbus__WrapKeyReq *r)
{
    struct mech_in mi;
    hsm_sid_t sid;
    uint8_t *out = NULL;
    size_t outlen = 0;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = mech_in(r->mech, &mi)) != CKR_OK) {
        return rv;
    }
    rv = hsm_wrap_key(c->wc->conn, sid, &mi.m, r->wrapping, r->key, &out,
                      &outlen);
    if (rv != CKR_OK) {
        return rv;
    }
    if (keep(c, out, outlen) == NULL && outlen > 0) {
        return CKR_HOST_MEMORY;
    }
    output_out(c, rv, out != NULL ? out : (uint8_t *)empty_bytes, outlen);
    return CKR_OK;
}

static CK_RV do_unwrap_key(struct call *c, const Nimbus__UnwrapKeyReq *r)
{
    CK_ATTRIBUTE t[HSM_TEMPLATE_MAX];
    struct mech_in mi;
    CK_ULONG n;
    hsm_sid_t sid;
    hsm_oid_t oid = 0;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = tmpl_in(r->n_template_, r->template_, t, &n)) != CKR_OK ||
        (rv = mech_in(r->mech, &mi)) != CKR_OK) {
        return rv;
    }
    rv = hsm_unwrap_key(c->wc->conn, sid, &mi.m, r->unwrapping, bp(&r->wrapped),
                        r->wrapped.len, t, n, &oid);
    if (rv == CKR_OK) {
        oid_out(c, oid);
    }
    return rv;
}

/* ------------------------------------------------------------ messages */

static void msg_out(struct call *c, CK_RV rv, uint8_t *out, size_t outlen,
                    const hsm_msg_result_t *res)
{
    Nimbus__MsgReply *m = &c->u.msg;

    nimbus__msg_reply__init(m);
    m->out_len = outlen;
    if (rv == CKR_OK && out != NULL) {
        m->has_out = true;
        m->out.data = out;
        m->out.len = outlen;
    }
    if (rv == CKR_OK && res->iv_len > 0 && res->iv_len <= HSM_MSG_IV_MAX) {
        m->has_iv = true;
        m->iv.data = (uint8_t *)res->iv;
        m->iv.len = res->iv_len;
    }
    if (rv == CKR_OK && res->tag_len > 0 && res->tag_len <= HSM_MSG_TAG_MAX) {
        m->has_tag = true;
        m->tag.data = (uint8_t *)res->tag;
        m->tag.len = res->tag_len;
    }
    c->rep.result_case = NIMBUS__REPLY__RESULT_MSG;
    c->rep.msg = m;
}

static CK_RV do_msg_init(struct call *c, const Nimbus__MsgInitReq *r)
{
    struct mech_in mi;
    hsm_msgkind_t kind;
    hsm_sid_t sid;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = msgkind_in(r->kind, &kind)) != CKR_OK ||
        (rv = mech_in(r->mech, &mi)) != CKR_OK) {
        return rv;
    }
    return hsm_msg_init(c->wc->conn, sid, kind, &mi.m, r->key);
}

static CK_RV do_msg_oneshot(struct call *c, const Nimbus__MsgOneshotReq *r)
{
    hsm_msg_result_t *res;
    struct mech_in mi;
    hsm_msgkind_t kind;
    hsm_sid_t sid;
    uint8_t *out;
    size_t outlen;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = msgkind_in(r->kind, &kind)) != CKR_OK ||
        (rv = mech_in(r->param, &mi)) != CKR_OK ||
        (rv = out_in(c, r->has_out_room, r->out_room, &out, &outlen)) !=
            CKR_OK) {
        return rv;
    }
    if ((res = call_alloc(c, sizeof(*res))) == NULL) {
        return CKR_HOST_MEMORY;
    }
    rv = hsm_msg_oneshot(c->wc->conn, sid, kind, &mi.m, bp(&r->aad), r->aad.len,
                         bp(&r->in), r->in.len, out, &outlen, res);
    if (rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL) {
        msg_out(c, rv, out, outlen, res);
    }
    return rv;
}

static CK_RV do_msg_begin(struct call *c, const Nimbus__MsgBeginReq *r)
{
    hsm_msg_result_t *res;
    struct mech_in mi;
    hsm_msgkind_t kind;
    hsm_sid_t sid;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = msgkind_in(r->kind, &kind)) != CKR_OK ||
        (rv = mech_in(r->param, &mi)) != CKR_OK) {
        return rv;
    }
    if ((res = call_alloc(c, sizeof(*res))) == NULL) {
        return CKR_HOST_MEMORY;
    }
    rv = hsm_msg_begin(c->wc->conn, sid, kind, &mi.m, bp(&r->aad), r->aad.len,
                       res);
    if (rv == CKR_OK) {
        msg_out(c, rv, NULL, 0, res);
    }
    return rv;
}

static CK_RV do_msg_next(struct call *c, const Nimbus__MsgNextReq *r)
{
    hsm_msg_result_t *res;
    struct mech_in mi;
    hsm_msgkind_t kind;
    hsm_sid_t sid;
    uint8_t *out;
    size_t outlen;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = msgkind_in(r->kind, &kind)) != CKR_OK ||
        (rv = mech_in(r->param, &mi)) != CKR_OK ||
        (rv = out_in(c, r->has_out_room, r->out_room, &out, &outlen)) !=
            CKR_OK) {
        return rv;
    }
    if ((res = call_alloc(c, sizeof(*res))) == NULL) {
        return CKR_HOST_MEMORY;
    }
    rv = hsm_msg_next(c->wc->conn, sid, kind, &mi.m, bp(&r->in), r->in.len,
                      r->last, out, &outlen, res);
    if (rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL) {
        msg_out(c, rv, out, outlen, res);
    }
    return rv;
}

static CK_RV do_msg_output_len(struct call *c, const Nimbus__MsgOutputLenReq *r)
{
    hsm_msgkind_t kind;
    hsm_sid_t sid;
    size_t outlen = 0;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = msgkind_in(r->kind, &kind)) != CKR_OK) {
        return rv;
    }
    if (r->in_len > SIZE_MAX) {
        return CKR_DATA_LEN_RANGE;
    }
    rv = hsm_msg_output_len(c->wc->conn, sid, kind, r->last, (size_t)r->in_len,
                            &outlen);
    if (rv == CKR_OK) {
        len_out(c, outlen);
    }
    return rv;
}

static CK_RV do_msg_final(struct call *c, const Nimbus__MsgFinalReq *r)
{
    hsm_msgkind_t kind;
    hsm_sid_t sid;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = msgkind_in(r->kind, &kind)) != CKR_OK) {
        return rv;
    }
    return hsm_msg_final(c->wc->conn, sid, kind);
}

static CK_RV do_msg_abort(struct call *c, const Nimbus__MsgAbortReq *r)
{
    hsm_msgkind_t kind;
    hsm_sid_t sid;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK ||
        (rv = msgkind_in(r->kind, &kind)) != CKR_OK) {
        return rv;
    }
    hsm_msg_abort(c->wc->conn, sid, kind);
    return CKR_OK;
}

/* ------------------------------------------------------------ misc, mgmt */

static CK_RV do_random(struct call *c, const Nimbus__RandomReq *r)
{
    hsm_sid_t sid;
    uint8_t *buf;
    CK_RV rv;

    if ((rv = sid_in(c, r->sid, &sid)) != CKR_OK) {
        return rv;
    }
    /* More than a reply carries: the client asks in parts. */
    if (r->len > c->out_max) {
        return CKR_ARGUMENTS_BAD;
    }
    if ((buf = call_alloc(c, (size_t)r->len)) == NULL) {
        return CKR_HOST_MEMORY;
    }
    rv = hsm_random(c->wc->conn, sid, buf, (size_t)r->len);
    if (rv == CKR_OK) {
        output_out(c, rv, buf, (size_t)r->len);
    }
    return rv;
}

static CK_RV do_object_share(struct call *c, const Nimbus__ObjectShareReq *r)
{
    return hsm_object_share(c->wc->conn, r->oid, r->uid, r->share);
}

static CK_RV do_user_set_password(struct call *c,
                                  const Nimbus__UserSetPasswordReq *r)
{
    char name[NAME_MAX_WIRE + 1];
    const char *n;
    CK_RV rv;

    if ((rv = text_in(true, &r->name, name, sizeof(name), &n)) != CKR_OK) {
        return rv;
    }
    return hsm_user_set_password(c->wc->conn, n, bp(&r->password),
                                 r->password.len);
}

static CK_RV do_key_list(struct call *c, const Nimbus__KeyListReq *r)
{
    hsm_key_ref_t *keys = NULL;
    size_t n = 0;
    uint8_t *digest;
    Nimbus__KeyRef *refs, **ptrs;
    CK_RV rv;

    if ((digest = call_alloc(c, HSM_DIGEST_LEN)) == NULL) {
        return CKR_HOST_MEMORY;
    }
    rv = hsm_key_list(c->wc->conn, r->uid, &keys, &n, digest);
    if (rv != CKR_OK) {
        return rv;
    }
    refs = call_alloc(c, n * sizeof(*refs));
    ptrs = call_alloc(c, n * sizeof(*ptrs));
    if (refs == NULL || ptrs == NULL) {
        free(keys);
        return CKR_HOST_MEMORY;
    }
    for (size_t i = 0; i < n; i++) {
        nimbus__key_ref__init(&refs[i]);
        refs[i].oid = keys[i].oid;
        refs[i].owned = keys[i].owned;
        ptrs[i] = &refs[i];
    }
    free(keys);
    nimbus__key_list_reply__init(&c->u.key_list);
    c->u.key_list.n_keys = n;
    c->u.key_list.keys = ptrs;
    c->u.key_list.digest.data = digest;
    c->u.key_list.digest.len = HSM_DIGEST_LEN;
    c->rep.result_case = NIMBUS__REPLY__RESULT_KEY_LIST;
    c->rep.key_list = &c->u.key_list;
    return CKR_OK;
}

static CK_RV do_key_info(struct call *c, const Nimbus__KeyInfoReq *r)
{
    hsm_uid_t owner = 0, *shared = NULL;
    size_t n = 0;
    CK_RV rv;

    rv = hsm_key_info(c->wc->conn, r->oid, &owner, &shared, &n);
    if (rv != CKR_OK) {
        return rv;
    }
    if (keep(c, shared, n * sizeof(*shared)) == NULL && n > 0) {
        return CKR_HOST_MEMORY;
    }
    nimbus__key_info_reply__init(&c->u.key_info);
    c->u.key_info.owner = owner;
    c->u.key_info.n_shared = n;
    c->u.key_info.shared = shared;
    c->rep.result_case = NIMBUS__REPLY__RESULT_KEY_INFO;
    c->rep.key_info = &c->u.key_info;
    return CKR_OK;
}

static CK_RV do_masked_extract(struct call *c,
                               const Nimbus__MaskedExtractReq *r)
{
    uint8_t *file = NULL;
    size_t len = 0;
    CK_RV rv = hsm_masked_extract(c->wc->conn, r->oid, &file, &len);

    if (rv != CKR_OK) {
        return rv;
    }
    if (keep(c, file, len) == NULL) {
        return CKR_HOST_MEMORY;
    }
    nimbus__masked_reply__init(&c->u.masked);
    c->u.masked.file.data = file;
    c->u.masked.file.len = len;
    c->rep.result_case = NIMBUS__REPLY__RESULT_MASKED;
    c->rep.masked = &c->u.masked;
    return CKR_OK;
}

static CK_RV do_masked_insert(struct call *c, const Nimbus__MaskedInsertReq *r)
{
    hsm_oid_t oid = 0;
    CK_RV rv = hsm_masked_insert(c->wc->conn, bp(&r->file), r->file.len, &oid);

    if (rv == CKR_OK) {
        oid_out(c, oid);
    }
    return rv;
}

/* The reply of a backup or restore: info, kept in the call. */
static void backup_out(struct call *c)
{
    Nimbus__BackupReply *r = &c->u.backup.reply;
    hsm_backup_info_t *info = &c->u.backup.info;

    nimbus__backup_reply__init(r);
    r->domain = info->domain;
    r->source = info->source;
    r->applied = info->applied;
    r->time = info->time;
    r->users = info->users;
    r->objects = info->objects;
    r->digest.data = info->digest;
    r->digest.len = sizeof(info->digest);
    c->rep.result_case = NIMBUS__REPLY__RESULT_BACKUP;
    c->rep.backup = r;
}

static CK_RV do_backup(struct call *c)
{
    uint8_t *file = NULL;
    size_t len = 0;
    CK_RV rv = hsm_backup(c->wc->conn, &file, &len, &c->u.backup.info);

    if (rv != CKR_OK) {
        return rv;
    }
    if (keep(c, file, len) == NULL) {
        return CKR_HOST_MEMORY;
    }
    backup_out(c);
    c->u.backup.reply.has_file = true;
    c->u.backup.reply.file.data = file;
    c->u.backup.reply.file.len = len;
    return CKR_OK;
}

/* How long a restore's reply waits for the other nodes to have its
 * entry (as nimbus-mgmt waits for a user change's). */
#define RESTORE_NODES_WAIT_MS 1500

/*
 * The nodes that have the entry just applied here: this one, and when it
 * leads, each node whose log reaches this node's applied index. The
 * client cannot ask them itself: the restore ended its login everywhere.
 */
static uint32_t restore_nodes(struct call *c)
{
    const struct wire_cluster_ops *ops = atomic_load(&c->ch->srv->cluster);
    struct cluster_status *st;
    uint8_t digest[32];
    uint64_t applied = 0;
    uint32_t n = 1;

    if (ops == NULL || ops->digest(ops->ctx, digest, &applied) != CKR_OK ||
        (st = malloc(sizeof(*st))) == NULL) {
        return 1;
    }
    for (int waited = 0; waited <= RESTORE_NODES_WAIT_MS; waited += 50) {
        struct timespec pause = {0, 50 * 1000000L};

        if (ops->status(ops->ctx, st) != 0 || st->role != CLUSTER_ROLE_LEADER) {
            break;
        }
        n = 1;
        for (size_t i = 0; i < st->nnodes && i < CLUSTER_NODES_MAX; i++) {
            if (st->nodes[i].id != st->node_id &&
                st->nodes[i].match_index >= applied) {
                n++;
            }
        }
        if (n >= st->nnodes) {
            break;
        }
        nanosleep(&pause, NULL);
    }
    free(st);
    return n;
}

static CK_RV do_restore(struct call *c, const Nimbus__RestoreReq *r)
{
    CK_RV rv =
        hsm_restore(c->wc->conn, bp(&r->file), r->file.len, &c->u.backup.info);

    if (rv != CKR_OK) {
        return rv;
    }
    backup_out(c);
    c->u.backup.reply.has_nodes = true;
    c->u.backup.reply.nodes = restore_nodes(c);
    return CKR_OK;
}

static CK_RV do_audit_read(struct call *c, const Nimbus__AuditReadReq *r)
{
    hsm_audit_record_t *recs = NULL;
    Nimbus__AuditRecord *out, **ptrs;
    size_t n = 0;
    CK_RV rv;

    if (r->max > HSM_AUDIT_READ_MAX) {
        return CKR_ARGUMENTS_BAD;
    }
    rv = hsm_audit_read(c->wc->conn, r->after, (size_t)r->max, &recs, &n);
    if (rv != CKR_OK) {
        return rv;
    }
    if (keep(c, recs, n * sizeof(*recs)) == NULL && n > 0) {
        return CKR_HOST_MEMORY;
    }
    out = call_alloc(c, n * sizeof(*out));
    ptrs = call_alloc(c, n * sizeof(*ptrs));
    if (out == NULL || ptrs == NULL) {
        return CKR_HOST_MEMORY;
    }
    for (size_t i = 0; i < n; i++) {
        nimbus__audit_record__init(&out[i]);
        recs[i].hsm_id[HSM_AUDIT_TEXT_MAX] = '\0';
        recs[i].op[HSM_AUDIT_TEXT_MAX] = '\0';
        out[i].seq = recs[i].seq;
        out[i].time = recs[i].time;
        out[i].hsm_id = recs[i].hsm_id;
        out[i].user = recs[i].user;
        out[i].op = recs[i].op;
        out[i].oid = recs[i].oid;
        out[i].result = recs[i].result;
        out[i].hash.data = recs[i].hash;
        out[i].hash.len = HSM_DIGEST_LEN;
        recs[i].peer[HSM_PEER_MAX] = '\0';
        out[i].peer = recs[i].peer;
        ptrs[i] = &out[i];
    }
    nimbus__audit_read_reply__init(&c->u.audit_read);
    c->u.audit_read.n_records = n;
    c->u.audit_read.records = ptrs;
    c->rep.result_case = NIMBUS__REPLY__RESULT_AUDIT_READ;
    c->rep.audit_read = &c->u.audit_read;
    return CKR_OK;
}

static CK_RV do_audit_verify(struct call *c)
{
    hsm_audit_check_t chk;
    CK_RV rv;

    memset(&chk, 0, sizeof(chk));
    rv = hsm_audit_verify(c->wc->conn, &chk);
    if (rv == CKR_OK) {
        nimbus__audit_verify_reply__init(&c->u.audit_verify);
        c->u.audit_verify.status = chk.status;
        c->u.audit_verify.records = chk.records;
        c->u.audit_verify.first_bad = chk.first_bad;
        c->rep.result_case = NIMBUS__REPLY__RESULT_AUDIT_VERIFY;
        c->rep.audit_verify = &c->u.audit_verify;
    }
    return rv;
}

/* ------------------------------------------------------------ clients */

/* One entry of the client list and the text it points to. */
struct client_ent {
    Nimbus__ClientInfo ci;
    char peer[sizeof(((struct wconn *)0)->peer)];
    char addr[sizeof(((struct wconn *)0)->addr)];
    char name[sizeof(((struct wconn *)0)->client_name)];
};

/*
 * The connections of this server: peer, sessions, channels, who is logged
 * in. A CO only (the policy's user-management row): it names other
 * applications and their users. As many as one reply carries.
 */
/* A sealed memfd of WIRE_SHM_SIZE bytes mapped here; its descriptor
 * goes out with the reply (wire_chan_take_fd). */
static CK_RV do_shm_attach(struct call *c)
{
    wire_chan_t *ch = c->ch;
    wire_server_t *srv = ch->srv;
    void *p;
    int fd;

    if (ch->peer.tls) {
        return CKR_FUNCTION_NOT_SUPPORTED; /* a descriptor does not travel */
    }
    if (ch->shm != NULL) {
        return CKR_FUNCTION_FAILED; /* once per channel */
    }
    pthread_mutex_lock(&srv->lock);
    if (srv->nshm >= WIRE_SHM_CHANNELS_MAX) {
        pthread_mutex_unlock(&srv->lock);
        return CKR_DEVICE_MEMORY;
    }
    srv->nshm++;
    pthread_mutex_unlock(&srv->lock);
    fd = memfd_create("nimbus-bulk", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    /* Sealed before the client sees it: neither side can shrink it under
     * the other's mapping (SIGBUS) or grow it. */
    if (fd < 0 || ftruncate(fd, WIRE_SHM_SIZE) != 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) !=
            0 ||
        (p = mmap(NULL, WIRE_SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                  0)) == MAP_FAILED) {
        log_info("wire: %s: no shared region: %s", ch->peer.addr,
                 strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        pthread_mutex_lock(&srv->lock);
        srv->nshm--;
        pthread_mutex_unlock(&srv->lock);
        return CKR_DEVICE_MEMORY;
    }
    ch->shm = p;
    ch->shm_fd = fd;
    nimbus__shm_attach_reply__init(&c->u.shm_attach);
    c->u.shm_attach.size = WIRE_SHM_SIZE;
    c->u.shm_attach.half = WIRE_SHM_HALF;
    c->rep.result_case = NIMBUS__REPLY__RESULT_SHM_ATTACH;
    c->rep.shm_attach = &c->u.shm_attach;
    return CKR_OK;
}

int wire_chan_take_fd(wire_chan_t *ch)
{
    int fd;

    if (ch == NULL) {
        return -1;
    }
    fd = ch->shm_fd;
    ch->shm_fd = -1;
    return fd;
}

static CK_RV do_client_list(struct call *c)
{
    wire_server_t *srv = c->ch->srv;
    Nimbus__ClientInfo **ptrs;
    struct client_ent *ents;
    struct wconn *wc;
    size_t n = 0, max;
    void *block;
    CK_RV rv;

    rv = hsm_conn_policy_check(c->wc->conn, HSM_OP_MANAGE_USERS);
    if (rv != CKR_OK) {
        return rv;
    }
    /* a packed entry is at most its text and some 40 bytes of numbers */
    max = c->out_max / (sizeof(*ents) + 64);
    pthread_mutex_lock(&srv->lock);
    for (wc = srv->conns; wc != NULL; wc = wc->next) {
        n++;
    }
    if (n > max) {
        n = max;
    }
    block = call_alloc(c, n * (sizeof(*ents) + sizeof(*ptrs)));
    if (block == NULL) {
        pthread_mutex_unlock(&srv->lock);
        return CKR_HOST_MEMORY;
    }
    ents = block;
    ptrs = (Nimbus__ClientInfo **)(ents + n);
    wc = srv->conns;
    for (size_t i = 0; i < n && wc != NULL; i++, wc = wc->next) {
        struct client_ent *e = &ents[i];
        hsm_uid_t uid = 0;

        nimbus__client_info__init(&e->ci);
        memcpy(e->peer, wc->peer, sizeof(e->peer));
        memcpy(e->addr, wc->addr, sizeof(e->addr));
        memcpy(e->name, wc->client_name, sizeof(e->name));
        e->ci.peer = e->peer;
        e->ci.addr = e->addr;
        e->ci.client_name = e->name;
        e->ci.channels = (uint32_t)wc->channels;
        pthread_mutex_lock(&wc->lock);
        e->ci.sessions = (uint32_t)wc->nsess;
        pthread_mutex_unlock(&wc->lock);
        e->ci.user_type = (uint32_t)hsm_conn_user_type(wc->conn, &uid);
        e->ci.user_id = uid;
        e->ci.self = wc == c->wc;
        ptrs[i] = &e->ci;
    }
    pthread_mutex_unlock(&srv->lock);
    nimbus__client_list_reply__init(&c->u.client_list);
    c->u.client_list.n_clients = n;
    c->u.client_list.clients = ptrs;
    c->rep.result_case = NIMBUS__REPLY__RESULT_CLIENT_LIST;
    c->rep.client_list = &c->u.client_list;
    return CKR_OK;
}

/* ------------------------------------------------------------ cluster */

/* An engine's CLUSTER_E* code as the CK_RV nimbus.proto lists. */
static CK_RV cluster_rv(int err)
{
    switch (err) {
    case 0:
        return CKR_OK;
    case CLUSTER_ENOMEM:
        return CKR_DEVICE_MEMORY;
    case CLUSTER_EINVAL:
        return CKR_ARGUMENTS_BAD;
    case CLUSTER_ETIMEDOUT:
        return CKR_FUNCTION_FAILED;
    case CLUSTER_ENOLEADER:
        return CKR_DEVICE_ERROR;
    case CLUSTER_ENOTFOUND:
        return CKR_SLOT_ID_INVALID;
    case CLUSTER_EBUSY:
        return CKR_OPERATION_ACTIVE;
    case CLUSTER_ESTOPPED:
        return CKR_FUNCTION_CANCELED;
    case CLUSTER_EREFUSED:
        return CKR_ACTION_PROHIBITED;
    default:
        /* CLUSTER_EIO, or a code this file does not know */
        return CKR_GENERAL_ERROR;
    }
}

/* What a status reply points into (freed after packing). */
struct status_block {
    struct cluster_status st;
    Nimbus__ClusterNode nodes[CLUSTER_NODES_MAX];
    Nimbus__ClusterNode *ptrs[CLUSTER_NODES_MAX];
    uint8_t digest[32];
};

/* This node's view of the cluster and its digest: sync status. */
static CK_RV do_cluster_status(struct call *c)
{
    const struct wire_cluster_ops *ops = atomic_load(&c->ch->srv->cluster);
    Nimbus__ClusterStatusReply *r = &c->u.cluster_status;
    struct status_block *b;
    uint64_t applied = 0;
    CK_RV rv;
    int err;

    rv = hsm_conn_policy_check(c->wc->conn, HSM_OP_SYNC_STATUS);
    if (rv != CKR_OK) {
        return rv;
    }
    if (ops == NULL) {
        return CKR_FUNCTION_NOT_SUPPORTED; /* not in a cluster */
    }
    if ((b = call_alloc(c, sizeof(*b))) == NULL) {
        return CKR_HOST_MEMORY;
    }
    if ((err = ops->status(ops->ctx, &b->st)) != 0) {
        return cluster_rv(err);
    }
    if (b->st.nnodes > CLUSTER_NODES_MAX) {
        log_warn("wire: the cluster reports %zu nodes (at most %d)",
                 b->st.nnodes, CLUSTER_NODES_MAX);
        return CKR_GENERAL_ERROR;
    }
    if ((rv = ops->digest(ops->ctx, b->digest, &applied)) != CKR_OK) {
        return rv;
    }
    nimbus__cluster_status_reply__init(r);
    r->node_id = b->st.node_id;
    r->role = (uint32_t)b->st.role;
    r->term = b->st.term;
    r->leader_id = b->st.leader_id;
    b->st.leader_address[CLUSTER_ADDRESS_MAX] = '\0';
    r->leader_address = b->st.leader_address;
    r->commit_index = b->st.commit_index;
    r->applied_index = b->st.applied_index;
    r->last_index = b->st.last_index;
    for (size_t i = 0; i < b->st.nnodes; i++) {
        struct cluster_node *n = &b->st.nodes[i];

        nimbus__cluster_node__init(&b->nodes[i]);
        n->address[CLUSTER_ADDRESS_MAX] = '\0';
        b->nodes[i].id = n->id;
        b->nodes[i].address = n->address;
        b->nodes[i].member = (uint32_t)n->member;
        b->nodes[i].match_index = n->match_index;
        b->ptrs[i] = &b->nodes[i];
    }
    r->n_nodes = b->st.nnodes;
    r->nodes = b->ptrs;
    r->digest.data = b->digest;
    r->digest.len = sizeof(b->digest);
    r->digest_applied = applied;
    r->has_peers_refused = true;
    r->peers_refused = b->st.peers_refused;
    if (ops->cluster_id != NULL) {
        r->cluster_id = (char *)ops->cluster_id;
    }
    c->rep.result_case = NIMBUS__REPLY__RESULT_CLUSTER_STATUS;
    c->rep.cluster_status = r;
    return CKR_OK;
}

/* addNode, removeNode, transferLeader: a CO only. */
static CK_RV do_cluster_change(struct call *c,
                               const Nimbus__ClusterChangeReq *r)
{
    static const char *const what[] = {"", "add", "remove", "transfer to"};
    const struct wire_cluster_ops *ops = atomic_load(&c->ch->srv->cluster);
    char addr[CLUSTER_ADDRESS_MAX + 1];
    const char *a = NULL;
    hsm_uid_t uid = 0;
    CK_RV rv;
    int err;

    rv = hsm_conn_policy_check(c->wc->conn, HSM_OP_CLUSTER_ADMIN);
    if (rv != CKR_OK) {
        return rv;
    }
    /* raft ids are 64-bit; node certificates and the shell use 32 */
    if (r->id == 0 || r->id > UINT32_MAX) {
        return CKR_ARGUMENTS_BAD;
    }
    switch (r->kind) {
    case WIRE_CLUSTER_ADD:
        if (!r->has_address ||
            text_in(true, &r->address, addr, sizeof(addr), &a) != CKR_OK ||
            config_check_node_address(a) != NULL) {
            return CKR_ARGUMENTS_BAD;
        }
        break;
    case WIRE_CLUSTER_REMOVE:
    case WIRE_CLUSTER_TRANSFER:
        if (r->has_address) {
            return CKR_ARGUMENTS_BAD;
        }
        break;
    default:
        return CKR_ARGUMENTS_BAD;
    }
    if (ops == NULL) {
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
    if (r->kind == WIRE_CLUSTER_ADD) {
        err = ops->add(ops->ctx, r->id, a);
    } else if (r->kind == WIRE_CLUSTER_REMOVE) {
        err = ops->remove(ops->ctx, r->id);
    } else {
        err = ops->transfer(ops->ctx, r->id);
    }
    rv = cluster_rv(err);
    /* who changed the membership: the peer the transport proved, the CO */
    (void)hsm_conn_user_type(c->wc->conn, &uid);
    log_info("wire: %s, user %u: cluster: %s node %" PRIu64 "%s%s: 0x%lx",
             c->wc->peer, (unsigned)uid, what[r->kind], r->id,
             a != NULL ? " at " : "", a != NULL ? a : "", (unsigned long)rv);
    /* and in the audit log, which the cluster replicates: the record is
     * written after the change, so a node removed by it may miss it */
    if (hsm_audit_event(c->wc->conn,
                        r->kind == WIRE_CLUSTER_ADD      ? "node_add"
                        : r->kind == WIRE_CLUSTER_REMOVE ? "node_remove"
                                                         : "node_transfer",
                        r->id, rv) != CKR_OK)
        log_error("wire: the membership change is not in the audit log");
    return rv;
}

/* ------------------------------------------------------------ quorum */

/* The lengths are the core's to judge (the same codes as embedded):
 * nothing here is allocated from them, they point into the request. */
static CK_RV do_quorum_register_key(struct call *c,
                                    const Nimbus__QuorumRegisterKeyReq *r)
{
    char name[NAME_MAX_WIRE + 1];
    const char *n;
    CK_RV rv;

    if ((rv = text_in(true, &r->name, name, sizeof(name), &n)) != CKR_OK) {
        return rv;
    }
    return hsm_quorum_register_key(c->wc->conn, n, bp(&r->reg_token),
                                   r->reg_token.len, bp(&r->signature),
                                   r->signature.len, bp(&r->pubkey),
                                   r->pubkey.len);
}

static CK_RV do_quorum_get_m(struct call *c, const Nimbus__QuorumGetMReq *r)
{
    unsigned m = 0;
    CK_RV rv = hsm_quorum_get_m(c->wc->conn, r->service, &m);

    if (rv == CKR_OK) {
        nimbus__quorum_mreply__init(&c->u.quorum_m);
        c->u.quorum_m.m = m;
        c->rep.result_case = NIMBUS__REPLY__RESULT_QUORUM_M;
        c->rep.quorum_m = &c->u.quorum_m;
    }
    return rv;
}

static CK_RV do_quorum_get_token(struct call *c,
                                 const Nimbus__QuorumGetTokenReq *r)
{
    char name[NAME_MAX_WIRE + 1];
    const char *n;
    uint8_t *out = NULL;
    size_t outlen = 0;
    CK_RV rv;

    if ((rv = text_in(true, &r->name, name, sizeof(name), &n)) != CKR_OK) {
        return rv;
    }
    /* no token is longer: a client asking for more gets this much */
    if ((rv = out_in(c, r->has_out_room,
                     r->out_room > HSM_QUORUM_TOKEN_BYTES_MAX
                         ? HSM_QUORUM_TOKEN_BYTES_MAX
                         : r->out_room,
                     &out, &outlen)) != CKR_OK) {
        return rv;
    }
    rv = hsm_quorum_get_token(c->wc->conn, r->service, n, out, &outlen);
    if (rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL) {
        output_out(c, rv, out, outlen);
    }
    return rv;
}

static CK_RV do_quorum_approve(struct call *c,
                               const Nimbus__QuorumApproveReq *r)
{
    hsm_quorum_approval_t a[HSM_QUORUM_M_MAX];
    uint64_t *res64;
    CK_RV results[HSM_QUORUM_M_MAX], rv;
    size_t n = r->n_approvals;

    /* at most M approvals can count: more is a malformed request */
    if (n == 0 || n > HSM_QUORUM_M_MAX) {
        return CKR_ARGUMENTS_BAD;
    }
    memset(a, 0, sizeof(a));
    for (size_t i = 0; i < n; i++) {
        const Nimbus__QuorumApproval *x = r->approvals[i];
        const char *nm;

        if (x->type > HSM_USER_AU) {
            return CKR_ARGUMENTS_BAD;
        }
        if ((rv = text_in(true, &x->name, a[i].name, sizeof(a[i].name),
                          &nm)) != CKR_OK) {
            return rv;
        }
        a[i].type = (hsm_user_type_t)x->type;
        a[i].sig = bp(&x->signature);
        a[i].sig_len = x->signature.len;
        results[i] = CKR_GENERAL_ERROR;
    }
    rv = hsm_quorum_approve(c->wc->conn, bp(&r->token), r->token.len, a, n,
                            results);
    if (rv != CKR_OK) {
        return rv;
    }
    res64 = call_alloc(c, n * sizeof(*res64));
    if (res64 == NULL) {
        return CKR_HOST_MEMORY;
    }
    for (size_t i = 0; i < n; i++) {
        res64[i] = results[i];
    }
    nimbus__quorum_approve_reply__init(&c->u.quorum_approve);
    c->u.quorum_approve.n_results = n;
    c->u.quorum_approve.results = res64;
    c->rep.result_case = NIMBUS__REPLY__RESULT_QUORUM_APPROVE;
    c->rep.quorum_approve = &c->u.quorum_approve;
    return CKR_OK;
}

static CK_RV do_quorum_list_tokens(struct call *c)
{
    hsm_quorum_token_info_t *list = NULL;
    Nimbus__QuorumTokenInfo *infos, **ptrs;
    char **names;
    size_t n = 0;
    CK_RV rv;

    rv = hsm_quorum_list_tokens(c->wc->conn, &list, &n);
    if (rv != CKR_OK) {
        return rv;
    }
    if (n > HSM_QUORUM_TOKENS_MAX) {
        free(list);
        return CKR_GENERAL_ERROR; /* the core broke its own bound */
    }
    if (keep(c, list, n * sizeof(*list)) == NULL && n > 0) {
        return CKR_HOST_MEMORY;
    }
    infos = call_alloc(c, n * (sizeof(*infos) + sizeof(*ptrs) +
                               HSM_QUORUM_M_MAX * sizeof(*names)));
    if (infos == NULL) {
        return CKR_HOST_MEMORY;
    }
    ptrs = (Nimbus__QuorumTokenInfo **)(infos + n);
    names = (char **)(ptrs + n);
    for (size_t i = 0; i < n; i++) {
        hsm_quorum_token_info_t *t = &list[i];
        size_t na = t->napprovers;

        if (na > HSM_QUORUM_M_MAX) {
            return CKR_GENERAL_ERROR;
        }
        nimbus__quorum_token_info__init(&infos[i]);
        t->user[sizeof(t->user) - 1] = '\0';
        infos[i].id = t->id;
        infos[i].service = t->service;
        infos[i].user = t->user;
        infos[i].seconds_left = t->seconds_left;
        infos[i].needed = t->needed;
        infos[i].given = t->given;
        infos[i].approvers = names + i * HSM_QUORUM_M_MAX;
        infos[i].n_approvers = na;
        for (size_t j = 0; j < na; j++) {
            t->approvers[j][sizeof(t->approvers[j]) - 1] = '\0';
            infos[i].approvers[j] = t->approvers[j];
        }
        ptrs[i] = &infos[i];
    }
    nimbus__quorum_token_list_reply__init(&c->u.quorum_tokens);
    c->u.quorum_tokens.n_tokens = n;
    c->u.quorum_tokens.tokens = ptrs;
    c->rep.result_case = NIMBUS__REPLY__RESULT_QUORUM_TOKENS;
    c->rep.quorum_tokens = &c->u.quorum_tokens;
    return CKR_OK;
}

/* ------------------------------------------------------------ 2FA */

/* The limits of hsm.h, before the core sees the bytes: a signature or a
 * key longer than any the core takes is refused here. */
static CK_RV tfa_lengths(const ProtobufCBinaryData *sig,
                         const ProtobufCBinaryData *pubkey)
{
    if (sig->len > HSM_TFA_SIG_MAX ||
        (pubkey != NULL && pubkey->len > HSM_QUORUM_PUBKEY_MAX)) {
        return CKR_ARGUMENTS_BAD;
    }
    return CKR_OK;
}

static CK_RV do_login_challenge(struct call *c,
                                const Nimbus__LoginChallengeReq *r)
{
    char name[NAME_MAX_WIRE + 1];
    const char *n;
    CK_RV rv;

    if (r->kind > HSM_LOGIN_AU) {
        return CKR_ARGUMENTS_BAD;
    }
    if ((rv = text_in(r->has_name, &r->name, name, sizeof(name), &n)) !=
        CKR_OK) {
        return rv;
    }
    rv = hsm_login_challenge(c->wc->conn, (hsm_login_kind_t)r->kind, n,
                             c->u.tfa.digest);
    if (rv == CKR_OK) {
        nimbus__digest_reply__init(&c->u.tfa.reply);
        c->u.tfa.reply.digest.data = c->u.tfa.digest;
        c->u.tfa.reply.digest.len = HSM_DIGEST_LEN;
        c->rep.result_case = NIMBUS__REPLY__RESULT_DIGEST;
        c->rep.digest = &c->u.tfa.reply;
    }
    return rv;
}

static CK_RV do_login_2fa(struct call *c, const Nimbus__Login2faReq *r)
{
    char name[NAME_MAX_WIRE + 1];
    const char *n;
    CK_RV rv;

    if (r->kind > HSM_LOGIN_AU) {
        return CKR_USER_TYPE_INVALID;
    }
    if ((rv = text_in(r->has_name, &r->name, name, sizeof(name), &n)) !=
        CKR_OK) {
        return rv;
    }
    /* An over-long signature is a wrong one: the core charges it. */
    return hsm_login_2fa(c->wc->conn, (hsm_login_kind_t)r->kind, n,
                         bp(&r->password), r->password.len, bp(&r->signature),
                         r->signature.len);
}

static CK_RV do_user_create_2fa(struct call *c,
                                const Nimbus__UserCreate2faReq *r)
{
    char name[NAME_MAX_WIRE + 1];
    const char *n;
    hsm_uid_t uid = 0;
    CK_RV rv;

    if ((rv = tfa_lengths(&r->signature, &r->pubkey)) != CKR_OK ||
        (rv = text_in(true, &r->name, name, sizeof(name), &n)) != CKR_OK) {
        return rv;
    }
    rv = hsm_user_create_2fa(c->wc->conn, n, bp(&r->password), r->password.len,
                             bp(&r->pubkey), r->pubkey.len, bp(&r->signature),
                             r->signature.len, &uid);
    if (rv == CKR_OK) {
        nimbus__uid_reply__init(&c->u.uid);
        c->u.uid.uid = uid;
        c->rep.result_case = NIMBUS__REPLY__RESULT_UID;
        c->rep.uid = &c->u.uid;
    }
    return rv;
}

static CK_RV do_user_set_password_2fa(struct call *c,
                                      const Nimbus__UserSetPassword2faReq *r)
{
    char name[NAME_MAX_WIRE + 1];
    const char *n;
    CK_RV rv;

    if ((rv = tfa_lengths(&r->signature, &r->pubkey)) != CKR_OK ||
        (rv = text_in(true, &r->name, name, sizeof(name), &n)) != CKR_OK) {
        return rv;
    }
    return hsm_user_set_password_2fa(
        c->wc->conn, n, bp(&r->password), r->password.len, bp(&r->pubkey),
        r->pubkey.len, bp(&r->signature), r->signature.len);
}

/* ------------------------------------------------------------ dispatch */

static CK_RV dispatch(struct call *c, const Nimbus__Request *q)
{
    switch (q->call_case) {
    case NIMBUS__REQUEST__CALL_TOKEN_INFO:
        return do_token_info(c);
    case NIMBUS__REQUEST__CALL_INIT_TOKEN:
        return do_init_token(c, q->init_token);
    case NIMBUS__REQUEST__CALL_CONN_USER_TYPE:
        return do_conn_user_type(c);
    case NIMBUS__REQUEST__CALL_LOGIN:
        return do_login(c, q->login);
    case NIMBUS__REQUEST__CALL_LOGOUT:
        return hsm_logout(c->wc->conn);
    case NIMBUS__REQUEST__CALL_SET_PASSWORD:
        return do_set_password(c, q->set_password);
    case NIMBUS__REQUEST__CALL_INIT_PIN:
        return do_init_pin(c, q->init_pin);
    case NIMBUS__REQUEST__CALL_USER_LIST:
        return do_user_list(c);
    case NIMBUS__REQUEST__CALL_USER_CREATE:
        return do_user_create(c, q->user_create);
    case NIMBUS__REQUEST__CALL_LOGIN_CHALLENGE:
        return do_login_challenge(c, q->login_challenge);
    case NIMBUS__REQUEST__CALL_LOGIN_2FA:
        return do_login_2fa(c, q->login_2fa);
    case NIMBUS__REQUEST__CALL_MASKED_EXTRACT:
        return do_masked_extract(c, q->masked_extract);
    case NIMBUS__REQUEST__CALL_MASKED_INSERT:
        return do_masked_insert(c, q->masked_insert);
    case NIMBUS__REQUEST__CALL_BACKUP:
        return do_backup(c);
    case NIMBUS__REQUEST__CALL_RESTORE:
        return do_restore(c, q->restore);
    case NIMBUS__REQUEST__CALL_LOGIN_TICKET:
        return do_login_ticket(c, q->login_ticket);
    case NIMBUS__REQUEST__CALL_LOGIN_REDEEM:
        return do_login_redeem(c, q->login_redeem);
    case NIMBUS__REQUEST__CALL_USER_CREATE_2FA:
        return do_user_create_2fa(c, q->user_create_2fa);
    case NIMBUS__REQUEST__CALL_USER_SET_PASSWORD_2FA:
        return do_user_set_password_2fa(c, q->user_set_password_2fa);
    case NIMBUS__REQUEST__CALL_USER_DELETE:
        return do_user_delete(c, q->user_delete);
    case NIMBUS__REQUEST__CALL_CONTEXT_LOGIN:
        return do_context_login(c, q->context_login);
    case NIMBUS__REQUEST__CALL_SESSION_OPEN:
        return do_session_open(c, q->session_open);
    case NIMBUS__REQUEST__CALL_SESSION_CLOSE:
        return do_session_close(c, q->session_close);
    case NIMBUS__REQUEST__CALL_OBJECT_CREATE:
        return do_object_create(c, q->object_create);
    case NIMBUS__REQUEST__CALL_OBJECT_COPY:
        return do_object_copy(c, q->object_copy);
    case NIMBUS__REQUEST__CALL_OBJECT_DESTROY:
        return do_object_destroy(c, q->object_destroy);
    case NIMBUS__REQUEST__CALL_OBJECT_SIZE:
        return do_object_size(c, q->object_size);
    case NIMBUS__REQUEST__CALL_OBJECT_GET:
        return do_object_get(c, q->object_get);
    case NIMBUS__REQUEST__CALL_OBJECT_SET:
        return do_object_set(c, q->object_set);
    case NIMBUS__REQUEST__CALL_OBJECT_FIND:
        return do_object_find(c, q->object_find);
    case NIMBUS__REQUEST__CALL_OBJECT_IS_PRIVATE:
        return do_object_is_private(c, q->object_is_private);
    case NIMBUS__REQUEST__CALL_OBJECT_SHARE:
        return do_object_share(c, q->object_share);
    case NIMBUS__REQUEST__CALL_MECH_LIST:
        return do_mech_list(c);
    case NIMBUS__REQUEST__CALL_MECH_INFO:
        return do_mech_info(c, q->mech_info);
    case NIMBUS__REQUEST__CALL_OP_OUTPUT_LEN:
        return do_op_output_len(c, q->op_output_len);
    case NIMBUS__REQUEST__CALL_OP_ONESHOT:
        return do_op_oneshot(c, q->op_oneshot);
    case NIMBUS__REQUEST__CALL_OP_UPDATE:
        return do_op_update(c, q->op_update);
    case NIMBUS__REQUEST__CALL_OP_FINAL:
        return do_op_final(c, q->op_final);
    case NIMBUS__REQUEST__CALL_OP_VERIFY:
        return do_op_verify(c, q->op_verify);
    case NIMBUS__REQUEST__CALL_OP_DIGEST_KEY:
        return do_op_digest_key(c, q->op_digest_key);
    case NIMBUS__REQUEST__CALL_OP_ABORT:
        return do_op_abort(c, q->op_abort);
    case NIMBUS__REQUEST__CALL_GENERATE_KEY:
        return do_generate_key(c, q->generate_key);
    case NIMBUS__REQUEST__CALL_GENERATE_KEY_PAIR:
        return do_generate_key_pair(c, q->generate_key_pair);
    case NIMBUS__REQUEST__CALL_DERIVE_KEY:
        return do_derive_key(c, q->derive_key);
    case NIMBUS__REQUEST__CALL_OP_INIT:
        return do_op_init(c, q->op_init);
    case NIMBUS__REQUEST__CALL_OP_INIT_IV:
        return do_op_init_iv(c, q->op_init_iv);
    case NIMBUS__REQUEST__CALL_WRAP_KEY:
        return do_wrap_key(c, q->wrap_key);
    case NIMBUS__REQUEST__CALL_UNWRAP_KEY:
        return do_unwrap_key(c, q->unwrap_key);
    case NIMBUS__REQUEST__CALL_MSG_INIT:
        return do_msg_init(c, q->msg_init);
    case NIMBUS__REQUEST__CALL_MSG_ONESHOT:
        return do_msg_oneshot(c, q->msg_oneshot);
    case NIMBUS__REQUEST__CALL_MSG_BEGIN:
        return do_msg_begin(c, q->msg_begin);
    case NIMBUS__REQUEST__CALL_MSG_NEXT:
        return do_msg_next(c, q->msg_next);
    case NIMBUS__REQUEST__CALL_MSG_OUTPUT_LEN:
        return do_msg_output_len(c, q->msg_output_len);
    case NIMBUS__REQUEST__CALL_MSG_FINAL:
        return do_msg_final(c, q->msg_final);
    case NIMBUS__REQUEST__CALL_MSG_ABORT:
        return do_msg_abort(c, q->msg_abort);
    case NIMBUS__REQUEST__CALL_RANDOM:
        return do_random(c, q->random);
    case NIMBUS__REQUEST__CALL_USER_SET_PASSWORD:
        return do_user_set_password(c, q->user_set_password);
    case NIMBUS__REQUEST__CALL_KEY_LIST:
        return do_key_list(c, q->key_list);
    case NIMBUS__REQUEST__CALL_KEY_INFO:
        return do_key_info(c, q->key_info);
    case NIMBUS__REQUEST__CALL_AUDIT_READ:
        return do_audit_read(c, q->audit_read);
    case NIMBUS__REQUEST__CALL_AUDIT_VERIFY:
        return do_audit_verify(c);
    case NIMBUS__REQUEST__CALL_OBJECT_SET_TRUSTED:
        return hsm_object_set_trusted(c->wc->conn, q->object_set_trusted->oid,
                                      q->object_set_trusted->trusted);
    case NIMBUS__REQUEST__CALL_CLIENT_LIST:
        return do_client_list(c);
    case NIMBUS__REQUEST__CALL_SHM_ATTACH:
        return do_shm_attach(c);
    case NIMBUS__REQUEST__CALL_CLUSTER_STATUS:
        return do_cluster_status(c);
    case NIMBUS__REQUEST__CALL_CLUSTER_CHANGE:
        return do_cluster_change(c, q->cluster_change);
    case NIMBUS__REQUEST__CALL_QUORUM_REGISTER_KEY:
        return do_quorum_register_key(c, q->quorum_register_key);
    case NIMBUS__REQUEST__CALL_QUORUM_SET_M:
        return hsm_quorum_set_m(c->wc->conn, q->quorum_set_m->service,
                                q->quorum_set_m->m);
    case NIMBUS__REQUEST__CALL_QUORUM_GET_M:
        return do_quorum_get_m(c, q->quorum_get_m);
    case NIMBUS__REQUEST__CALL_QUORUM_GET_TOKEN:
        return do_quorum_get_token(c, q->quorum_get_token);
    case NIMBUS__REQUEST__CALL_QUORUM_APPROVE:
        return do_quorum_approve(c, q->quorum_approve);
    case NIMBUS__REQUEST__CALL_QUORUM_LIST_TOKENS:
        return do_quorum_list_tokens(c);
    case NIMBUS__REQUEST__CALL_QUORUM_DEL_TOKEN:
        return hsm_quorum_del_token(c->wc->conn, q->quorum_del_token->id);
    default:
        /* A call this server does not know (a newer client's). */
        return CKR_FUNCTION_NOT_SUPPORTED;
    }
}

/* The handshake: the first request of a channel. false: close. */
static bool do_hello(struct call *c, const Nimbus__Hello *h)
{
    wire_chan_t *ch = c->ch;
    Nimbus__HelloReply *r = &c->u.hello;
    struct wconn *wc = NULL;
    CK_RV rv;

    nimbus__hello_reply__init(r);
    r->version = WIRE_PROTOCOL_VERSION;
    r->has_minor = true;
    r->minor = WIRE_PROTOCOL_MINOR;
    r->server_name = (char *)SERVER_NAME;
    c->rep.result_case = NIMBUS__REPLY__RESULT_HELLO;
    c->rep.hello = r;
    if (h->version != WIRE_PROTOCOL_VERSION) {
        log_info("wire: %s speaks protocol %u (not %u)", ch->peer.addr,
                 h->version, WIRE_PROTOCOL_VERSION);
        c->rep.rv = CKR_DEVICE_ERROR;
        return false;
    }
    if (h->has_attach_token) {
        if (h->attach_token.len == WIRE_ATTACH_TOKEN_LEN) {
            wc = conn_attach(ch, h->attach_token.data);
        }
        if (wc == NULL) {
            /* A connection that ended (the daemon restarted), another
             * peer's, or none: the same answer. */
            log_info("wire: %s: attach refused", ch->peer.addr);
            c->rep.rv = CKR_DEVICE_REMOVED;
            return false;
        }
    } else if ((rv = conn_create(ch, &wc)) != CKR_OK) {
        c->rep.rv = rv;
        return false;
    } else if (h->client_name != NULL) {
        /* for info server only; printable ASCII kept, the rest dropped */
        size_t j = 0;

        for (const char *p = h->client_name;
             *p != '\0' && j + 1 < sizeof(wc->client_name); p++) {
            if (*p >= 0x20 && *p < 0x7f) {
                wc->client_name[j++] = *p;
            }
        }
        wc->client_name[j] = '\0';
    }
    ch->wc = wc;
    r->has_attach_token = true;
    r->attach_token.data = wc->token;
    r->attach_token.len = sizeof(wc->token);
    r->has_max_frame = true;
    r->max_frame = ch->srv->max_frame;
    r->has_max_sessions = true;
    r->max_sessions = ch->srv->max_sessions;
    c->rep.rv = CKR_OK;
    return true;
}

/* The password a PBKDF2 parameter carries, if any. */
static ProtobufCBinaryData *mech_secret(Nimbus__Mechanism *m)
{
    if (m != NULL && m->param_case == NIMBUS__MECHANISM__PARAM_PBKDF2 &&
        m->pbkdf2->has_password) {
        return &m->pbkdf2->password;
    }
    return NULL;
}

/* Wipes what a request carried that may be secret (passwords). */
static void wipe_request(Nimbus__Request *q)
{
    ProtobufCBinaryData *pw[2] = {NULL, NULL};

    switch (q->call_case) {
    case NIMBUS__REQUEST__CALL_GENERATE_KEY:
        pw[0] = mech_secret(q->generate_key->mech);
        break;
    case NIMBUS__REQUEST__CALL_DERIVE_KEY:
        pw[0] = mech_secret(q->derive_key->mech);
        break;
    case NIMBUS__REQUEST__CALL_OP_INIT:
        pw[0] = mech_secret(q->op_init->mech);
        break;
    case NIMBUS__REQUEST__CALL_INIT_TOKEN:
        pw[0] = &q->init_token->password;
        break;
    case NIMBUS__REQUEST__CALL_LOGIN:
        pw[0] = &q->login->password;
        break;
    case NIMBUS__REQUEST__CALL_SET_PASSWORD:
        pw[0] = &q->set_password->old_password;
        pw[1] = &q->set_password->new_password;
        break;
    case NIMBUS__REQUEST__CALL_INIT_PIN:
        pw[0] = &q->init_pin->password;
        break;
    case NIMBUS__REQUEST__CALL_USER_CREATE:
        pw[0] = &q->user_create->password;
        break;
    case NIMBUS__REQUEST__CALL_CONTEXT_LOGIN:
        pw[0] = &q->context_login->password;
        break;
    case NIMBUS__REQUEST__CALL_USER_SET_PASSWORD:
        pw[0] = &q->user_set_password->password;
        break;
    case NIMBUS__REQUEST__CALL_LOGIN_2FA:
        pw[0] = &q->login_2fa->password;
        break;
    case NIMBUS__REQUEST__CALL_LOGIN_REDEEM:
        pw[0] = &q->login_redeem->ticket;
        break;
    case NIMBUS__REQUEST__CALL_USER_CREATE_2FA:
        pw[0] = &q->user_create_2fa->password;
        break;
    case NIMBUS__REQUEST__CALL_USER_SET_PASSWORD_2FA:
        pw[0] = &q->user_set_password_2fa->password;
        break;
    default:
        break;
    }
    for (size_t i = 0; i < 2; i++) {
        if (pw[i] != NULL && pw[i]->data != NULL) {
            util_wipe(pw[i]->data, pw[i]->len);
        }
    }
}

static void call_cleanup(struct call *c)
{
    for (size_t i = 0; i < c->nbufs; i++) {
        util_free_wipe(c->bufs[i].p, c->bufs[i].len);
    }
    c->nbufs = 0;
    if (c->attrs != NULL) {
        hsm_attrs_free(c->attrs, c->nattrs);
        free(c->attrs);
        c->attrs = NULL;
    }
}

/* A reply with rv and nothing else. */
static bool pack_bare(uint64_t id, CK_RV rv, size_t max, wire_vec_t *out,
                      bool *have)
{
    Nimbus__Reply rep;

    nimbus__reply__init(&rep);
    rep.id = id;
    rep.rv = rv;
    *have = wire_pack_vec(&rep.base, max, out);
    return *have;
}

/* Request fields decoded where they lie in the frame (proto.h): the
 * bulk input of a step. */
static const wire_lift_t req_lifts[] = {
    {NIMBUS__REQUEST__CALL_OP_ONESHOT, 3},  /* OpOneshotReq.in */
    {NIMBUS__REQUEST__CALL_OP_UPDATE, 3},   /* OpUpdateReq.in */
    {NIMBUS__REQUEST__CALL_OP_VERIFY, 2},   /* OpVerifyReq.data */
    {NIMBUS__REQUEST__CALL_MSG_ONESHOT, 5}, /* MsgOneshotReq.in */
    {NIMBUS__REQUEST__CALL_MSG_NEXT, 4},    /* MsgNextReq.in */
};

bool wire_chan_handle_vec(wire_chan_t *ch, const uint8_t *req, size_t len,
                          wire_vec_t *out, bool *have)
{
    struct call *c;
    Nimbus__Request *q;
    bool keep_open = true;

    return_val_if_fail(ch != NULL && out != NULL && have != NULL, false);
    *have = false;
    out->n = 0;
    out->total = 0;
    /* a reply still out is the caller's bug: its buffers go first */
    wire_chan_reply_done(ch, NULL);
    if (req == NULL && len > 0) {
        return false;
    }
    if (len > ch->srv->max_frame) {
        pack_bare(0, CKR_DEVICE_ERROR, ch->srv->max_frame, out, have);
        return false;
    }
    wire_alloc_init(&ch->pend_wa, WIRE_DECODE_BUDGET(len));
    q = (Nimbus__Request *)wire_unpack_lifted(
        &nimbus__request__descriptor, &ch->pend_wa, req, len, req_lifts,
        sizeof(req_lifts) / sizeof(req_lifts[0]), &ch->pend_lift);
    if (q == NULL) {
        log_info("wire: %s: undecodable request (%zu bytes)", ch->peer.addr,
                 len);
        pack_bare(0, CKR_DEVICE_ERROR, ch->srv->max_frame, out, have);
        return false;
    }
    ch->pend_q = q;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        pack_bare(q->id, CKR_HOST_MEMORY, ch->srv->max_frame, out, have);
        return true;
    }
    ch->pend = c;
    c->ch = ch;
    c->wc = ch->wc;
    c->out_max = ch->srv->max_frame - WIRE_REPLY_OVERHEAD;
    nimbus__reply__init(&c->rep);
    c->rep.id = q->id;

    if (q->call_case == NIMBUS__REQUEST__CALL_HELLO) {
        /* once per channel */
        if (ch->wc != NULL) {
            c->rep.rv = CKR_DEVICE_ERROR;
            keep_open = false;
        } else {
            keep_open = do_hello(c, q->hello);
        }
    } else if (ch->wc == NULL) {
        c->rep.rv = CKR_CRYPTOKI_NOT_INITIALIZED;
        keep_open = false;
    } else {
        c->rep.rv = dispatch(c, q);
        if (c->rep.rv != CKR_OK && c->rep.rv != CKR_BUFFER_TOO_SMALL &&
            c->rep.rv != CKR_ATTRIBUTE_SENSITIVE &&
            c->rep.rv != CKR_ATTRIBUTE_TYPE_INVALID) {
            /* an error carries no result */
            c->rep.result_case = NIMBUS__REPLY__RESULT__NOT_SET;
        }
    }
    *have = wire_pack_vec(&c->rep.base, ch->srv->max_frame, out);
    if (!*have) {
        /* The answer does not fit in a frame (e.g. many large attribute
         * values at once): the client asks for less at a time. */
        pack_bare(q->id, CKR_DEVICE_MEMORY, ch->srv->max_frame, out, have);
    }
    return keep_open;
}

void wire_chan_reply_done(wire_chan_t *ch, wire_vec_t *out)
{
    if (ch == NULL) {
        return;
    }
    if (out != NULL) {
        wire_vec_done(out, false);
    }
    if (ch->shm_fd >= 0) {
        close(ch->shm_fd); /* not taken: the client never gets the region */
        ch->shm_fd = -1;
    }
    if (ch->shm_in_len > 0) {
        wire_buf_done(&ch->shm_in, ch->shm_in_len, false);
        ch->shm_in_len = 0;
    }
    if (ch->pend != NULL) {
        struct call *c = ch->pend;

        if (c->room_taken) {
            wire_buf_done(&ch->room, c->room_len, false);
        }
        call_cleanup(c);
        free(c);
        ch->pend = NULL;
    }
    if (ch->pend_q != NULL) {
        /* the lifted input is the frame's, wiped by its reader */
        wire_unlift(&ch->pend_lift);
        wipe_request(ch->pend_q);
        nimbus__request__free_unpacked(ch->pend_q, &ch->pend_wa.a);
        ch->pend_q = NULL;
    }
}

bool wire_chan_handle_into(wire_chan_t *ch, const uint8_t *req, size_t len,
                           wire_buf_t *out, size_t *resp_len, bool *have)
{
    wire_vec_t v;
    bool open;

    return_val_if_fail(
        ch != NULL && out != NULL && resp_len != NULL && have != NULL, false);
    memset(&v, 0, sizeof(v));
    *resp_len = 0;
    open = wire_chan_handle_vec(ch, req, len, &v, have);
    if (*have) {
        *have = wire_vec_flatten(&v, out);
        *resp_len = *have ? v.total : 0;
    }
    wire_chan_reply_done(ch, &v);
    wire_vec_done(&v, true);
    return open;
}

bool wire_chan_handle(wire_chan_t *ch, const uint8_t *req, size_t len,
                      uint8_t **resp, size_t *resp_len)
{
    wire_buf_t b = {NULL, 0};
    bool have = false, open;

    return_val_if_fail(resp != NULL && resp_len != NULL, false);
    *resp = NULL;
    *resp_len = 0;
    open = wire_chan_handle_into(ch, req, len, &b, resp_len, &have);
    if (have) {
        *resp = b.p;
    } else {
        free(b.p);
        *resp_len = 0;
    }
    return open;
}
