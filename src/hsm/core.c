/* core.c - opening a token, connections, sessions, token information. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "hsm/crypto/cops.h"
#include "hsm/internal.h"

#define HSM_DB_NAME "token0.db"
#define HSM_KEY_NAME "token0.key"
#define HSM_KEY_WAIT_MS 3000

/* mkdir -p with mode 0700 for what it creates. */
static CK_RV make_dirs(const char *path)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(buf))
        return CKR_GENERAL_ERROR;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            goto fail;
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        goto fail;
    return CKR_OK;
fail:
    log_error("cannot create store directory %s: %s", buf, strerror(errno));
    return CKR_DEVICE_ERROR;
}

static CK_RV load_master_key(hsm_t *hsm, const char *path, bool created)
{
    CK_RV rv;

    if (created)
        return crypto_master_key_load(path, true, hsm->mkey);
    /* Another process may have created the database a moment ago and be
     * about to write the key file: give it a little time. */
    for (int waited = 0;; waited += 50) {
        if (access(path, F_OK) == 0 || waited >= HSM_KEY_WAIT_MS)
            break;
        usleep(50 * 1000);
    }
    rv = crypto_master_key_load(path, false, hsm->mkey);
    return rv;
}

CK_RV hsm_open(const struct config *cfg, hsm_t **out)
{
    char dbpath[PATH_MAX], keypath[PATH_MAX];
    bool created = false;
    hsm_t *hsm = NULL;
    CK_RV rv;

    *out = NULL;
    if (snprintf(dbpath, sizeof(dbpath), "%s/%s", cfg->store, HSM_DB_NAME) >=
            (int)sizeof(dbpath) ||
        snprintf(keypath, sizeof(keypath), "%s/%s", cfg->store, HSM_KEY_NAME) >=
            (int)sizeof(keypath))
        return CKR_GENERAL_ERROR;

    rv = crypto_init();
    if (rv != CKR_OK)
        return rv;
    /* The algorithm cache lives as long as this token (cops.h). */
    rv = cops_init();
    if (rv != CKR_OK) {
        crypto_fini();
        return rv;
    }
    hsm = calloc(1, sizeof(*hsm));
    if (hsm == NULL) {
        cops_fini();
        crypto_fini();
        return CKR_HOST_MEMORY;
    }
    hsm->cfg = *cfg;
    hsm->gen = 1; /* 0: a verdict not known */
    /* Not in core dumps, zero in a forked child (crypto.h). */
    hsm->mkey = crypto_secret_alloc(CRYPTO_MASTER_KEY_LEN);
    if (hsm->mkey == NULL) {
        free(hsm);
        cops_fini();
        crypto_fini();
        return CKR_HOST_MEMORY;
    }
    memcpy(hsm->dbpath, dbpath, sizeof(hsm->dbpath));
    hsm_cluster_journal_init(hsm);
    if (util_mutex_init(&hsm->lock) != 0) {
        crypto_secret_free(hsm->mkey);
        free(hsm);
        cops_fini();
        crypto_fini();
        return CKR_GENERAL_ERROR;
    }
    if (pthread_cond_init(&hsm->auth_cv, NULL) != 0) {
        pthread_mutex_destroy(&hsm->lock);
        crypto_secret_free(hsm->mkey);
        free(hsm);
        cops_fini();
        crypto_fini();
        return CKR_GENERAL_ERROR;
    }
    for (size_t i = 0; i < HSM_READERS; i++)
        util_mutex_init(&hsm->readers[i].mu); /* cannot fail */
    if ((rv = make_dirs(cfg->store)) != CKR_OK ||
        (rv = store_open(dbpath, &hsm->st, &created)) != CKR_OK ||
        (rv = load_master_key(hsm, keypath, created)) != CKR_OK)
        goto fail;
    pthread_mutex_lock(&hsm->lock);
    rv = hsm_store_init_locked(hsm);
    pthread_mutex_unlock(&hsm->lock);
    if (rv != CKR_OK)
        goto fail;
    *out = hsm;
    return CKR_OK;
fail:
    log_error("cannot open the store in %s", cfg->store);
    hsm_close(hsm);
    return rv;
}

void hsm_close(hsm_t *hsm)
{
    if (hsm == NULL)
        return;
    while (hsm->conns != NULL)
        hsm_conn_close(hsm->conns);
    for (size_t i = 0; i < HSM_READERS; i++) {
        store_close(hsm->readers[i].st);
        pthread_mutex_destroy(&hsm->readers[i].mu);
    }
    if (hsm->st != NULL)
        store_close(hsm->st);
    store_close(hsm->apply_st);
    hsm_keycache_clear_locked(hsm);
    crypto_secret_free(hsm->mkey);
    crypto_secret_free(hsm->ckey);
    pthread_cond_destroy(&hsm->auth_cv);
    free(hsm->flight);
    pthread_mutex_destroy(&hsm->lock);
    free(hsm);
    cops_fini();
    crypto_fini();
}

CK_RV hsm_meta_get_str_locked(hsm_t *hsm, const char *key, char *buf,
                              size_t buflen)
{
    uint8_t *val = NULL;
    size_t len = 0;
    CK_RV rv = store_meta_get(hsm->st, key, &val, &len);

    buf[0] = '\0';
    if (rv != CKR_OK)
        return rv;
    if (val != NULL) {
        if (len >= buflen)
            len = buflen - 1;
        memcpy(buf, val, len);
        buf[len] = '\0';
    }
    free(val);
    return CKR_OK;
}

/* ------------------------------------------------------------ connections */

CK_RV hsm_conn_open(hsm_t *hsm, hsm_conn_t **out)
{
    hsm_conn_t *c = calloc(1, sizeof(*c));

    *out = NULL;
    if (c == NULL)
        return CKR_HOST_MEMORY;
    c->hsm = hsm;
    c->login_fd = -1;
    c->next_sid = 1;
    c->next_soid = 1;
    if (util_mutex_init(&c->gmu) != 0) {
        free(c);
        return CKR_HOST_MEMORY;
    }
    if (pthread_cond_init(&c->gcv, NULL) != 0) {
        pthread_mutex_destroy(&c->gmu);
        free(c);
        return CKR_HOST_MEMORY;
    }
    pthread_mutex_lock(&hsm->lock);
    c->next = hsm->conns;
    hsm->conns = c;
    pthread_mutex_unlock(&hsm->lock);
    *out = c;
    return CKR_OK;
}

void hsm_conn_close(hsm_conn_t *conn)
{
    hsm_t *hsm;

    if (conn == NULL)
        return;
    hsm = conn->hsm;
    /* New calls are refused from here; the ones under way finish first. */
    pthread_mutex_lock(&conn->gmu);
    conn->closing = true;
    while (conn->calls > 0)
        pthread_cond_wait(&conn->gcv, &conn->gmu);
    pthread_mutex_unlock(&conn->gmu);
    pthread_mutex_lock(&hsm->lock);
    for (hsm_conn_t **pp = &hsm->conns; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == conn) {
            *pp = conn->next;
            break;
        }
    }
    if (conn->type != HSM_USER_NONE) {
        /* The login ends with its connection (a client that died or was
         * cut off by nimbusd, C_Finalize): recorded as the logouts forced
         * by lockout or a user change are, with the reason. */
        hsm_conn_t *prev = hsm_call_peer_swap(conn);

        /* Out of the list, its calls over: no other thread reaches conn,
         * so the lock may go while the record waits for the cluster (a
         * client that gives up during an election stalls nobody). */
        hsm_audit_last_locked(hsm, conn->uid, "logout", 0, CKR_SESSION_CLOSED);
        hsm_call_peer_swap(prev);
    }
    hsm_sobjs_destroy_locked(conn, 0, false);
    for (size_t i = 0; i < conn->nsessions; i++)
        hsm_session_ops_release_locked(conn, &conn->sessions[i]);
    hsm_keycache_drop_conn_locked(hsm, conn);
    if (conn->type != HSM_USER_NONE)
        hsm_keycache_drop_user_locked(hsm, conn->uid);
    /* its quorum tokens die with it (the lock may go meanwhile, as above) */
    hsm_waits_unlocked_begin();
    hsm_quorum_login_end_locked(conn);
    hsm_waits_unlocked_end();
    store_login_unmark(conn->login_fd);
    pthread_mutex_unlock(&hsm->lock);
    pthread_cond_destroy(&conn->gcv);
    pthread_mutex_destroy(&conn->gmu);
    free(conn->sessions);
    free(conn);
}

CK_RV hsm_conn_set_peer(hsm_conn_t *conn, const char *peer)
{
    size_t n = peer != NULL ? strlen(peer) : 0;

    HSM_CALL_CONN(conn);
    if (n > HSM_PEER_MAX)
        return CKR_ARGUMENTS_BAD;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)peer[i];

        if (ch < 0x20 || ch == 0x7f)
            return CKR_ARGUMENTS_BAD;
    }
    pthread_mutex_lock(&conn->hsm->lock);
    memcpy(conn->peer, n > 0 ? peer : "", n);
    conn->peer[n] = '\0';
    pthread_mutex_unlock(&conn->hsm->lock);
    return CKR_OK;
}

hsm_user_type_t hsm_conn_user_type(hsm_conn_t *conn, hsm_uid_t *uid)
{
    hsm_user_type_t t;

    pthread_mutex_lock(&conn->hsm->lock);
    t = conn->type;
    if (uid != NULL)
        *uid = conn->uid;
    pthread_mutex_unlock(&conn->hsm->lock);
    return t;
}

/* ------------------------------------------------------------ sessions */

struct hsm_session *hsm_session_find_locked(hsm_conn_t *conn, hsm_sid_t sid)
{
    for (size_t i = 0; i < conn->nsessions; i++) {
        if (conn->sessions[i].used && conn->sessions[i].id == sid)
            return &conn->sessions[i];
    }
    return NULL;
}

CK_RV hsm_session_open(hsm_conn_t *conn, bool rw, hsm_sid_t *sid)
{
    struct hsm_session *s = NULL;
    CK_RV rv = CKR_OK;

    HSM_CALL_CONN(conn);
    pthread_mutex_lock(&conn->hsm->lock);
    for (size_t i = 0; i < conn->nsessions; i++) {
        if (!conn->sessions[i].used) {
            s = &conn->sessions[i];
            break;
        }
    }
    if (s == NULL) {
        struct hsm_session *n;

        if (conn->nsessions >= HSM_MAX_SESSIONS) {
            rv = CKR_SESSION_COUNT;
            goto out;
        }
        n = realloc(conn->sessions, (conn->nsessions + 1) * sizeof(*n));
        if (n == NULL) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
        conn->sessions = n;
        s = &n[conn->nsessions++];
    }
    memset(s, 0, sizeof(*s));
    s->rw = rw;
    s->id = conn->next_sid++;
    if ((rv = hsm_session_ops_new_locked(conn, s)) != CKR_OK)
        goto out;
    s->used = true;
    *sid = s->id;
out:
    pthread_mutex_unlock(&conn->hsm->lock);
    return rv;
}

CK_RV hsm_session_close(hsm_conn_t *conn, hsm_sid_t sid)
{
    struct hsm_call c __attribute__((cleanup(hsm_call_leave))) = {0};
    struct hsm_session *s;
    CK_RV rv;

    /* Waits for the call under way on sid; later ones are refused. */
    if ((rv = hsm_call_enter_close(&c, conn, sid)) != CKR_OK)
        return rv;
    pthread_mutex_lock(&conn->hsm->lock);
    s = hsm_session_find_locked(conn, sid);
    if (s == NULL) {
        rv = CKR_SESSION_HANDLE_INVALID; /* not reached: marked closing */
    } else {
        hsm_gen_bump_locked(conn->hsm);
        s->used = false;
        hsm_session_ops_release_locked(conn, s);
        /* drops the key cache entries of its objects too */
        hsm_sobjs_destroy_locked(conn, sid, false);
    }
    pthread_mutex_unlock(&conn->hsm->lock);
    return rv;
}

/* ------------------------------------------------------------ readers */

struct hsm_reader *hsm_reader_get(hsm_t *hsm)
{
    struct hsm_reader *r = NULL;

    /* A free one if there is one, else wait for the first. */
    for (size_t i = 0; i < HSM_READERS && r == NULL; i++) {
        if (pthread_mutex_trylock(&hsm->readers[i].mu) == 0)
            r = &hsm->readers[i];
    }
    if (r == NULL) {
        r = &hsm->readers[0];
        pthread_mutex_lock(&r->mu);
    }
    if (r->st == NULL && store_open(hsm->dbpath, &r->st, NULL) != CKR_OK) {
        pthread_mutex_unlock(&r->mu);
        return NULL;
    }
    return r;
}

void hsm_reader_put(struct hsm_reader *r)
{
    if (r != NULL)
        pthread_mutex_unlock(&r->mu);
}
