/*
 * test_roles.c - the permission table row by row, and the argument checks
 * (NULL pointers, zero lengths, short buffers, invalid handles and slots).
 *
 * Each table row {role, operation, expected code} becomes one cmocka test
 * with its own fresh store, so that a report names every row that fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11util.h"

enum role { R_PUBLIC, R_PRECO, R_CO, R_CU, R_AU, R_COUNT };

static const char *const role_names[R_COUNT] = {
    [R_PUBLIC] = "unauthenticated",
    [R_PRECO] = "PRECO",
    [R_CO] = "CO",
    [R_CU] = "CU",
    [R_AU] = "AU",
};

/* What a row's operation works with. */
struct role_ctx {
    CK_SESSION_HANDLE s;
    /* alice's token object: a valid handle for the CU, else the handle
     * alice had before she logged out (an object the caller cannot see) */
    CK_OBJECT_HANDLE obj;
    const char *own_old; /* C_SetPIN on oneself */
    const char *own_new;
    CK_ULONG found; /* handles a find returned */
};

typedef CK_RV (*role_op_fn)(struct role_ctx *c);

struct role_row {
    enum role role;
    const char *op;
    role_op_fn fn;
    CK_RV want;
    long want_found; /* for finds: handles expected; -1: not a find */
};

static struct role_ctx ctx;

#define ROLE_OBJ_LABEL "roles-obj"
#define STALE_HANDLE 0x4242UL

/* ------------------------------------------------------------ operations */

static CK_RV op_token_info(struct role_ctx *c)
{
    CK_TOKEN_INFO ti;

    (void)c;
    return p11->C_GetTokenInfo(0, &ti);
}

static CK_RV op_session_info(struct role_ctx *c)
{
    CK_SESSION_INFO si;

    return p11->C_GetSessionInfo(c->s, &si);
}

static CK_RV op_mechanism_list(struct role_ctx *c)
{
    CK_ULONG n = 0;

    (void)c;
    return p11->C_GetMechanismList(0, NULL, &n);
}

static CK_RV op_set_own_pin(struct role_ctx *c)
{
    return p11_set_pin(c->s, c->own_old, c->own_new);
}

static CK_RV op_init_pin_create(struct role_ctx *c)
{
    return p11_init_pin(c->s, "carol:carolpw1");
}

static CK_RV op_init_pin_reset(struct role_ctx *c)
{
    return p11_init_pin(c->s, "alice:alicenew9");
}

static CK_RV op_create(struct role_ctx *c)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL f = CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_PRIVATE, &f, sizeof(f)},
        {CKA_TOKEN, &f, sizeof(f)},
        {CKA_LABEL, "new", 3},
    };
    CK_OBJECT_HANDLE h;

    return p11->C_CreateObject(c->s, t, 4, &h);
}

static CK_RV op_copy(struct role_ctx *c)
{
    CK_OBJECT_HANDLE h;
    CK_ATTRIBUTE t = {CKA_LABEL, "copied", 6};

    return p11->C_CopyObject(c->s, c->obj, &t, 1, &h);
}

static CK_RV op_destroy(struct role_ctx *c)
{
    return p11->C_DestroyObject(c->s, c->obj);
}

static CK_RV op_set_attr(struct role_ctx *c)
{
    CK_ATTRIBUTE t = {CKA_LABEL, "renamed", 7};

    return p11->C_SetAttributeValue(c->s, c->obj, &t, 1);
}

static CK_RV op_find(struct role_ctx *c)
{
    CK_OBJECT_HANDLE h[16];
    CK_ULONG n = 0;
    CK_RV rv;

    rv = p11->C_FindObjectsInit(c->s, NULL, 0);
    if (rv != CKR_OK) {
        return rv;
    }
    c->found = 0;
    do {
        rv = p11->C_FindObjects(c->s, h, 16, &n);
        if (rv != CKR_OK) {
            return rv;
        }
        c->found += n;
    } while (n > 0);
    return p11->C_FindObjectsFinal(c->s);
}

static CK_RV op_find_label(struct role_ctx *c)
{
    CK_OBJECT_HANDLE h[16];
    CK_ATTRIBUTE t = {CKA_LABEL, ROLE_OBJ_LABEL, strlen(ROLE_OBJ_LABEL)};
    CK_ULONG n = 0;
    CK_RV rv;

    rv = p11->C_FindObjectsInit(c->s, &t, 1);
    if (rv != CKR_OK) {
        return rv;
    }
    rv = p11->C_FindObjects(c->s, h, 16, &n);
    c->found = n;
    if (rv != CKR_OK) {
        return rv;
    }
    return p11->C_FindObjectsFinal(c->s);
}

static CK_RV op_get_attr(struct role_ctx *c)
{
    CK_BYTE buf[64];
    CK_ATTRIBUTE t = {CKA_LABEL, buf, sizeof(buf)};

    return p11->C_GetAttributeValue(c->s, c->obj, &t, 1);
}

static CK_RV op_get_size(struct role_ctx *c)
{
    CK_ULONG size;

    return p11->C_GetObjectSize(c->s, c->obj, &size);
}

static CK_RV op_random(struct role_ctx *c)
{
    CK_BYTE buf[16];

    return p11->C_GenerateRandom(c->s, buf, sizeof(buf));
}

/*
 * A session secret key of the caller's own for the crypto rows: only a CU
 * can make one; everyone else is left with the handle alice had, and the
 * permission table answers before the handle is looked at.
 */
static CK_OBJECT_HANDLE role_key(struct role_ctx *c, CK_KEY_TYPE kt)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_BYTE val[32] = {1, 2, 3};
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_VALUE, val, sizeof(val)},
    };
    CK_OBJECT_HANDLE h;

    if (p11->C_CreateObject(c->s, t, 3, &h) != CKR_OK)
        return c->obj;
    return h;
}

static CK_RV op_encrypt_init(struct role_ctx *c)
{
    CK_MECHANISM m = {CKM_AES_ECB, NULL, 0};

    return p11->C_EncryptInit(c->s, &m, role_key(c, CKK_AES));
}

static CK_RV op_sign_init(struct role_ctx *c)
{
    CK_MECHANISM m = {CKM_SHA256_HMAC, NULL, 0};

    return p11->C_SignInit(c->s, &m, role_key(c, CKK_GENERIC_SECRET));
}

static CK_RV op_digest_init(struct role_ctx *c)
{
    CK_MECHANISM m = {CKM_SHA256, NULL, 0};

    return p11->C_DigestInit(c->s, &m);
}

static CK_RV op_logout(struct role_ctx *c)
{
    return p11->C_Logout(c->s);
}

/* ------------------------------------------------------------ the table */

#define OK CKR_OK
#define UNLI CKR_USER_NOT_LOGGED_IN
#define EXP CKR_PIN_EXPIRED
#define HINV CKR_OBJECT_HANDLE_INVALID

/* One operation, five rows, in the contract's column order. */
#define ROWS(name, fn, co, cu, au, preco, unauth, ...)                         \
    {R_CO, name, fn, co, __VA_ARGS__}, {R_CU, name, fn, cu, __VA_ARGS__},      \
        {R_AU, name, fn, au, __VA_ARGS__},                                     \
        {R_PRECO, name, fn, preco, __VA_ARGS__},                               \
    {                                                                          \
        R_PUBLIC, name, fn, unauth, __VA_ARGS__                                \
    }

/* Finds: CU and unauth see alice's public object; CO, AU find nothing. */
#define FIND_ROWS(name, fn)                                                    \
    {R_CO, name, fn, OK, 0}, {R_CU, name, fn, OK, 1}, {R_AU, name, fn, OK, 0}, \
        {R_PRECO, name, fn, EXP, -1},                                          \
    {                                                                          \
        R_PUBLIC, name, fn, OK, 1                                              \
    }

static const struct role_row role_table[] = {
    /*                                     CO    CU    AU    PRECO unauth */
    /* basic info */
    ROWS("C_GetTokenInfo", op_token_info, OK, OK, OK, OK, OK, -1),
    ROWS("C_GetSessionInfo", op_session_info, OK, OK, OK, OK, OK, -1),
    ROWS("C_GetMechanismList", op_mechanism_list, OK, OK, OK, OK, OK, -1),
    /* change own password (unauth: C_SetPIN naming the user, allowed in a
     * public RW session) */
    ROWS("C_SetPIN(own)", op_set_own_pin, OK, OK, OK, OK, OK, -1),
    /* user management */
    ROWS("C_InitPIN(create)", op_init_pin_create, OK, UNLI, UNLI, UNLI, UNLI,
         -1),
    ROWS("C_InitPIN(reset)", op_init_pin_reset, OK, UNLI, UNLI, UNLI, UNLI, -1),
    /*
     * key management. Copy/Destroy/Set need a handle: the others are left
     * with the one alice had before she logged out (AU and PRECO sessions
     * find nothing; test_public.c covers a public session's own handles),
     * CKR_OBJECT_HANDLE_INVALID by the contract's handle rule.
     */
    ROWS("C_CreateObject", op_create, UNLI, OK, UNLI, EXP, UNLI, -1),
    ROWS("C_CopyObject", op_copy, HINV, OK, HINV, HINV, HINV, -1),
    ROWS("C_DestroyObject", op_destroy, HINV, OK, HINV, HINV, HINV, -1),
    ROWS("C_SetAttributeValue", op_set_attr, HINV, OK, HINV, HINV, HINV, -1),
    /* read objects */
    FIND_ROWS("C_FindObjects(all)", op_find),
    FIND_ROWS("C_FindObjects(label)", op_find_label),
    ROWS("C_GetAttributeValue", op_get_attr, HINV, OK, HINV, HINV, HINV, -1),
    ROWS("C_GetObjectSize", op_get_size, HINV, OK, HINV, HINV, HINV, -1),
    /* crypto: encrypt/decrypt, sign/verify (HMAC), digests */
    ROWS("C_EncryptInit", op_encrypt_init, UNLI, OK, UNLI, EXP, UNLI, -1),
    ROWS("C_SignInit", op_sign_init, UNLI, OK, UNLI, EXP, UNLI, -1),
    ROWS("C_DigestInit", op_digest_init, UNLI, OK, UNLI, EXP, UNLI, -1),
    /* random (PRECO: the table's PIN_EXPIRED is not in C_GenerateRandom's
     * spec list, so USER_NOT_LOGGED_IN by the contract's PRECO rule) */
    ROWS("C_GenerateRandom", op_random, OK, OK, OK, UNLI, OK, -1),
    ROWS("C_Logout", op_logout, OK, OK, OK, OK, UNLI, -1),
};

#undef ROWS
#undef FIND_ROWS

/* ------------------------------------------------------------ fixture */

static int role_setup(void **state)
{
    const struct role_row *row = *state;

    memset(&ctx, 0, sizeof(ctx));
    ctx.found = ~0UL;
    ctx.obj = STALE_HANDLE;
    p11_fresh(NULL);
    if (row->role == R_PRECO) {
        ctx.s = p11_open_rw();
        p11_login_so(ctx.s, "password");
        ctx.own_old = "password";
        ctx.own_new = "newsopw1";
        return 0;
    }
    p11_activate(P11_SO_PW);
    p11_create_cu("alice", P11_ALICE_PW);
    p11_co_init_pin("app_user:" P11_AU_PW);
    ctx.s = p11_open_rw();
    p11_login_cu(ctx.s, "alice", P11_ALICE_PW);
    /* a public token object: visible to its CU and public sessions */
    ctx.obj = p11_make_data_priv(ctx.s, ROLE_OBJ_LABEL, CK_TRUE, CK_FALSE);
    assert_rv(p11->C_Logout(ctx.s), CKR_OK);
    switch (row->role) {
    case R_PUBLIC:
        ctx.own_old = "alice:" P11_ALICE_PW;
        ctx.own_new = "alice:newpass12";
        break;
    case R_CO:
        p11_login_so(ctx.s, P11_SO_PW);
        ctx.own_old = P11_SO_PW;
        ctx.own_new = "newpass12";
        break;
    case R_CU: {
        CK_ATTRIBUTE t = {CKA_LABEL, ROLE_OBJ_LABEL, strlen(ROLE_OBJ_LABEL)};
        CK_OBJECT_HANDLE h[2];

        p11_login_cu(ctx.s, "alice", P11_ALICE_PW);
        assert_int_equal(p11_find_all(ctx.s, &t, 1, h, 2), 1);
        ctx.obj = h[0];
        ctx.own_old = P11_ALICE_PW;
        ctx.own_new = "newpass12";
        break;
    }
    case R_AU:
        assert_rv(p11_login(ctx.s, CKU_NIMBUS_AU, P11_AU_PW), CKR_OK);
        ctx.own_old = P11_AU_PW;
        ctx.own_new = "newpass12";
        break;
    default:
        fail();
    }
    return 0;
}

static void role_test(void **state)
{
    const struct role_row *row = *state;
    CK_RV rv = row->fn(&ctx);

    if (rv != row->want) {
        print_error("role %s, %s: got %s, expected %s\n", role_names[row->role],
                    row->op, p11_rv_name(rv), p11_rv_name(row->want));
    }
    assert_rv(rv, row->want);
    if (row->want_found >= 0) {
        if ((long)ctx.found != row->want_found) {
            print_error("role %s, %s: found %lu handles, expected %ld\n",
                        role_names[row->role], row->op,
                        (unsigned long)ctx.found, row->want_found);
        }
        assert_int_equal(ctx.found, row->want_found);
    }
}

/* ------------------------------------------------------------ arguments */

static void test_bad_args(void **state)
{
    CK_SESSION_HANDLE s, closed;
    CK_OBJECT_HANDLE obj, h;
    CK_OBJECT_HANDLE hs[4];
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE t = {CKA_CLASS, &cls, sizeof(cls)};
    CK_ATTRIBUTE lab = {CKA_LABEL, "x", 1};
    CK_UTF8CHAR label[32];
    CK_SLOT_ID slots[2];
    CK_ULONG n, size;
    CK_BYTE buf[32];
    CK_INTERFACE_PTR ip;
    CK_SESSION_INFO si;
    CK_MECHANISM_INFO mi;
    CK_MECHANISM_TYPE mechs[2];
    CK_SESSION_HANDLE bad[3];
    int fails = 0;

    (void)state;
    memset(label, ' ', sizeof(label));
    p11_fresh(NULL);

    /* with no session open: C_InitToken and the slot calls */
    expect_rv(fails, p11->C_InitToken(0, NULL, 8, label), CKR_ARGUMENTS_BAD);
    expect_rv(fails,
              p11->C_InitToken(0, (CK_UTF8CHAR_PTR)P11_SO_PW, strlen(P11_SO_PW),
                               NULL),
              CKR_ARGUMENTS_BAD);
    expect_rv(fails,
              p11->C_InitToken(1, (CK_UTF8CHAR_PTR)P11_SO_PW, strlen(P11_SO_PW),
                               label),
              CKR_SLOT_ID_INVALID);
    expect_rv(fails, p11->C_InitToken(0, (CK_UTF8CHAR_PTR) "", 0, label),
              CKR_PIN_LEN_RANGE);
    expect_rv(fails, p11->C_GetInfo(NULL), CKR_ARGUMENTS_BAD);
    expect_rv(fails, p11->C_GetSlotList(CK_FALSE, NULL, NULL),
              CKR_ARGUMENTS_BAD);
    expect_rv(fails, p11->C_GetSlotList(CK_TRUE, slots, NULL),
              CKR_ARGUMENTS_BAD);
    expect_rv(fails, p11->C_GetSlotInfo(0, NULL), CKR_ARGUMENTS_BAD);
    expect_rv(fails, p11->C_GetTokenInfo(0, NULL), CKR_ARGUMENTS_BAD);
    expect_rv(fails, p11->C_GetMechanismList(0, NULL, NULL), CKR_ARGUMENTS_BAD);
    expect_rv(fails, p11->C_GetMechanismList(0, mechs, NULL),
              CKR_ARGUMENTS_BAD);
    expect_rv(fails, p11->C_GetMechanismInfo(0, CKM_AES_CBC, NULL),
              CKR_ARGUMENTS_BAD);
    expect_rv(fails,
              p11->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, NULL),
              CKR_ARGUMENTS_BAD);
    expect_rv(fails, p11_get_interface(NULL, NULL, NULL, 0), CKR_ARGUMENTS_BAD);
    expect_rv(fails, p11_get_interface_list(NULL, NULL), CKR_ARGUMENTS_BAD);
    expect_rv(fails, p11_get_function_list(NULL), CKR_ARGUMENTS_BAD);
    /* short buffers, two-call convention */
    n = 0;
    expect_rv(fails, p11->C_GetSlotList(CK_FALSE, slots, &n),
              CKR_BUFFER_TOO_SMALL);
    assert_int_equal(n, 1);
    {
        CK_INTERFACE list[1];

        n = 1;
        expect_rv(fails, p11_get_interface_list(list, &n),
                  CKR_BUFFER_TOO_SMALL);
        assert_int_equal(n, 3);
    }
    n = 0;
    expect_rv(fails, p11->C_GetMechanismList(0, mechs, &n),
              CKR_BUFFER_TOO_SMALL);
    assert_true(n > 0);
    /* invalid slot */
    expect_rv(fails, p11->C_GetSlotInfo(7, (CK_SLOT_INFO_PTR)buf),
              CKR_SLOT_ID_INVALID);
    {
        CK_TOKEN_INFO ti;

        expect_rv(fails, p11->C_GetTokenInfo(7, &ti), CKR_SLOT_ID_INVALID);
    }
    n = 2;
    expect_rv(fails, p11->C_GetMechanismList(7, mechs, &n),
              CKR_SLOT_ID_INVALID);
    expect_rv(fails, p11->C_GetMechanismInfo(7, CKM_AES_CBC, &mi),
              CKR_SLOT_ID_INVALID);
    expect_rv(fails, p11->C_OpenSession(7, CKF_SERIAL_SESSION, NULL, NULL, &s),
              CKR_SLOT_ID_INVALID);
    expect_rv(fails, p11->C_CloseAllSessions(7), CKR_SLOT_ID_INVALID);

    p11_activate(P11_SO_PW);
    p11_create_cu("alice", P11_ALICE_PW);

    /* CO-only calls, in a CO session */
    s = p11_open_rw();
    p11_login_so(s, P11_SO_PW);
    expect_rv(fails, p11->C_InitPIN(s, NULL, 8), CKR_ARGUMENTS_BAD);
    expect_rv(fails, p11->C_InitPIN(s, (CK_UTF8CHAR_PTR) "", 0),
              CKR_PIN_LEN_RANGE);
    assert_rv(p11->C_Logout(s), CKR_OK);

    /* login arguments */
    expect_rv(fails, p11->C_Login(s, CKU_USER, NULL, 8), CKR_ARGUMENTS_BAD);
    expect_rv(fails, p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR) "", 0),
              CKR_PIN_INCORRECT);
    expect_rv(
        fails,
        p11->C_LoginUser(s, CKU_USER, NULL, 8, (CK_UTF8CHAR_PTR) "alice", 5),
        CKR_ARGUMENTS_BAD);
    expect_rv(fails,
              p11->C_LoginUser(s, CKU_USER, (CK_UTF8CHAR_PTR)P11_ALICE_PW,
                               strlen(P11_ALICE_PW), NULL, 5),
              CKR_ARGUMENTS_BAD);
    expect_rv(fails, p11->C_SetPIN(s, NULL, 8, (CK_UTF8CHAR_PTR) "newpass1", 8),
              CKR_ARGUMENTS_BAD);
    expect_rv(fails,
              p11->C_SetPIN(s, (CK_UTF8CHAR_PTR) "alice:" P11_ALICE_PW,
                            strlen("alice:" P11_ALICE_PW), NULL, 8),
              CKR_ARGUMENTS_BAD);
    expect_rv(fails,
              p11->C_SetPIN(s, (CK_UTF8CHAR_PTR) "alice:" P11_ALICE_PW,
                            strlen("alice:" P11_ALICE_PW), (CK_UTF8CHAR_PTR) "",
                            0),
              CKR_PIN_LEN_RANGE);

    p11_login_cu(s, "alice", P11_ALICE_PW);
    obj = p11_make_data(s, "args", CK_FALSE);
    expect_rv(fails, p11->C_GetSessionInfo(s, NULL), CKR_ARGUMENTS_BAD);
    /* object calls */
    expect_rv(fails, p11->C_CreateObject(s, NULL, 1, &h), CKR_ARGUMENTS_BAD);
    expect_rv(fails, p11->C_CreateObject(s, &t, 1, NULL), CKR_ARGUMENTS_BAD);
    expect_rv(fails, p11->C_CreateObject(s, NULL, 0, &h),
              CKR_TEMPLATE_INCOMPLETE);
    expect_rv(fails, p11->C_CopyObject(s, obj, NULL, 1, &h), CKR_ARGUMENTS_BAD);
    expect_rv(fails, p11->C_CopyObject(s, obj, NULL, 0, NULL),
              CKR_ARGUMENTS_BAD);
    expect_rv(fails, p11->C_GetAttributeValue(s, obj, NULL, 1),
              CKR_ARGUMENTS_BAD);
    expect_rv(fails, p11->C_SetAttributeValue(s, obj, NULL, 1),
              CKR_ARGUMENTS_BAD);
    {
        CK_ATTRIBUTE nv = {CKA_LABEL, NULL, 4};

        expect_rv(fails, p11->C_SetAttributeValue(s, obj, &nv, 1),
                  CKR_ATTRIBUTE_VALUE_INVALID);
    }
    expect_rv(fails, p11->C_GetObjectSize(s, obj, NULL), CKR_ARGUMENTS_BAD);
    expect_rv(fails, p11->C_FindObjectsInit(s, NULL, 1), CKR_ARGUMENTS_BAD);
    expect_rv(fails, p11->C_FindObjectsInit(s, NULL, 0), CKR_OK);
    expect_rv(fails, p11->C_FindObjects(s, NULL, 4, &n), CKR_ARGUMENTS_BAD);
    expect_rv(fails, p11->C_FindObjects(s, hs, 4, NULL), CKR_ARGUMENTS_BAD);
    n = 99;
    expect_rv(fails, p11->C_FindObjects(s, hs, 0, &n), CKR_OK);
    assert_int_equal(n, 0);
    expect_rv(fails, p11->C_FindObjectsFinal(s), CKR_OK);
    expect_rv(fails, p11->C_GenerateRandom(s, NULL, 16), CKR_ARGUMENTS_BAD);
    {
        CK_ATTRIBUTE a = {CKA_LABEL, NULL, 0};

        /* a template of length 0 */
        expect_rv(fails, p11->C_GetAttributeValue(s, obj, &a, 0), CKR_OK);
    }

    /* invalid object handles */
    {
        static const CK_OBJECT_HANDLE badobj[] = {CK_INVALID_HANDLE,
                                                  0x7777777UL, ~0UL};

        for (size_t i = 0; i < 3; i++) {
            CK_ATTRIBUTE a = {CKA_LABEL, buf, sizeof(buf)};

            expect_rv(fails, p11->C_GetAttributeValue(s, badobj[i], &a, 1),
                      CKR_OBJECT_HANDLE_INVALID);
            expect_rv(fails, p11->C_SetAttributeValue(s, badobj[i], &lab, 1),
                      CKR_OBJECT_HANDLE_INVALID);
            expect_rv(fails, p11->C_GetObjectSize(s, badobj[i], &size),
                      CKR_OBJECT_HANDLE_INVALID);
            expect_rv(fails, p11->C_CopyObject(s, badobj[i], &lab, 1, &h),
                      CKR_OBJECT_HANDLE_INVALID);
            expect_rv(fails, p11->C_DestroyObject(s, badobj[i]),
                      CKR_OBJECT_HANDLE_INVALID);
        }
    }

    /* invalid session handles: never opened, zero, closed */
    closed = p11_open_ro();
    assert_rv(p11->C_CloseSession(closed), CKR_OK);
    bad[0] = CK_INVALID_HANDLE;
    bad[1] = 0x7777777UL;
    bad[2] = closed;
    for (size_t i = 0; i < 3; i++) {
        CK_SESSION_HANDLE b = bad[i];
        CK_ATTRIBUTE a = {CKA_LABEL, buf, sizeof(buf)};
        const CK_RV SHI = CKR_SESSION_HANDLE_INVALID;

        expect_rv(fails, p11->C_CloseSession(b), SHI);
        expect_rv(fails, p11->C_GetSessionInfo(b, &si), SHI);
        expect_rv(fails, p11_login(b, CKU_USER, "alice:" P11_ALICE_PW), SHI);
        expect_rv(fails,
                  p11->C_LoginUser(b, CKU_USER, (CK_UTF8CHAR_PTR)P11_ALICE_PW,
                                   strlen(P11_ALICE_PW),
                                   (CK_UTF8CHAR_PTR) "alice", 5),
                  SHI);
        expect_rv(fails, p11->C_Logout(b), SHI);
        expect_rv(fails, p11_init_pin(b, "bob:" P11_BOB_PW), SHI);
        expect_rv(fails, p11_set_pin(b, P11_ALICE_PW, "newpass1"), SHI);
        expect_rv(fails, p11->C_CreateObject(b, &t, 1, &h), SHI);
        expect_rv(fails, p11->C_CopyObject(b, obj, &lab, 1, &h), SHI);
        expect_rv(fails, p11->C_DestroyObject(b, obj), SHI);
        expect_rv(fails, p11->C_GetObjectSize(b, obj, &size), SHI);
        expect_rv(fails, p11->C_GetAttributeValue(b, obj, &a, 1), SHI);
        expect_rv(fails, p11->C_SetAttributeValue(b, obj, &lab, 1), SHI);
        expect_rv(fails, p11->C_FindObjectsInit(b, NULL, 0), SHI);
        expect_rv(fails, p11->C_FindObjects(b, hs, 4, &n), SHI);
        expect_rv(fails, p11->C_FindObjectsFinal(b), SHI);
        expect_rv(fails, p11->C_GenerateRandom(b, buf, 16), SHI);
        expect_rv(fails, p11->C_SeedRandom(b, buf, 16), SHI);
        expect_rv(fails, p11->C_SessionCancel(b, CKF_FIND_OBJECTS), SHI);
    }
    /* the good session is untouched */
    assert_int_equal(p11_session_state(s), CKS_RW_USER_FUNCTIONS);
    ip = NULL;
    assert_rv(p11_get_interface(NULL, NULL, &ip, 0), CKR_OK);
    assert_non_null(ip);
    assert_int_equal(fails, 0);
}

/* ------------------------------------------------------------ the group */

int p11_group_roles(void)
{
    size_t nrows = sizeof(role_table) / sizeof(role_table[0]);
    struct CMUnitTest *tests = calloc(nrows + 1, sizeof(*tests));
    char **names = calloc(nrows, sizeof(*names));
    int rc;

    if (tests == NULL || names == NULL) {
        free(tests);
        free(names);
        return 1;
    }
    for (size_t i = 0; i < nrows; i++) {
        size_t len = strlen(role_table[i].op) + 32;

        names[i] = malloc(len);
        if (names[i] == NULL) {
            return 1;
        }
        snprintf(names[i], len, "%s %s", role_names[role_table[i].role],
                 role_table[i].op);
        tests[i].name = names[i];
        tests[i].test_func = role_test;
        tests[i].setup_func = role_setup;
        tests[i].teardown_func = p11_teardown;
        tests[i].initial_state = (void *)&role_table[i];
    }
    tests[nrows].name = "bad arguments";
    tests[nrows].test_func = test_bad_args;
    tests[nrows].setup_func = NULL;
    tests[nrows].teardown_func = p11_teardown;
    rc = _cmocka_run_group_tests("roles", tests, nrows + 1, NULL, NULL);
    for (size_t i = 0; i < nrows; i++) {
        free(names[i]);
    }
    free(names);
    free(tests);
    return rc;
}
