/* test_policy.c - every cell of the permission table, and ownership. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hsm/policy.h"

#define OK CKR_OK
#define NLI CKR_USER_NOT_LOGGED_IN
#define EXP CKR_PIN_EXPIRED

/* The table of ARCHITECTURE section 3, written out again independently:
 * columns unauthenticated, PRECO, CO, CU, AU; the default settings
 * (public_objects = visible). */
static const CK_RV expected[HSM_OP_COUNT][5] = {
    [HSM_OP_BASIC_INFO] = {OK, OK, OK, OK, OK},
    [HSM_OP_CHANGE_OWN_PW] = {NLI, OK, OK, OK, OK},
    [HSM_OP_CHANGE_ANY_PW] = {NLI, NLI, OK, NLI, NLI},
    [HSM_OP_MANAGE_USERS] = {NLI, NLI, OK, NLI, NLI},
    [HSM_OP_SYNC_STATUS] = {NLI, EXP, OK, OK, OK},
    [HSM_OP_MASKED_OBJECTS] = {NLI, EXP, OK, OK, OK},
    [HSM_OP_KEY_MANAGEMENT] = {NLI, EXP, NLI, OK, NLI},
    [HSM_OP_OBJECT_READ] = {OK, EXP, NLI, OK, NLI},
    [HSM_OP_ENCRYPT_DECRYPT] = {NLI, EXP, NLI, OK, NLI},
    [HSM_OP_SIGN_VERIFY] = {NLI, EXP, NLI, OK, NLI},
    [HSM_OP_DIGEST_HMAC] = {NLI, EXP, NLI, OK, NLI},
    [HSM_OP_RANDOM] = {OK, NLI, OK, OK, OK},
    [HSM_OP_TRUST_KEYS] = {NLI, NLI, OK, NLI, NLI},
    [HSM_OP_QUORUM] = {NLI, NLI, OK, NLI, NLI},
    [HSM_OP_CLUSTER_ADMIN] = {NLI, NLI, OK, NLI, NLI},
    [HSM_OP_BACKUP] = {NLI, NLI, OK, NLI, NLI},
    [HSM_OP_RESTORE] = {NLI, NLI, OK, NLI, NLI},
};

static const hsm_policy_conf_t visible = {.public_objects = true};
static const hsm_policy_conf_t hidden = {.public_objects = false};

static void test_every_cell(void **state)
{
    (void)state;
    for (int op = 0; op < HSM_OP_COUNT; op++) {
        for (int t = HSM_USER_NONE; t <= HSM_USER_AU; t++) {
            CK_RV rv =
                hsm_policy_check_in(&visible, (hsm_user_type_t)t, (hsm_op_t)op);
            if (rv != expected[op][t])
                fail_msg("op %s, user type %d: got 0x%lx, want 0x%lx",
                         hsm_policy_op_name((hsm_op_t)op), t, rv,
                         expected[op][t]);
        }
    }
}

/* public_objects = hidden: the two cells of a public session that the
 * setting governs go back to USER_NOT_LOGGED_IN, no other cell moves; the
 * plain hsm_policy_check is this strict table. */
static void test_every_cell_hidden(void **state)
{
    (void)state;
    for (int op = 0; op < HSM_OP_COUNT; op++) {
        for (int t = HSM_USER_NONE; t <= HSM_USER_AU; t++) {
            CK_RV want = expected[op][t];
            CK_RV rv =
                hsm_policy_check_in(&hidden, (hsm_user_type_t)t, (hsm_op_t)op);

            if (t == HSM_USER_NONE &&
                (op == HSM_OP_OBJECT_READ || op == HSM_OP_RANDOM))
                want = NLI;
            if (rv != want)
                fail_msg("hidden: op %s, user type %d: got 0x%lx, want 0x%lx",
                         hsm_policy_op_name((hsm_op_t)op), t, rv, want);
            assert_int_equal(hsm_policy_check((hsm_user_type_t)t, (hsm_op_t)op),
                             want);
        }
    }
}

static void test_co_never_touches_keys(void **state)
{
    (void)state;
    static const hsm_op_t key_ops[] = {
        HSM_OP_KEY_MANAGEMENT, HSM_OP_OBJECT_READ, HSM_OP_ENCRYPT_DECRYPT,
        HSM_OP_SIGN_VERIFY, HSM_OP_DIGEST_HMAC};
    for (size_t i = 0; i < sizeof(key_ops) / sizeof(key_ops[0]); i++) {
        assert_int_not_equal(hsm_policy_check(HSM_USER_CO, key_ops[i]), OK);
        assert_int_equal(hsm_policy_check(HSM_USER_CU, key_ops[i]), OK);
    }
}

static void test_names(void **state)
{
    (void)state;
    for (int op = 0; op < HSM_OP_COUNT; op++)
        assert_string_not_equal(hsm_policy_op_name((hsm_op_t)op), "?");
    assert_string_equal(hsm_policy_op_name(HSM_OP_COUNT), "?");
}

static void test_ownership(void **state)
{
    (void)state;
    hsm_object_meta_t own = {.owner = 3, .is_private = true, .is_token = true};
    hsm_object_meta_t shared = {.owner = 4,
                                .is_private = true,
                                .is_token = true,
                                .shared_with_user = true};
    hsm_object_meta_t other = {
        .owner = 4, .is_private = true, .is_token = true};
    hsm_object_meta_t pub = {.owner = 4,
                             .is_private = false,
                             .is_public_item = true,
                             .is_token = true};
    hsm_object_meta_t privpub = {.owner = 4,
                                 .is_private = true,
                                 .is_public_item = true,
                                 .is_token = true};
    hsm_object_meta_t pubdata = {
        .owner = 4, .is_private = false, .is_data = true, .is_token = true};

    for (int a = HSM_ACCESS_SEE; a <= HSM_ACCESS_OWN; a++)
        assert_int_equal(
            hsm_policy_object(&visible, HSM_USER_CU, 3, &own, (hsm_access_t)a),
            OK);
    assert_int_equal(
        hsm_policy_object(&visible, HSM_USER_CU, 3, &shared, HSM_ACCESS_SEE),
        OK);
    assert_int_equal(
        hsm_policy_object(&visible, HSM_USER_CU, 3, &shared, HSM_ACCESS_USE),
        OK);
    assert_int_equal(
        hsm_policy_object(&visible, HSM_USER_CU, 3, &shared, HSM_ACCESS_OWN),
        CKR_ACTION_PROHIBITED);
    assert_int_equal(
        hsm_policy_object(&visible, HSM_USER_CU, 3, &other, HSM_ACCESS_SEE),
        CKR_OBJECT_HANDLE_INVALID);
    assert_int_equal(
        hsm_policy_object(&visible, HSM_USER_CU, 3, &pub, HSM_ACCESS_USE), OK);
    assert_int_equal(
        hsm_policy_object(&visible, HSM_USER_CU, 3, &pub, HSM_ACCESS_OWN),
        CKR_ACTION_PROHIBITED);
    assert_int_equal(
        hsm_policy_object(&visible, HSM_USER_CU, 3, &privpub, HSM_ACCESS_SEE),
        CKR_OBJECT_HANDLE_INVALID);
    /* Another CU's public data object: read and used, never owned. */
    assert_int_equal(
        hsm_policy_object(&visible, HSM_USER_CU, 3, &pubdata, HSM_ACCESS_SEE),
        OK);
    assert_int_equal(
        hsm_policy_object(&visible, HSM_USER_CU, 3, &pubdata, HSM_ACCESS_USE),
        OK);
    assert_int_equal(
        hsm_policy_object(&visible, HSM_USER_CU, 3, &pubdata, HSM_ACCESS_OWN),
        CKR_ACTION_PROHIBITED);
    /* Nobody but a CU and a public session ever sees an object, not even
     * its owner's CO. */
    for (int t = HSM_USER_PRECO; t <= HSM_USER_AU; t++) {
        if (t == HSM_USER_CU)
            continue;
        assert_int_equal(hsm_policy_object(&visible, (hsm_user_type_t)t, 3,
                                           &own, HSM_ACCESS_SEE),
                         CKR_OBJECT_HANDLE_INVALID);
        assert_int_equal(hsm_policy_object(&visible, (hsm_user_type_t)t, 4,
                                           &pub, HSM_ACCESS_SEE),
                         CKR_OBJECT_HANDLE_INVALID);
        assert_int_equal(hsm_policy_object(&visible, (hsm_user_type_t)t, 4,
                                           &pubdata, HSM_ACCESS_SEE),
                         CKR_OBJECT_HANDLE_INVALID);
    }
}

/* A public session: every CU's public token certificates, public keys and
 * data objects, to read only; nothing private, no session object, nothing
 * at all under public_objects = hidden. */
static void test_public_session(void **state)
{
    hsm_object_meta_t pub = {.owner = 4,
                             .is_private = false,
                             .is_public_item = true,
                             .is_token = true};
    hsm_object_meta_t pubdata = {
        .owner = 3, .is_private = false, .is_data = true, .is_token = true};
    hsm_object_meta_t privpub = {.owner = 4,
                                 .is_private = true,
                                 .is_public_item = true,
                                 .is_token = true};
    hsm_object_meta_t privdata = {
        .owner = 4, .is_private = true, .is_data = true, .is_token = true};
    /* a secret or private key marked CKA_PRIVATE false is still a key */
    hsm_object_meta_t pubsecret = {
        .owner = 4, .is_private = false, .is_token = true};
    hsm_object_meta_t sessionpub = {
        .owner = 4, .is_private = false, .is_public_item = true};
    hsm_object_meta_t shared = {.owner = 4,
                                .is_private = true,
                                .is_token = true,
                                .shared_with_user = true};
    const hsm_object_meta_t *seen[] = {&pub, &pubdata};
    const hsm_object_meta_t *unseen[] = {&privpub, &privdata, &pubsecret,
                                         &sessionpub, &shared};

    (void)state;
    for (size_t i = 0; i < sizeof(seen) / sizeof(seen[0]); i++) {
        assert_int_equal(hsm_policy_object(&visible, HSM_USER_NONE, 0, seen[i],
                                           HSM_ACCESS_SEE),
                         OK);
        assert_int_equal(hsm_policy_object(&visible, HSM_USER_NONE, 0, seen[i],
                                           HSM_ACCESS_USE),
                         CKR_ACTION_PROHIBITED);
        assert_int_equal(hsm_policy_object(&visible, HSM_USER_NONE, 0, seen[i],
                                           HSM_ACCESS_OWN),
                         CKR_ACTION_PROHIBITED);
        for (int a = HSM_ACCESS_SEE; a <= HSM_ACCESS_OWN; a++)
            assert_int_equal(hsm_policy_object(&hidden, HSM_USER_NONE, 0,
                                               seen[i], (hsm_access_t)a),
                             CKR_OBJECT_HANDLE_INVALID);
    }
    for (size_t i = 0; i < sizeof(unseen) / sizeof(unseen[0]); i++) {
        for (int a = HSM_ACCESS_SEE; a <= HSM_ACCESS_OWN; a++) {
            assert_int_equal(hsm_policy_object(&visible, HSM_USER_NONE, 0,
                                               unseen[i], (hsm_access_t)a),
                             CKR_OBJECT_HANDLE_INVALID);
            assert_int_equal(hsm_policy_object(&hidden, HSM_USER_NONE, 0,
                                               unseen[i], (hsm_access_t)a),
                             CKR_OBJECT_HANDLE_INVALID);
        }
    }
    /* a uid in a public session's call names nobody: still public only */
    assert_int_equal(
        hsm_policy_object(&visible, HSM_USER_NONE, 4, &privpub, HSM_ACCESS_SEE),
        CKR_OBJECT_HANDLE_INVALID);
    /* the CU's view does not depend on the setting */
    assert_int_equal(
        hsm_policy_object(&hidden, HSM_USER_CU, 3, &pub, HSM_ACCESS_SEE), OK);
    assert_int_equal(
        hsm_policy_object(&hidden, HSM_USER_CU, 3, &pubdata, HSM_ACCESS_OWN),
        OK);
}

static void test_key_listing(void **state)
{
    (void)state;
    assert_int_equal(hsm_policy_key_listing(HSM_USER_CO, 1, 3), OK);
    assert_int_equal(hsm_policy_key_listing(HSM_USER_AU, 2, 3), OK);
    assert_int_equal(hsm_policy_key_listing(HSM_USER_CU, 3, 3), OK);
    assert_int_equal(hsm_policy_key_listing(HSM_USER_CU, 3, 4),
                     CKR_ACTION_PROHIBITED);
    assert_int_equal(hsm_policy_key_listing(HSM_USER_NONE, 0, 3), NLI);
    assert_int_equal(hsm_policy_key_listing(HSM_USER_PRECO, 1, 3), EXP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_cell),
        cmocka_unit_test(test_every_cell_hidden),
        cmocka_unit_test(test_co_never_touches_keys),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_ownership),
        cmocka_unit_test(test_public_session),
        cmocka_unit_test(test_key_listing),
    };
    return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
