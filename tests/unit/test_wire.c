/*
 * test_wire.c - the wire protocol in process: the client's encoders
 * (src/wire/client.c) -> the server (src/wire/server.c, over an embedded
 * token) -> the client's decoders; and hostile input straight into
 * wire_chan_handle: garbage, truncated frames, huge counts, unknown calls,
 * another connection's session ids and attach token, calls after close.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/mechparam.h"
#include "hsm/hsm.h"
#include "nimbus/pkcs11-vendor.h"
#include "wire/client.h"
#include "wire/proto.h"
#include "wire/server.h"

#define PW(s) (const uint8_t *)(s), strlen(s)

/* One channel and the client over it. */
struct tchan {
    wire_chan_t *ch;
    wire_client_t *cl;
    bool open; /* false once the server said to close */
};

struct fixture {
    char dir[64];
    struct config cfg;
    hsm_t *hsm;
    wire_server_t *srv;
    struct tchan a, b;
};

static bool xfer(void *ctx, const uint8_t *req, size_t len, uint8_t **resp,
                 size_t *resp_len)
{
    struct tchan *t = ctx;

    if (!t->open) {
        return false;
    }
    t->open = wire_chan_handle(t->ch, req, len, resp, resp_len);
    return *resp != NULL;
}

static wire_peer_t unix_peer(long uid)
{
    wire_peer_t p;

    memset(&p, 0, sizeof(p));
    p.uid = uid;
    p.gid = uid;
    p.pid = 4242;
    snprintf(p.addr, sizeof(p.addr), "unix:/test");
    return p;
}

/* A channel from peer uid; hello with token (NULL: a new connection). */
static CK_RV chan_open(struct fixture *f, struct tchan *t, long uid,
                       const uint8_t *token, uint8_t *token_out)
{
    wire_peer_t p = unix_peer(uid);

    t->ch = wire_chan_new(f->srv, &p);
    if (t->ch == NULL) {
        return CKR_DEVICE_ERROR;
    }
    t->open = true;
    assert_int_equal(wire_client_new(xfer, t, 0, &t->cl), CKR_OK);
    return wire_cl_hello(t->cl, "test_wire", token, token_out);
}

static void chan_close(struct tchan *t)
{
    wire_client_free(t->cl);
    wire_chan_free(t->ch);
    t->cl = NULL;
    t->ch = NULL;
}

static int setup_cfg(void **state, unsigned long max_sessions,
                     unsigned long max_conns)
{
    struct fixture *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/nimbus-wire-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    config_defaults(&f->cfg);
    snprintf(f->cfg.store, sizeof(f->cfg.store), "%s/store", f->dir);
    f->cfg.kdf_iterations = 1000;
    f->cfg.max_sessions_per_connection = max_sessions;
    f->cfg.max_connections = max_conns;
    if (hsm_open(&f->cfg, &f->hsm) != CKR_OK ||
        wire_server_new(f->hsm, &f->cfg, &f->srv) != CKR_OK)
        return -1;
    if (chan_open(f, &f->a, 1000, NULL, NULL) != CKR_OK)
        return -1;
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_cfg(state, 1024, 64);
}

static int setup_small(void **state)
{
    return setup_cfg(state, 3, 3);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];

    if (f->b.ch != NULL)
        chan_close(&f->b);
    if (f->a.ch != NULL)
        chan_close(&f->a);
    wire_server_free(f->srv);
    hsm_close(f->hsm);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

/* Activates (CO "copass1") and makes CU name with password pw, all over
 * the wire on channel t; leaves nobody logged in. */
static void activate(struct tchan *t, const char *name, const char *pw)
{
    assert_int_equal(wire_cl_init_token(t->cl, NULL, PW("copass1"), "wire"),
                     CKR_OK);
    assert_int_equal(wire_cl_login(t->cl, HSM_LOGIN_SO, NULL, PW("copass1")),
                     CKR_OK);
    assert_int_equal(wire_cl_init_pin(t->cl, name, PW(pw)), CKR_OK);
    assert_int_equal(wire_cl_logout(t->cl), CKR_OK);
}

static CK_RV make_data(struct tchan *t, hsm_sid_t sid, const char *label,
                       bool token, bool priv, hsm_oid_t *oid)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL tok = token ? CK_TRUE : CK_FALSE;
    CK_BBOOL pr = priv ? CK_TRUE : CK_FALSE;
    CK_ATTRIBUTE tm[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &tok, sizeof(tok)},
        {CKA_PRIVATE, &pr, sizeof(pr)},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_VALUE, "hello", 5},
    };
    return wire_cl_object_create(t->cl, sid, tm, 5, oid);
}

/* Packs q and hands it to channel t's server side; the decoded reply in
 * *rep (free with nimbus__reply__free_unpacked). Returns whether the
 * server keeps the channel open. */
static bool raw_call(struct tchan *t, Nimbus__Request *q, Nimbus__Reply **rep)
{
    size_t len = nimbus__request__get_packed_size(q);
    uint8_t *buf = malloc(len + 1), *resp = NULL;
    size_t resp_len = 0;
    bool open;

    assert_non_null(buf);
    nimbus__request__pack(q, buf);
    open = wire_chan_handle(t->ch, buf, len, &resp, &resp_len);
    free(buf);
    assert_non_null(resp);
    *rep = nimbus__reply__unpack(NULL, resp_len, resp);
    assert_non_null(*rep);
    free(resp);
    return open;
}

static bool raw_bytes(struct tchan *t, const uint8_t *buf, size_t len,
                      CK_RV *rv)
{
    uint8_t *resp = NULL;
    size_t resp_len = 0;
    bool open = wire_chan_handle(t->ch, buf, len, &resp, &resp_len);

    *rv = CKR_OK;
    if (resp != NULL) {
        Nimbus__Reply *rep = nimbus__reply__unpack(NULL, resp_len, resp);

        assert_non_null(rep);
        *rv = (CK_RV)rep->rv;
        nimbus__reply__free_unpacked(rep, NULL);
        free(resp);
    }
    return open;
}

/* ------------------------------------------------------------ round trips */

static void test_token_and_users(void **state)
{
    struct fixture *f = *state;
    hsm_token_info_t ti;
    hsm_user_info_t *users = NULL;
    hsm_user_type_t type;
    hsm_uid_t uid = 0, cu = 0;
    size_t n = 0;

    assert_int_equal(wire_cl_token_info(f->a.cl, &ti), CKR_OK);
    assert_false(ti.activated);
    assert_true(ti.preco);
    assert_string_equal(ti.label, "nimbus");
    assert_int_equal(strlen(ti.serial), 16);

    assert_int_equal(wire_cl_user_list(f->a.cl, &users, &n), CKR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(users[0].name, "admin");
    assert_int_equal(users[0].type, HSM_USER_PRECO);
    assert_string_equal(users[1].name, "app_user");
    free(users);

    /* a wrong password is the core's answer, carried unchanged */
    assert_int_equal(wire_cl_login(f->a.cl, HSM_LOGIN_SO, NULL, PW("nope123")),
                     CKR_PIN_INCORRECT);
    activate(&f->a, "alice", "alicepw1");
    assert_int_equal(wire_cl_token_info(f->a.cl, &ti), CKR_OK);
    assert_true(ti.activated);
    assert_string_equal(ti.label, "wire");
    assert_true(ti.cu_exists);

    assert_int_equal(wire_cl_login(f->a.cl, HSM_LOGIN_SO, NULL, PW("copass1")),
                     CKR_OK);
    assert_int_equal(wire_cl_conn_user_type(f->a.cl, &type, &uid), CKR_OK);
    assert_int_equal(type, HSM_USER_CO);
    assert_int_equal(uid, 1);
    assert_int_equal(
        wire_cl_user_create(f->a.cl, HSM_USER_CU, "bob", PW("bobpass1"), &cu),
        CKR_OK);
    assert_true(cu > 2);
    assert_int_equal(wire_cl_user_set_password(f->a.cl, "bob", PW("bobpass2")),
                     CKR_OK);
    assert_int_equal(wire_cl_user_delete(f->a.cl, "bob"), CKR_OK);
    assert_int_equal(wire_cl_user_delete(f->a.cl, "bob"), CKR_ARGUMENTS_BAD);
    assert_int_equal(wire_cl_logout(f->a.cl), CKR_OK);
    assert_int_equal(wire_cl_logout(f->a.cl), CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(wire_cl_conn_user_type(f->a.cl, &type, &uid), CKR_OK);
    assert_int_equal(type, HSM_USER_NONE);

    /* C_SetPIN not logged in names the user; the new password works */
    assert_int_equal(
        wire_cl_set_password(f->a.cl, "alice", PW("alicepw1"), PW("alicepw2")),
        CKR_OK);
    assert_int_equal(
        wire_cl_login(f->a.cl, HSM_LOGIN_USER, "alice", PW("alicepw1")),
        CKR_PIN_INCORRECT);
    assert_int_equal(
        wire_cl_login(f->a.cl, HSM_LOGIN_USER, "alice", PW("alicepw2")),
        CKR_OK);
    assert_int_equal(
        wire_cl_login(f->a.cl, HSM_LOGIN_USER, "alice", PW("alicepw2")),
        CKR_USER_ALREADY_LOGGED_IN);
}

static void test_objects(void **state)
{
    struct fixture *f = *state;
    hsm_sid_t sid;
    hsm_oid_t oid, copy, *oids = NULL;
    size_t n = 0;
    CK_ULONG size = 0;
    bool priv = true;
    CK_ATTRIBUTE_TYPE types[] = {CKA_LABEL, CKA_VALUE, CKA_MODULUS};
    hsm_attr_t out[3];
    CK_ATTRIBUTE lab = {CKA_LABEL, "renamed", 7};
    CK_ATTRIBUTE find = {CKA_LABEL, "renamed", 7};

    activate(&f->a, "alice", "alicepw1");
    assert_int_equal(
        wire_cl_login(f->a.cl, HSM_LOGIN_USER, "alice", PW("alicepw1")),
        CKR_OK);
    assert_int_equal(wire_cl_session_open(f->a.cl, true, &sid), CKR_OK);
    assert_int_equal(make_data(&f->a, sid, "one", true, false, &oid), CKR_OK);

    /* the core answers per attribute (the front end makes the rv) */
    assert_int_equal(wire_cl_object_get(f->a.cl, sid, oid, types, 3, out),
                     CKR_OK);
    assert_int_equal(out[0].status, HSM_ATTR_OK);
    assert_memory_equal(out[0].value, "one", 3);
    assert_int_equal(out[1].len, 5);
    assert_memory_equal(out[1].value, "hello", 5);
    assert_int_equal(out[2].status, HSM_ATTR_INVALID);
    hsm_attrs_free(out, 3);

    assert_int_equal(wire_cl_object_set(f->a.cl, sid, oid, &lab, 1), CKR_OK);
    assert_int_equal(wire_cl_object_find(f->a.cl, sid, &find, 1, &oids, &n),
                     CKR_OK);
    assert_int_equal(n, 1);
    assert_true(oids[0] == oid);
    free(oids);
    assert_int_equal(wire_cl_object_size(f->a.cl, sid, oid, &size), CKR_OK);
    assert_true(size > 0);
    assert_int_equal(wire_cl_object_is_private(f->a.cl, oid, &priv), CKR_OK);
    assert_false(priv);
    assert_int_equal(wire_cl_object_copy(f->a.cl, sid, oid, NULL, 0, &copy),
                     CKR_OK);
    assert_true(copy != oid);
    assert_int_equal(wire_cl_object_destroy(f->a.cl, sid, copy), CKR_OK);
    assert_int_equal(wire_cl_object_destroy(f->a.cl, sid, copy),
                     CKR_OBJECT_HANDLE_INVALID);
    assert_int_equal(wire_cl_session_close(f->a.cl, sid), CKR_OK);
}

/*
 * An array attribute crosses the wire as the serialized list hsm.h takes
 * (u32 count; u64 type, u32 length, value; big-endian): the server parses
 * it, stores it, and gives the same bytes back; the caller's CK_ATTRIBUTE
 * bytes (pointers inside) are refused, not followed.
 */
static void test_template_attribute(void **state)
{
    struct fixture *f = *state;
    static const uint8_t wt[] = {0, 0, 0, 1, 0, 0, 0, 0,   0,
                                 0, 0, 3, 0, 0, 0, 2, 'o', 'k'};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_BBOOL yes = CK_TRUE;
    uint8_t kv[16];
    CK_ATTRIBUTE inner[] = {{CKA_LABEL, "ok", 2}};
    CK_ATTRIBUTE tm[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_VALUE, kv, sizeof(kv)},
        {CKA_WRAP, &yes, 1},
        {CKA_WRAP_TEMPLATE, (void *)wt, sizeof(wt)},
    };
    CK_ATTRIBUTE_TYPE ty = CKA_WRAP_TEMPLATE;
    hsm_attr_t out;
    hsm_oid_t oid, other, *oids = NULL;
    hsm_sid_t sid;
    size_t n = 0;

    memset(kv, 0x42, sizeof(kv));
    activate(&f->a, "alice", "alicepw1");
    assert_int_equal(
        wire_cl_login(f->a.cl, HSM_LOGIN_USER, "alice", PW("alicepw1")),
        CKR_OK);
    assert_int_equal(wire_cl_session_open(f->a.cl, true, &sid), CKR_OK);
    assert_int_equal(wire_cl_object_create(f->a.cl, sid, tm, 5, &oid), CKR_OK);
    assert_int_equal(wire_cl_object_get(f->a.cl, sid, oid, &ty, 1, &out),
                     CKR_OK);
    assert_int_equal(out.status, HSM_ATTR_OK);
    assert_int_equal(out.len, sizeof(wt));
    assert_memory_equal(out.value, wt, sizeof(wt));
    hsm_attrs_free(&out, 1);
    /* found by it */
    assert_int_equal(wire_cl_object_find(f->a.cl, sid, &tm[4], 1, &oids, &n),
                     CKR_OK);
    assert_int_equal(n, 1);
    assert_true(oids[0] == oid);
    free(oids);

    /* the old form: a CK_ATTRIBUTE array as bytes */
    tm[4].pValue = inner;
    tm[4].ulValueLen = sizeof(inner);
    assert_int_equal(wire_cl_object_create(f->a.cl, sid, tm, 5, &other),
                     CKR_ATTRIBUTE_VALUE_INVALID);
    /* a truncated list */
    tm[4].pValue = (void *)wt;
    tm[4].ulValueLen = sizeof(wt) - 1;
    assert_int_equal(wire_cl_object_create(f->a.cl, sid, tm, 5, &other),
                     CKR_ATTRIBUTE_VALUE_INVALID);
    assert_int_equal(wire_cl_session_close(f->a.cl, sid), CKR_OK);
}

static void test_mgmt_and_misc(void **state)
{
    struct fixture *f = *state;
    hsm_sid_t sid;
    hsm_oid_t oid;
    hsm_uid_t alice = 0, owner = 0, *shared = NULL;
    hsm_key_ref_t *keys = NULL;
    hsm_audit_record_t *recs = NULL;
    hsm_audit_check_t chk;
    CK_MECHANISM_TYPE *mechs = NULL;
    hsm_mech_info_t mi;
    uint8_t digest[HSM_DIGEST_LEN], rnd[100], zero[100];
    size_t n = 0, nshared = 0, outlen = 0;
    hsm_user_type_t type;
    bool found = false;

    activate(&f->a, "alice", "alicepw1");
    assert_int_equal(wire_cl_mech_list(f->a.cl, &mechs, &n), CKR_OK);
    assert_true(n > 20);
    for (size_t i = 0; i < n; i++)
        found = found || mechs[i] == CKM_ECDSA;
    assert_true(found);
    free(mechs);
    assert_int_equal(wire_cl_mech_info(f->a.cl, CKM_RSA_PKCS_KEY_PAIR_GEN, &mi),
                     CKR_OK);
    assert_true(mi.flags & CKF_GENERATE_KEY_PAIR);
    assert_int_equal(wire_cl_mech_info(f->a.cl, 0x7ffffff0UL, &mi),
                     CKR_MECHANISM_INVALID);

    assert_int_equal(
        wire_cl_login(f->a.cl, HSM_LOGIN_USER, "alice", PW("alicepw1")),
        CKR_OK);
    assert_int_equal(wire_cl_conn_user_type(f->a.cl, &type, &alice), CKR_OK);
    assert_int_equal(wire_cl_session_open(f->a.cl, true, &sid), CKR_OK);
    memset(rnd, 0, sizeof(rnd));
    memset(zero, 0, sizeof(zero));
    assert_int_equal(wire_cl_random(f->a.cl, sid, rnd, sizeof(rnd)), CKR_OK);
    assert_memory_not_equal(rnd, zero, sizeof(rnd));
    /* no operation active: the core's answers, carried */
    assert_int_equal(
        wire_cl_op_output_len(f->a.cl, sid, HSM_OPK_SIGN, true, 0, &outlen),
        CKR_OPERATION_NOT_INITIALIZED);
    outlen = sizeof(rnd);
    assert_int_equal(
        wire_cl_op_oneshot(f->a.cl, sid, HSM_OPK_SIGN, rnd, 10, rnd, &outlen),
        CKR_OPERATION_NOT_INITIALIZED);
    assert_int_equal(wire_cl_context_login(f->a.cl, sid, NULL, PW("alicepw1")),
                     CKR_OPERATION_NOT_INITIALIZED);
    assert_int_equal(wire_cl_op_abort(f->a.cl, sid, HSM_OPK_SIGN), CKR_OK);

    assert_int_equal(make_data(&f->a, sid, "k", true, true, &oid), CKR_OK);
    assert_int_equal(wire_cl_key_list(f->a.cl, alice, &keys, &n, digest),
                     CKR_OK);
    assert_int_equal(n, 1);
    assert_true(keys[0].oid == oid);
    assert_true(keys[0].owned);
    free(keys);
    assert_int_equal(wire_cl_key_info(f->a.cl, oid, &owner, &shared, &nshared),
                     CKR_OK);
    assert_int_equal(owner, alice);
    assert_int_equal(nshared, 0);
    free(shared);
    /* a CU may not read the audit log nor mark trust */
    assert_int_equal(wire_cl_audit_read(f->a.cl, 0, 10, &recs, &n),
                     CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(wire_cl_object_set_trusted(f->a.cl, oid, true),
                     CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(wire_cl_logout(f->a.cl), CKR_OK);

    assert_int_equal(wire_cl_login(f->a.cl, HSM_LOGIN_SO, NULL, PW("copass1")),
                     CKR_OK);
    assert_int_equal(wire_cl_audit_read(f->a.cl, 0, 10, &recs, &n), CKR_OK);
    assert_true(n > 0);
    assert_int_equal(recs[0].seq, 1);
    assert_true(strlen(recs[0].op) > 0);
    free(recs);
    /* The login just made names the peer the transport saw (SO_PEERCRED
     * in nimbusd), carried back through the wire. */
    assert_int_equal(
        wire_cl_audit_read(f->a.cl, 0, HSM_AUDIT_READ_MAX, &recs, &n), CKR_OK);
    assert_true(n > 0);
    assert_string_equal(recs[n - 1].op, "login");
    assert_string_equal(recs[n - 1].peer, "uid=1000 gid=1000 pid=4242");
    free(recs);
    assert_int_equal(
        wire_cl_audit_read(f->a.cl, 0, HSM_AUDIT_READ_MAX + 1, &recs, &n),
        CKR_ARGUMENTS_BAD);
    memset(&chk, 0xff, sizeof(chk));
    assert_int_equal(wire_cl_audit_verify(f->a.cl, &chk), CKR_OK);
    assert_int_equal(chk.status, HSM_AUDIT_INTACT);
    assert_true(chk.records > 0);
}

/* ------------------------------------------------------------ hostile */

/* A TLS client's certificate subject is its peer in the audit log; one
 * made to forge a log line (a newline in the subject) cannot. */
static void test_tls_peer_in_audit(void **state)
{
    struct fixture *f = *state;
    wire_peer_t p = unix_peer(-1);
    struct tchan t;
    hsm_audit_record_t *recs = NULL;
    size_t n = 0;

    activate(&f->a, "alice", "alicepw1");
    p.tls = true;
    snprintf(p.cert_subject, sizeof(p.cert_subject),
             "CN=evil\n42 login user 1 ok");
    snprintf(p.cert_sha256, sizeof(p.cert_sha256), "%064d", 7);
    memset(&t, 0, sizeof(t));
    t.ch = wire_chan_new(f->srv, &p);
    assert_non_null(t.ch);
    t.open = true;
    assert_int_equal(wire_client_new(xfer, &t, 0, &t.cl), CKR_OK);
    assert_int_equal(wire_cl_hello(t.cl, "test_wire", NULL, NULL), CKR_OK);
    assert_int_equal(wire_cl_login(t.cl, HSM_LOGIN_SO, NULL, PW("wrong-pw")),
                     CKR_PIN_INCORRECT);
    chan_close(&t);

    assert_int_equal(wire_cl_login(f->a.cl, HSM_LOGIN_SO, NULL, PW("copass1")),
                     CKR_OK);
    assert_int_equal(
        wire_cl_audit_read(f->a.cl, 0, HSM_AUDIT_READ_MAX, &recs, &n), CKR_OK);
    assert_true(n >= 2);
    assert_int_equal(recs[n - 2].result, CKR_PIN_INCORRECT);
    assert_string_equal(recs[n - 2].peer, "tls CN=evil?42 login user 1 ok");
    assert_string_equal(recs[n - 1].peer, "uid=1000 gid=1000 pid=4242");
    free(recs);
}

/* Login tickets over the wire: bound to the peer's uid (not its pid),
 * or to a TLS client certificate's subject. */
static void test_tickets(void **state)
{
    struct fixture *f = *state;
    uint8_t t[HSM_TICKET_LEN], t2[HSM_TICKET_LEN];
    wire_peer_t p = unix_peer(-1);
    struct tchan c, d;
    hsm_user_type_t type = HSM_USER_NONE;
    hsm_uid_t uid = 0, a_uid = 0;

    activate(&f->a, "alice", "alicepw1");
    assert_int_equal(wire_cl_login_ticket(f->a.cl, t), CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(
        wire_cl_login(f->a.cl, HSM_LOGIN_USER, "alice", PW("alicepw1")),
        CKR_OK);
    assert_int_equal(wire_cl_conn_user_type(f->a.cl, &type, &a_uid), CKR_OK);
    assert_int_equal(wire_cl_login_ticket(f->a.cl, t), CKR_OK);

    /* another connection of uid 1000 (another pid): logged in as alice */
    assert_int_equal(chan_open(f, &f->b, 1000, NULL, NULL), CKR_OK);
    assert_int_equal(wire_cl_login_redeem(f->b.cl, t, 3), CKR_PIN_INCORRECT);
    assert_int_equal(wire_cl_login_redeem(f->b.cl, t, HSM_TICKET_LEN), CKR_OK);
    assert_int_equal(wire_cl_conn_user_type(f->b.cl, &type, &uid), CKR_OK);
    assert_int_equal(type, HSM_USER_CU);
    assert_int_equal(uid, a_uid);

    /* uid 1001: refused */
    memset(&c, 0, sizeof(c));
    assert_int_equal(chan_open(f, &c, 1001, NULL, NULL), CKR_OK);
    assert_int_equal(wire_cl_login_redeem(c.cl, t, HSM_TICKET_LEN),
                     CKR_PIN_INCORRECT);
    assert_int_equal(wire_cl_conn_user_type(c.cl, &type, &uid), CKR_OK);
    assert_int_equal(type, HSM_USER_NONE);
    /* and its own ticket does not serve uid 1000 */
    assert_int_equal(
        wire_cl_login(c.cl, HSM_LOGIN_USER, "alice", PW("alicepw1")), CKR_OK);
    assert_int_equal(wire_cl_login_ticket(c.cl, t2), CKR_OK);
    chan_close(&c);
    assert_int_equal(wire_cl_logout(f->b.cl), CKR_OK);
    assert_int_equal(wire_cl_login_redeem(f->b.cl, t2, HSM_TICKET_LEN),
                     CKR_PIN_INCORRECT);

    /* a TLS peer, even one whose subject reads "uid=1000" */
    p.tls = true;
    snprintf(p.cert_subject, sizeof(p.cert_subject), "uid=1000");
    snprintf(p.cert_sha256, sizeof(p.cert_sha256), "%064d", 7);
    memset(&d, 0, sizeof(d));
    d.ch = wire_chan_new(f->srv, &p);
    assert_non_null(d.ch);
    d.open = true;
    assert_int_equal(wire_client_new(xfer, &d, 0, &d.cl), CKR_OK);
    assert_int_equal(wire_cl_hello(d.cl, "test_wire", NULL, NULL), CKR_OK);
    assert_int_equal(wire_cl_login_redeem(d.cl, t, HSM_TICKET_LEN),
                     CKR_PIN_INCORRECT);
    chan_close(&d);
}

static void test_garbage_and_truncated(void **state)
{
    struct fixture *f = *state;
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
    Nimbus__Request q;
    Nimbus__LoginReq m;
    uint8_t buf[256];
    size_t len;
    CK_RV rv;

    assert_false(raw_bytes(&f->a, garbage, sizeof(garbage), &rv));
    assert_int_equal(rv, CKR_DEVICE_ERROR);

    /* a login cut short: never a partial call */
    nimbus__login_req__init(&m);
    m.kind = HSM_LOGIN_SO;
    m.password.data = (uint8_t *)"password";
    m.password.len = 8;
    nimbus__request__init(&q);
    q.id = 7;
    q.call_case = NIMBUS__REQUEST__CALL_LOGIN;
    q.login = &m;
    len = nimbus__request__get_packed_size(&q);
    assert_true(len < sizeof(buf));
    nimbus__request__pack(&q, buf);
    for (size_t cut = 1; cut < len; cut++) {
        if (cut == 2) {
            /* "id = 7" alone: a whole request without a call */
            assert_true(raw_bytes(&f->a, buf, cut, &rv));
            assert_int_equal(rv, CKR_FUNCTION_NOT_SUPPORTED);
            continue;
        }
        assert_false(raw_bytes(&f->a, buf, cut, &rv));
        assert_int_equal(rv, CKR_DEVICE_ERROR);
    }
    /* none of them logged in */
    assert_true(raw_bytes(&f->a, buf, len, &rv));
    assert_int_equal(rv, CKR_OK);
}

static void test_handshake_rules(void **state)
{
    struct fixture *f = *state;
    struct tchan t;
    wire_peer_t p = unix_peer(1000);
    Nimbus__Request q;
    Nimbus__Hello h;
    Nimbus__TokenInfoReq ti;
    Nimbus__Reply *rep;

    /* a call before the handshake closes the channel */
    t.ch = wire_chan_new(f->srv, &p);
    assert_non_null(t.ch);
    nimbus__token_info_req__init(&ti);
    nimbus__request__init(&q);
    q.id = 1;
    q.call_case = NIMBUS__REQUEST__CALL_TOKEN_INFO;
    q.token_info = &ti;
    assert_false(raw_call(&t, &q, &rep));
    assert_int_equal(rep->rv, CKR_CRYPTOKI_NOT_INITIALIZED);
    assert_int_equal(rep->result_case, NIMBUS__REPLY__RESULT__NOT_SET);
    nimbus__reply__free_unpacked(rep, NULL);

    /* another protocol version is refused, with the server's */
    nimbus__hello__init(&h);
    h.version = WIRE_PROTOCOL_VERSION + 1;
    q.call_case = NIMBUS__REQUEST__CALL_HELLO;
    q.hello = &h;
    assert_false(raw_call(&t, &q, &rep));
    assert_int_equal(rep->rv, CKR_DEVICE_ERROR);
    assert_int_equal(rep->result_case, NIMBUS__REPLY__RESULT_HELLO);
    assert_int_equal(rep->hello->version, WIRE_PROTOCOL_VERSION);
    nimbus__reply__free_unpacked(rep, NULL);

    /* a second hello on a channel */
    h.version = WIRE_PROTOCOL_VERSION;
    assert_true(raw_call(&t, &q, &rep));
    assert_int_equal(rep->rv, CKR_OK);
    assert_int_equal(rep->id, 1);
    /* the server states its minor (what calls it knows) */
    assert_true(rep->hello->has_minor);
    assert_int_equal(rep->hello->minor, WIRE_PROTOCOL_MINOR);
    nimbus__reply__free_unpacked(rep, NULL);
    assert_false(raw_call(&t, &q, &rep));
    assert_int_equal(rep->rv, CKR_DEVICE_ERROR);
    nimbus__reply__free_unpacked(rep, NULL);
    wire_chan_free(t.ch);
}

static void test_unknown_call(void **state)
{
    struct fixture *f = *state;
    /* Request{id=5, field 500 (a call of a later version) = {}} */
    static const uint8_t unknown[] = {0x08, 0x05, 0xa2, 0x1f, 0x00};
    hsm_token_info_t ti;
    CK_RV rv;

    assert_true(raw_bytes(&f->a, unknown, sizeof(unknown), &rv));
    assert_int_equal(rv, CKR_FUNCTION_NOT_SUPPORTED);
    /* the channel still works */
    assert_int_equal(wire_cl_token_info(f->a.cl, &ti), CKR_OK);
}

static void test_limits(void **state)
{
    struct fixture *f = *state;
    CK_ATTRIBUTE *big;
    CK_ATTRIBUTE_TYPE *types;
    hsm_attr_t *out;
    uint8_t *val;
    hsm_sid_t sid;
    hsm_oid_t oid;
    uint8_t *frame;
    size_t n = 600000, len = 0;
    Nimbus__Request q;
    Nimbus__RandomReq rr;
    Nimbus__OpOneshotReq os;
    Nimbus__Reply *rep;
    CK_RV rv;

    activate(&f->a, "alice", "alicepw1");
    assert_int_equal(
        wire_cl_login(f->a.cl, HSM_LOGIN_USER, "alice", PW("alicepw1")),
        CKR_OK);
    assert_int_equal(wire_cl_session_open(f->a.cl, true, &sid), CKR_OK);

    /* 257 attributes: refused before the core */
    big = calloc(HSM_TEMPLATE_MAX + 1, sizeof(*big));
    assert_non_null(big);
    for (size_t i = 0; i <= HSM_TEMPLATE_MAX; i++)
        big[i].type = CKA_LABEL;
    rv = wire_cl_object_create(f->a.cl, sid, big, HSM_TEMPLATE_MAX + 1, &oid);
    assert_int_equal(rv, CKR_ARGUMENTS_BAD);
    free(big);

    /* a value of 64 KiB + 1 */
    val = calloc(1, HSM_ATTR_VALUE_MAX + 1);
    assert_non_null(val);
    {
        CK_OBJECT_CLASS cls = CKO_DATA;
        CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
                            {CKA_VALUE, val, HSM_ATTR_VALUE_MAX + 1}};

        assert_int_equal(wire_cl_object_create(f->a.cl, sid, t, 2, &oid),
                         CKR_ATTRIBUTE_VALUE_INVALID);
        t[1].ulValueLen = HSM_ATTR_VALUE_MAX;
        assert_int_equal(wire_cl_object_create(f->a.cl, sid, t, 2, &oid),
                         CKR_OK);
    }
    free(val);

    /* 257 types to read */
    types = calloc(HSM_TEMPLATE_MAX + 1, sizeof(*types));
    out = calloc(HSM_TEMPLATE_MAX + 1, sizeof(*out));
    assert_non_null(types);
    assert_non_null(out);
    {
        Nimbus__ObjectGetReq g;
        uint64_t tv[HSM_TEMPLATE_MAX + 1];

        memset(tv, 0, sizeof(tv));
        nimbus__object_get_req__init(&g);
        g.sid = sid;
        g.oid = oid;
        g.n_types = HSM_TEMPLATE_MAX + 1;
        g.types = tv;
        nimbus__request__init(&q);
        q.call_case = NIMBUS__REQUEST__CALL_OBJECT_GET;
        q.object_get = &g;
        assert_true(raw_call(&f->a, &q, &rep));
        assert_int_equal(rep->rv, CKR_ARGUMENTS_BAD);
        nimbus__reply__free_unpacked(rep, NULL);
    }
    free(types);
    free(out);

    /* 600,000 tiny attributes in one frame: the decoder's budget refuses
     * them (each would cost a struct and a pointer) */
    frame = malloc(n * 6 + 16);
    assert_non_null(frame);
    frame[len++] = 0x08; /* id = 1 */
    frame[len++] = 0x01;
    {
        /* object_create (field 23, length-delimited) holding sid and the
         * attributes */
        size_t body = 2 + n * 6, k = 0;
        uint8_t hdr[8];

        hdr[k++] = 0xba; /* (23 << 3) | 2 */
        hdr[k++] = 0x01;
        while (body >= 0x80) {
            hdr[k++] = (uint8_t)(body | 0x80);
            body >>= 7;
        }
        hdr[k++] = (uint8_t)body;
        memcpy(frame + len, hdr, k);
        len += k;
        frame[len++] = 0x08; /* sid */
        frame[len++] = (uint8_t)sid;
        for (size_t i = 0; i < n; i++) {
            /* template (field 2): Attribute{type = 3} */
            frame[len++] = 0x12;
            frame[len++] = 0x02;
            frame[len++] = 0x08;
            frame[len++] = 0x03;
            frame[len++] = 0x12; /* value: empty */
            frame[len++] = 0x00;
        }
    }
    assert_true(len < f->cfg.max_frame);
    assert_false(raw_bytes(&f->a, frame, len, &rv));
    assert_int_equal(rv, CKR_DEVICE_ERROR);
    free(frame);
    /* the channel was told to close; a new one for what follows */
    chan_close(&f->a);
    assert_int_equal(chan_open(f, &f->a, 1000, NULL, NULL), CKR_OK);
    assert_int_equal(
        wire_cl_login(f->a.cl, HSM_LOGIN_USER, "alice", PW("alicepw1")),
        CKR_OK);
    assert_int_equal(wire_cl_session_open(f->a.cl, true, &sid), CKR_OK);

    /* absurd lengths the client chose: no allocation of that size */
    nimbus__random_req__init(&rr);
    rr.sid = sid;
    rr.len = UINT64_C(1) << 62;
    nimbus__request__init(&q);
    q.call_case = NIMBUS__REQUEST__CALL_RANDOM;
    q.random = &rr;
    assert_true(raw_call(&f->a, &q, &rep));
    assert_int_equal(rep->rv, CKR_ARGUMENTS_BAD);
    nimbus__reply__free_unpacked(rep, NULL);

    nimbus__op_oneshot_req__init(&os);
    os.sid = sid;
    os.kind = HSM_OPK_ENCRYPT;
    os.has_out_room = true;
    os.out_room = UINT64_MAX;
    q.call_case = NIMBUS__REQUEST__CALL_OP_ONESHOT;
    q.op_oneshot = &os;
    assert_true(raw_call(&f->a, &q, &rep));
    assert_int_equal(rep->rv, CKR_OPERATION_NOT_INITIALIZED);
    nimbus__reply__free_unpacked(rep, NULL);
    os.kind = HSM_OPK_COUNT;
    assert_true(raw_call(&f->a, &q, &rep));
    assert_int_equal(rep->rv, CKR_ARGUMENTS_BAD);
    nimbus__reply__free_unpacked(rep, NULL);

    /* a frame longer than max_frame is refused unread */
    {
        static uint8_t one[1];

        assert_false(
            wire_chan_handle(f->a.ch, one, f->cfg.max_frame + 1, &frame, &len));
        free(frame);
    }
}

static void test_names(void **state)
{
    struct fixture *f = *state;
    Nimbus__Request q;
    Nimbus__LoginReq m;
    Nimbus__Reply *rep;

    /* "admin\0x": never cut to "admin" */
    nimbus__login_req__init(&m);
    m.kind = HSM_LOGIN_SO;
    m.has_name = true;
    m.name.data = (uint8_t *)"admin\0x";
    m.name.len = 7;
    m.password.data = (uint8_t *)"password";
    m.password.len = 8;
    nimbus__request__init(&q);
    q.call_case = NIMBUS__REQUEST__CALL_LOGIN;
    q.login = &m;
    assert_true(raw_call(&f->a, &q, &rep));
    assert_int_equal(rep->rv, CKR_ARGUMENTS_BAD);
    nimbus__reply__free_unpacked(rep, NULL);
    m.kind = 77;
    m.name.len = 5;
    assert_true(raw_call(&f->a, &q, &rep));
    assert_int_equal(rep->rv, CKR_USER_TYPE_INVALID);
    nimbus__reply__free_unpacked(rep, NULL);
    m.kind = HSM_LOGIN_SO;
    assert_true(raw_call(&f->a, &q, &rep));
    assert_int_equal(rep->rv, CKR_OK);
    nimbus__reply__free_unpacked(rep, NULL);
}

static void test_other_connection(void **state)
{
    struct fixture *f = *state;
    hsm_sid_t a1, a2, b1;
    hsm_oid_t secret, mine;
    hsm_attr_t out[1];
    CK_ATTRIBUTE_TYPE types[] = {CKA_VALUE};

    activate(&f->a, "alice", "alicepw1");
    assert_int_equal(wire_cl_login(f->a.cl, HSM_LOGIN_SO, NULL, PW("copass1")),
                     CKR_OK);
    assert_int_equal(wire_cl_init_pin(f->a.cl, "bob", PW("bobpass1")), CKR_OK);
    assert_int_equal(wire_cl_logout(f->a.cl), CKR_OK);
    assert_int_equal(
        wire_cl_login(f->a.cl, HSM_LOGIN_USER, "alice", PW("alicepw1")),
        CKR_OK);
    assert_int_equal(wire_cl_session_open(f->a.cl, true, &a1), CKR_OK);
    assert_int_equal(wire_cl_session_open(f->a.cl, true, &a2), CKR_OK);
    assert_int_equal(make_data(&f->a, a2, "alice's", false, true, &secret),
                     CKR_OK);

    /* b: another connection of the same uid (a second application) */
    assert_int_equal(chan_open(f, &f->b, 1000, NULL, NULL), CKR_OK);
    assert_int_equal(
        wire_cl_login(f->b.cl, HSM_LOGIN_USER, "bob", PW("bobpass1")), CKR_OK);
    /* alice's session ids mean nothing on b's connection */
    assert_int_equal(make_data(&f->b, a2, "x", false, false, &mine),
                     CKR_SESSION_HANDLE_INVALID);
    assert_int_equal(wire_cl_session_close(f->b.cl, a1),
                     CKR_SESSION_HANDLE_INVALID);
    assert_int_equal(wire_cl_session_open(f->b.cl, true, &b1), CKR_OK);
    /* alice's private session object is not bob's */
    assert_int_equal(wire_cl_object_get(f->b.cl, b1, secret, types, 1, out),
                     CKR_OBJECT_HANDLE_INVALID);
    assert_int_equal(wire_cl_object_destroy(f->b.cl, b1, secret),
                     CKR_OBJECT_HANDLE_INVALID);
    /* a's sessions are intact */
    assert_int_equal(wire_cl_object_get(f->a.cl, a2, secret, types, 1, out),
                     CKR_OK);
    hsm_attrs_free(out, 1);
    /* C_InitToken while another client holds sessions */
    assert_int_equal(wire_cl_session_close(f->b.cl, b1), CKR_OK);
    assert_int_equal(wire_cl_logout(f->b.cl), CKR_OK);
    assert_int_equal(wire_cl_init_token(f->b.cl, NULL, PW("copass1"), "x"),
                     CKR_SESSION_EXISTS);
    chan_close(&f->b);
}

/* One raw CKA_WRAP_TEMPLATE value in an object create, the rest a valid
 * AES key: the server's answer. */
static CK_RV raw_wrap_template(struct tchan *t, hsm_sid_t sid, const uint8_t *v,
                               size_t len)
{
    static const uint8_t key[16];
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    Nimbus__Attribute at[4], *ap[4];
    Nimbus__ObjectCreateReq m;
    Nimbus__Request q;
    Nimbus__Reply *rep;
    CK_RV rv;

    for (size_t i = 0; i < 4; i++) {
        nimbus__attribute__init(&at[i]);
        at[i].has_value = true;
        ap[i] = &at[i];
    }
    at[0].type = CKA_CLASS;
    at[0].value.data = (uint8_t *)&cls;
    at[0].value.len = sizeof(cls);
    at[1].type = CKA_KEY_TYPE;
    at[1].value.data = (uint8_t *)&kt;
    at[1].value.len = sizeof(kt);
    at[2].type = CKA_VALUE;
    at[2].value.data = (uint8_t *)key;
    at[2].value.len = sizeof(key);
    at[3].type = CKA_WRAP_TEMPLATE;
    at[3].value.data = (uint8_t *)v;
    at[3].value.len = len;
    nimbus__object_create_req__init(&m);
    m.sid = sid;
    m.n_template_ = 4;
    m.template_ = ap;
    nimbus__request__init(&q);
    q.id = 99;
    q.call_case = NIMBUS__REQUEST__CALL_OBJECT_CREATE;
    q.object_create = &m;
    assert_true(raw_call(t, &q, &rep));
    rv = (CK_RV)rep->rv;
    nimbus__reply__free_unpacked(rep, NULL);
    return rv;
}

/*
 * A nested template (CKA_WRAP_TEMPLATE ...) crosses hsm.h and the wire as
 * the core's serialized list (the front end converted the caller's
 * CK_ATTRIBUTE[]); the core parses it. A hostile client's raw array
 * (pointers of its own), counts or lengths past the bytes, or a template
 * inside a template are CKR_ATTRIBUTE_VALUE_INVALID: nothing of the
 * client is dereferenced.
 */
static void test_nested_templates(void **state)
{
    struct fixture *f = *state;
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_AES;
    CK_BBOOL yes = CK_TRUE;
    uint8_t key[16] = {1}, b[64];
    /* {CKA_EXTRACTABLE, CK_FALSE} serialized */
    static const uint8_t inner[] = {0, 0, 0,    1, 0, 0, 0, 0, 0,
                                    0, 1, 0x62, 0, 0, 0, 1, 0};
    /* {CKA_DERIVE_TEMPLATE (0x40000213), the empty list} serialized */
    static const uint8_t deeper[] = {0, 0,    0, 1, 0, 0, 0, 0, 0x40, 0,
                                     2, 0x13, 0, 0, 0, 4, 0, 0, 0,    0};
    CK_ATTRIBUTE tm[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_VALUE, key, sizeof(key)},
        {CKA_WRAP, &yes, sizeof(yes)},
        {CKA_WRAP_TEMPLATE, (void *)inner, sizeof(inner)},
    };
    CK_ATTRIBUTE_TYPE types[] = {CKA_WRAP_TEMPLATE};
    CK_ATTRIBUTE fake = {CKA_LABEL, (void *)(uintptr_t)0x4141414141414141ULL,
                         8};
    CK_ATTRIBUTE deep_tm[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_VALUE, key, sizeof(key)},
        {CKA_WRAP_TEMPLATE, (void *)deeper, sizeof(deeper)},
    };
    hsm_attr_t out[1];
    hsm_sid_t sid;
    hsm_oid_t oid;

    activate(&f->a, "alice", "alicepw1");
    assert_int_equal(
        wire_cl_login(f->a.cl, HSM_LOGIN_USER, "alice", PW("alicepw1")),
        CKR_OK);
    assert_int_equal(wire_cl_session_open(f->a.cl, true, &sid), CKR_OK);

    /* the round trip: stored and read back as the core's blob */
    assert_int_equal(wire_cl_object_create(f->a.cl, sid, tm, 5, &oid), CKR_OK);
    assert_int_equal(wire_cl_object_get(f->a.cl, sid, oid, types, 1, out),
                     CKR_OK);
    assert_int_equal(out[0].status, HSM_ATTR_OK);
    assert_int_equal(out[0].len, 4 + 12 + 1);
    assert_int_equal(out[0].value[3], 1);      /* one attribute */
    assert_int_equal(out[0].value[4 + 12], 0); /* CK_FALSE */
    assert_memory_equal(out[0].value, inner, sizeof(inner));
    hsm_attrs_free(out, 1);
    /* a template inside a template: the core refuses it */
    assert_int_equal(wire_cl_object_create(f->a.cl, sid, deep_tm, 4, &oid),
                     CKR_ATTRIBUTE_VALUE_INVALID);

    /* hostile: the raw array with a pointer of the client's */
    assert_int_equal(
        raw_wrap_template(&f->a, sid, (const uint8_t *)&fake, sizeof(fake)),
        CKR_ATTRIBUTE_VALUE_INVALID);
    /* a count the bytes cannot hold; a length past the end */
    memset(b, 0, sizeof(b));
    b[3] = 2;
    b[4 + 7] = (uint8_t)CKA_LABEL;
    b[4 + 11] = 1;
    b[16] = 'x';
    assert_int_equal(raw_wrap_template(&f->a, sid, b, 17),
                     CKR_ATTRIBUTE_VALUE_INVALID);
    b[3] = 1;
    b[4 + 10] = 0xff;
    assert_int_equal(raw_wrap_template(&f->a, sid, b, 17),
                     CKR_ATTRIBUTE_VALUE_INVALID);
    b[4 + 10] = 0;
    /* trailing bytes; then the same entry well formed is taken */
    assert_int_equal(raw_wrap_template(&f->a, sid, b, 18),
                     CKR_ATTRIBUTE_VALUE_INVALID);
    assert_int_equal(raw_wrap_template(&f->a, sid, b, 17), CKR_OK);
    /* a template inside the template */
    b[4 + 4] = 0x40; /* CKA_WRAP_TEMPLATE: 0x40000211 */
    b[4 + 6] = 0x02;
    b[4 + 7] = 0x11;
    assert_int_equal(raw_wrap_template(&f->a, sid, b, 17),
                     CKR_ATTRIBUTE_VALUE_INVALID);
    /* too short for a count */
    assert_int_equal(raw_wrap_template(&f->a, sid, b, 3),
                     CKR_ATTRIBUTE_VALUE_INVALID);
}

static void test_attach(void **state)
{
    struct fixture *f = *state;
    uint8_t token[WIRE_TOKEN_LEN], t2[WIRE_TOKEN_LEN];
    hsm_user_type_t type;
    hsm_uid_t uid;
    hsm_sid_t sid;
    hsm_oid_t oid;
    struct tchan c;

    chan_close(&f->a);
    assert_int_equal(chan_open(f, &f->a, 1000, NULL, token), CKR_OK);
    activate(&f->a, "alice", "alicepw1");
    assert_int_equal(
        wire_cl_login(f->a.cl, HSM_LOGIN_USER, "alice", PW("alicepw1")),
        CKR_OK);
    assert_int_equal(wire_cl_session_open(f->a.cl, true, &sid), CKR_OK);

    /* a second channel of the same peer shares login and sessions */
    assert_int_equal(chan_open(f, &f->b, 1000, token, t2), CKR_OK);
    assert_memory_equal(token, t2, sizeof(token));
    assert_int_equal(wire_cl_conn_user_type(f->b.cl, &type, &uid), CKR_OK);
    assert_int_equal(type, HSM_USER_CU);
    assert_int_equal(make_data(&f->b, sid, "via b", false, true, &oid), CKR_OK);

    /* another uid with the right token: refused as if it did not exist */
    memset(&c, 0, sizeof(c));
    assert_int_equal(chan_open(f, &c, 1001, token, NULL), CKR_DEVICE_REMOVED);
    assert_false(c.open);
    chan_close(&c);
    /* a wrong token */
    token[0] ^= 1;
    assert_int_equal(chan_open(f, &c, 1000, token, NULL), CKR_DEVICE_REMOVED);
    chan_close(&c);
    token[0] ^= 1;

    /* the first channel goes: the connection lives on in b */
    chan_close(&f->a);
    assert_int_equal(wire_cl_conn_user_type(f->b.cl, &type, &uid), CKR_OK);
    assert_int_equal(type, HSM_USER_CU);
    /* the last goes: the connection ends and its token with it */
    chan_close(&f->b);
    assert_int_equal(chan_open(f, &f->b, 1000, token, NULL),
                     CKR_DEVICE_REMOVED);
    chan_close(&f->b);
}

static void test_after_close(void **state)
{
    struct fixture *f = *state;
    hsm_sid_t sid;
    hsm_oid_t oid;
    uint8_t rnd[8];

    activate(&f->a, "alice", "alicepw1");
    assert_int_equal(
        wire_cl_login(f->a.cl, HSM_LOGIN_USER, "alice", PW("alicepw1")),
        CKR_OK);
    assert_int_equal(wire_cl_session_open(f->a.cl, false, &sid), CKR_OK);
    /* read-only session: a token object is the core's refusal */
    assert_int_equal(make_data(&f->a, sid, "t", true, false, &oid),
                     CKR_SESSION_READ_ONLY);
    assert_int_equal(wire_cl_session_close(f->a.cl, sid), CKR_OK);
    assert_int_equal(wire_cl_session_close(f->a.cl, sid),
                     CKR_SESSION_HANDLE_INVALID);
    assert_int_equal(wire_cl_random(f->a.cl, sid, rnd, sizeof(rnd)),
                     CKR_SESSION_HANDLE_INVALID);
    assert_int_equal(make_data(&f->a, sid, "t", false, false, &oid),
                     CKR_SESSION_HANDLE_INVALID);
    assert_int_equal(wire_cl_random(f->a.cl, 0, rnd, sizeof(rnd)),
                     CKR_SESSION_HANDLE_INVALID);
    /* ids are not reused: the next session is another id */
    {
        hsm_sid_t again;

        assert_int_equal(wire_cl_session_open(f->a.cl, false, &again), CKR_OK);
        assert_true(again != sid);
    }
}

static void test_session_and_channel_limits(void **state)
{
    struct fixture *f = *state;
    hsm_sid_t s[4];
    struct tchan c1, c2;

    for (int i = 0; i < 3; i++)
        assert_int_equal(wire_cl_session_open(f->a.cl, false, &s[i]), CKR_OK);
    assert_int_equal(wire_cl_session_open(f->a.cl, false, &s[3]),
                     CKR_SESSION_COUNT);
    assert_int_equal(wire_cl_session_close(f->a.cl, s[1]), CKR_OK);
    assert_int_equal(wire_cl_session_open(f->a.cl, false, &s[3]), CKR_OK);

    /* max_connections 3: a, c1, c2; a fourth channel is refused */
    memset(&c1, 0, sizeof(c1));
    memset(&c2, 0, sizeof(c2));
    assert_int_equal(chan_open(f, &c1, 1000, NULL, NULL), CKR_OK);
    assert_int_equal(chan_open(f, &c2, 1000, NULL, NULL), CKR_OK);
    {
        wire_peer_t p = unix_peer(1000);

        assert_null(wire_chan_new(f->srv, &p));
    }
    chan_close(&c2);
    assert_int_equal(chan_open(f, &c2, 1000, NULL, NULL), CKR_OK);
    chan_close(&c1);
    chan_close(&c2);
}

/* ------------------------------------------------------------ crypto */

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;

    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/*
 * The same mechanism through the wire (channel A, alice) and straight
 * into the core (an embedded connection of alice on the same token): a
 * deterministic mechanism must give the same bytes both ways, which shows
 * that every field of its parameter crossed the wire unchanged.
 */
struct twin {
    struct fixture *f;
    hsm_conn_t *conn; /* the direct connection */
    hsm_sid_t wsid;   /* A's session on the wire */
    hsm_sid_t dsid;   /* the direct session */
};

static CK_BBOOL t_yes = CK_TRUE, t_no = CK_FALSE;
static CK_OBJECT_CLASS t_secret = CKO_SECRET_KEY;

static void twin_open(struct fixture *f, struct twin *t)
{
    t->f = f;
    activate(&f->a, "alice", "alicepw1");
    assert_int_equal(
        wire_cl_login(f->a.cl, HSM_LOGIN_USER, "alice", PW("alicepw1")),
        CKR_OK);
    assert_int_equal(wire_cl_session_open(f->a.cl, true, &t->wsid), CKR_OK);
    assert_int_equal(hsm_conn_open(f->hsm, &t->conn), CKR_OK);
    assert_int_equal(
        hsm_login(t->conn, HSM_LOGIN_USER, "alice", PW("alicepw1")), CKR_OK);
    assert_int_equal(hsm_session_open(t->conn, true, &t->dsid), CKR_OK);
}

static void twin_close(struct twin *t)
{
    hsm_conn_close(t->conn);
}

/* A token secret key of value v, made over the wire (both see it). */
static hsm_oid_t twin_key(struct twin *t, CK_KEY_TYPE kt, const uint8_t *v,
                          size_t len, CK_ATTRIBUTE_TYPE use1,
                          CK_ATTRIBUTE_TYPE use2)
{
    CK_ATTRIBUTE tm[] = {
        {CKA_CLASS, &t_secret, sizeof(t_secret)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &t_yes, 1},
        {CKA_VALUE, (void *)v, len},
        {CKA_SENSITIVE, &t_no, 1},
        {CKA_EXTRACTABLE, &t_yes, 1},
        {use1, &t_yes, 1},
        {use2, &t_yes, 1},
    };
    hsm_oid_t oid = 0;

    assert_int_equal(wire_cl_object_create(t->f->a.cl, t->wsid, tm, 8, &oid),
                     CKR_OK);
    return oid;
}

static void decode(const CK_MECHANISM *m, hsm_mech_t *d)
{
    assert_int_equal(hsm_mech_decode(m, d), CKR_OK);
}

/* kind over in with key, both ways; the outputs must be equal. */
static void twin_op(struct twin *t, hsm_opkind_t kind, const CK_MECHANISM *m,
                    hsm_oid_t key, const uint8_t *in, size_t inlen)
{
    uint8_t w[1024], d[1024];
    size_t wl = 0, dl = sizeof(d);
    hsm_mech_t mech;

    decode(m, &mech);
    assert_int_equal(wire_cl_op_init(t->f->a.cl, t->wsid, kind, &mech, key),
                     CKR_OK);
    /* the length query (no buffer), then the call */
    assert_int_equal(
        wire_cl_op_oneshot(t->f->a.cl, t->wsid, kind, in, inlen, NULL, &wl),
        CKR_OK);
    assert_true(wl > 0 && wl <= sizeof(w));
    wl = sizeof(w);
    assert_int_equal(
        wire_cl_op_oneshot(t->f->a.cl, t->wsid, kind, in, inlen, w, &wl),
        CKR_OK);
    assert_int_equal(hsm_op_init(t->conn, t->dsid, kind, &mech, key), CKR_OK);
    assert_int_equal(hsm_op_oneshot(t->conn, t->dsid, kind, in, inlen, d, &dl),
                     CKR_OK);
    assert_int_equal(wl, dl);
    assert_memory_equal(w, d, wl);
    hsm_mech_free(&mech);
}

static uint8_t *value_of(struct twin *t, bool wire, hsm_oid_t oid, size_t *len)
{
    CK_ATTRIBUTE_TYPE ty = CKA_VALUE;
    hsm_attr_t a;
    uint8_t *v;

    if (wire) {
        assert_int_equal(
            wire_cl_object_get(t->f->a.cl, t->wsid, oid, &ty, 1, &a), CKR_OK);
    } else {
        assert_int_equal(hsm_object_get(t->conn, t->dsid, oid, &ty, 1, &a),
                         CKR_OK);
    }
    assert_int_equal(a.status, HSM_ATTR_OK);
    v = a.value;
    *len = a.len;
    return v;
}

/* A derivation both ways: the same key value. */
static void twin_derive(struct twin *t, const CK_MECHANISM *m, hsm_oid_t base,
                        CK_ULONG len)
{
    CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
    CK_ATTRIBUTE tm[] = {
        {CKA_CLASS, &t_secret, sizeof(t_secret)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_SENSITIVE, &t_no, 1},
        {CKA_VALUE_LEN, &len, sizeof(len)},
    };
    hsm_mech_t mech;
    hsm_oid_t wo = 0, dobj = 0;
    uint8_t *wv, *dv;
    size_t wl, dl;

    decode(m, &mech);
    assert_int_equal(wire_cl_derive_key(t->f->a.cl, t->wsid, &mech, base, tm,
                                        len != 0 ? 4 : 3, &wo),
                     CKR_OK);
    assert_int_equal(hsm_derive_key(t->conn, t->dsid, &mech, base, tm,
                                    len != 0 ? 4 : 3, &dobj),
                     CKR_OK);
    wv = value_of(t, true, wo, &wl);
    dv = value_of(t, false, dobj, &dl);
    assert_int_equal(wl, dl);
    assert_true(wl > 0);
    assert_memory_equal(wv, dv, wl);
    free(wv);
    free(dv);
    hsm_mech_free(&mech);
}

static void test_crypto_ciphers(void **state)
{
    struct fixture *f = *state;
    struct twin t;
    uint8_t kv[32], iv[16], aad[20], msg[48], nonce[12];
    hsm_oid_t aes, chacha, hmac;

    for (size_t i = 0; i < sizeof(kv); i++)
        kv[i] = (uint8_t)(i * 7 + 1);
    memset(iv, 0xa5, sizeof(iv));
    memset(aad, 0x3c, sizeof(aad));
    memset(msg, 0x42, sizeof(msg));
    memset(nonce, 0x17, sizeof(nonce));
    twin_open(f, &t);
    aes = twin_key(&t, CKK_AES, kv, 32, CKA_ENCRYPT, CKA_SIGN);
    chacha = twin_key(&t, CKK_CHACHA20, kv, 32, CKA_ENCRYPT, CKA_DECRYPT);
    hmac = twin_key(&t, CKK_GENERIC_SECRET, kv, 32, CKA_SIGN, CKA_VERIFY);
    {
        /* HSM_MP_BYTES */
        CK_MECHANISM m = {CKM_AES_CBC_PAD, iv, sizeof(iv)};

        twin_op(&t, HSM_OPK_ENCRYPT, &m, aes, msg, 33);
    }
    {
        /* HSM_MP_AES_CTR */
        CK_AES_CTR_PARAMS p = {64, {0}};
        CK_MECHANISM m = {CKM_AES_CTR, &p, sizeof(p)};

        memset(p.cb, 0x11, sizeof(p.cb));
        twin_op(&t, HSM_OPK_ENCRYPT, &m, aes, msg, sizeof(msg));
    }
    {
        /* HSM_MP_GCM, with the caller's IV and AAD */
        CK_GCM_PARAMS p = {iv, 12, 96, aad, sizeof(aad), 96};
        CK_MECHANISM m = {CKM_AES_GCM, &p, sizeof(p)};

        twin_op(&t, HSM_OPK_ENCRYPT, &m, aes, msg, sizeof(msg));
    }
    {
        /* HSM_MP_CCM */
        CK_CCM_PARAMS p = {sizeof(msg), nonce, 11, aad, sizeof(aad), 12};
        CK_MECHANISM m = {CKM_AES_CCM, &p, sizeof(p)};

        twin_op(&t, HSM_OPK_ENCRYPT, &m, aes, msg, sizeof(msg));
    }
    {
        /* HSM_MP_CHACHA20_POLY1305 */
        CK_SALSA20_CHACHA20_POLY1305_PARAMS p = {nonce, 12, aad, sizeof(aad)};
        CK_MECHANISM m = {CKM_CHACHA20_POLY1305, &p, sizeof(p)};

        twin_op(&t, HSM_OPK_ENCRYPT, &m, chacha, msg, sizeof(msg));
    }
    {
        /* HSM_MP_ULONG and HSM_MP_NONE */
        CK_MAC_GENERAL_PARAMS len = 20;
        CK_MECHANISM m = {CKM_SHA256_HMAC_GENERAL, &len, sizeof(len)};
        CK_MECHANISM full = {CKM_SHA256_HMAC, NULL, 0};
        CK_MECHANISM cmac = {CKM_AES_CMAC, NULL, 0};

        twin_op(&t, HSM_OPK_SIGN, &m, hmac, msg, sizeof(msg));
        twin_op(&t, HSM_OPK_SIGN, &full, hmac, msg, sizeof(msg));
        twin_op(&t, HSM_OPK_SIGN, &cmac, aes, msg, sizeof(msg));
    }
    {
        /* multi-part digest over the wire: SHA-256("abc") */
        static const uint8_t want[32] = {
            0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
            0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
            0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
        CK_MECHANISM m = {CKM_SHA256, NULL, 0};
        hsm_mech_t d;
        uint8_t out[64];
        size_t ol = 0;

        decode(&m, &d);
        assert_int_equal(
            wire_cl_op_init(f->a.cl, t.wsid, HSM_OPK_DIGEST, &d, 0), CKR_OK);
        assert_int_equal(wire_cl_op_update(f->a.cl, t.wsid, HSM_OPK_DIGEST,
                                           (const uint8_t *)"a", 1, NULL, &ol),
                         CKR_OK);
        ol = 0;
        assert_int_equal(wire_cl_op_update(f->a.cl, t.wsid, HSM_OPK_DIGEST,
                                           (const uint8_t *)"bc", 2, NULL, &ol),
                         CKR_OK);
        ol = 4;
        assert_int_equal(
            wire_cl_op_final(f->a.cl, t.wsid, HSM_OPK_DIGEST, out, &ol),
            CKR_BUFFER_TOO_SMALL);
        assert_int_equal(ol, 32);
        ol = sizeof(out);
        assert_int_equal(
            wire_cl_op_final(f->a.cl, t.wsid, HSM_OPK_DIGEST, out, &ol),
            CKR_OK);
        assert_int_equal(ol, 32);
        assert_memory_equal(out, want, 32);
        hsm_mech_free(&d);
    }
    {
        /* a GCM IV the token makes comes back through op_init_iv, and
         * decrypts on the direct side */
        CK_GCM_PARAMS p = {NULL, 12, 96, NULL, 0, 128};
        CK_MECHANISM m = {CKM_AES_GCM, &p, sizeof(p)};
        hsm_mech_t d;
        uint8_t made[16], ct[128], pt[128];
        size_t ivlen = 0, cl = sizeof(ct), pl = sizeof(pt);

        decode(&m, &d);
        assert_int_equal(wire_cl_op_init_iv(f->a.cl, t.wsid, HSM_OPK_ENCRYPT,
                                            &d, aes, made, sizeof(made),
                                            &ivlen),
                         CKR_OK);
        assert_int_equal(ivlen, 12);
        assert_int_equal(wire_cl_op_oneshot(f->a.cl, t.wsid, HSM_OPK_ENCRYPT,
                                            msg, sizeof(msg), ct, &cl),
                         CKR_OK);
        assert_int_equal(cl, sizeof(msg) + 16);
        hsm_mech_free(&d);
        p.pIv = made;
        decode(&m, &d);
        assert_int_equal(hsm_op_init(t.conn, t.dsid, HSM_OPK_DECRYPT, &d, aes),
                         CKR_OK);
        assert_int_equal(
            hsm_op_oneshot(t.conn, t.dsid, HSM_OPK_DECRYPT, ct, cl, pt, &pl),
            CKR_OK);
        assert_int_equal(pl, sizeof(msg));
        assert_memory_equal(pt, msg, sizeof(msg));
        hsm_mech_free(&d);
    }
    twin_close(&t);
}

static void test_crypto_derive_wrap(void **state)
{
    struct fixture *f = *state;
    struct twin t;
    uint8_t kv[32], other[16], label[] = "label", ctxt[] = "context", seed[32],
                               salt[16], data[32];
    hsm_oid_t base, second, kek, target;

    memset(kv, 0x5c, sizeof(kv));
    memset(other, 0x21, sizeof(other));
    memset(seed, 0xc5, sizeof(seed));
    memset(salt, 0x99, sizeof(salt));
    memset(data, 0x0f, sizeof(data));
    twin_open(f, &t);
    base = twin_key(&t, CKK_GENERIC_SECRET, kv, 32, CKA_DERIVE, CKA_DERIVE);
    second =
        twin_key(&t, CKK_GENERIC_SECRET, other, 16, CKA_DERIVE, CKA_DERIVE);
    {
        /* HSM_MP_SP800_108: the data parameter list */
        CK_SP800_108_COUNTER_FORMAT cf = {CK_FALSE, 32};
        CK_SP800_108_DKM_LENGTH_FORMAT df = {
            CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS, CK_FALSE, 32};
        CK_PRF_DATA_PARAM list[] = {
            {CK_SP800_108_ITERATION_VARIABLE, &cf, sizeof(cf)},
            {CK_SP800_108_BYTE_ARRAY, label, sizeof(label) - 1},
            {CK_SP800_108_BYTE_ARRAY, ctxt, sizeof(ctxt) - 1},
            {CK_SP800_108_DKM_LENGTH, &df, sizeof(df)},
        };
        CK_PRF_DATA_PARAM fb[] = {
            {CK_SP800_108_ITERATION_VARIABLE, NULL, 0},
            {CK_SP800_108_OPTIONAL_COUNTER, &cf, sizeof(cf)},
            {CK_SP800_108_BYTE_ARRAY, label, sizeof(label) - 1},
        };
        CK_SP800_108_KDF_PARAMS cp = {CKM_SHA256_HMAC, 4, list, 0, NULL};
        CK_SP800_108_FEEDBACK_KDF_PARAMS fp = {
            CKM_SHA256_HMAC, 3, fb, sizeof(seed), seed, 0, NULL};
        CK_MECHANISM cm = {CKM_SP800_108_COUNTER_KDF, &cp, sizeof(cp)};
        CK_MECHANISM fm = {CKM_SP800_108_FEEDBACK_KDF, &fp, sizeof(fp)};

        twin_derive(&t, &cm, base, 70);
        twin_derive(&t, &fm, base, 40);
    }
    {
        /* HSM_MP_HKDF */
        CK_HKDF_PARAMS hp = {
            CK_TRUE,      CK_TRUE, CKM_SHA256, CKF_HKDF_SALT_DATA, salt,
            sizeof(salt), 0,       ctxt,       sizeof(ctxt) - 1};
        CK_MECHANISM m = {CKM_HKDF_DERIVE, &hp, sizeof(hp)};

        twin_derive(&t, &m, base, 42);
    }
    {
        /* HSM_MP_OBJECT, HSM_MP_KEY_DERIVATION_STRING,
         * HSM_MP_AES_CBC_ENCRYPT_DATA */
        CK_OBJECT_HANDLE h = second;
        CK_MECHANISM m = {CKM_CONCATENATE_BASE_AND_KEY, &h, sizeof(h)};
        CK_KEY_DERIVATION_STRING_DATA sd = {data, 5};
        CK_MECHANISM ms = {CKM_CONCATENATE_BASE_AND_DATA, &sd, sizeof(sd)};
        CK_AES_CBC_ENCRYPT_DATA_PARAMS cd;
        CK_MECHANISM mc = {CKM_AES_CBC_ENCRYPT_DATA, &cd, sizeof(cd)};
        hsm_oid_t aes = twin_key(&t, CKK_AES, kv, 16, CKA_DERIVE, CKA_DERIVE);

        twin_derive(&t, &m, base, 0);
        twin_derive(&t, &ms, base, 0);
        memset(cd.iv, 0x44, sizeof(cd.iv));
        cd.pData = data;
        cd.length = 32;
        twin_derive(&t, &mc, aes, 0);
    }
    {
        /* HSM_MP_PBKDF2 (a key generation): the same key both ways */
        CK_PKCS5_PBKD2_PARAMS2 pp = {CKZ_SALT_SPECIFIED,
                                     salt,
                                     sizeof(salt),
                                     1000,
                                     CKP_PKCS5_PBKD2_HMAC_SHA256,
                                     NULL,
                                     0,
                                     (CK_UTF8CHAR_PTR) "passphrase",
                                     10};
        CK_MECHANISM m = {CKM_PKCS5_PBKD2, &pp, sizeof(pp)};
        CK_KEY_TYPE kt = CKK_AES;
        CK_ULONG len = 32;
        CK_ATTRIBUTE tm[] = {{CKA_KEY_TYPE, &kt, sizeof(kt)},
                             {CKA_VALUE_LEN, &len, sizeof(len)},
                             {CKA_SENSITIVE, &t_no, 1},
                             {CKA_EXTRACTABLE, &t_yes, 1}};
        hsm_mech_t d;
        hsm_oid_t wo, dobj;
        uint8_t *wv, *dv;
        size_t wl, dl;

        decode(&m, &d);
        assert_int_equal(wire_cl_generate_key(f->a.cl, t.wsid, &d, tm, 4, &wo),
                         CKR_OK);
        assert_int_equal(hsm_generate_key(t.conn, t.dsid, &d, tm, 4, &dobj),
                         CKR_OK);
        wv = value_of(&t, true, wo, &wl);
        dv = value_of(&t, false, dobj, &dl);
        assert_int_equal(wl, 32);
        assert_int_equal(dl, 32);
        assert_memory_equal(wv, dv, 32);
        free(wv);
        free(dv);
        hsm_mech_free(&d);
    }
    {
        /* wrap (deterministic: the same bytes both ways), then unwrap the
         * wire's on the wire and compare the values */
        CK_MECHANISM m = {CKM_AES_KEY_WRAP_KWP, NULL, 0};
        CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
        CK_ATTRIBUTE tm[] = {{CKA_CLASS, &t_secret, sizeof(t_secret)},
                             {CKA_KEY_TYPE, &kt, sizeof(kt)},
                             {CKA_SENSITIVE, &t_no, 1},
                             {CKA_EXTRACTABLE, &t_yes, 1}};
        hsm_mech_t d;
        uint8_t *w1 = NULL, *w2 = NULL, *v;
        size_t l1 = 0, l2 = 0, vl;
        hsm_oid_t back;

        kek = twin_key(&t, CKK_AES, kv, 32, CKA_WRAP, CKA_UNWRAP);
        target =
            twin_key(&t, CKK_GENERIC_SECRET, other, 16, CKA_SIGN, CKA_VERIFY);
        decode(&m, &d);
        assert_int_equal(
            wire_cl_wrap_key(f->a.cl, t.wsid, &d, kek, target, &w1, &l1),
            CKR_OK);
        assert_int_equal(
            hsm_wrap_key(t.conn, t.dsid, &d, kek, target, &w2, &l2), CKR_OK);
        assert_int_equal(l1, l2);
        assert_memory_equal(w1, w2, l1);
        assert_int_equal(
            wire_cl_unwrap_key(f->a.cl, t.wsid, &d, kek, w1, l1, tm, 4, &back),
            CKR_OK);
        v = value_of(&t, true, back, &vl);
        assert_int_equal(vl, 16);
        assert_memory_equal(v, other, 16);
        free(v);
        free(w1);
        free(w2);
        hsm_mech_free(&d);
    }
    twin_close(&t);
}

static void test_crypto_asym(void **state)
{
    struct fixture *f = *state;
    struct twin t;
    static CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                             0xce, 0x3d, 0x03, 0x01, 0x07};
    static CK_BYTE ed25519[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
    CK_ATTRIBUTE pub_ec[] = {{CKA_EC_PARAMS, p256, sizeof(p256)},
                             {CKA_VERIFY, &t_yes, 1},
                             {CKA_TOKEN, &t_yes, 1}};
    CK_ATTRIBUTE pub_ed[] = {{CKA_EC_PARAMS, ed25519, sizeof(ed25519)},
                             {CKA_VERIFY, &t_yes, 1}};
    CK_ATTRIBUTE priv[] = {{CKA_SIGN, &t_yes, 1}, {CKA_TOKEN, &t_yes, 1}};
    CK_ATTRIBUTE priv_aa[] = {{CKA_SIGN, &t_yes, 1},
                              {CKA_ALWAYS_AUTHENTICATE, &t_yes, 1}};
    CK_MECHANISM gen_ec = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_MECHANISM gen_ed = {CKM_EC_EDWARDS_KEY_PAIR_GEN, NULL, 0};
    CK_MECHANISM ecdsa = {CKM_ECDSA_SHA256, NULL, 0};
    hsm_mech_t d;
    hsm_oid_t pub, prv, edpub, edprv;
    uint8_t sig[128], msg[32];
    size_t sl = 0;

    memset(msg, 0x61, sizeof(msg));
    twin_open(f, &t);
    decode(&gen_ec, &d);
    assert_int_equal(wire_cl_generate_key_pair(f->a.cl, t.wsid, &d, pub_ec, 3,
                                               priv, 2, &pub, &prv),
                     CKR_OK);
    hsm_mech_free(&d);
    /* ECDSA over the wire (length query, then the signature), verified
     * over the wire and directly; a bad signature is refused */
    decode(&ecdsa, &d);
    assert_int_equal(wire_cl_op_init(f->a.cl, t.wsid, HSM_OPK_SIGN, &d, prv),
                     CKR_OK);
    assert_int_equal(wire_cl_op_oneshot(f->a.cl, t.wsid, HSM_OPK_SIGN, msg,
                                        sizeof(msg), NULL, &sl),
                     CKR_OK);
    assert_int_equal(sl, 64);
    sl = sizeof(sig);
    assert_int_equal(wire_cl_op_oneshot(f->a.cl, t.wsid, HSM_OPK_SIGN, msg,
                                        sizeof(msg), sig, &sl),
                     CKR_OK);
    assert_int_equal(sl, 64);
    assert_int_equal(wire_cl_op_init(f->a.cl, t.wsid, HSM_OPK_VERIFY, &d, pub),
                     CKR_OK);
    assert_int_equal(
        wire_cl_op_verify(f->a.cl, t.wsid, msg, sizeof(msg), true, sig, sl),
        CKR_OK);
    assert_int_equal(hsm_op_init(t.conn, t.dsid, HSM_OPK_VERIFY, &d, pub),
                     CKR_OK);
    assert_int_equal(
        hsm_op_verify(t.conn, t.dsid, msg, sizeof(msg), true, sig, sl), CKR_OK);
    sig[5] ^= 1;
    assert_int_equal(wire_cl_op_init(f->a.cl, t.wsid, HSM_OPK_VERIFY, &d, pub),
                     CKR_OK);
    assert_int_equal(
        wire_cl_op_verify(f->a.cl, t.wsid, msg, sizeof(msg), true, sig, sl),
        CKR_SIGNATURE_INVALID);
    /* multi-part verify: updates, then the final step (data NULL) */
    sig[5] ^= 1;
    assert_int_equal(wire_cl_op_init(f->a.cl, t.wsid, HSM_OPK_VERIFY, &d, pub),
                     CKR_OK);
    sl = 64;
    {
        size_t zero = 0;

        assert_int_equal(wire_cl_op_update(f->a.cl, t.wsid, HSM_OPK_VERIFY, msg,
                                           10, NULL, &zero),
                         CKR_OK);
        zero = 0;
        assert_int_equal(wire_cl_op_update(f->a.cl, t.wsid, HSM_OPK_VERIFY,
                                           msg + 10, sizeof(msg) - 10, NULL,
                                           &zero),
                         CKR_OK);
    }
    assert_int_equal(
        wire_cl_op_verify(f->a.cl, t.wsid, NULL, 0, false, sig, 64), CKR_OK);
    hsm_mech_free(&d);

    /* a key with CKA_ALWAYS_AUTHENTICATE: the context login over the
     * wire authorizes its signature */
    decode(&gen_ec, &d);
    assert_int_equal(wire_cl_generate_key_pair(f->a.cl, t.wsid, &d, pub_ec, 3,
                                               priv_aa, 2, &pub, &prv),
                     CKR_OK);
    hsm_mech_free(&d);
    decode(&ecdsa, &d);
    assert_int_equal(wire_cl_op_init(f->a.cl, t.wsid, HSM_OPK_SIGN, &d, prv),
                     CKR_OK);
    assert_int_equal(
        wire_cl_context_login(f->a.cl, t.wsid, NULL, PW("wrongpw1")),
        CKR_PIN_INCORRECT);
    assert_int_equal(
        wire_cl_context_login(f->a.cl, t.wsid, NULL, PW("alicepw1")), CKR_OK);
    sl = sizeof(sig);
    assert_int_equal(wire_cl_op_oneshot(f->a.cl, t.wsid, HSM_OPK_SIGN, msg,
                                        sizeof(msg), sig, &sl),
                     CKR_OK);
    hsm_mech_free(&d);

    /* HSM_MP_EDDSA (the token takes pure EdDSA): deterministic, the same both
     * ways */
    decode(&gen_ed, &d);
    assert_int_equal(wire_cl_generate_key_pair(f->a.cl, t.wsid, &d, pub_ed, 2,
                                               priv, 2, &edpub, &edprv),
                     CKR_OK);
    hsm_mech_free(&d);
    {
        CK_EDDSA_PARAMS ep = {CK_FALSE, 0, NULL};
        CK_MECHANISM m = {CKM_EDDSA, &ep, sizeof(ep)};

        twin_op(&t, HSM_OPK_SIGN, &m, edprv, msg, sizeof(msg));
    }
    twin_close(&t);
}

static void test_crypto_messages(void **state)
{
    struct fixture *f = *state;
    struct twin t;
    uint8_t kv[32], iv[12], aad[8], msg[40], ct[64], pt[64], ct2[64];
    hsm_oid_t aes;
    CK_MECHANISM init = {CKM_AES_GCM, NULL, 0};
    hsm_mech_t mi, mp;
    hsm_msg_result_t res, res2;
    size_t cl, pl;

    memset(kv, 0x33, sizeof(kv));
    memset(iv, 0x01, sizeof(iv));
    memset(aad, 0x02, sizeof(aad));
    memset(msg, 0x03, sizeof(msg));
    twin_open(f, &t);
    aes = twin_key(&t, CKK_AES, kv, 32, CKA_ENCRYPT, CKA_DECRYPT);
    assert_int_equal(hsm_mech_decode_type(&init, &mi), CKR_OK);
    assert_int_equal(
        wire_cl_msg_init(f->a.cl, t.wsid, HSM_MSG_ENCRYPT, &mi, aes), CKR_OK);
    assert_int_equal(hsm_msg_init(t.conn, t.dsid, HSM_MSG_ENCRYPT, &mi, aes),
                     CKR_OK);
    {
        /* CKG_NO_GENERATE: the caller's IV, the same output and tag both
         * ways */
        uint8_t tag[16];
        CK_GCM_MESSAGE_PARAMS p = {iv, 12, 0, CKG_NO_GENERATE, tag, 128};

        assert_int_equal(
            hsm_mech_decode_msg(CKM_AES_GCM, &p, sizeof(p), false, &mp),
            CKR_OK);
        cl = sizeof(ct);
        assert_int_equal(wire_cl_msg_oneshot(f->a.cl, t.wsid, HSM_MSG_ENCRYPT,
                                             &mp, aad, sizeof(aad), msg,
                                             sizeof(msg), ct, &cl, &res),
                         CKR_OK);
        assert_int_equal(cl, sizeof(msg));
        assert_int_equal(res.tag_len, 16);
        pl = sizeof(ct2);
        assert_int_equal(hsm_msg_oneshot(t.conn, t.dsid, HSM_MSG_ENCRYPT, &mp,
                                         aad, sizeof(aad), msg, sizeof(msg),
                                         ct2, &pl, &res2),
                         CKR_OK);
        assert_int_equal(pl, cl);
        assert_memory_equal(ct, ct2, cl);
        assert_memory_equal(res.tag, res2.tag, 16);
        hsm_mech_free(&mp);
    }
    {
        /* a generated IV and the tag come back; the direct side decrypts */
        uint8_t tag[16], made[12];
        CK_GCM_MESSAGE_PARAMS p = {made, 12, 0, CKG_GENERATE_RANDOM, tag, 128};

        memset(made, 0, sizeof(made));
        assert_int_equal(
            hsm_mech_decode_msg(CKM_AES_GCM, &p, sizeof(p), false, &mp),
            CKR_OK);
        assert_int_equal(wire_cl_msg_begin(f->a.cl, t.wsid, HSM_MSG_ENCRYPT,
                                           &mp, aad, sizeof(aad), &res),
                         CKR_OK);
        assert_int_equal(res.iv_len, 12);
        memcpy(made, res.iv, 12);
        cl = sizeof(ct);
        assert_int_equal(wire_cl_msg_next(f->a.cl, t.wsid, HSM_MSG_ENCRYPT, &mp,
                                          msg, sizeof(msg), true, ct, &cl,
                                          &res),
                         CKR_OK);
        assert_int_equal(res.tag_len, 16);
        memcpy(tag, res.tag, 16);
        hsm_mech_free(&mp);
        assert_int_equal(wire_cl_msg_final(f->a.cl, t.wsid, HSM_MSG_ENCRYPT),
                         CKR_OK);
        assert_int_equal(wire_cl_msg_final(f->a.cl, t.wsid, HSM_MSG_ENCRYPT),
                         CKR_OPERATION_NOT_INITIALIZED);

        assert_int_equal(
            hsm_msg_init(t.conn, t.dsid, HSM_MSG_DECRYPT, &mi, aes), CKR_OK);
        assert_int_equal(
            hsm_mech_decode_msg(CKM_AES_GCM, &p, sizeof(p), true, &mp), CKR_OK);
        pl = sizeof(pt);
        assert_int_equal(hsm_msg_oneshot(t.conn, t.dsid, HSM_MSG_DECRYPT, &mp,
                                         aad, sizeof(aad), ct, cl, pt, &pl,
                                         &res2),
                         CKR_OK);
        assert_int_equal(pl, sizeof(msg));
        assert_memory_equal(pt, msg, sizeof(msg));
        /* the same over the wire, then with a bad tag */
        assert_int_equal(
            wire_cl_msg_init(f->a.cl, t.wsid, HSM_MSG_DECRYPT, &mi, aes),
            CKR_OK);
        assert_int_equal(wire_cl_msg_output_len(
                             f->a.cl, t.wsid, HSM_MSG_DECRYPT, false, cl, &pl),
                         CKR_OK);
        assert_true(pl >= sizeof(msg));
        pl = sizeof(pt);
        assert_int_equal(wire_cl_msg_oneshot(f->a.cl, t.wsid, HSM_MSG_DECRYPT,
                                             &mp, aad, sizeof(aad), ct, cl, pt,
                                             &pl, &res),
                         CKR_OK);
        assert_memory_equal(pt, msg, sizeof(msg));
        hsm_mech_free(&mp);
        tag[0] ^= 1;
        assert_int_equal(
            hsm_mech_decode_msg(CKM_AES_GCM, &p, sizeof(p), true, &mp), CKR_OK);
        pl = sizeof(pt);
        assert_int_equal(wire_cl_msg_oneshot(f->a.cl, t.wsid, HSM_MSG_DECRYPT,
                                             &mp, aad, sizeof(aad), ct, cl, pt,
                                             &pl, &res),
                         CKR_AEAD_DECRYPT_FAILED);
        hsm_mech_free(&mp);
        assert_int_equal(wire_cl_msg_abort(f->a.cl, t.wsid, HSM_MSG_DECRYPT),
                         CKR_OK);
    }
    hsm_mech_free(&mi);
    twin_close(&t);
}

/* ECDH, RSA (PSS, OAEP, RSA-AES key wrap) and the CCM and ChaCha20-Poly1305
 * message parameters: the remaining layouts. */
static void test_crypto_layouts_rest(void **state)
{
    struct fixture *f = *state;
    struct twin t;
    static CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                             0xce, 0x3d, 0x03, 0x01, 0x07};
    static CK_BYTE e[] = {1, 0, 1};
    CK_ULONG bits = 2048;
    CK_ATTRIBUTE ec_pub[] = {{CKA_EC_PARAMS, p256, sizeof(p256)},
                             {CKA_TOKEN, &t_yes, 1}};
    CK_ATTRIBUTE ec_priv[] = {{CKA_DERIVE, &t_yes, 1}, {CKA_TOKEN, &t_yes, 1}};
    CK_ATTRIBUTE rsa_pub[] = {{CKA_MODULUS_BITS, &bits, sizeof(bits)},
                              {CKA_PUBLIC_EXPONENT, e, sizeof(e)},
                              {CKA_VERIFY, &t_yes, 1},
                              {CKA_ENCRYPT, &t_yes, 1},
                              {CKA_WRAP, &t_yes, 1},
                              {CKA_TOKEN, &t_yes, 1}};
    CK_ATTRIBUTE rsa_priv[] = {{CKA_SIGN, &t_yes, 1},
                               {CKA_DECRYPT, &t_yes, 1},
                               {CKA_UNWRAP, &t_yes, 1},
                               {CKA_TOKEN, &t_yes, 1}};
    CK_MECHANISM gen_ec = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_MECHANISM gen_rsa = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    hsm_mech_t d;
    hsm_oid_t pub1, prv1, pub2, prv2, rpub, rprv;
    uint8_t msg[32], out[512], back[512], kv[32];
    size_t ol, bl;

    memset(msg, 0x5a, sizeof(msg));
    memset(kv, 0x6b, sizeof(kv));
    twin_open(f, &t);

    /* HSM_MP_ECDH1: the same secret both ways */
    decode(&gen_ec, &d);
    assert_int_equal(wire_cl_generate_key_pair(f->a.cl, t.wsid, &d, ec_pub, 2,
                                               ec_priv, 2, &pub1, &prv1),
                     CKR_OK);
    assert_int_equal(wire_cl_generate_key_pair(f->a.cl, t.wsid, &d, ec_pub, 2,
                                               ec_priv, 2, &pub2, &prv2),
                     CKR_OK);
    hsm_mech_free(&d);
    {
        CK_ATTRIBUTE_TYPE ty = CKA_EC_POINT;
        hsm_attr_t pt;

        assert_int_equal(wire_cl_object_get(f->a.cl, t.wsid, pub2, &ty, 1, &pt),
                         CKR_OK);
        {
            CK_ECDH1_DERIVE_PARAMS dp = {
                CKD_SHA256_KDF, 5, (CK_BYTE_PTR) "share", pt.len, pt.value};
            CK_MECHANISM m = {CKM_ECDH1_DERIVE, &dp, sizeof(dp)};
            CK_MECHANISM ecb = {CKM_AES_ECB, NULL, 0};
            CK_KEY_TYPE kt = CKK_AES;
            CK_ULONG len = 32;
            CK_ATTRIBUTE tm[] = {{CKA_CLASS, &t_secret, sizeof(t_secret)},
                                 {CKA_KEY_TYPE, &kt, sizeof(kt)},
                                 {CKA_VALUE_LEN, &len, sizeof(len)},
                                 {CKA_ENCRYPT, &t_yes, 1}};
            hsm_mech_t me;
            hsm_oid_t wk, dk;
            uint8_t c1[16], c2[16];
            size_t l1 = sizeof(c1), l2 = sizeof(c2);

            /* the derived key is sensitive (its base is): the same key
             * shows as the same ciphertext */
            decode(&m, &d);
            decode(&ecb, &me);
            assert_int_equal(
                wire_cl_derive_key(f->a.cl, t.wsid, &d, prv1, tm, 4, &wk),
                CKR_OK);
            assert_int_equal(
                hsm_derive_key(t.conn, t.dsid, &d, prv1, tm, 4, &dk), CKR_OK);
            assert_int_equal(
                wire_cl_op_init(f->a.cl, t.wsid, HSM_OPK_ENCRYPT, &me, wk),
                CKR_OK);
            assert_int_equal(wire_cl_op_oneshot(f->a.cl, t.wsid,
                                                HSM_OPK_ENCRYPT, msg, 16, c1,
                                                &l1),
                             CKR_OK);
            assert_int_equal(
                hsm_op_init(t.conn, t.dsid, HSM_OPK_ENCRYPT, &me, dk), CKR_OK);
            assert_int_equal(hsm_op_oneshot(t.conn, t.dsid, HSM_OPK_ENCRYPT,
                                            msg, 16, c2, &l2),
                             CKR_OK);
            assert_int_equal(l1, 16);
            assert_int_equal(l2, 16);
            assert_memory_equal(c1, c2, 16);
            hsm_mech_free(&d);
            hsm_mech_free(&me);
        }
        hsm_attrs_free(&pt, 1);
    }

    /* RSA: PSS over the wire verifies directly; OAEP and RSA-AES key wrap
     * over the wire come back directly */
    decode(&gen_rsa, &d);
    assert_int_equal(wire_cl_generate_key_pair(f->a.cl, t.wsid, &d, rsa_pub, 6,
                                               rsa_priv, 4, &rpub, &rprv),
                     CKR_OK);
    hsm_mech_free(&d);
    {
        CK_RSA_PKCS_PSS_PARAMS pp = {CKM_SHA256, CKG_MGF1_SHA256, 32};
        CK_MECHANISM m = {CKM_SHA256_RSA_PKCS_PSS, &pp, sizeof(pp)};

        decode(&m, &d);
        assert_int_equal(
            wire_cl_op_init(f->a.cl, t.wsid, HSM_OPK_SIGN, &d, rprv), CKR_OK);
        ol = sizeof(out);
        assert_int_equal(wire_cl_op_oneshot(f->a.cl, t.wsid, HSM_OPK_SIGN, msg,
                                            sizeof(msg), out, &ol),
                         CKR_OK);
        assert_int_equal(ol, 256);
        assert_int_equal(hsm_op_init(t.conn, t.dsid, HSM_OPK_VERIFY, &d, rpub),
                         CKR_OK);
        assert_int_equal(
            hsm_op_verify(t.conn, t.dsid, msg, sizeof(msg), true, out, ol),
            CKR_OK);
        hsm_mech_free(&d);
    }
    {
        CK_RSA_PKCS_OAEP_PARAMS op = {CKM_SHA256, CKG_MGF1_SHA256,
                                      CKZ_DATA_SPECIFIED, (void *)"label", 5};
        CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, &op, sizeof(op)};

        decode(&m, &d);
        assert_int_equal(
            wire_cl_op_init(f->a.cl, t.wsid, HSM_OPK_ENCRYPT, &d, rpub),
            CKR_OK);
        ol = sizeof(out);
        assert_int_equal(wire_cl_op_oneshot(f->a.cl, t.wsid, HSM_OPK_ENCRYPT,
                                            msg, sizeof(msg), out, &ol),
                         CKR_OK);
        assert_int_equal(hsm_op_init(t.conn, t.dsid, HSM_OPK_DECRYPT, &d, rprv),
                         CKR_OK);
        bl = sizeof(back);
        assert_int_equal(
            hsm_op_oneshot(t.conn, t.dsid, HSM_OPK_DECRYPT, out, ol, back, &bl),
            CKR_OK);
        assert_int_equal(bl, sizeof(msg));
        assert_memory_equal(back, msg, sizeof(msg));
        hsm_mech_free(&d);
    }
    {
        CK_RSA_PKCS_OAEP_PARAMS op = {CKM_SHA256, CKG_MGF1_SHA256, 0, NULL, 0};
        CK_RSA_AES_KEY_WRAP_PARAMS rp = {256, &op};
        CK_MECHANISM m = {CKM_RSA_AES_KEY_WRAP, &rp, sizeof(rp)};
        CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
        CK_ATTRIBUTE tm[] = {{CKA_CLASS, &t_secret, sizeof(t_secret)},
                             {CKA_KEY_TYPE, &kt, sizeof(kt)},
                             {CKA_SENSITIVE, &t_no, 1},
                             {CKA_EXTRACTABLE, &t_yes, 1}};
        hsm_oid_t key, back_key;
        uint8_t *w = NULL, *v;
        size_t wl = 0, vl;

        key = twin_key(&t, CKK_GENERIC_SECRET, kv, 32, CKA_SIGN, CKA_VERIFY);
        decode(&m, &d);
        assert_int_equal(
            wire_cl_wrap_key(f->a.cl, t.wsid, &d, rpub, key, &w, &wl), CKR_OK);
        assert_int_equal(
            hsm_unwrap_key(t.conn, t.dsid, &d, rprv, w, wl, tm, 4, &back_key),
            CKR_OK);
        v = value_of(&t, false, back_key, &vl);
        assert_int_equal(vl, 32);
        assert_memory_equal(v, kv, 32);
        free(v);
        free(w);
        hsm_mech_free(&d);
    }

    /* the CCM and ChaCha20-Poly1305 message parameters: the caller's
     * nonce, the same ciphertext and tag both ways */
    {
        CK_MECHANISM ccm = {CKM_AES_CCM, NULL, 0};
        CK_MECHANISM cha = {CKM_CHACHA20_POLY1305, NULL, 0};
        uint8_t nonce[13], mac[16], ct2[64];
        CK_CCM_MESSAGE_PARAMS cp = {sizeof(msg),     nonce, 13, 0,
                                    CKG_NO_GENERATE, mac,   16};
        CK_SALSA20_CHACHA20_POLY1305_MSG_PARAMS hp = {nonce, 12, mac};
        hsm_oid_t aes = twin_key(&t, CKK_AES, kv, 16, CKA_ENCRYPT, CKA_DECRYPT);
        hsm_oid_t chk =
            twin_key(&t, CKK_CHACHA20, kv, 32, CKA_ENCRYPT, CKA_DECRYPT);
        struct {
            CK_MECHANISM *init;
            hsm_oid_t key;
            void *param;
            size_t plen;
        } cases[] = {{&ccm, aes, &cp, sizeof(cp)},
                     {&cha, chk, &hp, sizeof(hp)}};
        hsm_msg_result_t r1, r2;

        memset(nonce, 0x4e, sizeof(nonce));
        for (size_t i = 0; i < 2; i++) {
            hsm_mech_t mi, mp;

            assert_int_equal(hsm_mech_decode_type(cases[i].init, &mi), CKR_OK);
            assert_int_equal(hsm_mech_decode_msg(cases[i].init->mechanism,
                                                 cases[i].param, cases[i].plen,
                                                 false, &mp),
                             CKR_OK);
            assert_int_equal(wire_cl_msg_init(f->a.cl, t.wsid, HSM_MSG_ENCRYPT,
                                              &mi, cases[i].key),
                             CKR_OK);
            assert_int_equal(hsm_msg_init(t.conn, t.dsid, HSM_MSG_ENCRYPT, &mi,
                                          cases[i].key),
                             CKR_OK);
            ol = sizeof(out);
            assert_int_equal(
                wire_cl_msg_oneshot(f->a.cl, t.wsid, HSM_MSG_ENCRYPT, &mp, kv,
                                    7, msg, sizeof(msg), out, &ol, &r1),
                CKR_OK);
            bl = sizeof(ct2);
            assert_int_equal(hsm_msg_oneshot(t.conn, t.dsid, HSM_MSG_ENCRYPT,
                                             &mp, kv, 7, msg, sizeof(msg), ct2,
                                             &bl, &r2),
                             CKR_OK);
            assert_int_equal(ol, bl);
            assert_memory_equal(out, ct2, ol);
            assert_int_equal(r1.tag_len, r2.tag_len);
            assert_true(r1.tag_len > 0);
            assert_memory_equal(r1.tag, r2.tag, r1.tag_len);
            assert_int_equal(
                wire_cl_msg_final(f->a.cl, t.wsid, HSM_MSG_ENCRYPT), CKR_OK);
            assert_int_equal(hsm_msg_final(t.conn, t.dsid, HSM_MSG_ENCRYPT),
                             CKR_OK);
            hsm_mech_free(&mp);
            hsm_mech_free(&mi);
        }
    }
    twin_close(&t);
}

/* Mechanism parameters a hostile client builds: sizes the codec would
 * never produce, and layouts that do not fit the mechanism. */
static void test_hostile_mechanisms(void **state)
{
    struct fixture *f = *state;
    struct twin t;
    Nimbus__Request q;
    Nimbus__OpInitReq oi;
    Nimbus__DeriveKeyReq dk;
    Nimbus__Mechanism m;
    Nimbus__GcmParams g;
    Nimbus__PssParams pss;
    Nimbus__Sp800108Params kb;
    Nimbus__KdfDataParam dp, *dps[HSM_MECH_DATA_PARAMS_MAX + 1];
    Nimbus__Reply *rep;
    uint8_t kv[32], *big;
    hsm_oid_t aes, gen;

    memset(kv, 0x77, sizeof(kv));
    twin_open(f, &t);
    aes = twin_key(&t, CKK_AES, kv, 32, CKA_ENCRYPT, CKA_DECRYPT);
    gen = twin_key(&t, CKK_GENERIC_SECRET, kv, 32, CKA_DERIVE, CKA_DERIVE);

    nimbus__mechanism__init(&m);
    nimbus__op_init_req__init(&oi);
    oi.sid = t.wsid;
    oi.kind = HSM_OPK_ENCRYPT;
    oi.key = aes;
    oi.mech = &m;
    nimbus__request__init(&q);
    q.call_case = NIMBUS__REQUEST__CALL_OP_INIT;
    q.op_init = &oi;

    /* a GCM IV whose bytes disagree with iv_len */
    nimbus__gcm_params__init(&g);
    g.has_iv = true;
    g.iv.data = kv;
    g.iv.len = 12;
    g.iv_len = 16;
    g.tag_bits = 128;
    m.type = CKM_AES_GCM;
    m.param_case = NIMBUS__MECHANISM__PARAM_GCM;
    m.gcm = &g;
    assert_true(raw_call(&f->a, &q, &rep));
    assert_int_equal(rep->rv, CKR_MECHANISM_PARAM_INVALID);
    nimbus__reply__free_unpacked(rep, NULL);
    /* an AAD over the codec's cap (1 MiB) */
    big = calloc(1, HSM_MECH_BYTES_MAX + 1);
    assert_non_null(big);
    g.iv_len = 12;
    g.has_aad = true;
    g.aad.data = big;
    g.aad.len = HSM_MECH_BYTES_MAX + 1;
    assert_true(raw_call(&f->a, &q, &rep));
    assert_int_equal(rep->rv, CKR_MECHANISM_PARAM_INVALID);
    nimbus__reply__free_unpacked(rep, NULL);
    free(big);
    g.has_aad = false;
    /* the same, well formed: accepted */
    assert_true(raw_call(&f->a, &q, &rep));
    assert_int_equal(rep->rv, CKR_OK);
    nimbus__reply__free_unpacked(rep, NULL);
    {
        Nimbus__OpAbortReq ab;

        nimbus__op_abort_req__init(&ab);
        ab.sid = t.wsid;
        ab.kind = HSM_OPK_ENCRYPT;
        q.call_case = NIMBUS__REQUEST__CALL_OP_ABORT;
        q.op_abort = &ab;
        assert_true(raw_call(&f->a, &q, &rep));
        nimbus__reply__free_unpacked(rep, NULL);
        q.call_case = NIMBUS__REQUEST__CALL_OP_INIT;
        q.op_init = &oi;
    }
    /* a PSS parameter on AES-GCM: the core sees the layout is wrong */
    nimbus__pss_params__init(&pss);
    pss.hash_alg = CKM_SHA256;
    pss.mgf = CKG_MGF1_SHA256;
    m.param_case = NIMBUS__MECHANISM__PARAM_PSS;
    m.pss = &pss;
    assert_true(raw_call(&f->a, &q, &rep));
    assert_int_equal(rep->rv, CKR_MECHANISM_PARAM_INVALID);
    nimbus__reply__free_unpacked(rep, NULL);
    /* no mechanism at all where one is required: undecodable */
    oi.mech = NULL;
    {
        uint8_t *resp = NULL, buf[64];
        size_t rl = 0, len = nimbus__request__get_packed_size(&q);

        assert_true(len < sizeof(buf));
        nimbus__request__pack(&q, buf);
        assert_false(wire_chan_handle(f->a.ch, buf, len, &resp, &rl));
        free(resp);
    }
    oi.mech = &m;

    /* 33 SP 800-108 data parameters */
    nimbus__kdf_data_param__init(&dp);
    dp.type = CK_SP800_108_BYTE_ARRAY;
    dp.has_bytes = true;
    dp.bytes.data = kv;
    dp.bytes.len = 4;
    for (size_t i = 0; i <= HSM_MECH_DATA_PARAMS_MAX; i++)
        dps[i] = &dp;
    nimbus__sp800108_params__init(&kb);
    kb.prf_type = CKM_SHA256_HMAC;
    kb.n_params = HSM_MECH_DATA_PARAMS_MAX + 1;
    kb.params = dps;
    m.type = CKM_SP800_108_COUNTER_KDF;
    m.param_case = NIMBUS__MECHANISM__PARAM_SP800108;
    m.sp800108 = &kb;
    nimbus__derive_key_req__init(&dk);
    dk.sid = t.wsid;
    dk.mech = &m;
    dk.base_key = gen;
    q.call_case = NIMBUS__REQUEST__CALL_DERIVE_KEY;
    q.derive_key = &dk;
    assert_true(raw_call(&f->a, &q, &rep));
    assert_int_equal(rep->rv, CKR_MECHANISM_PARAM_INVALID);
    nimbus__reply__free_unpacked(rep, NULL);
    /* a CK_BBOOL of 2: carried as it is, refused by the core */
    {
        Nimbus__EddsaParams ed;

        nimbus__eddsa_params__init(&ed);
        ed.ph_flag = 2;
        m.type = CKM_EDDSA;
        m.param_case = NIMBUS__MECHANISM__PARAM_EDDSA;
        m.eddsa = &ed;
        q.call_case = NIMBUS__REQUEST__CALL_OP_INIT;
        q.op_init = &oi;
        oi.kind = HSM_OPK_SIGN;
        assert_true(raw_call(&f->a, &q, &rep));
        assert_true(rep->rv == CKR_MECHANISM_PARAM_INVALID ||
                    rep->rv == CKR_KEY_TYPE_INCONSISTENT);
        nimbus__reply__free_unpacked(rep, NULL);
    }
    /* a parameter layout of a later version (Mechanism field 99) on
     * AES-ECB, which takes none: never read as "no parameter" */
    {
        uint8_t buf[64], body[32];
        size_t n = 0, b = 0;
        CK_RV rv;

        body[b++] = 0x08; /* sid */
        b += put_varint(body + b, t.wsid);
        body[b++] = 0x10; /* kind: encrypt */
        body[b++] = 0x00;
        body[b++] = 0x1a; /* mech: type CKM_AES_ECB, field 99 = {} */
        body[b++] = 0x06;
        body[b++] = 0x08;
        body[b++] = 0x81;
        body[b++] = 0x21;
        body[b++] = 0x9a;
        body[b++] = 0x06;
        body[b++] = 0x00;
        body[b++] = 0x20; /* key */
        b += put_varint(body + b, aes);
        buf[n++] = 0x08; /* id 1 */
        buf[n++] = 0x01;
        buf[n++] = 0x92; /* op_init: field 34, length-delimited */
        buf[n++] = 0x02;
        buf[n++] = (uint8_t)b;
        memcpy(buf + n, body, b);
        n += b;
        assert_true(raw_bytes(&f->a, buf, n, &rv));
        assert_int_equal(rv, CKR_MECHANISM_PARAM_INVALID);
        /* without field 99 the same request is accepted */
        memmove(buf + n - b + 9, buf + n - b + 12, b - 12);
        buf[n - b + 5] = 0x03;
        buf[4] = (uint8_t)(b - 3);
        n -= 3;
        assert_true(raw_bytes(&f->a, buf, n, &rv));
        assert_int_equal(rv, CKR_OK);
    }
    twin_close(&t);
}

/* ------------------------------------------------------------ a lying server
 */

static const uint8_t *lie_resp;
static size_t lie_len;

static bool lying_xfer(void *ctx, const uint8_t *req, size_t len,
                       uint8_t **resp, size_t *resp_len)
{
    Nimbus__Request *q = nimbus__request__unpack(NULL, len, req);
    Nimbus__Reply *rep = nimbus__reply__unpack(NULL, lie_len, lie_resp);

    (void)ctx;
    assert_non_null(q);
    assert_non_null(rep);
    rep->id = q->id; /* the right id, a wrong content */
    *resp_len = nimbus__reply__get_packed_size(rep);
    *resp = malloc(*resp_len);
    nimbus__reply__pack(rep, *resp);
    nimbus__reply__free_unpacked(rep, NULL);
    nimbus__request__free_unpacked(q, NULL);
    return true;
}

static void test_client_distrusts_server(void **state)
{
    wire_client_t *cl;
    Nimbus__Reply rep;
    Nimbus__OutputReply o;
    uint8_t big[64], out[8], guard[8], buf[256];
    size_t outlen = sizeof(out);
    hsm_sid_t sid;

    (void)state;
    assert_int_equal(wire_client_new(lying_xfer, NULL, 0, &cl), CKR_OK);
    /* 64 bytes of output for 8 bytes of room */
    memset(big, 0x41, sizeof(big));
    memset(guard, 0, sizeof(guard));
    memset(out, 0, sizeof(out));
    nimbus__output_reply__init(&o);
    o.has_out = true;
    o.out.data = big;
    o.out.len = sizeof(big);
    o.out_len = sizeof(big);
    nimbus__reply__init(&rep);
    rep.rv = CKR_OK;
    rep.result_case = NIMBUS__REPLY__RESULT_OUTPUT;
    rep.output = &o;
    lie_len = nimbus__reply__pack(&rep, buf);
    lie_resp = buf;
    assert_int_equal(
        wire_cl_op_oneshot(cl, 1, HSM_OPK_DECRYPT, big, 16, out, &outlen),
        CKR_DEVICE_ERROR);
    assert_memory_equal(out, guard, sizeof(out)); /* nothing written */
    /* the wrong kind of result */
    assert_int_equal(wire_cl_session_open(cl, true, &sid), CKR_DEVICE_ERROR);
    wire_client_free(cl);
}

/* A reply that answers another request (a server that replied twice, or
 * a stream that lost step) means every later reply on the link may be
 * one call late: the client says CKR_DEVICE_ERROR for that call and
 * never reads the link again (CKR_DEVICE_REMOVED, without a transfer),
 * so that no reply to call N is taken as the answer to call N+1 and the
 * backend drops the channel. */
static unsigned stale_calls;

static bool stale_xfer(void *ctx, const uint8_t *req, size_t len,
                       uint8_t **resp, size_t *resp_len)
{
    Nimbus__Request *q = nimbus__request__unpack(NULL, len, req);
    Nimbus__Reply rep;

    (void)ctx;
    assert_non_null(q);
    stale_calls++;
    nimbus__reply__init(&rep);
    rep.id = q->id - 1; /* the reply to the call before */
    rep.rv = CKR_OK;
    *resp_len = nimbus__reply__get_packed_size(&rep);
    *resp = malloc(*resp_len > 0 ? *resp_len : 1);
    nimbus__reply__pack(&rep, *resp);
    nimbus__request__free_unpacked(q, NULL);
    return true;
}

static void test_client_out_of_step(void **state)
{
    wire_client_t *cl;

    (void)state;
    stale_calls = 0;
    assert_int_equal(wire_client_new(stale_xfer, NULL, 0, &cl), CKR_OK);
    assert_int_equal(wire_cl_session_close(cl, 1), CKR_DEVICE_ERROR);
    assert_int_equal(stale_calls, 1);
    assert_int_equal(wire_cl_session_close(cl, 1), CKR_DEVICE_REMOVED);
    assert_int_equal(wire_cl_session_close(cl, 2), CKR_DEVICE_REMOVED);
    assert_int_equal(stale_calls, 1); /* the link was not read again */
    wire_client_free(cl);
}

/* ------------------------------------------------------------ cluster */

/* nimbusd's ops table, faked: what the server asks and what it answers. */
static struct {
    int status_err, change_err;
    CK_RV digest_rv;
    size_t nnodes;
    unsigned status_calls, change_calls;
    int last_kind; /* 1 add, 2 remove, 3 transfer */
    uint64_t last_id;
    char last_addr[CLUSTER_ADDRESS_MAX + 1];
} fk;

static int fk_status(void *ctx, struct cluster_status *st)
{
    assert_ptr_equal(ctx, &fk);
    fk.status_calls++;
    if (fk.status_err != 0) {
        return fk.status_err;
    }
    memset(st, 0, sizeof(*st));
    st->node_id = 1;
    st->role = CLUSTER_ROLE_LEADER;
    st->term = 7;
    st->leader_id = 1;
    snprintf(st->leader_address, sizeof(st->leader_address), "127.0.0.1:21001");
    st->commit_index = 100;
    st->applied_index = 99;
    st->last_index = 101;
    st->nnodes = fk.nnodes;
    for (size_t i = 0; i < fk.nnodes && i < CLUSTER_NODES_MAX; i++) {
        st->nodes[i].id = i + 1;
        st->nodes[i].member =
            i == 2 ? CLUSTER_MEMBER_SPARE : CLUSTER_MEMBER_VOTER;
        st->nodes[i].match_index = 100 - 10 * i;
        snprintf(st->nodes[i].address, sizeof(st->nodes[i].address),
                 "127.0.0.1:%zu", 21001 + i);
    }
    /* a name made to move an operator's cursor: the client defuses it */
    if (fk.nnodes > 1) {
        snprintf(st->nodes[1].address, sizeof(st->nodes[1].address),
                 "evil\x1b[2J:21002");
    }
    return 0;
}

static int fk_change(int kind, uint64_t id, const char *address)
{
    fk.change_calls++;
    fk.last_kind = kind;
    fk.last_id = id;
    snprintf(fk.last_addr, sizeof(fk.last_addr), "%s",
             address != NULL ? address : "");
    return fk.change_err;
}

static int fk_add(void *ctx, uint64_t id, const char *address)
{
    assert_ptr_equal(ctx, &fk);
    assert_non_null(address);
    return fk_change(1, id, address);
}

static int fk_remove(void *ctx, uint64_t id)
{
    assert_ptr_equal(ctx, &fk);
    return fk_change(2, id, NULL);
}

static int fk_transfer(void *ctx, uint64_t id)
{
    assert_ptr_equal(ctx, &fk);
    return fk_change(3, id, NULL);
}

static CK_RV fk_digest(void *ctx, uint8_t out[32], uint64_t *applied)
{
    assert_ptr_equal(ctx, &fk);
    memset(out, 0xa5, 32);
    out[31] = 0x01;
    *applied = 99;
    return fk.digest_rv;
}

static const struct wire_cluster_ops fk_ops = {
    .ctx = &fk,
    .status = fk_status,
    .add = fk_add,
    .remove = fk_remove,
    .transfer = fk_transfer,
    .digest = fk_digest,
};

/* What each role may do, given how it is logged in on t: status (sync
 * status) and the three changes (a CO only). No change reaches the
 * engine unless allowed. */
static void cluster_rights(struct tchan *t, CK_RV want_status,
                           CK_RV want_change)
{
    wire_cluster_info_t ci;
    unsigned changes = fk.change_calls;

    assert_int_equal(wire_cl_cluster_status(t->cl, &ci), want_status);
    assert_int_equal(wire_cl_cluster_add(t->cl, 4, "127.0.0.1:21004"),
                     want_change);
    assert_int_equal(wire_cl_cluster_remove(t->cl, 3), want_change);
    assert_int_equal(wire_cl_cluster_transfer(t->cl, 2), want_change);
    assert_int_equal(fk.change_calls,
                     changes + (want_change == CKR_OK ? 3 : 0));
}

/* A ClusterChangeReq as a hostile client may send it. */
static CK_RV raw_change(struct tchan *t, uint32_t kind, uint64_t id,
                        const void *addr, size_t addr_len)
{
    Nimbus__Request q;
    Nimbus__ClusterChangeReq m;
    Nimbus__Reply *rep = NULL;
    CK_RV rv;

    nimbus__cluster_change_req__init(&m);
    m.kind = kind;
    m.id = id;
    if (addr != NULL) {
        m.has_address = true;
        m.address.data = (uint8_t *)(uintptr_t)addr;
        m.address.len = addr_len;
    }
    nimbus__request__init(&q);
    q.id = 77;
    q.call_case = NIMBUS__REQUEST__CALL_CLUSTER_CHANGE;
    q.cluster_change = &m;
    assert_true(raw_call(t, &q, &rep));
    rv = (CK_RV)rep->rv;
    nimbus__reply__free_unpacked(rep, NULL);
    return rv;
}

static void test_cluster(void **state)
{
    struct fixture *f = *state;
    wire_cluster_info_t ci;
    char longaddr[300];
    /* every engine code and the CK_RV nimbus.proto promises for it */
    static const struct {
        int err;
        CK_RV rv;
    } map[] = {
        {CLUSTER_ENOMEM, CKR_DEVICE_MEMORY},
        {CLUSTER_EINVAL, CKR_ARGUMENTS_BAD},
        {CLUSTER_ETIMEDOUT, CKR_FUNCTION_FAILED},
        {CLUSTER_ENOLEADER, CKR_DEVICE_ERROR},
        {CLUSTER_ENOTFOUND, CKR_SLOT_ID_INVALID},
        {CLUSTER_EBUSY, CKR_OPERATION_ACTIVE},
        {CLUSTER_ESTOPPED, CKR_FUNCTION_CANCELED},
        {CLUSTER_EIO, CKR_GENERAL_ERROR},
        {CLUSTER_EREFUSED, CKR_ACTION_PROHIBITED},
        {-99, CKR_GENERAL_ERROR},
    };

    memset(&fk, 0, sizeof(fk));
    fk.nnodes = 3;
    /* not in a cluster, not logged in: the login is asked for first */
    cluster_rights(&f->a, CKR_USER_NOT_LOGGED_IN, CKR_USER_NOT_LOGGED_IN);
    /* PRECO: sync status waits for its password change */
    assert_int_equal(wire_cl_login(f->a.cl, HSM_LOGIN_SO, NULL, PW("password")),
                     CKR_OK);
    cluster_rights(&f->a, CKR_PIN_EXPIRED, CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(wire_cl_logout(f->a.cl), CKR_OK);
    activate(&f->a, "alice", "alicepw1");
    assert_int_equal(wire_cl_login(f->a.cl, HSM_LOGIN_SO, NULL, PW("copass1")),
                     CKR_OK);
    assert_int_equal(
        wire_cl_user_set_password(f->a.cl, "app_user", PW("aupass12")), CKR_OK);
    /* a CO of a server outside a cluster: not supported, nothing called */
    cluster_rights(&f->a, CKR_FUNCTION_NOT_SUPPORTED,
                   CKR_FUNCTION_NOT_SUPPORTED);
    assert_int_equal(fk.status_calls + fk.change_calls, 0);

    wire_server_set_cluster(f->srv, &fk_ops);
    cluster_rights(&f->a, CKR_OK, CKR_OK);
    assert_int_equal(fk.last_kind, 3);
    assert_int_equal(fk.last_id, 2);
    assert_int_equal(wire_cl_cluster_add(f->a.cl, 4294967295u, "[::1]:1"),
                     CKR_OK);
    assert_int_equal(fk.last_kind, 1);
    assert_true(fk.last_id == 4294967295u);
    assert_string_equal(fk.last_addr, "[::1]:1");

    /* the status as the engine gave it, and the digest */
    assert_int_equal(wire_cl_cluster_status(f->a.cl, &ci), CKR_OK);
    assert_int_equal(ci.status.node_id, 1);
    assert_int_equal(ci.status.role, CLUSTER_ROLE_LEADER);
    assert_int_equal(ci.status.term, 7);
    assert_int_equal(ci.status.leader_id, 1);
    assert_string_equal(ci.status.leader_address, "127.0.0.1:21001");
    assert_int_equal(ci.status.commit_index, 100);
    assert_int_equal(ci.status.applied_index, 99);
    assert_int_equal(ci.status.last_index, 101);
    assert_int_equal(ci.status.nnodes, 3);
    assert_int_equal(ci.status.nodes[0].id, 1);
    assert_string_equal(ci.status.nodes[0].address, "127.0.0.1:21001");
    assert_int_equal(ci.status.nodes[0].member, CLUSTER_MEMBER_VOTER);
    assert_int_equal(ci.status.nodes[0].match_index, 100);
    assert_string_equal(ci.status.nodes[1].address, "evil?[2J:21002");
    assert_int_equal(ci.status.nodes[2].id, 3);
    assert_int_equal(ci.status.nodes[2].member, CLUSTER_MEMBER_SPARE);
    assert_int_equal(ci.status.nodes[2].match_index, 80);
    assert_int_equal(ci.digest[0], 0xa5);
    assert_int_equal(ci.digest[31], 0x01);
    assert_int_equal(ci.digest_applied, 99);
    /* the most nodes there are, and one more (the engine's bug) */
    fk.nnodes = CLUSTER_NODES_MAX;
    assert_int_equal(wire_cl_cluster_status(f->a.cl, &ci), CKR_OK);
    assert_int_equal(ci.status.nnodes, CLUSTER_NODES_MAX);
    fk.nnodes = CLUSTER_NODES_MAX + 1;
    assert_int_equal(wire_cl_cluster_status(f->a.cl, &ci), CKR_GENERAL_ERROR);
    assert_int_equal(ci.status.nnodes, 0);
    fk.nnodes = 0;
    assert_int_equal(wire_cl_cluster_status(f->a.cl, &ci), CKR_OK);
    assert_int_equal(ci.status.nnodes, 0);
    fk.nnodes = 3;
    /* the store's digest failing is its own CK_RV */
    fk.digest_rv = CKR_DEVICE_MEMORY;
    assert_int_equal(wire_cl_cluster_status(f->a.cl, &ci), CKR_DEVICE_MEMORY);
    fk.digest_rv = CKR_OK;

    /* every engine error, precise, from every call */
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        fk.change_err = map[i].err;
        fk.status_err = map[i].err;
        assert_int_equal(wire_cl_cluster_add(f->a.cl, 5, "host:1"), map[i].rv);
        assert_int_equal(wire_cl_cluster_remove(f->a.cl, 5), map[i].rv);
        assert_int_equal(wire_cl_cluster_transfer(f->a.cl, 5), map[i].rv);
        assert_int_equal(wire_cl_cluster_status(f->a.cl, &ci), map[i].rv);
    }
    fk.change_err = 0;
    fk.status_err = 0;

    /* bounds: each refused before the engine hears of it */
    fk.change_calls = 0;
    memset(longaddr, 'a', sizeof(longaddr));
    memcpy(longaddr + 250, ":1234", 6); /* 255 bytes: the most */
    assert_int_equal(wire_cl_cluster_add(f->a.cl, 6, longaddr), CKR_OK);
    assert_int_equal(fk.change_calls, 1);
    fk.change_calls = 0;
    memcpy(longaddr + 251, ":1234", 6); /* 256 */
    assert_int_equal(wire_cl_cluster_add(f->a.cl, 6, longaddr),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(wire_cl_cluster_add(f->a.cl, 0, "host:1"),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(wire_cl_cluster_add(f->a.cl, 4294967296u, "host:1"),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(wire_cl_cluster_remove(f->a.cl, 0), CKR_ARGUMENTS_BAD);
    assert_int_equal(wire_cl_cluster_transfer(f->a.cl, UINT64_MAX),
                     CKR_ARGUMENTS_BAD);
    {
        static const char *const bad[] = {
            "",           "host",    "host:",       "host:0",
            "host:65536", "host:1x", ":21001",      "a b:21001",
            "a\tb:1",     "h\x7f:1", "h\xc3\xa9:1", "::1:21001",
            "[::1]21001", "host:-1",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            if (wire_cl_cluster_add(f->a.cl, 6, bad[i]) != CKR_ARGUMENTS_BAD)
                fail_msg("address \"%s\" taken", bad[i]);
        }
    }
    assert_int_equal(raw_change(&f->a, 1, 6, "ho\0st:1", 7), CKR_ARGUMENTS_BAD);
    assert_int_equal(raw_change(&f->a, 1, 6, NULL, 0), CKR_ARGUMENTS_BAD);
    assert_int_equal(raw_change(&f->a, 2, 6, "host:1", 6), CKR_ARGUMENTS_BAD);
    assert_int_equal(raw_change(&f->a, 3, 6, "", 0), CKR_ARGUMENTS_BAD);
    assert_int_equal(raw_change(&f->a, 0, 6, NULL, 0), CKR_ARGUMENTS_BAD);
    assert_int_equal(raw_change(&f->a, 4, 6, NULL, 0), CKR_ARGUMENTS_BAD);
    assert_int_equal(raw_change(&f->a, UINT32_MAX, 6, NULL, 0),
                     CKR_ARGUMENTS_BAD);
    assert_int_equal(fk.change_calls, 0);
    assert_int_equal(raw_change(&f->a, 2, 6, NULL, 0), CKR_OK);
    assert_int_equal(fk.change_calls, 1);
    assert_int_equal(wire_cl_logout(f->a.cl), CKR_OK);

    /* CU and AU read the status and digest, change nothing */
    assert_int_equal(
        wire_cl_login(f->a.cl, HSM_LOGIN_USER, "alice", PW("alicepw1")),
        CKR_OK);
    cluster_rights(&f->a, CKR_OK, CKR_USER_NOT_LOGGED_IN);
    /* a refused request is refused before its arguments are looked at */
    assert_int_equal(raw_change(&f->a, 9, 0, NULL, 0), CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(wire_cl_logout(f->a.cl), CKR_OK);
    assert_int_equal(wire_cl_login(f->a.cl, HSM_LOGIN_AU, NULL, PW("aupass12")),
                     CKR_OK);
    cluster_rights(&f->a, CKR_OK, CKR_USER_NOT_LOGGED_IN);
    assert_int_equal(wire_cl_logout(f->a.cl), CKR_OK);
    cluster_rights(&f->a, CKR_USER_NOT_LOGGED_IN, CKR_USER_NOT_LOGGED_IN);

    /* the table taken away again: not in a cluster */
    wire_server_set_cluster(f->srv, NULL);
    assert_int_equal(wire_cl_login(f->a.cl, HSM_LOGIN_SO, NULL, PW("copass1")),
                     CKR_OK);
    fk.status_calls = 0;
    cluster_rights(&f->a, CKR_FUNCTION_NOT_SUPPORTED,
                   CKR_FUNCTION_NOT_SUPPORTED);
    assert_int_equal(fk.status_calls, 0);
}

/* A server's status reply out of bounds is the server's fault: the client
 * answers CKR_DEVICE_ERROR and hands out nothing. */
/* A long user list decodes: 20,000 users (the chaos soak's nimbus-mgmt
 * lost listUsers and loginHSM from about 2,900 on). */
static void test_client_long_user_list(void **state)
{
    enum { N = 20000 };
    wire_client_t *cl;
    Nimbus__Reply rep;
    Nimbus__UserListReply r;
    Nimbus__UserInfo *u = calloc(N, sizeof(*u)), **up = calloc(N, sizeof(*up));
    char(*names)[16] = calloc(N, sizeof(*names));
    hsm_user_info_t *users = NULL;
    size_t n = 0;
    uint8_t *buf;

    (void)state;
    assert_non_null(u);
    assert_non_null(up);
    assert_non_null(names);
    for (size_t i = 0; i < N; i++) {
        nimbus__user_info__init(&u[i]);
        snprintf(names[i], sizeof(names[i]), "user%zu", i);
        u[i].id = (uint32_t)i + 3;
        u[i].type = HSM_USER_CU;
        u[i].name = names[i];
        up[i] = &u[i];
    }
    nimbus__user_list_reply__init(&r);
    r.n_users = N;
    r.users = up;
    nimbus__reply__init(&rep);
    rep.rv = CKR_OK;
    rep.result_case = NIMBUS__REPLY__RESULT_USER_LIST;
    rep.user_list = &r;
    buf = malloc(nimbus__reply__get_packed_size(&rep));
    assert_non_null(buf);
    lie_len = nimbus__reply__pack(&rep, buf);
    lie_resp = buf;
    assert_int_equal(wire_client_new(lying_xfer, NULL, 0, &cl), CKR_OK);
    assert_int_equal(wire_cl_user_list(cl, &users, &n), CKR_OK);
    assert_int_equal(n, N);
    assert_string_equal(users[N - 1].name, names[N - 1]);
    assert_int_equal(users[N - 1].id, N + 2);
    free(users);
    wire_client_free(cl);
    free(buf);
    free(names);
    free(up);
    free(u);
}

static void test_client_distrusts_cluster(void **state)
{
    wire_client_t *cl;
    Nimbus__Reply rep;
    Nimbus__ClusterStatusReply r;
    Nimbus__ClusterNode n[CLUSTER_NODES_MAX + 1], *np[CLUSTER_NODES_MAX + 1];
    wire_cluster_info_t ci;
    uint8_t digest[33], buf[4096];
    char addr[CLUSTER_ADDRESS_MAX + 2];

    (void)state;
    memset(digest, 0x11, sizeof(digest));
    memset(addr, 'a', sizeof(addr));
    addr[sizeof(addr) - 1] = '\0'; /* 256 characters */
    for (size_t i = 0; i <= CLUSTER_NODES_MAX; i++) {
        nimbus__cluster_node__init(&n[i]);
        n[i].id = i + 1;
        n[i].address = (char *)"h:1";
        np[i] = &n[i];
    }
    nimbus__cluster_status_reply__init(&r);
    r.node_id = 1;
    r.role = CLUSTER_ROLE_FOLLOWER;
    r.leader_address = (char *)"h:1";
    r.n_nodes = 2;
    r.nodes = np;
    r.digest.data = digest;
    r.digest.len = 32;
    nimbus__reply__init(&rep);
    rep.rv = CKR_OK;
    rep.result_case = NIMBUS__REPLY__RESULT_CLUSTER_STATUS;
    rep.cluster_status = &r;
    assert_int_equal(wire_client_new(lying_xfer, NULL, 0, &cl), CKR_OK);
    lie_resp = buf;
#define LIE_EXPECT(want)                                                       \
    do {                                                                       \
        lie_len = nimbus__reply__pack(&rep, buf);                              \
        assert_int_equal(wire_cl_cluster_status(cl, &ci), (want));             \
        if ((want) != CKR_OK)                                                  \
            assert_int_equal(ci.status.nnodes, 0);                             \
    } while (0)
    LIE_EXPECT(CKR_OK); /* the base reply is sound */
    assert_int_equal(ci.status.nnodes, 2);
    r.n_nodes = CLUSTER_NODES_MAX + 1;
    LIE_EXPECT(CKR_DEVICE_ERROR);
    r.n_nodes = 2;
    r.role = CLUSTER_ROLE_LEADER + 1;
    LIE_EXPECT(CKR_DEVICE_ERROR);
    r.role = CLUSTER_ROLE_LEADER;
    r.digest.len = 31;
    LIE_EXPECT(CKR_DEVICE_ERROR);
    r.digest.len = 33;
    LIE_EXPECT(CKR_DEVICE_ERROR);
    r.digest.len = 32;
    r.leader_id = 4294967296u;
    LIE_EXPECT(CKR_DEVICE_ERROR);
    r.leader_id = 0;
    r.node_id = 4294967296u;
    LIE_EXPECT(CKR_DEVICE_ERROR);
    r.node_id = 1;
    r.leader_address = addr;
    LIE_EXPECT(CKR_DEVICE_ERROR);
    r.leader_address = (char *)"h:1";
    n[1].id = 0;
    LIE_EXPECT(CKR_DEVICE_ERROR);
    n[1].id = 4294967296u;
    LIE_EXPECT(CKR_DEVICE_ERROR);
    n[1].id = 2;
    n[1].member = CLUSTER_MEMBER_SPARE + 1;
    LIE_EXPECT(CKR_DEVICE_ERROR);
    n[1].member = CLUSTER_MEMBER_SPARE;
    n[1].address = addr;
    LIE_EXPECT(CKR_DEVICE_ERROR);
    /* an 8-bit CSI, DEL and an escape: shown as '?' */
    n[1].address = (char *)"h\2332J\177\033:1";
    r.leader_address = (char *)"\xc3\xa9:1";
    LIE_EXPECT(CKR_OK);
    assert_int_equal(ci.status.nodes[1].member, CLUSTER_MEMBER_SPARE);
    assert_string_equal(ci.status.nodes[1].address, "h?2J??:1");
    assert_string_equal(ci.status.leader_address, "??:1");
#undef LIE_EXPECT
    /* the wrong kind of result for the call */
    rep.result_case = NIMBUS__REPLY__RESULT__NOT_SET;
    lie_len = nimbus__reply__pack(&rep, buf);
    assert_int_equal(wire_cl_cluster_status(cl, &ci), CKR_DEVICE_ERROR);
    wire_client_free(cl);
}

/* ------------------------------------------------------------ bulk */

/*
 * A transfer that sends the request's pieces as they are and gets the
 * reply's pieces from wire_chan_handle_vec, recording what the tests
 * below check: whether a piece of the request WAS the caller's input
 * (no copy), and how much of the reply went through the server's
 * scratch (little: the output is referenced).
 */
static const uint8_t *vec_expect_ref;
static bool vec_saw_ref;
static size_t vec_reply_scratch, vec_reply_total;

static bool xferv(void *ctx, const struct iovec *iov, size_t n, uint8_t **resp,
                  size_t *resp_len)
{
    struct tchan *t = ctx;
    wire_vec_t v;
    wire_buf_t flat = {NULL, 0}, rb = {NULL, 0};
    size_t len = 0;
    bool have = false;

    *resp = NULL;
    *resp_len = 0;
    if (!t->open) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (iov[i].iov_base == vec_expect_ref) {
            vec_saw_ref = true;
        }
        len += iov[i].iov_len;
    }
    flat.p = malloc(len == 0 ? 1 : len);
    assert_non_null(flat.p);
    len = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(flat.p + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    memset(&v, 0, sizeof(v));
    t->open = wire_chan_handle_vec(t->ch, flat.p, len, &v, &have);
    if (have) {
        vec_reply_scratch = v.used;
        vec_reply_total = v.total;
        assert_true(wire_vec_flatten(&v, &rb));
        *resp = rb.p;
        *resp_len = v.total;
    }
    wire_chan_reply_done(t->ch, &v);
    wire_vec_done(&v, true);
    free(flat.p);
    return *resp != NULL;
}

/* Half a MiB of AES-256-GCM each way through the pieces path: the input goes
 * out from the caller's buffer, the output from the server's room, both
 * decoded where they lie; the results are the embedded token's. A tag
 * that does not check gives the caller no byte of plaintext. */
static void test_bulk_by_reference(void **state)
{
    struct fixture *f = *state;
    struct twin t;
    const size_t n = 512 * 1024 + 3; /* decrypt holds at most aead_max_buffer */
    uint8_t kv[32], iv[12], *msg, *ct, *direct, *pt;
    size_t ctl = n + 16, dl = n + 16, ptl = n;
    CK_GCM_PARAMS p = {iv, 12, 96, NULL, 0, 128};
    CK_MECHANISM m = {CKM_AES_GCM, &p, sizeof(p)};
    hsm_mech_t d;
    hsm_oid_t aes;

    for (size_t i = 0; i < sizeof(kv); i++)
        kv[i] = (uint8_t)(i * 3 + 5);
    memset(iv, 0x5a, sizeof(iv));
    msg = malloc(n);
    ct = malloc(n + 16);
    direct = malloc(n + 16);
    pt = malloc(n);
    assert_true(msg && ct && direct && pt);
    for (size_t i = 0; i < n; i++)
        msg[i] = (uint8_t)(i * 31 + (i >> 12));
    twin_open(f, &t);
    aes = twin_key(&t, CKK_AES, kv, 32, CKA_ENCRYPT, CKA_DECRYPT);
    wire_client_set_xferv(f->a.cl, xferv);
    decode(&m, &d);

    vec_expect_ref = msg;
    vec_saw_ref = false;
    assert_int_equal(wire_cl_op_init(f->a.cl, t.wsid, HSM_OPK_ENCRYPT, &d, aes),
                     CKR_OK);
    assert_int_equal(
        wire_cl_op_oneshot(f->a.cl, t.wsid, HSM_OPK_ENCRYPT, msg, n, ct, &ctl),
        CKR_OK);
    assert_true(vec_saw_ref); /* the input was not copied into the frame */
    assert_int_equal(vec_reply_total > n, true);
    assert_true(vec_reply_scratch < 64); /* nor the output */
    assert_int_equal(ctl, n + 16);
    assert_int_equal(hsm_op_init(t.conn, t.dsid, HSM_OPK_ENCRYPT, &d, aes),
                     CKR_OK);
    assert_int_equal(
        hsm_op_oneshot(t.conn, t.dsid, HSM_OPK_ENCRYPT, msg, n, direct, &dl),
        CKR_OK);
    assert_int_equal(dl, ctl);
    assert_memory_equal(ct, direct, ctl);

    /* back, through the same path */
    vec_expect_ref = ct;
    vec_saw_ref = false;
    memset(pt, 0, n);
    assert_int_equal(wire_cl_op_init(f->a.cl, t.wsid, HSM_OPK_DECRYPT, &d, aes),
                     CKR_OK);
    assert_int_equal(
        wire_cl_op_oneshot(f->a.cl, t.wsid, HSM_OPK_DECRYPT, ct, ctl, pt, &ptl),
        CKR_OK);
    assert_true(vec_saw_ref);
    assert_int_equal(ptl, n);
    assert_memory_equal(pt, msg, n);

    /* a tag that does not check: an error and not one byte of output */
    ct[ctl - 1] ^= 1;
    memset(pt, 0xee, n);
    ptl = n;
    assert_int_equal(wire_cl_op_init(f->a.cl, t.wsid, HSM_OPK_DECRYPT, &d, aes),
                     CKR_OK);
    assert_int_equal(
        wire_cl_op_oneshot(f->a.cl, t.wsid, HSM_OPK_DECRYPT, ct, ctl, pt, &ptl),
        CKR_ENCRYPTED_DATA_INVALID);
    for (size_t i = 0; i < n; i++) {
        if (pt[i] != 0xee) {
            fail_msg("plaintext byte %zu released with a bad tag", i);
        }
    }
    /* a ciphertext byte changed instead: the same */
    ct[ctl - 1] ^= 1;
    ct[n / 2] ^= 0x80;
    ptl = n;
    assert_int_equal(wire_cl_op_init(f->a.cl, t.wsid, HSM_OPK_DECRYPT, &d, aes),
                     CKR_OK);
    assert_int_equal(
        wire_cl_op_oneshot(f->a.cl, t.wsid, HSM_OPK_DECRYPT, ct, ctl, pt, &ptl),
        CKR_ENCRYPTED_DATA_INVALID);
    for (size_t i = 0; i < n; i++) {
        if (pt[i] != 0xee) {
            fail_msg("plaintext byte %zu released with a bad tag", i);
        }
    }
    hsm_mech_free(&d);
    twin_close(&t);
    free(msg);
    free(ct);
    free(direct);
    free(pt);
}

/* The shared bulk region in process: the server's side of xfer_fd hands
 * over the descriptor its reply passes (a copy is kept in shm_fd for the
 * test to look into the region); the frames' sizes are recorded. */
static int shm_fd = -1;
static size_t rec_max_req, rec_max_rep;

static bool rec_xfer(void *ctx, const uint8_t *req, size_t len, uint8_t **resp,
                     size_t *resp_len)
{
    bool ok = xfer(ctx, req, len, resp, resp_len);

    rec_max_req = len > rec_max_req ? len : rec_max_req;
    if (ok && *resp_len > rec_max_rep) {
        rec_max_rep = *resp_len;
    }
    return ok;
}

static bool xfer_fd(void *ctx, const uint8_t *req, size_t len, uint8_t **resp,
                    size_t *resp_len, int *fd)
{
    struct tchan *t = ctx;
    wire_vec_t v;
    wire_buf_t rb = {NULL, 0};
    bool have = false;

    *fd = -1;
    *resp = NULL;
    *resp_len = 0;
    if (!t->open) {
        return false;
    }
    memset(&v, 0, sizeof(v));
    t->open = wire_chan_handle_vec(t->ch, req, len, &v, &have);
    *fd = wire_chan_take_fd(t->ch);
    if (have) {
        assert_true(wire_vec_flatten(&v, &rb));
        *resp = rb.p;
        *resp_len = v.total;
    }
    wire_chan_reply_done(t->ch, &v);
    wire_vec_done(&v, true);
    if (*fd >= 0) {
        shm_fd = dup(*fd);
    }
    return *resp != NULL;
}

static CK_RV raw_rv(struct tchan *t, Nimbus__Request *q)
{
    Nimbus__Reply *rep;
    CK_RV rv;

    (void)raw_call(t, q, &rep);
    rv = (CK_RV)rep->rv;
    nimbus__reply__free_unpacked(rep, NULL);
    return rv;
}

/* Half a MiB of AES-256-GCM each way through the shared region: no bulk
 * in any frame, the embedded token's results; the region is sealed; a
 * tag that does not check puts no plaintext in the caller's buffer nor
 * in the region. Hostile uses of the region are refused. */
static void test_bulk_shm(void **state)
{
    struct fixture *f = *state;
    struct twin t;
    const size_t n = 512 * 1024 + 3;
    uint8_t kv[32], iv[12], *msg, *ct, *direct, *pt, *region;
    size_t ctl = n + 16, dl = n + 16, ptl = n;
    CK_GCM_PARAMS p = {iv, 12, 96, NULL, 0, 128};
    CK_MECHANISM m = {CKM_AES_GCM, &p, sizeof(p)};
    hsm_mech_t d;
    hsm_oid_t aes;
    hsm_sid_t bsid;
    wire_peer_t peer = unix_peer(1000);
    Nimbus__Request q;
    Nimbus__OpOneshotReq os;
    Nimbus__ShmAttachReq sa;
    int seals;

    for (size_t i = 0; i < sizeof(kv); i++)
        kv[i] = (uint8_t)(i * 5 + 1);
    memset(iv, 0x3c, sizeof(iv));
    msg = malloc(n);
    ct = malloc(n + 16);
    direct = malloc(n + 16);
    pt = malloc(n);
    assert_true(msg && ct && direct && pt);
    for (size_t i = 0; i < n; i++)
        msg[i] = (uint8_t)(i * 17 + (i >> 10));
    twin_open(f, &t);
    aes = twin_key(&t, CKK_AES, kv, 32, CKA_ENCRYPT, CKA_DECRYPT);
    decode(&m, &d);

    /* B: alice's second application, with a transfer that passes fds */
    f->b.ch = wire_chan_new(f->srv, &peer);
    assert_non_null(f->b.ch);
    f->b.open = true;
    assert_int_equal(wire_client_new(rec_xfer, &f->b, 0, &f->b.cl), CKR_OK);
    wire_client_set_xfer_fd(f->b.cl, xfer_fd);
    assert_int_equal(wire_cl_hello(f->b.cl, "shm", NULL, NULL), CKR_OK);
    assert_int_equal(
        wire_cl_login(f->b.cl, HSM_LOGIN_USER, "alice", PW("alicepw1")),
        CKR_OK);
    assert_int_equal(wire_cl_session_open(f->b.cl, true, &bsid), CKR_OK);
    rec_max_req = rec_max_rep = 0;
    shm_fd = -1;

    assert_int_equal(wire_cl_op_init(f->b.cl, bsid, HSM_OPK_ENCRYPT, &d, aes),
                     CKR_OK);
    assert_int_equal(
        wire_cl_op_oneshot(f->b.cl, bsid, HSM_OPK_ENCRYPT, msg, n, ct, &ctl),
        CKR_OK);
    assert_true(shm_fd >= 0); /* the region was made and passed */
    assert_int_equal(ctl, n + 16);
    assert_int_equal(hsm_op_init(t.conn, t.dsid, HSM_OPK_ENCRYPT, &d, aes),
                     CKR_OK);
    assert_int_equal(
        hsm_op_oneshot(t.conn, t.dsid, HSM_OPK_ENCRYPT, msg, n, direct, &dl),
        CKR_OK);
    assert_int_equal(dl, ctl);
    assert_memory_equal(ct, direct, ctl);
    memset(pt, 0, n);
    assert_int_equal(wire_cl_op_init(f->b.cl, bsid, HSM_OPK_DECRYPT, &d, aes),
                     CKR_OK);
    assert_int_equal(
        wire_cl_op_oneshot(f->b.cl, bsid, HSM_OPK_DECRYPT, ct, ctl, pt, &ptl),
        CKR_OK);
    assert_int_equal(ptl, n);
    assert_memory_equal(pt, msg, n);
    /* neither way did the data cross in a frame */
    assert_true(rec_max_req < 4096);
    assert_true(rec_max_rep < 4096);

    /* sealed: neither side can shrink or grow it */
    seals = fcntl(shm_fd, F_GET_SEALS);
    assert_true(seals >= 0);
    assert_int_equal(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
                     F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    assert_int_not_equal(ftruncate(shm_fd, 0), 0);
    assert_int_not_equal(ftruncate(shm_fd, 2 * WIRE_SHM_SIZE), 0);
    region = mmap(NULL, WIRE_SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                  shm_fd, 0);
    assert_true(region != MAP_FAILED);

    /* a bad tag: an error, and no plaintext anywhere the client sees */
    memset(region + WIRE_SHM_HALF, 0, WIRE_SHM_HALF);
    ct[ctl - 1] ^= 1;
    memset(pt, 0xee, n);
    ptl = n;
    assert_int_equal(wire_cl_op_init(f->b.cl, bsid, HSM_OPK_DECRYPT, &d, aes),
                     CKR_OK);
    assert_int_equal(
        wire_cl_op_oneshot(f->b.cl, bsid, HSM_OPK_DECRYPT, ct, ctl, pt, &ptl),
        CKR_ENCRYPTED_DATA_INVALID);
    for (size_t i = 0; i < n; i++) {
        if (pt[i] != 0xee || region[WIRE_SHM_HALF + i] != 0) {
            fail_msg("plaintext byte %zu released with a bad tag", i);
        }
    }
    ct[ctl - 1] ^= 1;

    /* hostile: too long, both in and shm_in, a second region */
    assert_int_equal(wire_cl_op_init(f->b.cl, bsid, HSM_OPK_ENCRYPT, &d, aes),
                     CKR_OK);
    nimbus__op_oneshot_req__init(&os);
    os.sid = bsid;
    os.kind = HSM_OPK_ENCRYPT;
    os.has_shm_in = true;
    os.shm_in = WIRE_SHM_HALF + 1;
    os.has_out_room = true;
    os.out_room = 64;
    nimbus__request__init(&q);
    q.call_case = NIMBUS__REQUEST__CALL_OP_ONESHOT;
    q.op_oneshot = &os;
    assert_int_equal(raw_rv(&f->b, &q), CKR_ARGUMENTS_BAD);
    os.shm_in = UINT64_MAX;
    assert_int_equal(raw_rv(&f->b, &q), CKR_ARGUMENTS_BAD);
    os.shm_in = 16;
    os.has_in = true;
    os.in.data = msg;
    os.in.len = 16;
    assert_int_equal(raw_rv(&f->b, &q), CKR_ARGUMENTS_BAD);
    nimbus__shm_attach_req__init(&sa);
    nimbus__request__init(&q);
    q.call_case = NIMBUS__REQUEST__CALL_SHM_ATTACH;
    q.shm_attach = &sa;
    assert_int_equal(raw_rv(&f->b, &q), CKR_FUNCTION_FAILED);
    /* A has no region: shm_in and shm_out are refused there */
    assert_int_equal(wire_cl_op_init(f->a.cl, t.wsid, HSM_OPK_ENCRYPT, &d, aes),
                     CKR_OK);
    nimbus__op_oneshot_req__init(&os);
    os.sid = t.wsid;
    os.kind = HSM_OPK_ENCRYPT;
    os.has_shm_in = true;
    os.shm_in = 16;
    nimbus__request__init(&q);
    q.call_case = NIMBUS__REQUEST__CALL_OP_ONESHOT;
    q.op_oneshot = &os;
    assert_int_equal(raw_rv(&f->a, &q), CKR_ARGUMENTS_BAD);
    os.has_shm_in = false;
    os.has_in = true;
    os.in.data = msg;
    os.in.len = 16;
    os.has_shm_out = true;
    os.shm_out = true;
    os.has_out_room = true;
    os.out_room = 64;
    assert_int_equal(raw_rv(&f->a, &q), CKR_ARGUMENTS_BAD);

    munmap(region, WIRE_SHM_SIZE);
    close(shm_fd);
    shm_fd = -1;
    hsm_mech_free(&d);
    twin_close(&t);
    free(msg);
    free(ct);
    free(direct);
    free(pt);
}

/* Packs q plainly; *len its length (malloc'd). */
static uint8_t *plain_pack(const ProtobufCMessage *m, size_t *len)
{
    uint8_t *b;

    *len = protobuf_c_message_get_packed_size(m);
    b = malloc(*len + 1);
    assert_non_null(b);
    assert_int_equal(protobuf_c_message_pack(m, b), *len);
    return b;
}

/* Decodes buf both ways (lifting and the ordinary decoder) and checks
 * they agree: both refuse, or both give a message that packs to the same
 * bytes. Returns whether a field was lifted. */
static bool lift_agrees(const uint8_t *buf, size_t len)
{
    static const wire_lift_t lifts[] = {
        {NIMBUS__REQUEST__CALL_OP_ONESHOT, 3},
        {NIMBUS__REQUEST__CALL_OP_UPDATE, 3},
    };
    wire_alloc_t wa;
    wire_lifted_t lifted;
    ProtobufCMessage *a, *b;
    bool was;

    wire_alloc_init(&wa, WIRE_DECODE_BUDGET(len));
    a = wire_unpack_lifted(&nimbus__request__descriptor, &wa, buf, len, lifts,
                           2, &lifted);
    b = protobuf_c_message_unpack(&nimbus__request__descriptor, NULL, len, buf);
    was = lifted.field != NULL;
    if (was) {
        /* it points into the frame */
        assert_true(lifted.field->data >= buf &&
                    lifted.field->data + lifted.field->len <= buf + len);
    }
    if (a == NULL || b == NULL) {
        assert_null(a);
        assert_null(b);
    } else {
        size_t la, lb;
        uint8_t *pa = plain_pack(a, &la), *pb = plain_pack(b, &lb);

        assert_int_equal(la, lb);
        assert_memory_equal(pa, pb, la);
        free(pa);
        free(pb);
    }
    wire_unlift(&lifted);
    assert_null(lifted.field);
    if (a != NULL) {
        protobuf_c_message_free_unpacked(a, &wa.a);
    }
    if (b != NULL) {
        protobuf_c_message_free_unpacked(b, NULL);
    }
    return was;
}

/* Lifting gives what the ordinary decoder gives, for the shape it lifts
 * and for every other one: a field twice, two calls, another wire type,
 * truncation, and random damage to the headers. */
static void test_lift_shapes(void **state)
{
    Nimbus__Request q;
    Nimbus__OpOneshotReq os;
    Nimbus__OpUpdateReq up;
    uint8_t *data, *fr, *two;
    size_t n = 6000, len, tlen;

    (void)state;
    data = malloc(n);
    assert_non_null(data);
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)(i * 13);
    nimbus__request__init(&q);
    nimbus__op_oneshot_req__init(&os);
    q.id = 77;
    q.call_case = NIMBUS__REQUEST__CALL_OP_ONESHOT;
    q.op_oneshot = &os;
    os.sid = 3;
    os.kind = 1;
    os.has_in = true;
    os.in.data = data;
    os.in.len = n;
    os.has_out_room = true;
    os.out_room = 9000;
    fr = plain_pack(&q.base, &len);
    assert_true(lift_agrees(fr, len));
    /* the input under the threshold: decoded the ordinary way */
    os.in.len = WIRE_REF_MIN - 1;
    free(fr);
    fr = plain_pack(&q.base, &len);
    assert_false(lift_agrees(fr, len));
    os.in.len = n;
    free(fr);
    fr = plain_pack(&q.base, &len);

    /* the frame twice over: id, call and input twice (last one wins) */
    two = malloc(2 * len);
    assert_non_null(two);
    memcpy(two, fr, len);
    memcpy(two + len, fr, len);
    assert_false(lift_agrees(two, 2 * len));
    /* two different calls: op_oneshot then op_update */
    nimbus__op_update_req__init(&up);
    up.sid = 4;
    up.kind = 2;
    up.has_in = true;
    up.in.data = data;
    up.in.len = n;
    q.call_case = NIMBUS__REQUEST__CALL_OP_UPDATE;
    q.op_update = &up;
    {
        uint8_t *u = plain_pack(&q.base, &tlen);

        free(two);
        two = malloc(len + tlen);
        assert_non_null(two);
        memcpy(two, fr, len);
        memcpy(two + len, u, tlen);
        assert_false(lift_agrees(two, len + tlen));
        assert_true(lift_agrees(u, tlen));
        free(u);
    }
    /* every truncation of the headers and of the tail */
    for (size_t cut = 1; cut < 40; cut++) {
        lift_agrees(fr, cut);
        lift_agrees(fr, len - cut);
    }
    /* random damage to the first bytes (tags, lengths, ids) */
    srand(1234);
    for (int round = 0; round < 3000; round++) {
        memcpy(two, fr, len);
        for (int k = 0; k < 1 + rand() % 3; k++) {
            two[rand() % 24] = (uint8_t)rand();
        }
        lift_agrees(two, len);
    }
    /* a length field's tag made a varint, or a group */
    memcpy(two, fr, len);
    for (size_t i = 0; i + 1 < 24; i++) {
        if (two[i] == (3 << 3 | 2)) {
            two[i] = 3 << 3 | 0;
            lift_agrees(two, len);
            two[i] = 3 << 3 | 3;
            lift_agrees(two, len);
            two[i] = 3 << 3 | 2;
        }
    }
    free(two);
    free(fr);
    free(data);
}

/* Pieces: each large byte field referenced where it lies, the rest
 * copied, and the pieces together exactly what wire_pack makes, also
 * past WIRE_VEC_MAX large fields and for a message with none. */
static void test_pack_vec(void **state)
{
    Nimbus__Reply rep;
    Nimbus__AttrsReply ar;
    Nimbus__AttrValue av[12], *avp[12];
    uint8_t *vals[12], *plain;
    wire_vec_t v;
    wire_buf_t flat = {NULL, 0};
    size_t plen;

    (void)state;
    memset(&v, 0, sizeof(v));
    nimbus__reply__init(&rep);
    nimbus__attrs_reply__init(&ar);
    rep.id = 5;
    rep.result_case = NIMBUS__REPLY__RESULT_ATTRS;
    rep.attrs = &ar;
    for (size_t i = 0; i < 12; i++) {
        size_t len = i % 2 == 0 ? WIRE_REF_MIN + i : 10;

        vals[i] = malloc(len);
        assert_non_null(vals[i]);
        memset(vals[i], (int)i + 1, len);
        nimbus__attr_value__init(&av[i]);
        av[i].type = i;
        av[i].status = 0;
        av[i].has_value = true;
        av[i].value.data = vals[i];
        av[i].value.len = len;
        avp[i] = &av[i];
    }
    ar.attrs = avp;
    for (size_t count = 0; count <= 12; count += 3) {
        size_t refs = 0;

        ar.n_attrs = count;
        plain = plain_pack(&rep.base, &plen);
        assert_true(wire_pack_vec(&rep.base, 1 << 20, &v));
        assert_int_equal(v.total, plen);
        assert_true(v.n >= 1 && v.n <= WIRE_VEC_MAX);
        for (size_t i = 0; i < v.n; i++) {
            for (size_t k = 0; k < count; k++) {
                if (v.iov[i].iov_base == vals[k]) {
                    refs++;
                }
            }
        }
        /* large values referenced while pieces last, none copied twice */
        assert_true(refs == (count + 1) / 2 || refs == (WIRE_VEC_MAX - 1) / 2 ||
                    refs == WIRE_VEC_MAX / 2);
        assert_true(v.used < plen || count == 0);
        assert_true(wire_vec_flatten(&v, &flat));
        assert_memory_equal(flat.p, plain, plen);
        wire_vec_done(&v, false);
        assert_int_equal(v.n, 0);
        free(plain);
    }
    /* over the limit: nothing */
    ar.n_attrs = 12;
    assert_false(wire_pack_vec(&rep.base, 100, &v));
    assert_int_equal(v.n, 0);
    wire_vec_done(&v, true);
    wire_buf_done(&flat, flat.cap, true);
    for (size_t i = 0; i < 12; i++)
        free(vals[i]);
}

/* ------------------------------------------------------------ quorum */

/* An RSA-2048 key of the test and a SHA256-RSA-PKCS signature with it. */
static EVP_PKEY *q_keygen(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);

    assert_non_null(k);
    return k;
}

static size_t q_sign(EVP_PKEY *k, const uint8_t *msg, size_t len,
                     uint8_t sig[256])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    size_t sl = 256;

    assert_non_null(c);
    assert_int_equal(EVP_DigestSignInit(c, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_equal(EVP_DigestSign(c, sig, &sl, msg, len), 1);
    EVP_MD_CTX_free(c);
    return sl;
}

/* name (logged in on t) registers k's public key as its quorum key. */
static CK_RV q_register(struct tchan *t, const char *name, EVP_PKEY *k)
{
    static const uint8_t reg[] = "a registration token of the test";
    uint8_t *der = NULL, sig[256];
    int dl = i2d_PUBKEY(k, &der);
    size_t sl = q_sign(k, reg, sizeof(reg) - 1, sig);
    CK_RV rv;

    assert_true(dl > 0);
    rv = wire_cl_quorum_register_key(t->cl, name, reg, sizeof(reg) - 1, sig, sl,
                                     der, (size_t)dl);
    OPENSSL_free(der);
    return rv;
}

/* Every quorum call through the wire into the core and back: two COs
 * with keys made here, M=2 on both services (a service 4 token approved
 * by both for service 3), a token approved by both lets one createUser
 * through; the server's own checks on raw frames. */
static void test_quorum(void **state)
{
    struct fixture *f = *state;
    EVP_PKEY *k1 = q_keygen(), *k2 = q_keygen();
    uint8_t token[HSM_QUORUM_TOKEN_BYTES_MAX], sig1[256], sig2[256];
    hsm_quorum_approval_t ap[HSM_QUORUM_M_MAX + 1];
    hsm_quorum_token_info_t *list = NULL;
    hsm_user_info_t *users = NULL;
    CK_RV res[HSM_QUORUM_M_MAX + 1];
    size_t len = 0, n = 0, s1, s2;
    unsigned m = 0;
    bool flags_ok = false;
    hsm_uid_t uid = 0;

    activate(&f->a, "alice", "alicepw1");
    /* a CU gets no quorum call */
    assert_int_equal(
        wire_cl_login(f->a.cl, HSM_LOGIN_USER, "alice", PW("alicepw1")),
        CKR_OK);
    assert_int_not_equal(wire_cl_quorum_set_m(f->a.cl, 3, 1), CKR_OK);
    assert_int_not_equal(q_register(&f->a, "alice", k1), CKR_OK);
    assert_int_equal(wire_cl_logout(f->a.cl), CKR_OK);

    assert_int_equal(wire_cl_login(f->a.cl, HSM_LOGIN_SO, NULL, PW("copass1")),
                     CKR_OK);
    assert_int_equal(wire_cl_user_create(f->a.cl, HSM_USER_CO, "officer2",
                                         PW("officer2pw"), &uid),
                     CKR_OK);
    assert_int_equal(q_register(&f->a, "admin", k1), CKR_OK);
    assert_int_equal(chan_open(f, &f->b, 1000, NULL, NULL), CKR_OK);
    assert_int_equal(
        wire_cl_login(f->b.cl, HSM_LOGIN_SO, "officer2", PW("officer2pw")),
        CKR_OK);
    assert_int_equal(q_register(&f->b, "officer2", k2), CKR_OK);

    /* the flags travel in the user list */
    assert_int_equal(wire_cl_user_list(f->a.cl, &users, &n), CKR_OK);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(users[i].name, "officer2") == 0)
            flags_ok = users[i].mofn_pubkey && !users[i].twofa;
    }
    free(users);
    assert_true(flags_ok);

    /* service 3 above 1 needs service 4 above 1, then a service 4 token */
    assert_int_equal(wire_cl_quorum_set_m(f->a.cl, 3, 2),
                     CKR_FUNCTION_REJECTED);
    assert_int_equal(wire_cl_quorum_set_m(f->a.cl, 4, 2), CKR_OK);
    assert_int_equal(wire_cl_quorum_set_m(f->a.cl, 3, 2),
                     CKR_FUNCTION_REJECTED);
    len = sizeof(token);
    assert_int_equal(wire_cl_quorum_get_token(f->a.cl, 4, "admin", token, &len),
                     CKR_OK);
    memset(ap, 0, sizeof(ap));
    ap[0].type = ap[1].type = HSM_USER_CO;
    strcpy(ap[0].name, "admin");
    strcpy(ap[1].name, "officer2");
    ap[0].sig = sig1;
    ap[0].sig_len = q_sign(k1, token, len, sig1);
    ap[1].sig = sig2;
    ap[1].sig_len = q_sign(k2, token, len, sig2);
    assert_int_equal(wire_cl_quorum_approve(f->a.cl, token, len, ap, 2, res),
                     CKR_OK);
    assert_int_equal(res[0], CKR_OK);
    assert_int_equal(res[1], CKR_OK);
    assert_int_equal(wire_cl_quorum_set_m(f->a.cl, 3, 2), CKR_OK);
    assert_int_equal(wire_cl_quorum_get_m(f->a.cl, 3, &m), CKR_OK);
    assert_int_equal(m, 2);
    assert_int_equal(wire_cl_quorum_get_m(f->a.cl, 4, &m), CKR_OK);
    assert_int_equal(m, 2);
    assert_int_equal(
        wire_cl_user_create(f->a.cl, HSM_USER_CU, "bob", PW("bobpass12"), &uid),
        CKR_FUNCTION_REJECTED);

    /* getToken: the length, too small a buffer, then the token */
    assert_int_equal(wire_cl_quorum_get_token(f->a.cl, 3, "admin", NULL, &len),
                     CKR_OK);
    assert_true(len > 0 && len <= sizeof(token));
    n = 1;
    assert_int_equal(wire_cl_quorum_get_token(f->a.cl, 3, "admin", token, &n),
                     CKR_BUFFER_TOO_SMALL);
    len = sizeof(token);
    assert_int_equal(wire_cl_quorum_get_token(f->a.cl, 3, "admin", token, &len),
                     CKR_OK);

    /* approvals: 9 refused by the client, then two good ones and a
     * repeated one, results in order */
    s1 = q_sign(k1, token, len, sig1);
    s2 = q_sign(k2, token, len, sig2);
    memset(ap, 0, sizeof(ap));
    for (size_t i = 0; i < HSM_QUORUM_M_MAX + 1; i++) {
        ap[i].type = HSM_USER_CO;
        strcpy(ap[i].name, "admin");
        ap[i].sig = sig1;
        ap[i].sig_len = s1;
    }
    assert_int_equal(wire_cl_quorum_approve(f->a.cl, token, len, ap,
                                            HSM_QUORUM_M_MAX + 1, res),
                     CKR_ARGUMENTS_BAD);
    strcpy(ap[1].name, "officer2");
    ap[1].sig = sig2;
    ap[1].sig_len = s2;
    assert_int_equal(wire_cl_quorum_approve(f->a.cl, token, len, ap, 3, res),
                     CKR_OK);
    assert_int_equal(res[0], CKR_OK);
    assert_int_equal(res[1], CKR_OK);
    assert_int_not_equal(res[2], CKR_OK); /* admin again */

    assert_int_equal(wire_cl_quorum_list_tokens(f->a.cl, &list, &n), CKR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].service, 3);
    assert_string_equal(list[0].user, "admin");
    assert_int_equal(list[0].needed, 2);
    assert_int_equal(list[0].given, 2);
    assert_int_equal(list[0].napprovers, 2);
    assert_true(list[0].seconds_left > 0 && list[0].seconds_left <= 600);
    free(list);

    assert_int_equal(
        wire_cl_user_create(f->a.cl, HSM_USER_CU, "bob", PW("bobpass12"), &uid),
        CKR_OK);
    assert_int_equal(wire_cl_user_create(f->a.cl, HSM_USER_CU, "carol",
                                         PW("carolpw12"), &uid),
                     CKR_FUNCTION_REJECTED);
    /* the used token is gone */
    assert_int_equal(
        wire_cl_quorum_approve(f->a.cl, token, len, ap + 1, 1, res),
        CKR_DATA_INVALID);
    assert_int_not_equal(wire_cl_quorum_del_token(f->a.cl, 0xfffffffe), CKR_OK);

    /* raw frames: the server refuses before the core */
    {
        Nimbus__QuorumApproval a0, *pa[1] = {&a0};
        Nimbus__QuorumApproveReq r;
        Nimbus__Request q;
        Nimbus__Reply *rep;
        static const uint8_t nul_name[] = {'a', 'd', 'm', 'i', 'n', 0};

        nimbus__quorum_approve_req__init(&r);
        r.token.data = token;
        r.token.len = len;
        nimbus__request__init(&q);
        q.id = 9;
        q.call_case = NIMBUS__REQUEST__CALL_QUORUM_APPROVE;
        q.quorum_approve = &r;
        assert_true(raw_call(&f->a, &q, &rep)); /* no approval */
        assert_int_equal(rep->rv, CKR_ARGUMENTS_BAD);
        nimbus__reply__free_unpacked(rep, NULL);
        nimbus__quorum_approval__init(&a0);
        a0.type = 9;
        a0.name.data = (uint8_t *)"admin";
        a0.name.len = 5;
        r.n_approvals = 1;
        r.approvals = pa;
        assert_true(raw_call(&f->a, &q, &rep)); /* a type out of range */
        assert_int_equal(rep->rv, CKR_ARGUMENTS_BAD);
        nimbus__reply__free_unpacked(rep, NULL);
        a0.type = HSM_USER_CO;
        a0.name.data = (uint8_t *)nul_name;
        a0.name.len = sizeof(nul_name);
        assert_true(raw_call(&f->a, &q, &rep)); /* a NUL in the name */
        assert_int_equal(rep->rv, CKR_ARGUMENTS_BAD);
        nimbus__reply__free_unpacked(rep, NULL);
    }
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
}

/* ------------------------------------------------------------ 2FA */

/*
 * The four 2FA calls through the wire into the core: a CO created with a
 * key made here, its signed login; the challenge belongs to the server's
 * connection (a second channel attached to it shares it, another
 * connection's signature over it fails); a re-key; the server's limits.
 */
static void test_tfa(void **state)
{
    struct fixture *f = *state;
    uint8_t token[WIRE_TOKEN_LEN], d[HSM_DIGEST_LEN], sig[256];
    uint8_t *der = NULL, *der2 = NULL, big[HSM_TFA_SIG_MAX + 1];
    EVP_PKEY *k = q_keygen(), *k2 = q_keygen();
    int dl = i2d_PUBKEY(k, &der), dl2 = i2d_PUBKEY(k2, &der2);
    hsm_user_info_t *users = NULL;
    hsm_uid_t uid = 0;
    size_t n = 0, sl;
    bool twofa = false;

    assert_true(dl > 0 && dl2 > 0);
    chan_close(&f->a);
    assert_int_equal(chan_open(f, &f->a, 1000, NULL, token), CKR_OK);
    activate(&f->a, "alice", "alicepw1");
    assert_int_equal(wire_cl_login(f->a.cl, HSM_LOGIN_SO, NULL, PW("copass1")),
                     CKR_OK);
    /* created with k: the signature over a's challenge proves it */
    assert_int_equal(wire_cl_login_challenge(f->a.cl, HSM_LOGIN_SO, "tfa", d),
                     CKR_OK);
    sl = q_sign(k, d, sizeof(d), sig);
    assert_int_equal(wire_cl_user_create_2fa(f->a.cl, "tfa", PW("tfapass1"),
                                             der, (size_t)dl, sig, sl, &uid),
                     CKR_OK);
    assert_true(uid > 0);
    assert_int_equal(wire_cl_user_list(f->a.cl, &users, &n), CKR_OK);
    for (size_t i = 0; i < n; i++)
        if (strcmp(users[i].name, "tfa") == 0)
            twofa = users[i].twofa && users[i].mofn_pubkey;
    free(users);
    assert_true(twofa);
    assert_int_equal(wire_cl_logout(f->a.cl), CKR_OK);

    /* the challenge is the connection's: b, attached to a's connection,
     * logs in with a signature over the digest a got */
    assert_int_equal(chan_open(f, &f->b, 1000, token, NULL), CKR_OK);
    assert_int_equal(wire_cl_login_challenge(f->a.cl, HSM_LOGIN_SO, "tfa", d),
                     CKR_OK);
    sl = q_sign(k, d, sizeof(d), sig);
    assert_int_equal(wire_cl_login_2fa(f->b.cl, HSM_LOGIN_SO, "tfa",
                                       PW("tfapass1"), sig, sl),
                     CKR_OK);
    assert_int_equal(wire_cl_logout(f->a.cl), CKR_OK);
    chan_close(&f->b);
    /* another connection: the same kind of signature over a's digest fails */
    assert_int_equal(chan_open(f, &f->b, 1000, NULL, NULL), CKR_OK);
    assert_int_equal(wire_cl_login_challenge(f->a.cl, HSM_LOGIN_SO, "tfa", d),
                     CKR_OK);
    sl = q_sign(k, d, sizeof(d), sig);
    assert_int_equal(wire_cl_login_2fa(f->b.cl, HSM_LOGIN_SO, "tfa",
                                       PW("tfapass1"), sig, sl),
                     CKR_PIN_INCORRECT);
    /* ... and a's own challenge survived b's try: a logs in with it */
    assert_int_equal(wire_cl_login_2fa(f->a.cl, HSM_LOGIN_SO, "tfa",
                                       PW("tfapass1"), sig, sl),
                     CKR_OK);
    /* the logged-in officer re-keys itself to k2 */
    assert_int_equal(wire_cl_login_challenge(f->a.cl, HSM_LOGIN_SO, "tfa", d),
                     CKR_OK);
    sl = q_sign(k2, d, sizeof(d), sig);
    assert_int_equal(wire_cl_user_set_password_2fa(f->a.cl, "tfa",
                                                   PW("tfapass1"), der2,
                                                   (size_t)dl2, sig, sl),
                     CKR_OK);
    assert_int_equal(wire_cl_logout(f->a.cl), CKR_OK);
    assert_int_equal(wire_cl_login_challenge(f->a.cl, HSM_LOGIN_SO, "tfa", d),
                     CKR_OK);
    sl = q_sign(k, d, sizeof(d), sig);
    assert_int_equal(wire_cl_login_2fa(f->a.cl, HSM_LOGIN_SO, "tfa",
                                       PW("tfapass1"), sig, sl),
                     CKR_PIN_INCORRECT);
    /* the server's limits: a 513-byte signature, a key past 4096 bytes */
    memset(big, 0, sizeof(big));
    assert_int_equal(wire_cl_login(f->a.cl, HSM_LOGIN_SO, NULL, PW("copass1")),
                     CKR_OK);
    assert_int_equal(wire_cl_user_create_2fa(f->a.cl, "tfa2", PW("tfapass1"),
                                             der, (size_t)dl, big, sizeof(big),
                                             NULL),
                     CKR_ARGUMENTS_BAD);
    {
        uint8_t *hugekey = calloc(1, HSM_QUORUM_PUBKEY_MAX + 1);

        assert_non_null(hugekey);
        assert_int_equal(wire_cl_user_set_password_2fa(
                             f->a.cl, "tfa", PW("tfapass1"), hugekey,
                             HSM_QUORUM_PUBKEY_MAX + 1, sig, sl),
                         CKR_ARGUMENTS_BAD);
        free(hugekey);
    }
    assert_int_equal(
        wire_cl_login_challenge(f->a.cl, (hsm_login_kind_t)9, "tfa", d),
        CKR_ARGUMENTS_BAD);
    OPENSSL_free(der);
    OPENSSL_free(der2);
    EVP_PKEY_free(k);
    EVP_PKEY_free(k2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_token_and_users, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bulk_by_reference, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bulk_shm, setup, teardown),
        cmocka_unit_test(test_lift_shapes),
        cmocka_unit_test(test_pack_vec),
        cmocka_unit_test_setup_teardown(test_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_template_attribute, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mgmt_and_misc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_peer_in_audit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_garbage_and_truncated, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_handshake_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nested_templates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attach, setup, teardown),
        cmocka_unit_test_setup_teardown(test_after_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_and_channel_limits,
                                        setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_crypto_ciphers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crypto_derive_wrap, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_crypto_asym, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crypto_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crypto_layouts_rest, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_quorum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tfa, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tickets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_mechanisms, setup,
                                        teardown),
        cmocka_unit_test(test_client_distrusts_server),
        cmocka_unit_test(test_client_out_of_step),
        cmocka_unit_test_setup_teardown(test_cluster, setup, teardown),
        cmocka_unit_test(test_client_distrusts_cluster),
        cmocka_unit_test(test_client_long_user_list),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
