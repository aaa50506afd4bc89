/*
 * fuzz_wire.c - libFuzzer target over the wire server: request payloads
 * straight into wire_chan_handle, as a hostile client would send them.
 *
 * An input is one flags byte, then frames: a 2-byte big-endian header
 * whose top bit picks the channel (0: A, 1: B) and whose other 15 bits
 * are the payload length (cut to what is left), then the payload.
 * Flags: bit 0, the harness does A's handshake itself; bit 1, and logs A
 * in as the CU; bit 2, it opens B attached to A's connection (else B is a
 * connection of its own, from another uid, that must do its own
 * handshake). A channel the server closes takes no more frames.
 *
 * Every input runs on a fresh token (a store in /dev/shm or /tmp,
 * activated, CO "copass1", CU "alice"/"alicepw1", KDF at its minimum) in
 * a fake three-node cluster (an ops table whose answers depend only on
 * the request: a membership change of node id N fails with engine code
 * -(N % 10), 0 being success), so
 * inputs do not depend on each other and a crash replays alone. The
 * committed corpus (tests/fuzz/wire-corpus) was written by the same code
 * with FUZZ_WIRE_SEEDS_MAIN: it runs real client calls (src/wire/client.c)
 * and records each request payload.
 */
#include "config.h"

#include <dirent.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/mechparam.h"
#include "hsm/hsm.h"
#include "wire/client.h"
#include "wire/proto.h"
#include "wire/server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FRAMES_MAX 64
#define FLAG_HELLO 0x01
#define FLAG_LOGIN 0x02
#define FLAG_ATTACH 0x04

#define PW(s) (const uint8_t *)(s), strlen(s)

struct chan {
    wire_chan_t *ch;
    bool open;
    /* the seed writer records what goes through here */
    FILE *record;
    uint8_t which; /* 0: A, 1: B */
};

struct run {
    char dir[64];
    struct config cfg;
    hsm_t *hsm;
    wire_server_t *srv;
    struct chan a, b;
    uint8_t token[WIRE_TOKEN_LEN];
};

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[PATH_MAX + 300];

    if (d == NULL) {
        return;
    }
    while ((e = readdir(d)) != NULL) {
        struct stat st;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            rm_tree(p);
        } else {
            unlink(p);
        }
    }
    closedir(d);
    rmdir(dir);
}

/* The cluster the server answers for: fixed, so that an input replays. */
static int fz_status(void *ctx, struct cluster_status *st)
{
    (void)ctx;
    memset(st, 0, sizeof(*st));
    st->node_id = 2;
    st->role = CLUSTER_ROLE_FOLLOWER;
    st->term = 3;
    st->leader_id = 1;
    snprintf(st->leader_address, sizeof(st->leader_address), "[::1]:21001");
    st->commit_index = st->applied_index = st->last_index = 42;
    st->nnodes = 3;
    for (size_t i = 0; i < st->nnodes; i++) {
        st->nodes[i].id = i + 1;
        st->nodes[i].member = (enum cluster_member)i;
        snprintf(st->nodes[i].address, sizeof(st->nodes[i].address),
                 "node%zu.example:21001", i + 1);
    }
    return 0;
}

static int fz_add(void *ctx, uint64_t id, const char *address)
{
    (void)ctx;
    (void)address;
    return -(int)(id % 10);
}

static int fz_remove(void *ctx, uint64_t id)
{
    return fz_add(ctx, id, NULL);
}

static CK_RV fz_digest(void *ctx, uint8_t out[32], uint64_t *applied)
{
    (void)ctx;
    memset(out, 0x5a, 32);
    *applied = 42;
    return CKR_OK;
}

static const struct wire_cluster_ops fz_cluster = {
    .status = fz_status,
    .add = fz_add,
    .remove = fz_remove,
    .transfer = fz_remove,
    .digest = fz_digest,
};

/* One payload through channel c; the reply is dropped. */
static void send_one(struct chan *c, const uint8_t *req, size_t len)
{
    uint8_t *resp = NULL;
    size_t resp_len = 0;

    if (!c->open) {
        return;
    }
    c->open = wire_chan_handle(c->ch, req, len, &resp, &resp_len);
    if (getenv("FUZZ_WIRE_TRACE") != NULL) {
        Nimbus__Reply *rep =
            resp == NULL ? NULL : nimbus__reply__unpack(NULL, resp_len, resp);

        fprintf(stderr, "fuzz_wire: %c %zu bytes -> rv 0x%lx%s\n",
                c->which ? 'B' : 'A', len,
                rep != NULL ? (unsigned long)rep->rv : 0UL,
                c->open ? "" : " (closed)");
        if (rep != NULL) {
            nimbus__reply__free_unpacked(rep, NULL);
        }
    }
    free(resp);
}

/* The client's transfer over an in-process channel (setup and seeds). */
static bool xfer(void *ctx, const uint8_t *req, size_t len, uint8_t **resp,
                 size_t *resp_len)
{
    struct chan *c = ctx;

    if (c->record != NULL && len < 0x8000) {
        uint8_t hdr[2] = {(uint8_t)((c->which << 7) | (len >> 8)),
                          (uint8_t)len};

        fwrite(hdr, 1, 2, c->record);
        fwrite(req, 1, len, c->record);
    }
    if (!c->open) {
        return false;
    }
    c->open = wire_chan_handle(c->ch, req, len, resp, resp_len);
    return *resp != NULL;
}

static wire_peer_t peer_of(long uid)
{
    wire_peer_t p;

    memset(&p, 0, sizeof(p));
    p.uid = uid;
    p.gid = uid;
    p.pid = 1;
    snprintf(p.addr, sizeof(p.addr), "unix:fuzz");
    return p;
}

static bool run_open(struct run *r)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    wire_client_t *cl = NULL;
    wire_peer_t pa = peer_of(1000);
    struct chan setup;
    bool ok;

    memset(r, 0, sizeof(*r));
    snprintf(r->dir, sizeof(r->dir), "%s/nimbus-fuzzwire-XXXXXX", base);
    if (mkdtemp(r->dir) == NULL) {
        return false;
    }
    config_defaults(&r->cfg);
    snprintf(r->cfg.store, sizeof(r->cfg.store), "%s/store", r->dir);
    r->cfg.kdf_iterations = CONFIG_MIN_KDF_ITERATIONS;
    r->cfg.max_sessions_per_connection = 16;
    r->cfg.max_connections = 8;
    if (hsm_open(&r->cfg, &r->hsm) != CKR_OK ||
        wire_server_new(r->hsm, &r->cfg, &r->srv) != CKR_OK) {
        return false;
    }
    wire_server_set_cluster(r->srv, &fz_cluster);
    /* The token is made ready over the wire by a channel of its own. */
    memset(&setup, 0, sizeof(setup));
    setup.ch = wire_chan_new(r->srv, &pa);
    setup.open = setup.ch != NULL;
    ok = setup.open && wire_client_new(xfer, &setup, 0, &cl) == CKR_OK &&
         wire_cl_hello(cl, "fuzz", NULL, NULL) == CKR_OK &&
         wire_cl_init_token(cl, NULL, PW("copass1"), "fuzz") == CKR_OK &&
         wire_cl_login(cl, HSM_LOGIN_SO, NULL, PW("copass1")) == CKR_OK &&
         wire_cl_init_pin(cl, "alice", PW("alicepw1")) == CKR_OK;
    wire_client_free(cl);
    wire_chan_free(setup.ch);
    r->a.ch = wire_chan_new(r->srv, &pa);
    r->a.open = r->a.ch != NULL;
    r->a.which = 0;
    r->b.which = 1;
    return ok && r->a.open;
}

/* The harness's part of the flags: handshakes and login. */
static void run_prepare(struct run *r, uint8_t flags)
{
    wire_client_t *cl = NULL;
    wire_peer_t pb = peer_of(flags & FLAG_ATTACH ? 1000 : 1001);
    FILE *rec = r->a.record;

    r->a.record = NULL; /* the harness's frames are not the input's */
    if ((flags & FLAG_HELLO) &&
        wire_client_new(xfer, &r->a, 0, &cl) == CKR_OK) {
        if (wire_cl_hello(cl, "fuzz", NULL, r->token) == CKR_OK &&
            (flags & FLAG_LOGIN)) {
            (void)wire_cl_login(cl, HSM_LOGIN_USER, "alice", PW("alicepw1"));
        }
        wire_client_free(cl);
        cl = NULL;
    }
    r->a.record = rec;
    r->b.ch = wire_chan_new(r->srv, &pb);
    r->b.open = r->b.ch != NULL;
    if ((flags & FLAG_ATTACH) && (flags & FLAG_HELLO) && r->b.open &&
        wire_client_new(xfer, &r->b, 0, &cl) == CKR_OK) {
        FILE *brec = r->b.record;

        r->b.record = NULL;
        (void)wire_cl_hello(cl, "fuzz-b", r->token, NULL);
        r->b.record = brec;
        wire_client_free(cl);
    }
}

static void run_close(struct run *r)
{
    wire_chan_free(r->b.ch);
    wire_chan_free(r->a.ch);
    wire_server_free(r->srv);
    hsm_close(r->hsm);
    rm_tree(r->dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run r;
    size_t off = 1;

    if (size < 1) {
        return 0;
    }
    if (!run_open(&r)) {
        fprintf(stderr, "fuzz_wire: setup failed\n");
        abort();
    }
    run_prepare(&r, data[0]);
    for (int i = 0; i < FRAMES_MAX && size - off >= 2; i++) {
        struct chan *c = data[off] & 0x80 ? &r.b : &r.a;
        size_t len = ((size_t)(data[off] & 0x7f) << 8) | data[off + 1];

        off += 2;
        if (len > size - off) {
            len = size - off;
        }
        send_one(c, data + off, len);
        off += len;
    }
    run_close(&r);
    return 0;
}

#ifdef FUZZ_WIRE_SEEDS_MAIN
/*
 * The seed writer: each seed is a scenario of real client calls; its
 * requests are recorded as an input of this target.
 */
typedef void (*scenario_fn)(wire_client_t *a, wire_client_t *b);

static void sc_objects(wire_client_t *a, wire_client_t *b)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
                        {CKA_TOKEN, &yes, sizeof(yes)},
                        {CKA_PRIVATE, &yes, sizeof(yes)},
                        {CKA_LABEL, "seed", 4},
                        {CKA_VALUE, "value", 5}};
    CK_ATTRIBUTE lab = {CKA_LABEL, "other", 5};
    CK_ATTRIBUTE_TYPE types[] = {CKA_LABEL, CKA_VALUE, CKA_ID};
    hsm_attr_t out[3];
    hsm_sid_t sid = 0;
    hsm_oid_t oid = 0, copy = 0, *oids = NULL;
    CK_ULONG size;
    size_t n;
    bool priv;

    (void)b;
    (void)wire_cl_session_open(a, true, &sid);
    (void)wire_cl_object_create(a, sid, t, 5, &oid);
    if (wire_cl_object_get(a, sid, oid, types, 3, out) == CKR_OK) {
        hsm_attrs_free(out, 3);
    }
    (void)wire_cl_object_set(a, sid, oid, &lab, 1);
    if (wire_cl_object_find(a, sid, &lab, 1, &oids, &n) == CKR_OK) {
        free(oids);
    }
    (void)wire_cl_object_size(a, sid, oid, &size);
    (void)wire_cl_object_is_private(a, oid, &priv);
    (void)wire_cl_object_copy(a, sid, oid, &lab, 1, &copy);
    (void)wire_cl_object_share(a, oid, 3, true);
    (void)wire_cl_object_destroy(a, sid, copy);
    (void)wire_cl_session_close(a, sid);
}

static void sc_users(wire_client_t *a, wire_client_t *b)
{
    hsm_user_info_t *users = NULL;
    hsm_token_info_t ti;
    hsm_user_type_t type;
    hsm_uid_t uid;
    size_t n;

    (void)b;
    (void)wire_cl_token_info(a, &ti);
    if (wire_cl_user_list(a, &users, &n) == CKR_OK) {
        free(users);
    }
    (void)wire_cl_login(a, HSM_LOGIN_SO, NULL, PW("copass1"));
    (void)wire_cl_conn_user_type(a, &type, &uid);
    (void)wire_cl_user_create(a, HSM_USER_CU, "bob", PW("bobpass1"), &uid);
    (void)wire_cl_user_set_password(a, "bob", PW("bobpass2"));
    (void)wire_cl_init_pin(a, "bob", PW("bobpass3"));
    (void)wire_cl_user_delete(a, "bob");
    (void)wire_cl_logout(a);
    (void)wire_cl_set_password(a, "alice", PW("alicepw1"), PW("alicepw2"));
    (void)wire_cl_login(a, HSM_LOGIN_USER, "alice", PW("wrongpw1"));
}

static void sc_mgmt(wire_client_t *a, wire_client_t *b)
{
    hsm_key_ref_t *keys = NULL;
    hsm_uid_t owner, *shared = NULL;
    hsm_audit_record_t *recs = NULL;
    hsm_audit_check_t chk;
    CK_MECHANISM_TYPE *mechs = NULL;
    hsm_mech_info_t mi;
    uint8_t digest[HSM_DIGEST_LEN];
    size_t n;

    (void)b;
    if (wire_cl_mech_list(a, &mechs, &n) == CKR_OK) {
        free(mechs);
    }
    (void)wire_cl_mech_info(a, CKM_AES_GCM, &mi);
    if (wire_cl_key_list(a, 3, &keys, &n, digest) == CKR_OK) {
        free(keys);
    }
    if (wire_cl_key_info(a, 1, &owner, &shared, &n) == CKR_OK) {
        free(shared);
    }
    (void)wire_cl_logout(a);
    (void)wire_cl_login(a, HSM_LOGIN_SO, NULL, PW("copass1"));
    if (wire_cl_audit_read(a, 0, 16, &recs, &n) == CKR_OK) {
        free(recs);
    }
    (void)wire_cl_audit_verify(a, &chk);
    (void)wire_cl_object_set_trusted(a, 1, true);
}

static void sc_ops(wire_client_t *a, wire_client_t *b)
{
    hsm_sid_t sid = 0;
    uint8_t buf[64];
    size_t len = sizeof(buf);

    (void)wire_cl_session_open(a, false, &sid);
    (void)wire_cl_random(a, sid, buf, 32);
    (void)wire_cl_op_output_len(a, sid, HSM_OPK_DIGEST, false, 10, &len);
    len = sizeof(buf);
    (void)wire_cl_op_oneshot(a, sid, HSM_OPK_DIGEST, buf, 10, buf, &len);
    len = sizeof(buf);
    (void)wire_cl_op_update(a, sid, HSM_OPK_ENCRYPT, buf, 10, buf, &len);
    len = sizeof(buf);
    (void)wire_cl_op_final(a, sid, HSM_OPK_ENCRYPT, buf, &len);
    (void)wire_cl_op_verify(a, sid, buf, 10, true, buf, 64);
    (void)wire_cl_op_digest_key(a, sid, 1);
    (void)wire_cl_op_abort(a, sid, HSM_OPK_SIGN);
    (void)wire_cl_context_login(a, sid, NULL, PW("alicepw1"));
    /* the attached channel works in A's session */
    (void)wire_cl_random(b, sid, buf, 16);
    (void)wire_cl_session_close(b, sid);
    (void)wire_cl_random(a, sid, buf, 16);
}

static void sc_other_uid(wire_client_t *a, wire_client_t *b)
{
    hsm_sid_t sid = 0, bs = 0;
    uint8_t buf[16];

    (void)wire_cl_session_open(a, true, &sid);
    /* B: another uid's connection: its own hello, A's ids mean nothing */
    (void)wire_cl_hello(b, "other", NULL, NULL);
    (void)wire_cl_random(b, sid, buf, sizeof(buf));
    (void)wire_cl_login(b, HSM_LOGIN_USER, "alice", PW("alicepw1"));
    (void)wire_cl_session_open(b, true, &bs);
    (void)wire_cl_session_close(b, sid);
}

static void sc_unauth(wire_client_t *a, wire_client_t *b)
{
    hsm_token_info_t ti;
    uint8_t token[WIRE_TOKEN_LEN];

    /* no harness handshake: the input says hello itself, B attaches */
    (void)wire_cl_hello(a, "seed", NULL, token);
    (void)wire_cl_token_info(a, &ti);
    (void)wire_cl_hello(b, "seed-b", token, NULL);
    (void)wire_cl_token_info(b, &ti);
    (void)wire_cl_init_token(a, NULL, PW("copass1"), "again");
}

static CK_RV mech_of(CK_MECHANISM_TYPE type, void *param, CK_ULONG len,
                     hsm_mech_t *m)
{
    CK_MECHANISM cm = {type, param, len};

    return hsm_mech_decode(&cm, m);
}

static void sc_crypto(wire_client_t *a, wire_client_t *b)
{
    static CK_BBOOL yes = CK_TRUE;
    static CK_ULONG k32 = 32;
    static CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                             0xce, 0x3d, 0x03, 0x01, 0x07};
    static CK_OBJECT_CLASS sk = CKO_SECRET_KEY;
    static CK_KEY_TYPE kaes = CKK_AES;
    static const uint8_t v1[32] = {1, 2, 3}, v2[32] = {4, 5, 6};
    /* keys of fixed values: a replayed input sees the same keys */
    CK_ATTRIBUTE aes_t[] = {
        {CKA_CLASS, &sk, sizeof(sk)}, {CKA_KEY_TYPE, &kaes, sizeof(kaes)},
        {CKA_VALUE, (void *)v1, 32},  {CKA_ENCRYPT, &yes, 1},
        {CKA_DERIVE, &yes, 1},        {CKA_EXTRACTABLE, &yes, 1}};
    CK_ATTRIBUTE kek_t[] = {{CKA_CLASS, &sk, sizeof(sk)},
                            {CKA_KEY_TYPE, &kaes, sizeof(kaes)},
                            {CKA_VALUE, (void *)v2, 32},
                            {CKA_WRAP, &yes, 1},
                            {CKA_UNWRAP, &yes, 1}};
    CK_ATTRIBUTE pub_t[] = {{CKA_EC_PARAMS, p256, sizeof(p256)},
                            {CKA_VERIFY, &yes, 1}};
    CK_ATTRIBUTE priv_t[] = {{CKA_SIGN, &yes, 1}};
    CK_OBJECT_CLASS sec = CKO_SECRET_KEY;
    CK_KEY_TYPE gen = CKK_GENERIC_SECRET;
    CK_ATTRIBUTE der_t[] = {{CKA_CLASS, &sec, sizeof(sec)},
                            {CKA_KEY_TYPE, &gen, sizeof(gen)},
                            {CKA_VALUE_LEN, &k32, sizeof(k32)}};
    uint8_t iv[16], buf[256], out[256], label[] = "label";
    CK_GCM_PARAMS gp = {NULL, 12, 96, label, 5, 128};
    CK_SP800_108_COUNTER_FORMAT cf = {CK_FALSE, 32};
    CK_PRF_DATA_PARAM dl[] = {
        {CK_SP800_108_ITERATION_VARIABLE, &cf, sizeof(cf)},
        {CK_SP800_108_BYTE_ARRAY, label, 5}};
    CK_SP800_108_KDF_PARAMS kp = {CKM_AES_CMAC, 2, dl, 0, NULL};
    uint8_t tag[16], msgiv[12];
    CK_GCM_MESSAGE_PARAMS mp = {msgiv, 12, 0, CKG_GENERATE_RANDOM, tag, 128};
    hsm_mech_t m;
    hsm_msg_result_t res;
    hsm_sid_t sid = 0;
    hsm_oid_t aes = 0, kek = 0, pub = 0, prv = 0, der = 0, back = 0;
    uint8_t *wrapped = NULL;
    size_t len, wl = 0;

    (void)b;
    memset(iv, 0, sizeof(iv));
    memset(buf, 0x41, sizeof(buf));
    (void)wire_cl_session_open(a, true, &sid);
    (void)wire_cl_object_create(a, sid, aes_t, 6, &aes);
    (void)wire_cl_object_create(a, sid, kek_t, 5, &kek);
    if (mech_of(CKM_AES_KEY_GEN, NULL, 0, &m) == CKR_OK) {
        (void)wire_cl_generate_key(a, sid, &m, der_t + 2, 1, &back);
    }
    hsm_mech_free(&m);
    if (mech_of(CKM_AES_GCM, &gp, sizeof(gp), &m) == CKR_OK) {
        (void)wire_cl_op_init_iv(a, sid, HSM_OPK_ENCRYPT, &m, aes, iv,
                                 sizeof(iv), &len);
        len = sizeof(out);
        (void)wire_cl_op_oneshot(a, sid, HSM_OPK_ENCRYPT, buf, 40, out, &len);
    }
    hsm_mech_free(&m);
    if (mech_of(CKM_AES_CBC_PAD, iv, 16, &m) == CKR_OK) {
        (void)wire_cl_op_init(a, sid, HSM_OPK_ENCRYPT, &m, aes);
        len = sizeof(out);
        (void)wire_cl_op_update(a, sid, HSM_OPK_ENCRYPT, buf, 20, out, &len);
        len = sizeof(out);
        (void)wire_cl_op_final(a, sid, HSM_OPK_ENCRYPT, out, &len);
    }
    hsm_mech_free(&m);
    if (mech_of(CKM_EC_KEY_PAIR_GEN, NULL, 0, &m) == CKR_OK) {
        (void)wire_cl_generate_key_pair(a, sid, &m, pub_t, 2, priv_t, 1, &pub,
                                        &prv);
    }
    hsm_mech_free(&m);
    if (mech_of(CKM_ECDSA_SHA256, NULL, 0, &m) == CKR_OK) {
        (void)wire_cl_op_init(a, sid, HSM_OPK_SIGN, &m, prv);
        len = sizeof(out);
        (void)wire_cl_op_oneshot(a, sid, HSM_OPK_SIGN, buf, 32, out, &len);
        (void)wire_cl_op_init(a, sid, HSM_OPK_VERIFY, &m, pub);
        (void)wire_cl_op_verify(a, sid, buf, 32, true, out, len);
    }
    hsm_mech_free(&m);
    if (mech_of(CKM_SP800_108_COUNTER_KDF, &kp, sizeof(kp), &m) == CKR_OK) {
        (void)wire_cl_derive_key(a, sid, &m, aes, der_t, 3, &der);
    }
    hsm_mech_free(&m);
    if (mech_of(CKM_AES_KEY_WRAP_KWP, NULL, 0, &m) == CKR_OK) {
        (void)wire_cl_wrap_key(a, sid, &m, kek, aes, &wrapped, &wl);
        (void)wire_cl_unwrap_key(a, sid, &m, kek, wrapped, wl, der_t, 2, &back);
    }
    free(wrapped);
    hsm_mech_free(&m);
    {
        CK_MECHANISM init = {CKM_AES_GCM, NULL, 0};

        if (hsm_mech_decode_type(&init, &m) == CKR_OK) {
            (void)wire_cl_msg_init(a, sid, HSM_MSG_ENCRYPT, &m, aes);
        }
        hsm_mech_free(&m);
        if (hsm_mech_decode_msg(CKM_AES_GCM, &mp, sizeof(mp), false, &m) ==
            CKR_OK) {
            len = sizeof(out);
            (void)wire_cl_msg_oneshot(a, sid, HSM_MSG_ENCRYPT, &m, label, 5,
                                      buf, 24, out, &len, &res);
            (void)wire_cl_msg_begin(a, sid, HSM_MSG_ENCRYPT, &m, NULL, 0, &res);
            len = sizeof(out);
            (void)wire_cl_msg_next(a, sid, HSM_MSG_ENCRYPT, &m, buf, 24, true,
                                   out, &len, &res);
            (void)wire_cl_msg_output_len(a, sid, HSM_MSG_ENCRYPT, false, 24,
                                         &len);
            (void)wire_cl_msg_final(a, sid, HSM_MSG_ENCRYPT);
            (void)wire_cl_msg_abort(a, sid, HSM_MSG_DECRYPT);
        }
        hsm_mech_free(&m);
    }
}

/* An RSA-2048 public key (DER SPKI) and its SHA256-RSA-PKCS signature of
 * q_regtok, made once with the openssl CLI: a registration the core
 * takes, for the fuzzer to mutate. */
static const char q_regtok[] = "nimbus fuzz seed: registration.";
static const uint8_t q_pub[294] = {
    0x30, 0x82, 0x01, 0x22, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
    0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00, 0x03, 0x82, 0x01, 0x0f, 0x00,
    0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01, 0x00, 0x95, 0x0d, 0x5f,
    0x2c, 0x7a, 0x78, 0x49, 0xda, 0xa9, 0xd7, 0x18, 0x8c, 0xfe, 0x4e, 0x6b,
    0x2b, 0x3b, 0xe1, 0xe7, 0x60, 0xcb, 0x8b, 0xd2, 0x22, 0x4d, 0x2c, 0x2d,
    0x89, 0xfa, 0x06, 0xd1, 0xf9, 0x7d, 0x81, 0xef, 0x31, 0x91, 0x6a, 0x53,
    0x75, 0x85, 0x4f, 0xf9, 0x7f, 0x35, 0xfa, 0x34, 0x5d, 0x92, 0xb4, 0xf0,
    0x40, 0x74, 0x57, 0xb8, 0xb9, 0x6f, 0x89, 0x2a, 0x75, 0x5e, 0x2a, 0xb4,
    0xc2, 0x14, 0x5a, 0xb5, 0x8b, 0xec, 0x6b, 0x89, 0xdb, 0xda, 0xec, 0x7a,
    0x34, 0x46, 0xc4, 0x3e, 0x61, 0x24, 0x0f, 0x25, 0xb5, 0x98, 0xec, 0xc2,
    0x40, 0xbd, 0xbc, 0xc8, 0x1f, 0x31, 0x76, 0x22, 0xb7, 0xc4, 0x49, 0x53,
    0x95, 0x53, 0xe1, 0xea, 0x0c, 0x7c, 0x2b, 0x4f, 0x68, 0xdd, 0xa0, 0xcd,
    0xd8, 0x8f, 0xa8, 0x28, 0x90, 0x5a, 0xe3, 0x73, 0xe7, 0xa4, 0xf9, 0xe4,
    0xc1, 0xd2, 0xce, 0x84, 0xaf, 0x8a, 0x30, 0x9c, 0x76, 0x38, 0x3e, 0x67,
    0xcb, 0x18, 0x58, 0x17, 0x2d, 0x30, 0x09, 0xd2, 0x00, 0x29, 0x0e, 0x8e,
    0x07, 0x42, 0x88, 0x04, 0x51, 0xeb, 0x66, 0x54, 0x2d, 0xba, 0x2b, 0xf3,
    0xd3, 0x27, 0xa8, 0x6d, 0xf4, 0xa5, 0x0a, 0x45, 0xb7, 0xa7, 0xe5, 0x48,
    0xe8, 0x59, 0x67, 0x2e, 0x6e, 0x2f, 0xcc, 0xc0, 0x21, 0x5d, 0xfb, 0x9c,
    0x88, 0x5f, 0x1f, 0x36, 0xfb, 0xde, 0xbf, 0xe0, 0xb4, 0x8e, 0x2b, 0x7c,
    0x10, 0xad, 0x6a, 0x3d, 0xfc, 0xc4, 0x6e, 0xa6, 0x5d, 0xe9, 0x5d, 0xe6,
    0x93, 0xd0, 0x71, 0xe2, 0x53, 0x84, 0xcb, 0x39, 0x2e, 0xe8, 0x81, 0x3a,
    0x0d, 0x3d, 0xdf, 0x1c, 0xf2, 0xa9, 0xc5, 0x08, 0x03, 0x58, 0x75, 0x59,
    0x49, 0x12, 0x05, 0x09, 0xd3, 0xa5, 0xa3, 0x2f, 0x4f, 0x43, 0x64, 0x96,
    0x5f, 0x2d, 0xc5, 0x9c, 0x60, 0xf7, 0x3e, 0xa1, 0x02, 0x9d, 0x55, 0x96,
    0xc1, 0x02, 0x03, 0x01, 0x00, 0x01,
};
static const uint8_t q_sig[256] = {
    0x17, 0xd5, 0xf1, 0x90, 0xd5, 0x1b, 0x6d, 0x6f, 0x9c, 0x63, 0x7c, 0x86,
    0x48, 0x1c, 0x01, 0x7d, 0x01, 0x1c, 0x06, 0x2d, 0x16, 0x3f, 0x59, 0x8d,
    0x13, 0xc8, 0x0a, 0x46, 0x46, 0x3a, 0x19, 0x5e, 0x08, 0x57, 0x84, 0x01,
    0xf6, 0x83, 0x75, 0x96, 0x09, 0x16, 0x91, 0x2a, 0x25, 0x02, 0x6e, 0xec,
    0x33, 0x17, 0x55, 0xda, 0xf4, 0xa1, 0x2e, 0xe8, 0x94, 0x4d, 0x34, 0x1d,
    0xc3, 0x20, 0x46, 0xf9, 0x8a, 0x73, 0x87, 0xc6, 0xfb, 0x8d, 0xae, 0x1b,
    0xe2, 0xfe, 0x34, 0xe8, 0xdb, 0xea, 0xf7, 0x2a, 0xf4, 0x96, 0x81, 0x98,
    0xc6, 0x64, 0x04, 0x37, 0x6b, 0xae, 0x98, 0x7f, 0xe1, 0xe3, 0x80, 0x88,
    0x16, 0x54, 0xbf, 0x43, 0x37, 0x88, 0xa1, 0x7a, 0x54, 0x50, 0x58, 0x5a,
    0x12, 0xf3, 0x61, 0x80, 0x06, 0x37, 0xee, 0x52, 0x40, 0xe9, 0x5e, 0x18,
    0x3a, 0x5e, 0x65, 0xae, 0x27, 0xf7, 0xef, 0xf8, 0xc1, 0xd6, 0xe9, 0x95,
    0x68, 0x9e, 0x86, 0x6c, 0x6e, 0x46, 0x8c, 0x65, 0xca, 0x32, 0xd5, 0xaf,
    0x4d, 0xc8, 0xfd, 0x0b, 0x94, 0xfa, 0xd5, 0x04, 0x39, 0xcc, 0x34, 0x7b,
    0x45, 0x73, 0x25, 0x9e, 0xc0, 0x0d, 0x92, 0x46, 0x36, 0x1f, 0x1f, 0x6b,
    0x5e, 0x43, 0x90, 0xd0, 0xfe, 0xc6, 0x04, 0x6d, 0x1e, 0x16, 0x3e, 0xca,
    0x03, 0xa5, 0x59, 0x91, 0xc5, 0x3a, 0xaa, 0x51, 0x5e, 0x0b, 0x85, 0x30,
    0xc0, 0x82, 0xde, 0xc1, 0xe8, 0x30, 0x5c, 0x91, 0x8f, 0xa4, 0xff, 0x9b,
    0x65, 0x54, 0xf1, 0x7d, 0x7c, 0x96, 0x72, 0xeb, 0xc9, 0xf1, 0x90, 0xb5,
    0xb3, 0xb1, 0x1b, 0x27, 0x69, 0xb9, 0x97, 0x3e, 0x69, 0xc5, 0x94, 0x69,
    0x82, 0xce, 0xf1, 0x07, 0x1d, 0xcc, 0x81, 0x19, 0x2c, 0x24, 0x61, 0x6a,
    0xc9, 0x31, 0x58, 0x19, 0x25, 0xc8, 0xac, 0x72, 0x2c, 0x74, 0xc2, 0x2d,
    0x22, 0xf9, 0x80, 0x4d,
};

static void sc_quorum(wire_client_t *a, wire_client_t *b)
{
    uint8_t token[HSM_QUORUM_TOKEN_BYTES_MAX];
    hsm_quorum_token_info_t *list = NULL;
    hsm_quorum_approval_t ap[2];
    CK_RV res[2];
    size_t len = sizeof(token), n = 0;
    unsigned m = 0;

    /* a CU asks first (refused), then the CO does it all */
    (void)wire_cl_quorum_get_m(a, HSM_QUORUM_SVC_USER_MGMT, &m);
    (void)wire_cl_quorum_set_m(a, HSM_QUORUM_SVC_USER_MGMT, 2);
    (void)wire_cl_logout(a);
    (void)wire_cl_login(a, HSM_LOGIN_SO, NULL, PW("copass1"));
    (void)wire_cl_quorum_register_key(a, "admin", (const uint8_t *)q_regtok,
                                      sizeof(q_regtok) - 1, q_sig,
                                      sizeof(q_sig), q_pub, sizeof(q_pub));
    (void)wire_cl_quorum_set_m(a, HSM_QUORUM_SVC_MISC_CO, 1);
    (void)wire_cl_quorum_get_m(a, HSM_QUORUM_SVC_MISC_CO, &m);
    if (wire_cl_quorum_get_token(a, HSM_QUORUM_SVC_USER_MGMT, "admin", token,
                                 &len) != CKR_OK) {
        len = 32;
        memset(token, 0x5a, len);
    }
    memset(ap, 0, sizeof(ap));
    ap[0].type = HSM_USER_CO;
    strcpy(ap[0].name, "admin");
    ap[0].sig = q_sig; /* over other bytes: rejected, but well formed */
    ap[0].sig_len = sizeof(q_sig);
    ap[1] = ap[0];
    strcpy(ap[1].name, "alice");
    (void)wire_cl_quorum_approve(a, token, len, ap, 2, res);
    if (wire_cl_quorum_list_tokens(a, &list, &n) == CKR_OK) {
        free(list);
    }
    (void)wire_cl_quorum_del_token(a, 1);
    /* B, another uid's connection, tries the token of A's login */
    (void)wire_cl_hello(b, "other", NULL, NULL);
    (void)wire_cl_login(b, HSM_LOGIN_USER, "alice", PW("alicepw1"));
    (void)wire_cl_quorum_del_token(b, 1);
}

/* Two-factor login (protocol 1.2): challenges, a signed login of a user
 * without 2FA and of one that has none registered, a 2FA CO created and
 * re-keyed with a key whose signature is over other bytes (refused, well
 * formed), from a CU, a CO and another uid. */
static void sc_2fa(wire_client_t *a, wire_client_t *b)
{
    uint8_t d[HSM_DIGEST_LEN];
    hsm_uid_t uid = 0;

    (void)wire_cl_login_challenge(a, HSM_LOGIN_SO, "admin", d);
    (void)wire_cl_user_create_2fa(a, "tfa1", PW("tfapass1"), q_pub,
                                  sizeof(q_pub), q_sig, sizeof(q_sig), &uid);
    (void)wire_cl_logout(a);
    (void)wire_cl_login_challenge(a, HSM_LOGIN_SO, NULL, d);
    (void)wire_cl_login_2fa(a, HSM_LOGIN_SO, NULL, PW("copass1"), q_sig,
                            sizeof(q_sig));
    (void)wire_cl_login_challenge(a, HSM_LOGIN_SO, "tfa1", d);
    (void)wire_cl_user_create_2fa(a, "tfa1", PW("tfapass1"), q_pub,
                                  sizeof(q_pub), q_sig, sizeof(q_sig), &uid);
    (void)wire_cl_login_challenge(a, HSM_LOGIN_SO, "admin", d);
    (void)wire_cl_user_set_password_2fa(a, "admin", PW("copass1"), q_pub,
                                        sizeof(q_pub), q_sig, sizeof(q_sig));
    (void)wire_cl_login_challenge(a, HSM_LOGIN_USER, "alice", d);
    /* B, another uid's connection: A's challenge is not B's */
    (void)wire_cl_hello(b, "other", NULL, NULL);
    (void)wire_cl_login_2fa(b, HSM_LOGIN_USER, "alice", PW("alicepw1"), q_sig,
                            sizeof(q_sig));
}

static void sc_tickets(wire_client_t *a, wire_client_t *b)
{
    uint8_t t[HSM_TICKET_LEN];

    memset(t, 0, sizeof(t));
    (void)wire_cl_login_ticket(a, t);
    (void)wire_cl_login_redeem(a, t, sizeof(t));
    (void)wire_cl_logout(a);
    (void)wire_cl_login_redeem(a, t, sizeof(t));
    (void)wire_cl_login_redeem(a, t, 7);
    (void)wire_cl_login_ticket(a, t);
    /* B, another uid's connection: A's ticket is not B's */
    (void)wire_cl_hello(b, "other", NULL, NULL);
    (void)wire_cl_login_redeem(b, t, sizeof(t));
    (void)wire_cl_login_ticket(b, t);
}

/* The seed writer's channel A, for requests the client does not make
 * itself (the shared bulk region: its client only uses it with a
 * transfer that passes descriptors). */
static struct chan *seed_a;

static void seed_raw(Nimbus__Request *q)
{
    size_t len, resp_len = 0;
    uint8_t *buf, *resp = NULL;

    q->id = 9000;
    len = nimbus__request__get_packed_size(q);
    buf = malloc(len + 1);
    if (buf == NULL) {
        return;
    }
    nimbus__request__pack(q, buf);
    (void)xfer(seed_a, buf, len, &resp, &resp_len);
    free(resp);
    free(buf);
}

/* Inputs of a step large enough to be decoded where they lie
 * (WIRE_REF_MIN, src/wire/proto.h): every call that lifts one, GCM
 * both ways, and a decrypt whose tag does not check. */
static void sc_bulk(wire_client_t *a, wire_client_t *b)
{
    static CK_BBOOL yes = CK_TRUE;
    static CK_OBJECT_CLASS sk = CKO_SECRET_KEY;
    static CK_KEY_TYPE kaes = CKK_AES, kgen = CKK_GENERIC_SECRET;
    static const uint8_t v1[32] = {7, 8, 9};
    static uint8_t buf[6000], ct[6100], out[6100];
    CK_ATTRIBUTE aes_t[] = {{CKA_CLASS, &sk, sizeof(sk)},
                            {CKA_KEY_TYPE, &kaes, sizeof(kaes)},
                            {CKA_VALUE, (void *)v1, 32},
                            {CKA_ENCRYPT, &yes, 1},
                            {CKA_DECRYPT, &yes, 1}};
    CK_ATTRIBUTE mac_t[] = {{CKA_CLASS, &sk, sizeof(sk)},
                            {CKA_KEY_TYPE, &kgen, sizeof(kgen)},
                            {CKA_VALUE, (void *)v1, 32},
                            {CKA_SIGN, &yes, 1},
                            {CKA_VERIFY, &yes, 1}};
    uint8_t iv[16], tag[16], msgiv[12], mac[32];
    CK_GCM_PARAMS gp = {iv, 12, 96, NULL, 0, 128};
    CK_GCM_MESSAGE_PARAMS mp = {msgiv, 12, 0, CKG_GENERATE_RANDOM, tag, 128};
    hsm_mech_t m;
    hsm_msg_result_t res;
    hsm_sid_t sid = 0;
    hsm_oid_t aes = 0, hmac = 0;
    size_t len, ctl = 0;

    (void)b;
    memset(iv, 0x11, sizeof(iv));
    memset(buf, 0x42, sizeof(buf));
    (void)wire_cl_session_open(a, true, &sid);
    (void)wire_cl_object_create(a, sid, aes_t, 5, &aes);
    (void)wire_cl_object_create(a, sid, mac_t, 5, &hmac);
    if (mech_of(CKM_AES_GCM, &gp, sizeof(gp), &m) == CKR_OK) {
        (void)wire_cl_op_init(a, sid, HSM_OPK_ENCRYPT, &m, aes);
        ctl = sizeof(ct);
        (void)wire_cl_op_oneshot(a, sid, HSM_OPK_ENCRYPT, buf, sizeof(buf), ct,
                                 &ctl);
        (void)wire_cl_op_init(a, sid, HSM_OPK_DECRYPT, &m, aes);
        len = sizeof(out);
        (void)wire_cl_op_oneshot(a, sid, HSM_OPK_DECRYPT, ct, ctl, out, &len);
        ct[ctl > 0 ? ctl - 1 : 0] ^= 1;
        (void)wire_cl_op_init(a, sid, HSM_OPK_DECRYPT, &m, aes);
        len = sizeof(out);
        (void)wire_cl_op_oneshot(a, sid, HSM_OPK_DECRYPT, ct, ctl, out, &len);
        (void)wire_cl_op_init(a, sid, HSM_OPK_ENCRYPT, &m, aes);
        len = sizeof(out);
        (void)wire_cl_op_update(a, sid, HSM_OPK_ENCRYPT, buf, 5000, out, &len);
        len = sizeof(out);
        (void)wire_cl_op_final(a, sid, HSM_OPK_ENCRYPT, out, &len);
    }
    hsm_mech_free(&m);
    if (mech_of(CKM_SHA256_HMAC, NULL, 0, &m) == CKR_OK) {
        (void)wire_cl_op_init(a, sid, HSM_OPK_SIGN, &m, hmac);
        len = sizeof(mac);
        (void)wire_cl_op_oneshot(a, sid, HSM_OPK_SIGN, buf, 4500, mac, &len);
        (void)wire_cl_op_init(a, sid, HSM_OPK_VERIFY, &m, hmac);
        (void)wire_cl_op_verify(a, sid, buf, 4500, true, mac, len);
    }
    hsm_mech_free(&m);
    {
        CK_MECHANISM init = {CKM_AES_GCM, NULL, 0};

        if (hsm_mech_decode_type(&init, &m) == CKR_OK) {
            (void)wire_cl_msg_init(a, sid, HSM_MSG_ENCRYPT, &m, aes);
        }
        hsm_mech_free(&m);
        if (hsm_mech_decode_msg(CKM_AES_GCM, &mp, sizeof(mp), false, &m) ==
            CKR_OK) {
            len = sizeof(out);
            (void)wire_cl_msg_oneshot(a, sid, HSM_MSG_ENCRYPT, &m, NULL, 0, buf,
                                      5000, out, &len, &res);
            (void)wire_cl_msg_begin(a, sid, HSM_MSG_ENCRYPT, &m, NULL, 0, &res);
            len = sizeof(out);
            (void)wire_cl_msg_next(a, sid, HSM_MSG_ENCRYPT, &m, buf, 5000, true,
                                   out, &len, &res);
            (void)wire_cl_msg_final(a, sid, HSM_MSG_ENCRYPT);
        }
        hsm_mech_free(&m);
    }
    /* the shared region: attached, then a step through it, one too long,
     * one with both inputs, and a second region */
    if (mech_of(CKM_AES_GCM, &gp, sizeof(gp), &m) == CKR_OK) {
        Nimbus__Request q;
        Nimbus__ShmAttachReq sa;
        Nimbus__OpOneshotReq os;

        nimbus__request__init(&q);
        nimbus__shm_attach_req__init(&sa);
        q.call_case = NIMBUS__REQUEST__CALL_SHM_ATTACH;
        q.shm_attach = &sa;
        seed_raw(&q);
        (void)wire_cl_op_init(a, sid, HSM_OPK_ENCRYPT, &m, aes);
        nimbus__op_oneshot_req__init(&os);
        os.sid = sid;
        os.kind = HSM_OPK_ENCRYPT;
        os.has_shm_in = true;
        os.shm_in = 300;
        os.has_out_room = true;
        os.out_room = 400;
        os.has_shm_out = true;
        os.shm_out = true;
        nimbus__request__init(&q);
        q.call_case = NIMBUS__REQUEST__CALL_OP_ONESHOT;
        q.op_oneshot = &os;
        seed_raw(&q);
        (void)wire_cl_op_init(a, sid, HSM_OPK_ENCRYPT, &m, aes);
        os.shm_in = WIRE_SHM_HALF + 1;
        seed_raw(&q);
        os.shm_in = 10;
        os.has_in = true;
        os.in.data = buf;
        os.in.len = 10;
        seed_raw(&q);
        q.call_case = NIMBUS__REQUEST__CALL_SHM_ATTACH;
        q.shm_attach = &sa;
        seed_raw(&q);
    }
    hsm_mech_free(&m);
}

/* The cluster calls (protocol 1.4): a CU reads the status and is refused
 * a change; the CO adds (a good address, then bad ones), removes,
 * transfers (ids whose fake answers are errors), and sends a remove with
 * an address and an unknown kind. */
static void sc_cluster(wire_client_t *a, wire_client_t *b)
{
    wire_cluster_info_t ci;
    Nimbus__Request q;
    Nimbus__ClusterChangeReq m;

    (void)b;
    (void)wire_cl_cluster_status(a, &ci);
    (void)wire_cl_cluster_add(a, 4, "127.0.0.1:21004");
    (void)wire_cl_logout(a);
    (void)wire_cl_login(a, HSM_LOGIN_SO, NULL, PW("copass1"));
    (void)wire_cl_cluster_status(a, &ci);
    (void)wire_cl_cluster_add(a, 4, "127.0.0.1:21004");
    (void)wire_cl_cluster_add(a, 10, "[::1]:21010");
    (void)wire_cl_cluster_add(a, 5, "host:0");
    (void)wire_cl_cluster_add(a, 4294967296u, "host:1");
    (void)wire_cl_cluster_remove(a, 3);
    (void)wire_cl_cluster_transfer(a, 7);
    nimbus__cluster_change_req__init(&m);
    m.kind = 2;
    m.id = 3;
    m.has_address = true;
    m.address.data = (uint8_t *)"host:1";
    m.address.len = 6;
    nimbus__request__init(&q);
    q.call_case = NIMBUS__REQUEST__CALL_CLUSTER_CHANGE;
    q.cluster_change = &m;
    seed_raw(&q);
    m.kind = 9;
    m.has_address = false;
    seed_raw(&q);
}

static const struct {
    const char *name;
    uint8_t flags;
    scenario_fn fn;
} seeds[] = {
    {"objects", FLAG_HELLO | FLAG_LOGIN | FLAG_ATTACH, sc_objects},
    {"users", FLAG_HELLO, sc_users},
    {"mgmt", FLAG_HELLO | FLAG_LOGIN, sc_mgmt},
    {"ops", FLAG_HELLO | FLAG_LOGIN | FLAG_ATTACH, sc_ops},
    {"other-uid", FLAG_HELLO | FLAG_LOGIN, sc_other_uid},
    {"unauth", 0, sc_unauth},
    {"crypto", FLAG_HELLO | FLAG_LOGIN | FLAG_ATTACH, sc_crypto},
    {"quorum", FLAG_HELLO | FLAG_LOGIN, sc_quorum},
    {"bulk", FLAG_HELLO | FLAG_LOGIN, sc_bulk},
    {"2fa", FLAG_HELLO | FLAG_LOGIN, sc_2fa},
    {"cluster", FLAG_HELLO | FLAG_LOGIN, sc_cluster},
    {"tickets", FLAG_HELLO | FLAG_LOGIN, sc_tickets},
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR (writes the seed corpus)\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
        char path[PATH_MAX];
        struct run r;
        wire_client_t *a = NULL, *b = NULL;
        FILE *fp;

        snprintf(path, sizeof(path), "%s/%s", argv[1], seeds[i].name);
        fp = fopen(path, "wb");
        if (fp == NULL || !run_open(&r)) {
            perror(path);
            return 1;
        }
        fputc(seeds[i].flags, fp);
        r.a.record = fp;
        r.b.record = fp;
        run_prepare(&r, seeds[i].flags);
        if (wire_client_new(xfer, &r.a, 0, &a) != CKR_OK ||
            wire_client_new(xfer, &r.b, 0, &b) != CKR_OK) {
            return 1;
        }
        seed_a = &r.a;
        seeds[i].fn(a, b);
        wire_client_free(a);
        wire_client_free(b);
        run_close(&r);
        fclose(fp);
    }
    return 0;
}
#endif
