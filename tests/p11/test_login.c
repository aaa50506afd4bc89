/*
 * test_login.c - users, activation, lockout, PIN formats, C_Login,
 * C_LoginUser, C_InitPIN, C_SetPIN, C_InitToken.
 */
#include <stdio.h>
#include <string.h>

#include "p11util.h"

#define USER_FLAGS                                                             \
    (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED)
#define SO_FLAGS                                                               \
    (CKF_SO_PIN_COUNT_LOW | CKF_SO_PIN_FINAL_TRY | CKF_SO_PIN_LOCKED)

static int setup_activated(void **state)
{
    (void)state;
    p11_fresh(NULL);
    p11_activate(P11_SO_PW);
    return 0;
}

static int setup_alice(void **state)
{
    setup_activated(state);
    p11_create_cu("alice", P11_ALICE_PW);
    return 0;
}

static int setup_lockout(void **state)
{
    (void)state;
    p11_fresh("default_user = alice");
    p11_activate(P11_SO_PW);
    p11_create_cu("alice", P11_ALICE_PW);
    return 0;
}

static CK_RV login_user(CK_SESSION_HANDLE s, CK_USER_TYPE type, const char *pw,
                        const char *name)
{
    return p11->C_LoginUser(s, type, (CK_UTF8CHAR_PTR)pw, strlen(pw),
                            (CK_UTF8CHAR_PTR)name,
                            name != NULL ? strlen(name) : 0);
}

/* ------------------------------------------------------------ activation */

static void test_fresh_token(void **state)
{
    CK_TOKEN_INFO ti;

    (void)state;
    p11_token_info(&ti);
    assert_true(ti.flags & CKF_RNG);
    assert_true(ti.flags & CKF_LOGIN_REQUIRED);
    assert_false(ti.flags & CKF_TOKEN_INITIALIZED);
    assert_true(ti.flags & CKF_SO_PIN_TO_BE_CHANGED);
    assert_false(ti.flags & CKF_USER_PIN_INITIALIZED);
    assert_false(ti.flags & (USER_FLAGS | SO_FLAGS));
}

static void test_activate_init_token(void **state)
{
    CK_SESSION_HANDLE s;
    CK_TOKEN_INFO ti;

    (void)state;
    assert_rv(p11_init_token(P11_SO_PW, "my token"), CKR_OK);
    p11_token_info(&ti);
    assert_true(ti.flags & CKF_TOKEN_INITIALIZED);
    assert_false(ti.flags & CKF_SO_PIN_TO_BE_CHANGED);
    assert_false(ti.flags & CKF_USER_PIN_INITIALIZED);
    assert_true(p11_padded_eq(ti.label, sizeof(ti.label), "my token"));

    s = p11_open_rw();
    assert_rv(p11_login(s, CKU_SO, "password"), CKR_PIN_INCORRECT);
    assert_rv(p11_login(s, CKU_SO, "admin:password"), CKR_PIN_INCORRECT);
    assert_rv(p11_login(s, CKU_SO, P11_SO_PW), CKR_OK);
    assert_int_equal(p11_session_state(s), CKS_RW_SO_FUNCTIONS);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_rv(p11_login(s, CKU_SO, "admin:" P11_SO_PW), CKR_OK);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_rv(p11_login(s, CKU_SO, "ADMIN:" P11_SO_PW), CKR_OK);
}

static void test_activate_init_token_named(void **state)
{
    CK_SESSION_HANDLE s;

    (void)state;
    assert_rv(p11_init_token("admin:" P11_SO_PW, "named"), CKR_OK);
    assert_true(p11_token_flags() & CKF_TOKEN_INITIALIZED);
    s = p11_open_rw();
    p11_login_so(s, P11_SO_PW);
}

static void test_activate_init_token_pin_len(void **state)
{
    char pw33[34];

    (void)state;
    memset(pw33, 'x', 33);
    pw33[33] = '\0';
    assert_rv(p11_init_token("short", "t"), CKR_PIN_LEN_RANGE);
    assert_rv(p11_init_token(pw33, "t"), CKR_PIN_LEN_RANGE);
    assert_rv(p11_init_token("admin:short", "t"), CKR_PIN_LEN_RANGE);
    assert_false(p11_token_flags() & CKF_TOKEN_INITIALIZED);
    pw33[32] = '\0'; /* 32 bytes: the longest password */
    assert_rv(p11_init_token(pw33, "t"), CKR_OK);
    assert_true(p11_token_flags() & CKF_TOKEN_INITIALIZED);
}

static void test_activate_set_pin(void **state)
{
    CK_SESSION_HANDLE s;
    CK_FLAGS f;

    (void)state;
    s = p11_open_rw();
    assert_rv(p11_login(s, CKU_SO, "password"), CKR_OK);
    assert_int_equal(p11_session_state(s), CKS_RW_SO_FUNCTIONS);
    assert_false(p11_token_flags() & CKF_TOKEN_INITIALIZED);
    assert_rv(p11_set_pin(s, "password", "short"), CKR_PIN_LEN_RANGE);
    assert_rv(p11_set_pin(s, "password", "newsopw1"), CKR_OK);
    f = p11_token_flags();
    assert_true(f & CKF_TOKEN_INITIALIZED);
    assert_false(f & CKF_SO_PIN_TO_BE_CHANGED);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_rv(p11_login(s, CKU_SO, "password"), CKR_PIN_INCORRECT);
    assert_rv(p11_login(s, CKU_SO, "newsopw1"), CKR_OK);
    /* Now a real CO: user management works. */
    assert_rv(p11_init_pin(s, "alice:" P11_ALICE_PW), CKR_OK);
}

static void test_activate_named_preco_login(void **state)
{
    CK_SESSION_HANDLE s;

    (void)state;
    s = p11_open_rw();
    assert_rv(p11_login(s, CKU_SO, "admin:password"), CKR_OK);
    assert_rv(p11_set_pin(s, "admin:password", "admin:newsopw1"), CKR_OK);
    assert_true(p11_token_flags() & CKF_TOKEN_INITIALIZED);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_rv(p11_login(s, CKU_SO, "admin:newsopw1"), CKR_OK);
}

static void test_preco_restrictions(void **state)
{
    CK_SESSION_HANDLE s;
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL f = CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_PRIVATE, &f, sizeof(f)},
    };
    CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
    CK_BYTE rnd[8];

    (void)state;
    s = p11_open_rw();
    /* No CU can exist before activation. */
    assert_rv(p11_login(s, CKU_USER, "alice:" P11_ALICE_PW),
              CKR_USER_PIN_NOT_INITIALIZED);
    assert_rv(p11_login(s, CKU_SO, "password"), CKR_OK);
    assert_rv(p11_init_pin(s, "alice:" P11_ALICE_PW), CKR_USER_NOT_LOGGED_IN);
    assert_rv(p11->C_FindObjectsInit(s, NULL, 0), CKR_PIN_EXPIRED);
    assert_rv(p11->C_CreateObject(s, t, 2, &o), CKR_PIN_EXPIRED);
    /* C_GenerateRandom's spec list has no CKR_PIN_EXPIRED */
    assert_rv(p11->C_GenerateRandom(s, rnd, sizeof(rnd)),
              CKR_USER_NOT_LOGGED_IN);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_int_equal(p11_session_state(s), CKS_RW_PUBLIC_SESSION);
    assert_false(p11_token_flags() & CKF_TOKEN_INITIALIZED);
}

/* ------------------------------------------------------------ C_Login */

static void test_cu_login(void **state)
{
    CK_SESSION_HANDLE s;
    char pin[128];

    (void)state;
    s = p11_open_rw();
    assert_rv(p11_login(s, CKU_USER, "alice:" P11_ALICE_PW),
              CKR_USER_PIN_NOT_INITIALIZED);
    assert_false(p11_token_flags() & CKF_USER_PIN_INITIALIZED);
    p11_create_cu("alice", P11_ALICE_PW);
    assert_true(p11_token_flags() & CKF_USER_PIN_INITIALIZED);

    assert_rv(p11_login(s, CKU_USER, "alice:wrongpw1"), CKR_PIN_INCORRECT);
    assert_rv(p11_login(s, CKU_USER, "alice:x"), CKR_PIN_INCORRECT);
    memset(pin, 'y', 100);
    memcpy(pin, "alice:", 6);
    pin[100] = '\0';
    assert_rv(p11_login(s, CKU_USER, pin), CKR_PIN_INCORRECT);
    assert_rv(p11_login(s, CKU_USER, "nobody:" P11_ALICE_PW),
              CKR_PIN_INCORRECT);
    /* A CO name as CKU_USER: same code, no enumeration. */
    assert_rv(p11_login(s, CKU_USER, "admin:" P11_SO_PW), CKR_PIN_INCORRECT);
    /* A bare password means the default CU "user", who does not exist. */
    assert_rv(p11_login(s, CKU_USER, P11_ALICE_PW), CKR_PIN_INCORRECT);
    /* A CU name as CKU_SO. */
    assert_rv(p11_login(s, CKU_SO, "alice:" P11_ALICE_PW), CKR_PIN_INCORRECT);
    assert_int_equal(p11_session_state(s), CKS_RW_PUBLIC_SESSION);

    assert_rv(p11_login(s, CKU_USER, "alice:" P11_ALICE_PW), CKR_OK);
    assert_int_equal(p11_session_state(s), CKS_RW_USER_FUNCTIONS);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_rv(p11_login(s, CKU_USER, "ALICE:" P11_ALICE_PW), CKR_OK);
    assert_rv(p11->C_Logout(s), CKR_OK);
    /* Password case matters. */
    assert_rv(p11_login(s, CKU_USER, "alice:ALICEPW1"), CKR_PIN_INCORRECT);
}

static void test_already_logged_in(void **state)
{
    CK_SESSION_HANDLE s = p11_open_rw();

    (void)state;
    assert_rv(p11->C_Logout(s), CKR_USER_NOT_LOGGED_IN);
    assert_rv(p11_login(s, 42, P11_ALICE_PW), CKR_USER_TYPE_INVALID);
    p11_login_cu(s, "alice", P11_ALICE_PW);
    assert_rv(p11_login(s, CKU_USER, "alice:" P11_ALICE_PW),
              CKR_USER_ALREADY_LOGGED_IN);
    assert_rv(p11_login(s, CKU_SO, P11_SO_PW),
              CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_rv(p11->C_Logout(s), CKR_USER_NOT_LOGGED_IN);
    p11_login_so(s, P11_SO_PW);
    assert_rv(p11_login(s, CKU_SO, P11_SO_PW), CKR_USER_ALREADY_LOGGED_IN);
    assert_rv(p11_login(s, CKU_USER, "alice:" P11_ALICE_PW),
              CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
}

static void test_login_shared_by_sessions(void **state)
{
    CK_SESSION_HANDLE s1 = p11_open_rw();
    CK_SESSION_HANDLE s2 = p11_open_ro();
    CK_SESSION_HANDLE s3;

    (void)state;
    p11_login_cu(s1, "alice", P11_ALICE_PW);
    assert_int_equal(p11_session_state(s2), CKS_RO_USER_FUNCTIONS);
    s3 = p11_open_rw();
    assert_int_equal(p11_session_state(s3), CKS_RW_USER_FUNCTIONS);
    assert_rv(p11->C_Logout(s3), CKR_OK);
    assert_int_equal(p11_session_state(s1), CKS_RW_PUBLIC_SESSION);
    assert_int_equal(p11_session_state(s2), CKS_RO_PUBLIC_SESSION);
}

static void test_default_user(void **state)
{
    CK_SESSION_HANDLE s;

    (void)state;
    /* A bare password in C_InitPIN creates the default CU "user". */
    p11_co_init_pin("userpass1");
    s = p11_open_rw();
    assert_rv(p11_login(s, CKU_USER, "userpass1"), CKR_OK);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_rv(p11_login(s, CKU_USER, "user:userpass1"), CKR_OK);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_rv(p11_login(s, CKU_USER, "User:userpass1"), CKR_OK);
}

static void test_default_user_config(void **state)
{
    CK_SESSION_HANDLE s;

    (void)state;
    p11_fresh("default_user = carol");
    p11_activate(P11_SO_PW);
    p11_co_init_pin("carolpw1"); /* bare: creates carol */
    s = p11_open_rw();
    assert_rv(p11_login(s, CKU_USER, "carol:carolpw1"), CKR_OK);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_rv(p11_login(s, CKU_USER, "carolpw1"), CKR_OK);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_rv(p11_login(s, CKU_USER, "user:carolpw1"), CKR_PIN_INCORRECT);
}

static void test_colon_in_password(void **state)
{
    CK_SESSION_HANDLE s;

    (void)state;
    p11_co_init_pin("carol:pa:ss123");
    s = p11_open_rw();
    assert_rv(p11_login(s, CKU_USER, "carol:pa"), CKR_PIN_INCORRECT);
    assert_rv(p11_login(s, CKU_USER, "carol:pa:ss123"), CKR_OK);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_rv(login_user(s, CKU_USER, "pa:ss123", "carol"), CKR_OK);
}

/* ------------------------------------------------------------ C_InitPIN */

static void test_init_pin_formats(void **state)
{
    CK_SESSION_HANDLE s;
    char pin[128];
    char name[40];

    (void)state;
    s = p11_open_rw();
    p11_login_so(s, P11_SO_PW);
    /* password 7..32 */
    assert_rv(p11_init_pin(s, "bob:short"), CKR_PIN_LEN_RANGE);
    assert_rv(p11_init_pin(s, "bob:sixsix"), CKR_PIN_LEN_RANGE);
    assert_rv(p11_init_pin(s, "bob:"), CKR_PIN_LEN_RANGE);
    snprintf(pin, sizeof(pin), "bob:%s", "0123456789012345678901234567890123");
    pin[4 + 33] = '\0'; /* 33-byte password */
    assert_rv(p11_init_pin(s, pin), CKR_PIN_LEN_RANGE);
    pin[4 + 32] = '\0'; /* 32 */
    assert_rv(p11_init_pin(s, pin), CKR_OK);
    assert_rv(p11_init_pin(s, "bob2:seven77"), CKR_OK);
    /* names: 1..31 of [A-Za-z0-9_] */
    assert_rv(p11_init_pin(s, "b-b:password1"), CKR_PIN_INVALID);
    assert_rv(p11_init_pin(s, "b b:password1"), CKR_PIN_INVALID);
    assert_rv(p11_init_pin(s, "b.b:password1"), CKR_PIN_INVALID);
    assert_rv(p11_init_pin(s, ":password1"), CKR_PIN_INVALID);
    memset(name, 'n', 32);
    name[32] = '\0';
    snprintf(pin, sizeof(pin), "%s:password1", name);
    assert_rv(p11_init_pin(s, pin), CKR_PIN_INVALID);
    name[31] = '\0';
    snprintf(pin, sizeof(pin), "%s:password1", name);
    assert_rv(p11_init_pin(s, pin), CKR_OK);
    assert_rv(p11_init_pin(s, "Under_Score_9:password1"), CKR_OK);
    /* bare short password for the default CU */
    assert_rv(p11_init_pin(s, "short"), CKR_PIN_LEN_RANGE);
    assert_rv(p11->C_Logout(s), CKR_OK);

    assert_rv(p11_login(s, CKU_USER, "bob2:seven77"), CKR_OK);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_rv(p11_login(s, CKU_USER, pin), CKR_OK);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_rv(p11_login(s, CKU_USER, "under_score_9:password1"), CKR_OK);
    assert_rv(p11->C_Logout(s), CKR_OK);
    /* nothing was created by the failed calls */
    assert_rv(p11_login(s, CKU_USER, "b-b:password1"), CKR_PIN_INCORRECT);
}

static void test_init_pin_needs_co(void **state)
{
    CK_SESSION_HANDLE s = p11_open_rw();

    (void)state;
    assert_rv(p11_init_pin(s, "bob:" P11_BOB_PW), CKR_USER_NOT_LOGGED_IN);
    p11_login_cu(s, "alice", P11_ALICE_PW);
    assert_rv(p11_init_pin(s, "bob:" P11_BOB_PW), CKR_USER_NOT_LOGGED_IN);
    assert_rv(p11_init_pin(s, "alice:newpass1"), CKR_USER_NOT_LOGGED_IN);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_rv(p11_login(s, CKU_USER, "bob:" P11_BOB_PW), CKR_PIN_INCORRECT);
}

static void test_init_pin_resets(void **state)
{
    CK_SESSION_HANDLE s;

    (void)state;
    p11_co_init_pin("alice:newpass1");
    s = p11_open_rw();
    assert_rv(p11_login(s, CKU_USER, "alice:" P11_ALICE_PW), CKR_PIN_INCORRECT);
    assert_rv(p11_login(s, CKU_USER, "alice:newpass1"), CKR_OK);
    assert_rv(p11->C_Logout(s), CKR_OK);
    /* The PRECO name cannot be reused once activated: admin is a CO. */
}

/* ------------------------------------------------------------ AU */

static void test_au_login(void **state)
{
    CK_SESSION_HANDLE s;

    (void)state;
    s = p11_open_rw();
    assert_rv(p11_login(s, CKU_NIMBUS_AU, "password"), CKR_PIN_INCORRECT);
    assert_rv(p11_login(s, CKU_NIMBUS_AU, "app_user:password"),
              CKR_PIN_INCORRECT);
    assert_rv(p11_login(s, CKU_NIMBUS_AU, P11_AU_PW), CKR_PIN_INCORRECT);
    assert_rv(p11->C_CloseSession(s), CKR_OK);
    p11_co_init_pin("app_user:" P11_AU_PW);
    s = p11_open_rw();
    assert_rv(p11_login(s, CKU_NIMBUS_AU, P11_AU_PW), CKR_OK);
    assert_int_equal(p11_session_state(s), CKS_RW_USER_FUNCTIONS);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_rv(p11_login(s, CKU_NIMBUS_AU, "app_user:" P11_AU_PW), CKR_OK);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_rv(p11->C_CloseSession(s), CKR_OK);
    s = p11_open_ro();
    assert_rv(login_user(s, CKU_NIMBUS_AU, P11_AU_PW, "app_user"), CKR_OK);
    assert_int_equal(p11_session_state(s), CKS_RO_USER_FUNCTIONS);
    assert_rv(p11->C_Logout(s), CKR_OK);
    /* The AU is not a CU: with no CU at all ... */
    assert_rv(p11_login(s, CKU_USER, "app_user:" P11_AU_PW),
              CKR_USER_PIN_NOT_INITIALIZED);
    assert_rv(p11->C_CloseSession(s), CKR_OK);
    /* ... and once one exists */
    p11_create_cu("alice", P11_ALICE_PW);
    s = p11_open_rw();
    assert_rv(p11_login(s, CKU_USER, "app_user:" P11_AU_PW), CKR_PIN_INCORRECT);
    assert_rv(login_user(s, CKU_USER, P11_AU_PW, "app_user"),
              CKR_PIN_INCORRECT);
    assert_rv(login_user(s, CKU_SO, P11_AU_PW, "app_user"), CKR_PIN_INCORRECT);
    /* not locked by those failures: the AU still logs in */
    assert_rv(p11_login(s, CKU_NIMBUS_AU, P11_AU_PW), CKR_OK);
}

/* ------------------------------------------------------------ C_LoginUser */

static void test_login_user(void **state)
{
    CK_SESSION_HANDLE s = p11_open_rw();

    (void)state;
    assert_rv(login_user(s, CKU_USER, "wrongpw1", "alice"), CKR_PIN_INCORRECT);
    assert_rv(login_user(s, CKU_USER, P11_ALICE_PW, "nobody"),
              CKR_PIN_INCORRECT);
    assert_rv(login_user(s, CKU_USER, P11_ALICE_PW, "alice"), CKR_OK);
    assert_int_equal(p11_session_state(s), CKS_RW_USER_FUNCTIONS);
    assert_rv(login_user(s, CKU_USER, P11_ALICE_PW, "alice"),
              CKR_USER_ALREADY_LOGGED_IN);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_rv(login_user(s, CKU_USER, P11_ALICE_PW, "ALICE"), CKR_OK);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_rv(login_user(s, CKU_SO, P11_SO_PW, "admin"), CKR_OK);
    assert_int_equal(p11_session_state(s), CKS_RW_SO_FUNCTIONS);
    assert_rv(p11->C_Logout(s), CKR_OK);
    /* username NULL or empty: like C_Login (bare = admin for CKU_SO) */
    assert_rv(login_user(s, CKU_SO, P11_SO_PW, NULL), CKR_OK);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_rv(p11->C_LoginUser(s, CKU_SO, (CK_UTF8CHAR_PTR)P11_SO_PW,
                               strlen(P11_SO_PW), (CK_UTF8CHAR_PTR) "", 0),
              CKR_OK);
    assert_rv(p11->C_Logout(s), CKR_OK);
    /* and then a "name:pw" PIN works as in C_Login */
    assert_rv(login_user(s, CKU_USER, "alice:" P11_ALICE_PW, NULL), CKR_OK);
    assert_rv(p11->C_Logout(s), CKR_OK);
    /* the name is not also taken from the pin */
    assert_rv(login_user(s, CKU_USER, "alice:" P11_ALICE_PW, "alice"),
              CKR_PIN_INCORRECT);
    assert_rv(login_user(s, 42, P11_ALICE_PW, "alice"), CKR_USER_TYPE_INVALID);
}

/* ------------------------------------------------------------ C_SetPIN */

static void test_set_pin_own(void **state)
{
    CK_SESSION_HANDLE s = p11_open_rw();

    (void)state;
    p11_login_cu(s, "alice", P11_ALICE_PW);
    assert_rv(p11_set_pin(s, "wrongpw1", "alicenew1"), CKR_PIN_INCORRECT);
    assert_rv(p11_set_pin(s, P11_ALICE_PW, "short"), CKR_PIN_LEN_RANGE);
    assert_rv(p11_set_pin(s, P11_ALICE_PW, "alicenew1"), CKR_OK);
    assert_rv(p11_set_pin(s, "alice:alicenew1", "alice:alicenew2"), CKR_OK);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_rv(p11_login(s, CKU_USER, "alice:" P11_ALICE_PW), CKR_PIN_INCORRECT);
    assert_rv(p11_login(s, CKU_USER, "alice:alicenew1"), CKR_PIN_INCORRECT);
    assert_rv(p11_login(s, CKU_USER, "alice:alicenew2"), CKR_OK);
}

static void test_set_pin_so(void **state)
{
    CK_SESSION_HANDLE s = p11_open_rw();

    (void)state;
    p11_login_so(s, P11_SO_PW);
    assert_rv(p11_set_pin(s, "wrongpw1", "sonewpw1"), CKR_PIN_INCORRECT);
    assert_rv(p11_set_pin(s, P11_SO_PW, "sonewpw1"), CKR_OK);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_rv(p11_login(s, CKU_SO, P11_SO_PW), CKR_PIN_INCORRECT);
    assert_rv(p11_login(s, CKU_SO, "sonewpw1"), CKR_OK);
}

static void test_set_pin_ro(void **state)
{
    CK_SESSION_HANDLE s = p11_open_ro();

    (void)state;
    assert_rv(p11_set_pin(s, "alice:" P11_ALICE_PW, "alice:alicenew1"),
              CKR_SESSION_READ_ONLY);
    p11_login_cu(s, "alice", P11_ALICE_PW);
    assert_rv(p11_set_pin(s, P11_ALICE_PW, "alicenew1"), CKR_SESSION_READ_ONLY);
    assert_rv(p11->C_Logout(s), CKR_OK);
    p11_login_cu(s, "alice", P11_ALICE_PW);
}

static void test_set_pin_public(void **state)
{
    CK_SESSION_HANDLE s = p11_open_rw();

    (void)state;
    assert_rv(p11_set_pin(s, "alice:wrongpw1", "alice:alicenew1"),
              CKR_PIN_INCORRECT);
    assert_rv(p11_set_pin(s, "nobody:" P11_ALICE_PW, "alicenew1"),
              CKR_PIN_INCORRECT);
    assert_rv(p11_set_pin(s, "alice:" P11_ALICE_PW, "short"),
              CKR_PIN_LEN_RANGE);
    assert_rv(p11_set_pin(s, "alice:" P11_ALICE_PW, "alicenew1"), CKR_OK);
    assert_int_equal(p11_session_state(s), CKS_RW_PUBLIC_SESSION);
    assert_rv(p11_login(s, CKU_USER, "alice:" P11_ALICE_PW), CKR_PIN_INCORRECT);
    assert_rv(p11_login(s, CKU_USER, "alice:alicenew1"), CKR_OK);
    assert_rv(p11->C_Logout(s), CKR_OK);
    /* bare old pin: the default CU ("user") */
    p11_co_init_pin("userpass1");
    assert_rv(p11_set_pin(s, "userpass1", "userpass2"), CKR_OK);
    assert_rv(p11_login(s, CKU_USER, "user:userpass2"), CKR_OK);
}

/* ------------------------------------------------------------ C_InitToken */

static void test_init_token_reinit(void **state)
{
    CK_SESSION_HANDLE s;
    CK_TOKEN_INFO ti;

    (void)state;
    s = p11_open_rw();
    p11_login_cu(s, "alice", P11_ALICE_PW);
    p11_make_data(s, "keep-me?", CK_TRUE);
    assert_int_equal(p11_count_label(s, "keep-me?"), 1);
    /* a session is open in this application */
    assert_rv(p11_init_token(P11_SO_PW, "relabel"), CKR_SESSION_EXISTS);
    assert_rv(p11->C_CloseSession(s), CKR_OK);
    assert_rv(p11_init_token("wrongpw1", "relabel"), CKR_PIN_INCORRECT);
    assert_rv(p11_init_token("alice:" P11_ALICE_PW, "relabel"),
              CKR_PIN_INCORRECT);
    p11_token_info(&ti);
    assert_true(p11_padded_eq(ti.label, sizeof(ti.label), P11_TOKEN_LABEL));
    assert_true(ti.flags & CKF_USER_PIN_INITIALIZED);

    assert_rv(p11_init_token("admin:" P11_SO_PW, "relabel"), CKR_OK);
    p11_token_info(&ti);
    assert_true(p11_padded_eq(ti.label, sizeof(ti.label), "relabel"));
    assert_true(ti.flags & CKF_TOKEN_INITIALIZED);
    assert_false(ti.flags & CKF_USER_PIN_INITIALIZED);

    /* every CU is gone, COs stay */
    s = p11_open_rw();
    assert_rv(p11_login(s, CKU_USER, "alice:" P11_ALICE_PW),
              CKR_USER_PIN_NOT_INITIALIZED);
    p11_login_so(s, P11_SO_PW);
    assert_rv(p11_init_pin(s, "alice:" P11_ALICE_PW), CKR_OK);
    assert_rv(p11->C_Logout(s), CKR_OK);
    /* every object is gone */
    p11_login_cu(s, "alice", P11_ALICE_PW);
    assert_int_equal(p11_count_label(s, "keep-me?"), 0);
    assert_int_equal(p11_count_all(s), 0);
}

static void test_init_token_keeps_au(void **state)
{
    CK_SESSION_HANDLE s;

    (void)state;
    p11_co_init_pin("app_user:" P11_AU_PW);
    assert_rv(p11_init_token(P11_SO_PW, "again"), CKR_OK);
    s = p11_open_rw();
    assert_rv(p11_login(s, CKU_NIMBUS_AU, P11_AU_PW), CKR_OK);
}

/* ------------------------------------------------------------ lockout */

static void assert_user_flags(CK_FLAGS want)
{
    CK_FLAGS f = p11_token_flags() & USER_FLAGS;

    if (f != want) {
        print_error("user PIN flags 0x%lx, expected 0x%lx\n", (unsigned long)f,
                    (unsigned long)want);
    }
    assert_int_equal(f, want);
}

static void assert_so_flags(CK_FLAGS want)
{
    CK_FLAGS f = p11_token_flags() & SO_FLAGS;

    if (f != want) {
        print_error("SO PIN flags 0x%lx, expected 0x%lx\n", (unsigned long)f,
                    (unsigned long)want);
    }
    assert_int_equal(f, want);
}

static void test_lockout_user(void **state)
{
    CK_SESSION_HANDLE s = p11_open_ro();

    (void)state;
    assert_user_flags(0);
    assert_rv(p11_login(s, CKU_USER, "alice:wrongpw1"), CKR_PIN_INCORRECT);
    assert_user_flags(CKF_USER_PIN_COUNT_LOW);
    assert_rv(p11_login(s, CKU_USER, "wrongpw2"), CKR_PIN_INCORRECT);
    assert_rv(login_user(s, CKU_USER, "wrongpw3", "alice"), CKR_PIN_INCORRECT);
    assert_user_flags(CKF_USER_PIN_COUNT_LOW);
    assert_rv(p11_login(s, CKU_USER, "alice:wrongpw4"), CKR_PIN_INCORRECT);
    assert_user_flags(CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY);
    assert_rv(p11_login(s, CKU_USER, "alice:wrongpw5"), CKR_PIN_INCORRECT);
    assert_user_flags(CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_LOCKED);
    assert_rv(p11_login(s, CKU_USER, "alice:" P11_ALICE_PW), CKR_PIN_LOCKED);
    assert_rv(login_user(s, CKU_USER, P11_ALICE_PW, "alice"), CKR_PIN_LOCKED);
    assert_int_equal(p11_session_state(s), CKS_RO_PUBLIC_SESSION);

    /* the count is in the store */
    p11_restart();
    s = p11_open_ro();
    assert_user_flags(CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_LOCKED);
    assert_rv(p11_login(s, CKU_USER, "alice:" P11_ALICE_PW), CKR_PIN_LOCKED);
    assert_rv(p11->C_CloseSession(s), CKR_OK);

    /* a CO reset unlocks */
    p11_co_init_pin("alice:newpass1");
    assert_user_flags(0);
    s = p11_open_ro();
    assert_rv(p11_login(s, CKU_USER, "alice:" P11_ALICE_PW), CKR_PIN_INCORRECT);
    assert_rv(p11_login(s, CKU_USER, "alice:newpass1"), CKR_OK);
    assert_user_flags(0);
}

static void test_lockout_success_resets(void **state)
{
    CK_SESSION_HANDLE s = p11_open_ro();

    (void)state;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 4; i++) {
            assert_rv(p11_login(s, CKU_USER, "alice:wrongpw1"),
                      CKR_PIN_INCORRECT);
        }
        assert_true(p11_token_flags() & CKF_USER_PIN_FINAL_TRY);
        assert_rv(p11_login(s, CKU_USER, "alice:" P11_ALICE_PW), CKR_OK);
        assert_user_flags(0);
        assert_rv(p11->C_Logout(s), CKR_OK);
    }
}

static void test_lockout_other_users(void **state)
{
    CK_SESSION_HANDLE s;

    (void)state;
    p11_create_cu("bob", P11_BOB_PW); /* before the RO session: SO login */
    s = p11_open_ro();
    for (int i = 0; i < 7; i++) {
        assert_rv(p11_login(s, CKU_USER, "nobody:wrongpw1"), CKR_PIN_INCORRECT);
    }
    for (int i = 0; i < 5; i++) {
        assert_rv(p11_login(s, CKU_USER, "bob:wrongpw1"), CKR_PIN_INCORRECT);
    }
    assert_rv(p11_login(s, CKU_USER, "bob:" P11_BOB_PW), CKR_PIN_LOCKED);
    /* alice (the default CU) is untouched */
    assert_user_flags(0);
    p11_login_cu(s, "alice", P11_ALICE_PW);
}

static void test_lockout_set_pin_counts(void **state)
{
    CK_SESSION_HANDLE s = p11_open_rw();

    (void)state;
    for (int i = 0; i < 5; i++) {
        assert_rv(p11_set_pin(s, "alice:wrongpw1", "alice:alicenew1"),
                  CKR_PIN_INCORRECT);
    }
    assert_true(p11_token_flags() & CKF_USER_PIN_LOCKED);
    assert_rv(p11_set_pin(s, "alice:" P11_ALICE_PW, "alice:alicenew1"),
              CKR_PIN_LOCKED);
    assert_rv(p11_login(s, CKU_USER, "alice:" P11_ALICE_PW), CKR_PIN_LOCKED);
}

static void test_lockout_flags_logged_in_user(void **state)
{
    CK_SESSION_HANDLE s = p11_open_rw();

    (void)state;
    /* default_user is alice in this fixture; bob logs in and fails a SetPIN */
    p11_create_cu("bob", P11_BOB_PW);
    p11_login_cu(s, "bob", P11_BOB_PW);
    assert_user_flags(0);
    assert_rv(p11_set_pin(s, "wrongpw1", "bobnewpw1"), CKR_PIN_INCORRECT);
    /* the flags follow the logged-in CU (bob), not the default CU */
    assert_user_flags(CKF_USER_PIN_COUNT_LOW);
    assert_rv(p11->C_Logout(s), CKR_OK);
    assert_user_flags(0); /* alice again */
}

static void test_lockout_limit_config(void **state)
{
    CK_SESSION_HANDLE s;

    (void)state;
    p11_fresh("login_failure_limit = 2\ndefault_user = alice");
    p11_activate(P11_SO_PW);
    p11_create_cu("alice", P11_ALICE_PW);
    s = p11_open_ro();
    assert_rv(p11_login(s, CKU_USER, "alice:wrongpw1"), CKR_PIN_INCORRECT);
    assert_user_flags(CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY);
    assert_rv(p11_login(s, CKU_USER, "alice:wrongpw1"), CKR_PIN_INCORRECT);
    assert_user_flags(CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_LOCKED);
    assert_rv(p11_login(s, CKU_USER, "alice:" P11_ALICE_PW), CKR_PIN_LOCKED);
}

static void test_lockout_so(void **state)
{
    CK_SESSION_HANDLE s = p11_open_rw();

    (void)state;
    assert_so_flags(0);
    assert_rv(p11_login(s, CKU_SO, "wrongpw1"), CKR_PIN_INCORRECT);
    assert_so_flags(CKF_SO_PIN_COUNT_LOW);
    assert_rv(p11_login(s, CKU_SO, "admin:wrongpw2"), CKR_PIN_INCORRECT);
    assert_rv(login_user(s, CKU_SO, "wrongpw3", "admin"), CKR_PIN_INCORRECT);
    assert_so_flags(CKF_SO_PIN_COUNT_LOW);
    assert_rv(p11_login(s, CKU_SO, "wrongpw4"), CKR_PIN_INCORRECT);
    assert_so_flags(CKF_SO_PIN_COUNT_LOW | CKF_SO_PIN_FINAL_TRY);
    assert_rv(p11_login(s, CKU_SO, "wrongpw5"), CKR_PIN_INCORRECT);
    assert_so_flags(CKF_SO_PIN_COUNT_LOW | CKF_SO_PIN_LOCKED);
    assert_rv(p11_login(s, CKU_SO, P11_SO_PW), CKR_PIN_LOCKED);
    assert_user_flags(0);
    p11_restart();
    s = p11_open_rw();
    assert_so_flags(CKF_SO_PIN_COUNT_LOW | CKF_SO_PIN_LOCKED);
    assert_rv(p11_login(s, CKU_SO, "admin:" P11_SO_PW), CKR_PIN_LOCKED);
    /* CUs are not affected */
    p11_login_cu(s, "alice", P11_ALICE_PW);
}

static void test_lockout_so_success_resets(void **state)
{
    CK_SESSION_HANDLE s = p11_open_rw();

    (void)state;
    for (int i = 0; i < 4; i++) {
        assert_rv(p11_login(s, CKU_SO, "wrongpw1"), CKR_PIN_INCORRECT);
    }
    p11_login_so(s, P11_SO_PW);
    assert_so_flags(0);
    assert_rv(p11->C_Logout(s), CKR_OK);
    for (int i = 0; i < 4; i++) {
        assert_rv(p11_login(s, CKU_SO, "wrongpw1"), CKR_PIN_INCORRECT);
    }
    p11_login_so(s, P11_SO_PW);
}

static void test_lockout_init_token_counts(void **state)
{
    CK_SESSION_HANDLE s;

    (void)state;
    for (int i = 0; i < 4; i++) {
        assert_rv(p11_init_token("wrongpw1", "x"), CKR_PIN_INCORRECT);
    }
    assert_so_flags(CKF_SO_PIN_COUNT_LOW | CKF_SO_PIN_FINAL_TRY);
    assert_rv(p11_init_token("wrongpw1", "x"), CKR_PIN_INCORRECT);
    assert_so_flags(CKF_SO_PIN_COUNT_LOW | CKF_SO_PIN_LOCKED);
    assert_rv(p11_init_token(P11_SO_PW, "x"), CKR_PIN_LOCKED);
    s = p11_open_rw();
    assert_rv(p11_login(s, CKU_SO, P11_SO_PW), CKR_PIN_LOCKED);
}

#define T(f, s) cmocka_unit_test_setup_teardown(f, s, p11_teardown)

int p11_group_login(void)
{
    const struct CMUnitTest tests[] = {
        T(test_fresh_token, p11_setup),
        T(test_activate_init_token, p11_setup),
        T(test_activate_init_token_named, p11_setup),
        T(test_activate_init_token_pin_len, p11_setup),
        T(test_activate_set_pin, p11_setup),
        T(test_activate_named_preco_login, p11_setup),
        T(test_preco_restrictions, p11_setup),
        T(test_cu_login, setup_activated),
        T(test_already_logged_in, setup_alice),
        T(test_login_shared_by_sessions, setup_alice),
        T(test_default_user, setup_activated),
        T(test_default_user_config, p11_setup),
        T(test_colon_in_password, setup_activated),
        T(test_init_pin_formats, setup_activated),
        T(test_init_pin_needs_co, setup_alice),
        T(test_init_pin_resets, setup_alice),
        T(test_au_login, setup_activated),
        T(test_login_user, setup_alice),
        T(test_set_pin_own, setup_alice),
        T(test_set_pin_so, setup_alice),
        T(test_set_pin_ro, setup_alice),
        T(test_set_pin_public, setup_alice),
        T(test_init_token_reinit, setup_alice),
        T(test_init_token_keeps_au, setup_alice),
        T(test_lockout_user, setup_lockout),
        T(test_lockout_success_resets, setup_lockout),
        T(test_lockout_other_users, setup_lockout),
        T(test_lockout_set_pin_counts, setup_lockout),
        T(test_lockout_flags_logged_in_user, setup_lockout),
        T(test_lockout_limit_config, p11_setup),
        T(test_lockout_so, setup_lockout),
        T(test_lockout_so_success_resets, setup_lockout),
        T(test_lockout_init_token_counts, setup_lockout),
    };

    return cmocka_run_group_tests_name("login", tests, NULL, NULL);
}
