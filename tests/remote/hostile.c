/*
 * hostile - a client that attacks nimbusd over the raw transport
 * (tests/remote/hostile.sh). The victim is a well-behaved connection of
 * alice (a token object and a session object); the attacker speaks the
 * protocol through src/wire/client.c where it needs valid requests and
 * writes raw frames where it needs invalid ones.
 *
 *   hostile ENDPOINT ALICE_PW BOB_PW [CO_PW]
 *
 * Checked: another connection's session ids and object ids (and guesses
 * around them) are answered as if they never existed, never CKR_OK; a
 * forged attach token is refused, and so is alice's real token from
 * another uid (as root: a child that becomes nobody); bad frames, junk
 * payloads, an unknown request kind, huge lengths and counts, a frame
 * header of 4 GiB and a truncated frame get an error or a closed link;
 * calls on a closed session, after logout and after the link that owned
 * the connection closed answer errors. The quorum calls (protocol 1.1):
 * a CU and nobody get none of them; with the CO's password (admin), frames
 * with 0, 9 and 100,000 approvals, an approver type out of range, a name
 * with a NUL or of 300 bytes, absurd services, M values, token ids and
 * output room, and megabyte keys and tokens are refused before or by the
 * core, and bob cannot delete admin's token. The 2FA calls (protocol
 * 1.2): kinds and names out of range, 64 KiB signatures and keys, a CU
 * and nobody creating a 2FA officer or re-keying admin are refused, and no
 * refused create leaves a user. Login tickets (protocol 1.4): changed,
 * cut, lengthened, huge, another uid's, a deleted, locked or reset user's
 * and an expired one are refused with their codes. After every attack the
 * victim's connection still works and its objects are unchanged.
 * The shell checks that the daemon is still the same process and stops
 * with exit 0.
 * Exit: 0 all checks passed, 1 a check failed, 2 setup error.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/conf.h"
#include "wire/client.h"
#include "wire/proto.h"
#include "wire/transport.h"

#define READ_MAX (8u << 20)
#define GUESSES 64

static struct config_endpoint ep;
static int failures;

static void check(bool ok, const char *what)
{
    if (ok) {
        printf("ok: %s\n", what);
    } else {
        printf("FAIL: %s\n", what);
        failures++;
    }
}

static void check_rv(CK_RV got, CK_RV want, const char *what)
{
    if (got != want) {
        printf("FAIL: %s: 0x%lx, expected 0x%lx\n", what, (unsigned long)got,
               (unsigned long)want);
        failures++;
    } else {
        printf("ok: %s\n", what);
    }
}

static void check_not_ok(CK_RV got, const char *what)
{
    if (got == CKR_OK) {
        printf("FAIL: %s: CKR_OK\n", what);
        failures++;
    } else {
        printf("ok: %s: refused (0x%lx)\n", what, (unsigned long)got);
    }
}

/* ------------------------------------------------------------ channels */

struct chan {
    wire_link_t *l;
    wire_client_t *cl;
};

static bool xfer(void *ctx, const uint8_t *req, size_t len, uint8_t **resp,
                 size_t *resp_len)
{
    wire_link_t *l = ctx;

    if (wire_frame_write(l, req, len) != WIRE_IO_OK)
        return false;
    return wire_frame_read(l, READ_MAX, resp, resp_len) == WIRE_IO_OK;
}

static bool chan_connect(struct chan *c)
{
    char err[256];

    memset(c, 0, sizeof(*c));
    if (!wire_link_connect(&ep, NULL, &c->l, err, sizeof(err))) {
        fprintf(stderr, "hostile: connect: %s\n", err);
        return false;
    }
    if (wire_client_new(xfer, c->l, 0, &c->cl) != CKR_OK) {
        wire_link_close(c->l);
        return false;
    }
    return true;
}

/* A channel with its handshake: a new connection (token NULL) or an
 * attach; the handshake's answer in *rv. */
static bool chan_open(struct chan *c, const uint8_t *token,
                      uint8_t token_out[WIRE_TOKEN_LEN], CK_RV *rv)
{
    if (!chan_connect(c))
        return false;
    *rv = wire_cl_hello(c->cl, "hostile", token, token_out);
    return true;
}

static void chan_close(struct chan *c)
{
    wire_client_free(c->cl);
    wire_link_close(c->l);
    memset(c, 0, sizeof(*c));
}

/* ------------------------------------------------------------ objects */

static const char SECRET[] = "alice's secret value";

static CK_RV make_data(struct chan *c, hsm_sid_t sid, const char *label,
                       CK_BBOOL token, hsm_oid_t *oid)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_TOKEN, &token, sizeof(token)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_VALUE, (void *)SECRET, sizeof(SECRET) - 1},
    };

    return wire_cl_object_create(c->cl, sid, t, 5, oid);
}

/* Whether oid still holds SECRET, read by its owner. */
static bool intact(struct chan *c, hsm_sid_t sid, hsm_oid_t oid)
{
    CK_ATTRIBUTE_TYPE ty = CKA_VALUE;
    hsm_attr_t a;
    bool ok;

    memset(&a, 0, sizeof(a));
    if (wire_cl_object_get(c->cl, sid, oid, &ty, 1, &a) != CKR_OK)
        return false;
    ok = a.len == sizeof(SECRET) - 1 && memcmp(a.value, SECRET, a.len) == 0;
    free(a.value);
    return ok;
}

/* Every way an intruder's connection could touch (sid, oid) of another. */
static void intrude(struct chan *x, hsm_sid_t own_sid, hsm_sid_t sid,
                    hsm_oid_t oid, const char *who)
{
    CK_ATTRIBUTE_TYPE ty = CKA_VALUE;
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE set = {CKA_PRIVATE, &no, sizeof(no)};
    hsm_oid_t *oids = NULL, copy = 0;
    hsm_attr_t a;
    size_t n = 0;
    CK_ULONG size = 0;
    uint8_t rnd[16];
    char what[160];
    int before = failures;
    /* Session ids may be per connection: the victim's number can be the
     * intruder's own session, which it may of course use. */
    bool theirs = sid != own_sid;

    memset(&a, 0, sizeof(a));
    check_not_ok(wire_cl_object_get(x->cl, own_sid, oid, &ty, 1, &a),
                 "read another's object");
    free(a.value);
    memset(&a, 0, sizeof(a));
    check_not_ok(wire_cl_object_get(x->cl, sid, oid, &ty, 1, &a),
                 "read through the victim's session id");
    free(a.value);
    check_not_ok(wire_cl_object_size(x->cl, own_sid, oid, &size),
                 "size of another's object");
    check_not_ok(wire_cl_object_set(x->cl, own_sid, oid, &set, 1),
                 "set on another's object");
    check_not_ok(wire_cl_object_copy(x->cl, own_sid, oid, NULL, 0, &copy),
                 "copy another's object");
    check_not_ok(wire_cl_object_destroy(x->cl, own_sid, oid),
                 "destroy another's object");
    check_not_ok(wire_cl_object_destroy(x->cl, sid, oid),
                 "destroy through the victim's session id");
    if (theirs) {
        check_not_ok(wire_cl_object_find(x->cl, sid, NULL, 0, &oids, &n),
                     "find in another's session");
        free(oids);
        check_not_ok(wire_cl_random(x->cl, sid, rnd, sizeof(rnd)),
                     "random in another's session");
        check_not_ok(wire_cl_session_close(x->cl, sid),
                     "close another's session");
    } else {
        printf("note: %s: the victim's session id is also its own\n", who);
    }
    for (uint32_t g = 0; g < GUESSES; g++) {
        hsm_sid_t s = sid + g - GUESSES / 2;
        hsm_oid_t o = oid + g - GUESSES / 2;
        if (s == own_sid)
            continue;
        memset(&a, 0, sizeof(a));
        if (wire_cl_object_get(x->cl, s, o, &ty, 1, &a) == CKR_OK) {
            printf("FAIL: %s: session %u object %llu answered\n", who,
                   (unsigned)s, (unsigned long long)o);
            failures++;
        }
        free(a.value);
        if (s != sid && wire_cl_session_close(x->cl, s) == CKR_OK) {
            printf("FAIL: %s: closed session %u\n", who, (unsigned)s);
            failures++;
        }
    }
    snprintf(what, sizeof(what), "%s reaches none of the victim's ids", who);
    check(failures == before, what);
}

/* ------------------------------------------------------------ raw frames */

/* Sends raw bytes on a fresh handshaken link; 0 when the daemon answers
 * with an error reply or closes the link, never hangs past 5 s. */
static void raw_attack(const char *what, const uint8_t *bytes, size_t n,
                       bool handshake)
{
    struct chan c;
    CK_RV rv = CKR_OK;
    uint8_t *resp;
    size_t len;
    struct pollfd p;
    bool ok = true;

    if (handshake) {
        if (!chan_open(&c, NULL, NULL, &rv) || rv != CKR_OK) {
            check(false, what);
            return;
        }
    } else if (!chan_connect(&c)) {
        check(false, what);
        return;
    }
    if (write(wire_link_fd(c.l), bytes, n) != (ssize_t)n) {
        /* the daemon may close first: that is a refusal too */
        chan_close(&c);
        check(true, what);
        return;
    }
    p.fd = wire_link_fd(c.l);
    p.events = POLLIN;
    if (poll(&p, 1, 5000) <= 0) {
        ok = false; /* neither an answer nor a close */
    } else if (wire_frame_read(c.l, READ_MAX, &resp, &len) == WIRE_IO_OK) {
        /* an error reply is fine; CKR_OK would need a valid request */
        free(resp);
    }
    chan_close(&c);
    check(ok, what);
}

static void frame(uint8_t *out, const uint8_t *payload, uint32_t n)
{
    out[0] = (uint8_t)(n >> 24);
    out[1] = (uint8_t)(n >> 16);
    out[2] = (uint8_t)(n >> 8);
    out[3] = (uint8_t)n;
    memcpy(out + 4, payload, n);
}

static void raw_attacks(void)
{
    static const uint8_t big[4] = {0xff, 0xff, 0xff, 0xf0};
    /* Request{id=5, field 999: bytes ""}: an unknown request kind */
    static const uint8_t unknown[] = {0x08, 0x05, 0xba, 0x3e, 0x00};
    /* Request{id=6, field 13 (login): bytes of declared length 2^40} */
    static const uint8_t hugelen[] = {0x08, 0x06, 0x6a, 0x80, 0x80,
                                      0x80, 0x80, 0x80, 0x20, 0x00};
    /* a varint that never ends */
    static const uint8_t badvarint[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    uint8_t buf[4 + 4096];

    raw_attack("a header announcing 4 GiB", big, sizeof(big), true);
    raw_attack("a header announcing 4 GiB before the handshake", big,
               sizeof(big), false);
    frame(buf, unknown, sizeof(unknown));
    raw_attack("an unknown request kind", buf, 4 + sizeof(unknown), true);
    frame(buf, hugelen, sizeof(hugelen));
    raw_attack("a field declaring 2^40 bytes", buf, 4 + sizeof(hugelen), true);
    frame(buf, badvarint, sizeof(badvarint));
    raw_attack("an endless varint", buf, 4 + sizeof(badvarint), true);
    frame(buf, unknown, 0);
    raw_attack("an empty frame", buf, 4, true);
    raw_attack("an empty frame before the handshake", buf, 4, false);
    /* a frame announcing 100 bytes, 10 sent, then nothing (the close) */
    buf[0] = 0, buf[1] = 0, buf[2] = 0, buf[3] = 100;
    memset(buf + 4, 0x41, 10);
    {
        struct chan c;
        CK_RV rv;
        bool ok = chan_open(&c, NULL, NULL, &rv) && rv == CKR_OK &&
                  write(wire_link_fd(c.l), buf, 14) == 14;
        if (ok)
            chan_close(&c);
        check(ok, "a truncated frame, then the link closed");
    }
    /* 200 frames of random bytes, before and after a handshake */
    for (int i = 0; i < 200; i++) {
        uint32_t n = 1 + (uint32_t)(i * 37 % 4000);
        if (getrandom(buf + 4, n, 0) != (ssize_t)n)
            break;
        frame(buf, buf + 4, n);
        raw_attack(i == 0 ? "random payloads (200)" : "random payload", buf,
                   4 + n, i % 2 == 0);
    }
}

/* ------------------------------------------------------------ templates */

static void huge_templates(struct chan *x, hsm_sid_t sid)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL yes = CK_TRUE;
    size_t big = 3u << 20, count = 100000;
    uint8_t *v = calloc(1, big);
    CK_ATTRIBUTE *t = calloc(count, sizeof(*t));
    hsm_oid_t oid = 0;

    if (v == NULL || t == NULL) {
        free(v);
        free(t);
        check(false, "memory for the huge templates");
        return;
    }
    {
        CK_ATTRIBUTE one[] = {
            {CKA_CLASS, &cls, sizeof(cls)},
            {CKA_TOKEN, &yes, sizeof(yes)},
            {CKA_VALUE, v, big},
        };
        check_not_ok(wire_cl_object_create(x->cl, sid, one, 3, &oid),
                     "a 3 MiB attribute value");
    }
    for (size_t i = 0; i < count; i++) {
        t[i].type = CKA_VENDOR_DEFINED + i;
        t[i].pValue = &yes;
        t[i].ulValueLen = 1;
    }
    t[0].type = CKA_CLASS;
    t[0].pValue = &cls;
    t[0].ulValueLen = sizeof(cls);
    check_not_ok(wire_cl_object_create(x->cl, sid, t, count, &oid),
                 "a template of 100,000 attributes");
    free(v);
    free(t);
}

/* ------------------------------------------------------------ quorum */

/*
 * Sends q (packed here, so that it may break the client's own rules) on a
 * handshaken channel; the reply's rv in *rv and, when wanted, the reply.
 * false: no reply (the daemon closed the link).
 */
static bool raw_call(struct chan *c, Nimbus__Request *q, CK_RV *rv,
                     Nimbus__Reply **out)
{
    uint8_t *frame = NULL, *resp = NULL;
    size_t len = 0, rlen = 0;
    Nimbus__Reply *rep;

    *rv = CKR_GENERAL_ERROR;
    if (out != NULL)
        *out = NULL;
    q->id = 4242;
    if (!wire_pack(&q->base, READ_MAX, &frame, &len))
        return false;
    if (wire_frame_write(c->l, frame, len) != WIRE_IO_OK ||
        wire_frame_read(c->l, READ_MAX, &resp, &rlen) != WIRE_IO_OK) {
        free(frame);
        return false;
    }
    free(frame);
    rep = nimbus__reply__unpack(NULL, rlen, resp);
    free(resp);
    if (rep == NULL)
        return false;
    *rv = (CK_RV)rep->rv;
    if (out != NULL)
        *out = rep;
    else
        nimbus__reply__free_unpacked(rep, NULL);
    return true;
}

/* A QuorumApproveReq of n approvals, each (type, name, a short sig). */
static CK_RV raw_approve(struct chan *c, size_t n, uint32_t type,
                         const uint8_t *name, size_t name_len, bool *answered)
{
    static uint8_t sig[256], tok[64];
    Nimbus__QuorumApproval *ap = calloc(n ? n : 1, sizeof(*ap));
    Nimbus__QuorumApproval **pp = calloc(n ? n : 1, sizeof(*pp));
    Nimbus__QuorumApproveReq m;
    Nimbus__Request q;
    CK_RV rv = CKR_GENERAL_ERROR;

    *answered = false;
    if (ap == NULL || pp == NULL) {
        free(ap);
        free(pp);
        return rv;
    }
    nimbus__quorum_approve_req__init(&m);
    m.token.data = tok;
    m.token.len = sizeof(tok);
    for (size_t i = 0; i < n; i++) {
        nimbus__quorum_approval__init(&ap[i]);
        ap[i].type = type;
        ap[i].name.data = (uint8_t *)name;
        ap[i].name.len = name_len;
        /* big approvals carry a big signature, small ones none */
        ap[i].signature.data = sig;
        ap[i].signature.len = n > 100 ? 0 : sizeof(sig);
        pp[i] = &ap[i];
    }
    m.n_approvals = n;
    m.approvals = pp;
    nimbus__request__init(&q);
    q.call_case = NIMBUS__REQUEST__CALL_QUORUM_APPROVE;
    q.quorum_approve = &m;
    *answered = raw_call(c, &q, &rv, NULL);
    free(ap);
    free(pp);
    return rv;
}

static void quorum_attacks(struct chan *bob, const char *co_pw)
{
    static const uint8_t co_name[] = "admin";
    static const uint8_t nul_name[] = {'a', 'd', 'm', 'i', 'n', 0, 'x'};
    uint8_t long_name[300], tokbuf[HSM_QUORUM_TOKEN_BYTES_MAX];
    uint8_t *mb = calloc(1, 1u << 20);
    hsm_quorum_token_info_t *list = NULL;
    hsm_quorum_approval_t ap;
    struct chan co, anon;
    size_t n = 0, len = sizeof(tokbuf);
    unsigned mv = 0;
    bool answered;
    CK_RV rv, res[1];

    if (mb == NULL) {
        check(false, "memory for the quorum attacks");
        return;
    }
    memset(long_name, 'a', sizeof(long_name));
    memset(&ap, 0, sizeof(ap));
    ap.type = HSM_USER_CO;
    strcpy(ap.name, "admin");
    ap.sig = mb;
    ap.sig_len = 256;

    /* bob (a CU) and a connection with no login get no quorum call */
    for (int who = 0; who < 2; who++) {
        struct chan *x = bob;
        const char *w = who == 0 ? "a CU" : "nobody logged in";
        char what[128];

        if (who == 1) {
            if (!chan_open(&anon, NULL, NULL, &rv) || rv != CKR_OK) {
                check(false, "a connection for the anonymous calls");
                break;
            }
            x = &anon;
        }
#define NOT_OK(call, text)                                                     \
    do {                                                                       \
        snprintf(what, sizeof(what), "%s: %s", w, text);                       \
        check_not_ok(call, what);                                              \
    } while (0)
        NOT_OK(wire_cl_quorum_register_key(x->cl, who == 0 ? "bob" : "admin",
                                           mb, 32, mb, 256, mb, 300),
               "registerQuorumPubKey");
        NOT_OK(wire_cl_quorum_set_m(x->cl, 3, 1), "setMValue");
        len = sizeof(tokbuf);
        NOT_OK(wire_cl_quorum_get_token(x->cl, 3, who == 0 ? "bob" : "admin",
                                        tokbuf, &len),
               "getToken");
        NOT_OK(wire_cl_quorum_approve(x->cl, mb, 64, &ap, 1, res),
               "approveToken");
        NOT_OK(wire_cl_quorum_list_tokens(x->cl, &list, &n), "listTokens");
        free(list);
        list = NULL;
        {
            bool none = true;

            for (uint32_t id = 0; id < 64; id++)
                none = none && wire_cl_quorum_del_token(x->cl, id) != CKR_OK;
            snprintf(what, sizeof(what), "%s: delToken of ids 0-63", w);
            check(none, what);
        }
#undef NOT_OK
        if (who == 1)
            chan_close(&anon);
    }
    if (co_pw == NULL) {
        printf("note: no CO password: the CO's quorum frames are not "
               "tried\n");
        free(mb);
        return;
    }
    if (!chan_open(&co, NULL, NULL, &rv) || rv != CKR_OK ||
        wire_cl_login(co.cl, HSM_LOGIN_SO, "admin", (const uint8_t *)co_pw,
                      strlen(co_pw)) != CKR_OK) {
        check(false, "the CO's connection for the quorum frames");
        free(mb);
        return;
    }
    /* approval counts and fields the server refuses before the core */
    check_rv(raw_approve(&co, 0, HSM_USER_CO, co_name, 5, &answered),
             CKR_ARGUMENTS_BAD, "approveToken with no approval");
    check_rv(raw_approve(&co, HSM_QUORUM_M_MAX + 1, HSM_USER_CO, co_name, 5,
                         &answered),
             CKR_ARGUMENTS_BAD, "approveToken with 9 approvals");
    check_rv(raw_approve(&co, 1, 77, co_name, 5, &answered), CKR_ARGUMENTS_BAD,
             "an approver type out of range");
    check_rv(
        raw_approve(&co, 1, HSM_USER_CO, nul_name, sizeof(nul_name), &answered),
        CKR_ARGUMENTS_BAD, "an approver name with a NUL");
    check_rv(raw_approve(&co, 1, HSM_USER_CO, long_name, sizeof(long_name),
                         &answered),
             CKR_ARGUMENTS_BAD, "an approver name of 300 bytes");
    rv = raw_approve(&co, 100000, HSM_USER_CO, co_name, 5, &answered);
    check(!answered || rv != CKR_OK, "100,000 approvals in one frame");
    chan_close(&co);
    if (!chan_open(&co, NULL, NULL, &rv) || rv != CKR_OK ||
        wire_cl_login(co.cl, HSM_LOGIN_SO, "admin", (const uint8_t *)co_pw,
                      strlen(co_pw)) != CKR_OK) {
        check(false, "the CO's connection again");
        free(mb);
        return;
    }
    check_not_ok(wire_cl_quorum_approve(co.cl, mb, 1u << 20, &ap, 1, res),
                 "approveToken of a 1 MiB token");
    check_not_ok(wire_cl_quorum_register_key(co.cl, "admin", mb, 1u << 19, mb,
                                             1u << 16, mb, 1u << 19),
                 "registerQuorumPubKey of megabyte fields");
    check_not_ok(
        wire_cl_quorum_register_key(co.cl, "admin", mb, 0, mb, 0, mb, 0),
        "registerQuorumPubKey of empty fields");
    check_not_ok(wire_cl_quorum_set_m(co.cl, UINT32_MAX, UINT32_MAX),
                 "setMValue of service and M 2^32-1");
    check_not_ok(wire_cl_quorum_set_m(co.cl, 3, 0), "setMValue 3 0");
    check_not_ok(wire_cl_quorum_get_m(co.cl, 9, &mv), "getMValue 9");
    check_not_ok(wire_cl_quorum_del_token(co.cl, UINT32_MAX),
                 "delToken 2^32-1");
    {
        Nimbus__QuorumGetTokenReq m;
        Nimbus__Request q;
        Nimbus__Reply *rep = NULL;

        nimbus__quorum_get_token_req__init(&m);
        m.service = 3;
        m.name.data = (uint8_t *)co_name;
        m.name.len = 5;
        m.has_out_room = true;
        m.out_room = UINT64_MAX;
        nimbus__request__init(&q);
        q.call_case = NIMBUS__REQUEST__CALL_QUORUM_GET_TOKEN;
        q.quorum_get_token = &m;
        answered = raw_call(&co, &q, &rv, &rep);
        check(answered &&
                  (rv != CKR_OK ||
                   (rep->result_case == NIMBUS__REPLY__RESULT_OUTPUT &&
                    rep->output->out.len <= HSM_QUORUM_TOKEN_BYTES_MAX)),
              "getToken with an output room of 2^64-1: at most a token");
        if (rep != NULL)
            nimbus__reply__free_unpacked(rep, NULL);
        /* bob cannot delete the token admin may now hold */
        if (answered && rv == CKR_OK &&
            wire_cl_quorum_list_tokens(co.cl, &list, &n) == CKR_OK && n > 0) {
            check_not_ok(wire_cl_quorum_del_token(bob->cl, list[0].id),
                         "bob deletes admin's token");
            free(list);
            list = NULL;
            check(wire_cl_quorum_list_tokens(co.cl, &list, &n) == CKR_OK &&
                      n > 0,
                  "admin's token is still there");
            free(list);
        }
    }
    chan_close(&co);
    free(mb);
}

/* ------------------------------------------------------------ 2FA */

/* A LoginChallengeReq with a raw name (NUL bytes, any length) and kind. */
static CK_RV raw_challenge(struct chan *c, uint32_t kind, const uint8_t *name,
                           size_t len, bool *answered)
{
    Nimbus__LoginChallengeReq m;
    Nimbus__Request q;
    CK_RV rv;

    nimbus__login_challenge_req__init(&m);
    m.kind = kind;
    m.has_name = true;
    m.name.data = (uint8_t *)name;
    m.name.len = len;
    nimbus__request__init(&q);
    q.call_case = NIMBUS__REQUEST__CALL_LOGIN_CHALLENGE;
    q.login_challenge = &m;
    *answered = raw_call(c, &q, &rv, NULL);
    return rv;
}

/*
 * The 2FA calls (protocol 1.2): kinds and names out of range, signatures
 * and keys past hsm.h's limits, a CU or nobody creating a 2FA officer or
 * re-keying admin. None succeeds, and admin's password still logs in
 * (checked by the caller's later use of it).
 */
static void tfa_attacks(struct chan *bob, const char *co_pw)
{
    static const uint8_t nul_name[] = {'a', 'd', 'm', 'i', 'n', 0, 'x'};
    uint8_t long_name[300], digest[HSM_DIGEST_LEN];
    uint8_t *big = calloc(1, 64u << 10);
    struct chan anon, co;
    bool answered;
    CK_RV rv;

    if (big == NULL) {
        check(false, "memory for the 2FA attacks");
        return;
    }
    memset(long_name, 'a', sizeof(long_name));
    if (!chan_open(&anon, NULL, NULL, &rv) || rv != CKR_OK) {
        check(false, "a connection for the 2FA calls");
        free(big);
        return;
    }
    check_rv(raw_challenge(&anon, 7, (const uint8_t *)"admin", 5, &answered),
             CKR_ARGUMENTS_BAD, "a 2FA challenge of kind 7");
    check_rv(raw_challenge(&anon, HSM_LOGIN_SO, nul_name, sizeof(nul_name),
                           &answered),
             CKR_ARGUMENTS_BAD, "a 2FA challenge for a name with a NUL");
    check_rv(raw_challenge(&anon, HSM_LOGIN_SO, long_name, sizeof(long_name),
                           &answered),
             CKR_ARGUMENTS_BAD, "a 2FA challenge for a name of 300 bytes");
    check_rv(wire_cl_login_challenge(anon.cl, HSM_LOGIN_SO, "admin", digest),
             CKR_OK, "a 2FA challenge, logged out");
    /* a login with a 64 KiB signature, for a name no user has (nobody's
     * failure count moves), and of a kind out of range */
    check_rv(wire_cl_login_2fa(anon.cl, HSM_LOGIN_SO, "nosuchuser",
                               (const uint8_t *)"password1", 9, big, 64u << 10),
             CKR_PIN_INCORRECT, "a 2FA login with a 64 KiB signature");
    check_rv(wire_cl_login_2fa(anon.cl, (hsm_login_kind_t)9, "admin",
                               (const uint8_t *)"password1", 9, big, 256),
             CKR_USER_TYPE_INVALID, "a 2FA login of kind 9");
    /* creating a 2FA officer, re-keying admin: nobody, a CU */
    for (int who = 0; who < 2; who++) {
        struct chan *x = who == 0 ? &anon : bob;

        check_not_ok(
            wire_cl_user_create_2fa(x->cl, "evil", (const uint8_t *)"evilpass1",
                                    9, big, 400, big, 256, NULL),
            who == 0 ? "nobody creates a 2FA CO" : "a CU creates a 2FA CO");
        check_not_ok(wire_cl_user_set_password_2fa(x->cl, "admin",
                                                   (const uint8_t *)"evilpass1",
                                                   9, big, 400, big, 256),
                     who == 0 ? "nobody re-keys admin" : "a CU re-keys admin");
    }
    chan_close(&anon);
    if (co_pw == NULL) {
        free(big);
        return;
    }
    if (!chan_open(&co, NULL, NULL, &rv) || rv != CKR_OK ||
        wire_cl_login(co.cl, HSM_LOGIN_SO, "admin", (const uint8_t *)co_pw,
                      strlen(co_pw)) != CKR_OK) {
        check(false, "the CO's connection for the 2FA frames (admin's "
                     "password still logs in)");
        free(big);
        return;
    }
    /* past the limits: refused by the server before the core */
    check_rv(wire_cl_user_create_2fa(co.cl, "evil",
                                     (const uint8_t *)"evilpass1", 9, big,
                                     64u << 10, big, 256, NULL),
             CKR_ARGUMENTS_BAD, "createUser -2fa with a 64 KiB key");
    check_rv(wire_cl_user_create_2fa(co.cl, "evil",
                                     (const uint8_t *)"evilpass1", 9, big, 400,
                                     big, HSM_TFA_SIG_MAX + 1, NULL),
             CKR_ARGUMENTS_BAD, "createUser -2fa with a 513-byte signature");
    check_rv(wire_cl_user_set_password_2fa(co.cl, "admin",
                                           (const uint8_t *)"evilpass1", 9, big,
                                           64u << 10, big, 256),
             CKR_ARGUMENTS_BAD, "changePswd -2fa with a 64 KiB key");
    /* within them, not a key: the core's answer, nothing created */
    check_not_ok(wire_cl_user_create_2fa(co.cl, "evil",
                                         (const uint8_t *)"evilpass1", 9, big,
                                         400, big, 256, NULL),
                 "createUser -2fa with 400 zero bytes for a key");
    check_not_ok(wire_cl_user_create_2fa(co.cl, "evil",
                                         (const uint8_t *)"evilpass1", 9, NULL,
                                         0, NULL, 0, NULL),
                 "createUser -2fa with no key and no signature");
    {
        hsm_user_info_t *u = NULL;
        size_t n = 0;
        bool evil = false;

        check_rv(wire_cl_user_list(co.cl, &u, &n), CKR_OK, "listUsers");
        for (size_t i = 0; i < n; i++)
            evil = evil || strcmp(u[i].name, "evil") == 0;
        free(u);
        check(!evil, "no refused createUser -2fa made its user");
    }
    chan_close(&co);
    free(big);
}

/* ------------------------------------------------------------ another uid */

/* As root: a child that becomes nobody presents alice's real token. */
static void other_uid_attach(const uint8_t token[WIRE_TOKEN_LEN])
{
    struct passwd *pw = getpwnam("nobody");
    struct group *gr = getgrnam("nogroup");
    int status = 0;
    pid_t pid;

    if (geteuid() != 0 || pw == NULL || gr == NULL) {
        printf("note: not root (or no nobody/nogroup): the other-uid attach "
               "is not tried\n");
        return;
    }
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        struct chan c;
        CK_RV rv = CKR_OK;

        if (setgroups(0, NULL) != 0 || setgid(gr->gr_gid) != 0 ||
            setuid(pw->pw_uid) != 0)
            _exit(2);
        if (!chan_open(&c, token, NULL, &rv))
            _exit(3); /* cannot even connect: see the daemon's conf */
        chan_close(&c);
        _exit(rv == CKR_OK ? 1 : 0);
    }
    check(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
              WEXITSTATUS(status) == 0,
          "alice's attach token from another uid (nobody) is refused");
}

/* ------------------------------------------------------------ tickets */

/* As root: a child that becomes nobody redeems alice's real ticket. */
static void other_uid_redeem(const uint8_t t[HSM_TICKET_LEN])
{
    struct passwd *pw = getpwnam("nobody");
    struct group *gr = getgrnam("nogroup");
    int status = 0;
    pid_t pid;

    if (geteuid() != 0 || pw == NULL || gr == NULL) {
        printf("note: not root (or no nobody/nogroup): the other-uid ticket "
               "is not tried\n");
        return;
    }
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        struct chan c;
        CK_RV rv = CKR_OK;

        if (setgroups(0, NULL) != 0 || setgid(gr->gr_gid) != 0 ||
            setuid(pw->pw_uid) != 0)
            _exit(2);
        if (!chan_open(&c, NULL, NULL, &rv) || rv != CKR_OK)
            _exit(3);
        rv = wire_cl_login_redeem(c.cl, t, HSM_TICKET_LEN);
        chan_close(&c);
        _exit(rv == CKR_PIN_INCORRECT ? 0 : 1);
    }
    check(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
              WEXITSTATUS(status) == 0,
          "alice's login ticket from another uid (nobody): CKR_PIN_INCORRECT");
}

/* A fresh connection of this uid logs in with ticket t (len bytes);
 * returns the answer and whether anybody is logged in after. */
static CK_RV redeem_fresh(const uint8_t *t, size_t len, bool *in)
{
    hsm_user_type_t type = HSM_USER_NONE;
    hsm_uid_t uid = 0;
    struct chan c;
    CK_RV rv = CKR_OK;

    *in = false;
    if (!chan_open(&c, NULL, NULL, &rv) || rv != CKR_OK)
        return CKR_DEVICE_REMOVED;
    rv = wire_cl_login_redeem(c.cl, t, len);
    if (wire_cl_conn_user_type(c.cl, &type, &uid) == CKR_OK)
        *in = type != HSM_USER_NONE;
    chan_close(&c);
    return rv;
}

/* A user made by the CO, logged in once for a ticket, and logged out. */
static bool user_ticket(struct chan *co, const char *name,
                        uint8_t t[HSM_TICKET_LEN])
{
    static const uint8_t pw[] = "tktpass1";
    hsm_uid_t uid = 0;
    struct chan c;
    CK_RV rv = CKR_OK;
    bool ok;

    if (wire_cl_user_create(co->cl, HSM_USER_CU, name, pw, sizeof(pw) - 1,
                            &uid) != CKR_OK)
        return false;
    if (!chan_open(&c, NULL, NULL, &rv) || rv != CKR_OK)
        return false;
    ok = wire_cl_login(c.cl, HSM_LOGIN_USER, name, pw, sizeof(pw) - 1) ==
             CKR_OK &&
         wire_cl_login_ticket(c.cl, t) == CKR_OK &&
         wire_cl_logout(c.cl) == CKR_OK;
    chan_close(&c);
    return ok;
}

/*
 * Login tickets (protocol 1.4): alice's real ticket (from her victim
 * connection) changed in any byte, cut, lengthened, zeroed or huge;
 * redeemed by another uid; a deleted user's; a locked user's; an expired
 * one (the daemon's login_ticket_lifetime is 3 s). Each refused with the
 * documented code and nobody logged in; alice's own uid then logs in
 * with it (what the refusals are measured against).
 */
static void ticket_attacks(struct chan *alice, const char *co_pw)
{
    uint8_t t[HSM_TICKET_LEN], bad[HSM_TICKET_LEN + 1], *huge;
    struct chan co;
    bool in = false, all = true;
    CK_RV rv = CKR_OK;

    check_rv(wire_cl_login_ticket(alice->cl, t), CKR_OK,
             "alice gets a login ticket");
    for (size_t i = 0; i < HSM_TICKET_LEN; i++) {
        memcpy(bad, t, HSM_TICKET_LEN);
        bad[i] ^= (uint8_t)(1u << (i % 8));
        rv = redeem_fresh(bad, HSM_TICKET_LEN, &in);
        all = all && rv == CKR_PIN_INCORRECT && !in;
    }
    check(all, "every one-bit change of the ticket: CKR_PIN_INCORRECT, "
               "nobody logged in");
    memcpy(bad, t, HSM_TICKET_LEN);
    bad[HSM_TICKET_LEN] = 0;
    check_rv(redeem_fresh(bad, HSM_TICKET_LEN + 1, &in), CKR_PIN_INCORRECT,
             "a ticket one byte longer");
    check_rv(redeem_fresh(t, HSM_TICKET_LEN - 1, &in), CKR_PIN_INCORRECT,
             "a ticket cut by one byte");
    check_rv(redeem_fresh(t, 0, &in), CKR_PIN_INCORRECT, "an empty ticket");
    memset(bad, 0, sizeof(bad));
    check_rv(redeem_fresh(bad, HSM_TICKET_LEN, &in), CKR_PIN_INCORRECT,
             "a ticket of zeros");
    huge = calloc(1, 1u << 20);
    if (huge != NULL) {
        rv = redeem_fresh(huge, 1u << 20, &in);
        check(rv != CKR_OK && !in, "a 1 MiB ticket is refused");
        free(huge);
    }
    other_uid_redeem(t);
    check_rv(redeem_fresh(t, HSM_TICKET_LEN, &in), CKR_OK,
             "alice's own uid logs in with the real ticket");
    check(in, "and is logged in");

    if (co_pw == NULL)
        return;
    if (!chan_open(&co, NULL, NULL, &rv) || rv != CKR_OK ||
        wire_cl_login(co.cl, HSM_LOGIN_SO, "admin", (const uint8_t *)co_pw,
                      strlen(co_pw)) != CKR_OK) {
        check(false, "the CO logs in for the ticket checks");
        return;
    }
    /* deleted */
    check(user_ticket(&co, "tktgone", t), "tktgone gets a ticket");
    check_rv(wire_cl_user_delete(co.cl, "tktgone"), CKR_OK,
             "the CO deletes tktgone");
    check_rv(redeem_fresh(t, HSM_TICKET_LEN, &in), CKR_PIN_INCORRECT,
             "a deleted user's ticket");
    check(!in, "nobody logged in");
    /* locked out */
    check(user_ticket(&co, "tktlock", t), "tktlock gets a ticket");
    for (int i = 0; i < 5; i++) {
        struct chan c;

        if (chan_open(&c, NULL, NULL, &rv) && rv == CKR_OK) {
            (void)wire_cl_login(c.cl, HSM_LOGIN_USER, "tktlock",
                                (const uint8_t *)"wrongpw1", 8);
            chan_close(&c);
        }
    }
    check_rv(redeem_fresh(t, HSM_TICKET_LEN, &in), CKR_PIN_LOCKED,
             "a locked-out user's ticket");
    /* its password reset by the CO: unlocked, but the ticket stays dead */
    check_rv(wire_cl_user_set_password(co.cl, "tktlock",
                                       (const uint8_t *)"tktpass2", 8),
             CKR_OK, "the CO resets tktlock's password");
    check_rv(redeem_fresh(t, HSM_TICKET_LEN, &in), CKR_PIN_INCORRECT,
             "the ticket after the password reset");
    /* expired */
    check(user_ticket(&co, "tktold", t), "tktold gets a ticket");
    sleep(4);
    check_rv(redeem_fresh(t, HSM_TICKET_LEN, &in), CKR_PIN_EXPIRED,
             "an expired ticket (lifetime 3 s, 4 s later)");
    check(!in, "nobody logged in");
    chan_close(&co);
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    struct chan a, a2, b, f;
    uint8_t token[WIRE_TOKEN_LEN], forged[WIRE_TOKEN_LEN];
    hsm_sid_t sa = 0, sa2 = 0, sb = 0;
    hsm_oid_t tok = 0, sess = 0, *oids = NULL;
    const char *why;
    size_t n = 0;
    CK_RV rv = CKR_OK;

    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: hostile ENDPOINT ALICE_PW BOB_PW [CO_PW]\n");
        return 2;
    }
    why = config_parse_endpoint(argv[1], &ep);
    if (why != NULL || ep.kind != CONFIG_EP_UNIX) {
        fprintf(stderr, "hostile: %s: %s\n", argv[1], why ? why : "not unix");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* The victim: alice, a token object and a session object. */
    if (!chan_open(&a, NULL, token, &rv) || rv != CKR_OK ||
        wire_cl_login(a.cl, HSM_LOGIN_USER, "alice", (uint8_t *)argv[2],
                      strlen(argv[2])) != CKR_OK ||
        wire_cl_session_open(a.cl, true, &sa) != CKR_OK ||
        make_data(&a, sa, "victim-token", CK_TRUE, &tok) != CKR_OK ||
        make_data(&a, sa, "victim-session", CK_FALSE, &sess) != CKR_OK) {
        fprintf(stderr, "hostile: the victim's setup failed\n");
        return 2;
    }

    /* An attacker with a login of its own, and one with none. */
    if (!chan_open(&b, NULL, NULL, &rv) || rv != CKR_OK ||
        wire_cl_login(b.cl, HSM_LOGIN_USER, "bob", (uint8_t *)argv[3],
                      strlen(argv[3])) != CKR_OK ||
        wire_cl_session_open(b.cl, true, &sb) != CKR_OK) {
        fprintf(stderr, "hostile: the attacker's setup failed\n");
        return 2;
    }
    intrude(&b, sb, sa, tok, "bob, logged in (token object)");
    intrude(&b, sb, sa, sess, "bob, logged in (session object)");
    huge_templates(&b, sb);
    quorum_attacks(&b, argc == 5 ? argv[4] : NULL);
    tfa_attacks(&b, argc == 5 ? argv[4] : NULL);
    check_rv(wire_cl_object_find(b.cl, sb, NULL, 0, &oids, &n), CKR_OK,
             "bob finds in his own session");
    for (size_t i = 0; i < n; i++)
        check(oids[i] != tok && oids[i] != sess,
              "bob's find lists none of alice's objects");
    free(oids);
    oids = NULL;
    check_rv(wire_cl_logout(b.cl), CKR_OK, "bob logs out");
    intrude(&b, sb, sa, tok, "bob, logged out");

    /* Attach tokens: forged ones, and the real one from another uid. */
    for (int i = 0; i < 3; i++) {
        memcpy(forged, token, sizeof(forged));
        forged[i * 13 % WIRE_TOKEN_LEN] ^= 0x01;
        if (!chan_open(&f, forged, NULL, &rv))
            rv = CKR_DEVICE_REMOVED; /* closed: refused */
        else
            chan_close(&f);
        check(rv != CKR_OK, "a forged attach token is refused");
    }
    other_uid_attach(token);
    ticket_attacks(&a, argc == 5 ? argv[4] : NULL);

    /* Bad frames and payloads, huge lengths and counts. */
    raw_attacks();

    /* The victim is unharmed. */
    check(intact(&a, sa, tok), "alice's token object is intact");
    check(intact(&a, sa, sess), "alice's session object is intact");

    /* Calls after close. */
    check_rv(wire_cl_session_close(a.cl, sa), CKR_OK, "alice closes");
    check_rv(wire_cl_object_find(a.cl, sa, NULL, 0, &oids, &n),
             CKR_SESSION_HANDLE_INVALID, "a find on the closed session");
    free(oids);
    oids = NULL;
    check_rv(wire_cl_session_close(a.cl, sa), CKR_SESSION_HANDLE_INVALID,
             "closing it again");
    check_rv(wire_cl_session_open(a.cl, true, &sa2), CKR_OK, "a new session");
    check(sa2 != sa, "the new session id is not the closed one");
    check(!intact(&a, sa2, sess), "the session object ended with its session");
    check(intact(&a, sa2, tok), "the token object stays");
    check_rv(wire_cl_logout(a.cl), CKR_OK, "alice logs out");
    check_not_ok(make_data(&a, sa2, "after-logout", CK_TRUE, &tok),
                 "a create after logout");
    /* The same uid attaches with the real token (what the refusals above
     * are measured against), sees the connection's session; then the
     * connection ends with its last link and the token names nothing. */
    check(chan_open(&a2, token, NULL, &rv) && rv == CKR_OK,
          "alice's own uid attaches with her token");
    check_rv(wire_cl_random(a2.cl, sa2, (uint8_t[8]){0}, 8), CKR_OK,
             "the attached link uses the connection's session");
    chan_close(&a2);
    chan_close(&a);
    /* The daemon notices the close on its own thread: until then an
     * attach may still find the connection (and keeps it alive while it
     * is open); within 5 s it must be gone. */
    for (int i = 0; i < 100; i++) {
        if (!chan_open(&a2, token, NULL, &rv))
            rv = CKR_DEVICE_REMOVED;
        else
            chan_close(&a2);
        if (rv != CKR_OK)
            break;
        usleep(50000);
    }
    check(rv != CKR_OK, "the token of an ended connection is refused");
    check_rv(wire_cl_random(b.cl, sa2, (uint8_t[8]){0}, 8),
             CKR_SESSION_HANDLE_INVALID, "the ended connection's session");
    chan_close(&b);

    printf("%d failure(s)\n", failures);
    return failures == 0 ? 0 : 1;
}
