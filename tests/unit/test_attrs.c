/* test_attrs.c - the attribute schema engine and attribute lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hsm/attrs.h"
#include "nimbus/pkcs11-vendor.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define A(t, v)                                                                \
    {                                                                          \
        (t), (void *)&(v), sizeof(v)                                           \
    }
#define AB(t, s)                                                               \
    {                                                                          \
        (t), (void *)(s), sizeof(s) - 1                                        \
    }

static CK_BBOOL yes = CK_TRUE;
static CK_BBOOL no = CK_FALSE;
static const attr_caller_t user = {.is_so = false};
static const attr_caller_t so = {.is_so = true};

static CK_OBJECT_CLASS c_data = CKO_DATA;
static CK_OBJECT_CLASS c_cert = CKO_CERTIFICATE;
static CK_OBJECT_CLASS c_pub = CKO_PUBLIC_KEY;
static CK_OBJECT_CLASS c_priv = CKO_PRIVATE_KEY;
static CK_OBJECT_CLASS c_sec = CKO_SECRET_KEY;
static CK_KEY_TYPE k_rsa = CKK_RSA;
static CK_KEY_TYPE k_ec = CKK_EC;
static CK_KEY_TYPE k_ed = CKK_EC_EDWARDS;
static CK_KEY_TYPE k_aes = CKK_AES;
static CK_KEY_TYPE k_gen = CKK_GENERIC_SECRET;
static CK_KEY_TYPE k_des3 = CKK_DES3;
static CK_KEY_TYPE k_hmac = CKK_SHA256_HMAC;
static CK_CERTIFICATE_TYPE x509 = CKC_X_509;

static uint8_t aes32[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
static uint8_t aes15[15];
static uint8_t des24[24];
static uint8_t modulus[129] = {0x00, 0x80}; /* 1024 bits behind a zero */
static const char p256[] = "\x06\x08\x2A\x86\x48\xCE\x3D\x03\x01\x07";
static const char p521[] = "\x06\x05\x2B\x81\x04\x00\x23";
static const char ed25519[] = "\x06\x03\x2B\x65\x70";

static CK_RV create(const CK_ATTRIBUTE *t, CK_ULONG n, attr_list_t *out)
{
    return attrs_new_object(ATTR_OP_CREATE, &user, CK_UNAVAILABLE_INFORMATION,
                            CK_UNAVAILABLE_INFORMATION, t, n, out);
}

/* Expects rv from a create; the list must come back empty on failure. */
static void expect_create(const CK_ATTRIBUTE *t, CK_ULONG n, CK_RV want)
{
    attr_list_t l = {(attr_t *)1, 99, 99};

    assert_int_equal(create(t, n, &l), want);
    if (want != CKR_OK) {
        assert_int_equal(l.n, 0);
        assert_null(l.v);
    }
    attr_list_free(&l);
}

static bool get_bool(const attr_list_t *l, CK_ATTRIBUTE_TYPE t)
{
    const attr_t *a = attr_list_find(l, t);

    assert_non_null(a);
    assert_int_equal(a->len, sizeof(CK_BBOOL));
    return a->value[0] == CK_TRUE;
}

static CK_ULONG get_ulong(const attr_list_t *l, CK_ATTRIBUTE_TYPE t)
{
    const attr_t *a = attr_list_find(l, t);

    assert_non_null(a);
    assert_int_equal(a->len, sizeof(CK_ULONG));
    return attr_list_ulong(l, t, 12345);
}

static void assert_empty(const attr_list_t *l, CK_ATTRIBUTE_TYPE t)
{
    const attr_t *a = attr_list_find(l, t);

    assert_non_null(a);
    assert_int_equal(a->len, 0);
}

static void make_aes(attr_list_t *l, bool sensitive, bool extractable)
{
    CK_BBOOL s = sensitive ? CK_TRUE : CK_FALSE;
    CK_BBOOL e = extractable ? CK_TRUE : CK_FALSE;
    CK_ATTRIBUTE t[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_aes),
                        A(CKA_VALUE, aes32), A(CKA_SENSITIVE, s),
                        A(CKA_EXTRACTABLE, e)};

    assert_int_equal(create(t, NELEM(t), l), CKR_OK);
}

static void make_rsa_private(attr_list_t *l)
{
    uint8_t d[128] = {7};
    uint8_t e[3] = {1, 0, 1};
    CK_ATTRIBUTE t[] = {A(CKA_CLASS, c_priv), A(CKA_KEY_TYPE, k_rsa),
                        A(CKA_MODULUS, modulus), A(CKA_PUBLIC_EXPONENT, e),
                        A(CKA_PRIVATE_EXPONENT, d)};

    assert_int_equal(create(t, NELEM(t), l), CKR_OK);
}

/* ------------------------------------------------------------ lists */

static void test_list_basics(void **state)
{
    attr_list_t l = {NULL, 0, 0}, d = {NULL, 0, 0};
    size_t i;

    (void)state;
    assert_int_equal(attr_list_set(&l, 30, "ccc", 3), CKR_OK);
    assert_int_equal(attr_list_set(&l, 10, "a", 1), CKR_OK);
    assert_int_equal(attr_list_set(&l, 20, NULL, 0), CKR_OK);
    assert_int_equal(attr_list_set_bool(&l, 5, true), CKR_OK);
    assert_int_equal(attr_list_set_ulong(&l, 40, 77), CKR_OK);
    assert_int_equal(l.n, 5);
    for (i = 1; i < l.n; i++) {
        assert_true(l.v[i - 1].type < l.v[i].type);
    }
    assert_null(attr_list_find(&l, 20)->value);
    assert_memory_equal(attr_list_find(&l, 30)->value, "ccc", 3);
    assert_int_equal(attr_list_set(&l, 30, "dd", 2), CKR_OK); /* replace */
    assert_int_equal(l.n, 5);
    assert_int_equal(attr_list_find(&l, 30)->len, 2);
    assert_true(attr_list_bool(&l, 5, false));
    assert_false(attr_list_bool(&l, 10, false)); /* "a": malformed */
    assert_true(attr_list_bool(&l, 99, true));   /* absent */
    assert_int_equal(attr_list_ulong(&l, 40, 0), 77);
    assert_int_equal(attr_list_ulong(&l, 30, 9), 9);
    assert_int_equal(attr_list_set(&l, 50, "x", ATTR_VALUE_MAX + 1),
                     CKR_ATTRIBUTE_VALUE_INVALID);

    assert_int_equal(attr_list_dup(&l, &d), CKR_OK);
    attr_list_remove(&l, 10);
    attr_list_remove(&l, 11); /* absent: no-op */
    assert_int_equal(l.n, 4);
    assert_null(attr_list_find(&l, 10));
    assert_int_equal(d.n, 5);
    assert_memory_equal(attr_list_find(&d, 10)->value, "a", 1);
    assert_true(attr_list_find(&d, 30)->value != attr_list_find(&l, 30)->value);
    attr_list_free(&l);
    assert_int_equal(l.n, 0);
    assert_null(l.v);
    attr_list_free(&d);
    attr_list_free(&d); /* twice is fine */
}

static void test_serialize(void **state)
{
    attr_list_t l = {NULL, 0, 0}, r = {NULL, 0, 0};
    uint8_t *blob = NULL, *bad;
    size_t len = 0, cut, i;

    (void)state;
    make_rsa_private(&l);
    assert_int_equal(attr_list_serialize(&l, &blob, &len), CKR_OK);
    assert_int_equal(attr_list_deserialize(blob, len, &r), CKR_OK);
    assert_int_equal(r.n, l.n);
    for (i = 0; i < l.n; i++) {
        assert_int_equal(r.v[i].type, l.v[i].type);
        assert_int_equal(r.v[i].len, l.v[i].len);
        if (l.v[i].len > 0) {
            assert_memory_equal(r.v[i].value, l.v[i].value, l.v[i].len);
        }
    }
    attr_list_free(&r);

    /* Every truncation, and one trailing byte, is refused. */
    for (cut = 0; cut < len; cut++) {
        assert_int_equal(attr_list_deserialize(blob, cut, &r),
                         CKR_GENERAL_ERROR);
        assert_int_equal(r.n, 0);
        assert_null(r.v);
    }
    bad = malloc(len + 1);
    assert_non_null(bad);
    memcpy(bad, blob, len);
    bad[len] = 0;
    assert_int_equal(attr_list_deserialize(bad, len + 1, &r),
                     CKR_GENERAL_ERROR);

    /* Huge count. */
    memcpy(bad, blob, len);
    bad[0] = 0xFF;
    assert_int_equal(attr_list_deserialize(bad, len, &r), CKR_GENERAL_ERROR);
    bad[0] = 0x00;
    bad[1] = 0x00;
    bad[2] = 0x04; /* 1024 + ...: more than ATTR_TEMPLATE_MAX * 4 */
    bad[3] = 0x01;
    assert_int_equal(attr_list_deserialize(bad, len, &r), CKR_GENERAL_ERROR);
    /* Huge first value length. */
    memcpy(bad, blob, len);
    bad[4 + 8] = 0xFF;
    assert_int_equal(attr_list_deserialize(bad, len, &r), CKR_GENERAL_ERROR);
    /* Types out of order: swap the first type for a larger one. */
    memcpy(bad, blob, len);
    memset(bad + 4, 0xFF, 8);
    assert_int_equal(attr_list_deserialize(bad, len, &r), CKR_GENERAL_ERROR);
    free(bad);
    free(blob);
    attr_list_free(&l);

    /* The empty list. */
    assert_int_equal(attr_list_serialize(&l, &blob, &len), CKR_OK);
    assert_int_equal(len, 4);
    assert_int_equal(attr_list_deserialize(blob, len, &r), CKR_OK);
    assert_int_equal(r.n, 0);
    free(blob);
    assert_int_equal(attr_list_deserialize(NULL, 0, &r), CKR_GENERAL_ERROR);
}

/* ------------------------------------------------------------ create */

static void test_create_data(void **state)
{
    CK_ATTRIBUTE t[] = {A(CKA_CLASS, c_data), AB(CKA_VALUE, "abc"),
                        AB(CKA_LABEL, "d")};
    attr_list_t l = {NULL, 0, 0};

    (void)state;
    assert_int_equal(create(t, NELEM(t), &l), CKR_OK);
    assert_int_equal(get_ulong(&l, CKA_CLASS), CKO_DATA);
    assert_false(get_bool(&l, CKA_TOKEN));
    assert_true(get_bool(&l, CKA_PRIVATE));
    assert_true(get_bool(&l, CKA_MODIFIABLE));
    assert_true(get_bool(&l, CKA_COPYABLE));
    assert_true(get_bool(&l, CKA_DESTROYABLE));
    assert_empty(&l, CKA_APPLICATION);
    assert_empty(&l, CKA_OBJECT_ID);
    assert_memory_equal(attr_list_find(&l, CKA_LABEL)->value, "d", 1);
    assert_null(attr_list_find(&l, CKA_UNIQUE_ID));
    assert_null(attr_list_find(&l, CKA_KEY_TYPE));
    attr_list_free(&l);
}

static void test_create_cert(void **state)
{
    CK_CERTIFICATE_TYPE wtls = CKC_WTLS;
    CK_ATTRIBUTE t[] = {A(CKA_CLASS, c_cert), A(CKA_CERTIFICATE_TYPE, x509),
                        AB(CKA_SUBJECT, "\x30\x00"), AB(CKA_VALUE, "\x30\x01")};
    CK_ATTRIBUTE no_subj[] = {A(CKA_CLASS, c_cert),
                              A(CKA_CERTIFICATE_TYPE, x509),
                              AB(CKA_VALUE, "\x30")};
    CK_ATTRIBUTE no_type[] = {A(CKA_CLASS, c_cert), AB(CKA_SUBJECT, "\x30"),
                              AB(CKA_VALUE, "\x30")};
    CK_ATTRIBUTE bad_type[] = {A(CKA_CLASS, c_cert),
                               A(CKA_CERTIFICATE_TYPE, wtls),
                               AB(CKA_SUBJECT, "\x30"), AB(CKA_VALUE, "\x30")};
    attr_list_t l = {NULL, 0, 0};

    (void)state;
    assert_int_equal(create(t, NELEM(t), &l), CKR_OK);
    assert_false(get_bool(&l, CKA_PRIVATE));
    assert_false(get_bool(&l, CKA_TRUSTED));
    assert_int_equal(get_ulong(&l, CKA_CERTIFICATE_CATEGORY), 0);
    assert_int_equal(get_ulong(&l, CKA_JAVA_MIDP_SECURITY_DOMAIN), 0);
    assert_int_equal(get_ulong(&l, CKA_NAME_HASH_ALGORITHM), CKM_SHA_1);
    assert_empty(&l, CKA_ID);
    assert_empty(&l, CKA_ISSUER);
    assert_empty(&l, CKA_START_DATE);
    assert_null(attr_list_find(&l, CKA_CHECK_VALUE));
    attr_list_free(&l);
    expect_create(no_subj, NELEM(no_subj), CKR_TEMPLATE_INCOMPLETE);
    expect_create(no_type, NELEM(no_type), CKR_TEMPLATE_INCOMPLETE);
    expect_create(bad_type, NELEM(bad_type), CKR_ATTRIBUTE_VALUE_INVALID);
}

static void test_create_rsa(void **state)
{
    uint8_t e[3] = {1, 0, 1};
    CK_ULONG bits = 1024;
    CK_ATTRIBUTE pub[] = {A(CKA_CLASS, c_pub), A(CKA_KEY_TYPE, k_rsa),
                          A(CKA_MODULUS, modulus), A(CKA_PUBLIC_EXPONENT, e)};
    CK_ATTRIBUTE pub_nomod[] = {A(CKA_CLASS, c_pub), A(CKA_KEY_TYPE, k_rsa),
                                A(CKA_PUBLIC_EXPONENT, e)};
    CK_ATTRIBUTE pub_bits[] = {
        A(CKA_CLASS, c_pub), A(CKA_KEY_TYPE, k_rsa), A(CKA_MODULUS, modulus),
        A(CKA_PUBLIC_EXPONENT, e), A(CKA_MODULUS_BITS, bits)};
    CK_ATTRIBUTE priv_nod[] = {A(CKA_CLASS, c_priv), A(CKA_KEY_TYPE, k_rsa),
                               A(CKA_MODULUS, modulus)};
    attr_list_t l = {NULL, 0, 0};

    (void)state;
    assert_int_equal(create(pub, NELEM(pub), &l), CKR_OK);
    assert_int_equal(get_ulong(&l, CKA_MODULUS_BITS), 1024);
    assert_true(get_bool(&l, CKA_ENCRYPT));
    assert_true(get_bool(&l, CKA_VERIFY));
    assert_true(get_bool(&l, CKA_WRAP));
    assert_false(get_bool(&l, CKA_VERIFY_RECOVER));
    assert_false(get_bool(&l, CKA_DERIVE));
    assert_false(get_bool(&l, CKA_PRIVATE));
    assert_false(get_bool(&l, CKA_LOCAL));
    assert_false(get_bool(&l, CKA_TRUSTED));
    assert_int_equal(get_ulong(&l, CKA_KEY_GEN_MECHANISM),
                     CK_UNAVAILABLE_INFORMATION);
    assert_empty(&l, CKA_ALLOWED_MECHANISMS);
    assert_empty(&l, CKA_SUBJECT);
    assert_null(attr_list_find(&l, CKA_SENSITIVE));
    attr_list_free(&l);

    make_rsa_private(&l);
    assert_true(get_bool(&l, CKA_PRIVATE));
    assert_true(get_bool(&l, CKA_SENSITIVE));
    assert_true(get_bool(&l, CKA_EXTRACTABLE));
    assert_false(get_bool(&l, CKA_ALWAYS_SENSITIVE));
    assert_false(get_bool(&l, CKA_NEVER_EXTRACTABLE));
    assert_true(get_bool(&l, CKA_SIGN));
    assert_true(get_bool(&l, CKA_DECRYPT));
    assert_true(get_bool(&l, CKA_UNWRAP));
    assert_false(get_bool(&l, CKA_DERIVE));
    assert_false(get_bool(&l, CKA_SIGN_RECOVER));
    assert_false(get_bool(&l, CKA_WRAP_WITH_TRUSTED));
    assert_false(get_bool(&l, CKA_ALWAYS_AUTHENTICATE));
    assert_null(attr_list_find(&l, CKA_MODULUS_BITS));
    attr_list_free(&l);

    expect_create(pub_nomod, NELEM(pub_nomod), CKR_TEMPLATE_INCOMPLETE);
    expect_create(pub_bits, NELEM(pub_bits), CKR_ATTRIBUTE_READ_ONLY);
    expect_create(priv_nod, NELEM(priv_nod), CKR_TEMPLATE_INCOMPLETE);
}

static void test_create_secret(void **state)
{
    uint8_t g20[20] = {9};
    CK_ATTRIBUTE gen[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_gen),
                          A(CKA_VALUE, g20)};
    CK_ATTRIBUTE hmac[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_hmac),
                           A(CKA_VALUE, g20)};
    CK_ATTRIBUTE des[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_des3),
                          A(CKA_VALUE, des24)};
    CK_ATTRIBUTE des_short[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_des3),
                                A(CKA_VALUE, g20)};
    CK_ATTRIBUTE no_value[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_aes)};
    CK_ULONG vl = 32;
    CK_ATTRIBUTE value_len[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_aes),
                                A(CKA_VALUE, aes32), A(CKA_VALUE_LEN, vl)};
    attr_list_t l = {NULL, 0, 0};

    (void)state;
    make_aes(&l, true, true);
    assert_int_equal(get_ulong(&l, CKA_VALUE_LEN), 32);
    assert_true(get_bool(&l, CKA_PRIVATE));
    assert_true(get_bool(&l, CKA_ENCRYPT));
    assert_true(get_bool(&l, CKA_DECRYPT));
    assert_true(get_bool(&l, CKA_SIGN));
    assert_true(get_bool(&l, CKA_VERIFY));
    assert_false(get_bool(&l, CKA_WRAP));
    assert_false(get_bool(&l, CKA_UNWRAP));
    assert_false(get_bool(&l, CKA_DERIVE));
    assert_false(get_bool(&l, CKA_TRUSTED));
    assert_false(get_bool(&l, CKA_LOCAL));
    assert_false(get_bool(&l, CKA_ALWAYS_SENSITIVE));
    assert_null(attr_list_find(&l, CKA_CHECK_VALUE));
    attr_list_free(&l);

    assert_int_equal(create(gen, NELEM(gen), &l), CKR_OK);
    assert_int_equal(get_ulong(&l, CKA_VALUE_LEN), 20);
    attr_list_free(&l);
    assert_int_equal(create(hmac, NELEM(hmac), &l), CKR_OK);
    assert_int_equal(get_ulong(&l, CKA_KEY_TYPE), CKK_SHA256_HMAC);
    attr_list_free(&l);
    assert_int_equal(create(des, NELEM(des), &l), CKR_OK);
    assert_int_equal(get_ulong(&l, CKA_VALUE_LEN), 24);
    attr_list_free(&l);
    expect_create(des_short, NELEM(des_short), CKR_ATTRIBUTE_VALUE_INVALID);
    expect_create(no_value, NELEM(no_value), CKR_TEMPLATE_INCOMPLETE);
    expect_create(value_len, NELEM(value_len), CKR_ATTRIBUTE_READ_ONLY);
}

static void test_create_errors(void **state)
{
    CK_OBJECT_CLASS hw = CKO_HW_FEATURE;
    CK_KEY_TYPE bogus = 0x7777;
    uint32_t bool4 = 1;
    CK_BBOOL two = 2;
    CK_ULONG eight = 8;
    CK_ATTRIBUTE_TYPE vendor = CKA_NIMBUS_OWNER;
    CK_ATTRIBUTE no_class[] = {AB(CKA_LABEL, "x")};
    CK_ATTRIBUTE hw_class[] = {A(CKA_CLASS, hw)};
    CK_ATTRIBUTE no_kt[] = {A(CKA_CLASS, c_sec), A(CKA_VALUE, aes32)};
    CK_ATTRIBUTE bad_kt[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, bogus),
                             A(CKA_VALUE, aes32)};
    CK_ATTRIBUTE aes_pub[] = {A(CKA_CLASS, c_pub), A(CKA_KEY_TYPE, k_aes)};
    CK_ATTRIBUTE two_classes[] = {A(CKA_CLASS, c_sec), A(CKA_CLASS, c_data)};
    CK_ATTRIBUTE local[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_aes),
                            A(CKA_VALUE, aes32), A(CKA_LOCAL, yes)};
    CK_ATTRIBUTE never[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_aes),
                            A(CKA_VALUE, aes32), A(CKA_NEVER_EXTRACTABLE, no)};
    CK_ATTRIBUTE uid[] = {A(CKA_CLASS, c_data), AB(CKA_UNIQUE_ID, "1")};
    CK_ATTRIBUTE owner[] = {A(CKA_CLASS, c_data), {vendor, &eight, 8}};
    CK_ATTRIBUTE wide_bool[] = {A(CKA_CLASS, c_data), A(CKA_TOKEN, bool4)};
    CK_ATTRIBUTE bool_two[] = {A(CKA_CLASS, c_data), A(CKA_TOKEN, two)};
    CK_ATTRIBUTE aes_short[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_aes),
                                A(CKA_VALUE, aes15)};
    CK_ATTRIBUTE dup_diff[] = {A(CKA_CLASS, c_data), A(CKA_TOKEN, yes),
                               A(CKA_TOKEN, no)};
    CK_ATTRIBUTE dup_same[] = {A(CKA_CLASS, c_data), A(CKA_TOKEN, yes),
                               A(CKA_TOKEN, yes)};
    CK_ATTRIBUTE modulus_aes[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_aes),
                                  A(CKA_VALUE, aes32), A(CKA_MODULUS, modulus)};
    CK_ATTRIBUTE wrap_tmpl[] = {A(CKA_CLASS, c_sec),
                                A(CKA_KEY_TYPE, k_aes),
                                A(CKA_VALUE, aes32),
                                {CKA_WRAP_TEMPLATE, NULL, 0}};
    CK_ATTRIBUTE bad_date[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_aes),
                               A(CKA_VALUE, aes32),
                               AB(CKA_START_DATE, "2024AB01")};
    CK_ATTRIBUTE good_date[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_aes),
                                A(CKA_VALUE, aes32),
                                AB(CKA_START_DATE, "20240101")};
    CK_ATTRIBUTE bad_mechs[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_aes),
                                A(CKA_VALUE, aes32),
                                AB(CKA_ALLOWED_MECHANISMS, "abc")};
    CK_ATTRIBUTE null_value[] = {A(CKA_CLASS, c_data), {CKA_LABEL, NULL, 4}};
    CK_ATTRIBUTE trusted[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_aes),
                              A(CKA_VALUE, aes32), A(CKA_TRUSTED, yes)};
    /* Precedence: per-attribute errors in template order, first wins;
     * then INCONSISTENT; then INCOMPLETE. */
    CK_ATTRIBUTE prec1[] = {A(CKA_CLASS, c_sec),     A(CKA_KEY_TYPE, k_aes),
                            A(CKA_TOKEN, yes),       A(CKA_TOKEN, no),
                            A(CKA_MODULUS, modulus), A(CKA_TOKEN, two)};
    CK_ATTRIBUTE prec2[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_aes),
                            A(CKA_TOKEN, two), A(CKA_MODULUS, modulus)};
    CK_ATTRIBUTE prec3[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_aes),
                            A(CKA_TOKEN, yes), A(CKA_TOKEN, no)};
    attr_list_t l = {NULL, 0, 0};

    (void)state;
    expect_create(no_class, NELEM(no_class), CKR_TEMPLATE_INCOMPLETE);
    expect_create(NULL, 0, CKR_TEMPLATE_INCOMPLETE);
    expect_create(hw_class, NELEM(hw_class), CKR_ATTRIBUTE_VALUE_INVALID);
    expect_create(no_kt, NELEM(no_kt), CKR_TEMPLATE_INCOMPLETE);
    expect_create(bad_kt, NELEM(bad_kt), CKR_ATTRIBUTE_VALUE_INVALID);
    expect_create(aes_pub, NELEM(aes_pub), CKR_TEMPLATE_INCONSISTENT);
    expect_create(two_classes, NELEM(two_classes), CKR_TEMPLATE_INCONSISTENT);
    expect_create(local, NELEM(local), CKR_ATTRIBUTE_READ_ONLY);
    expect_create(never, NELEM(never), CKR_ATTRIBUTE_READ_ONLY);
    expect_create(uid, NELEM(uid), CKR_ATTRIBUTE_READ_ONLY);
    expect_create(owner, NELEM(owner), CKR_ATTRIBUTE_READ_ONLY);
    expect_create(wide_bool, NELEM(wide_bool), CKR_ATTRIBUTE_VALUE_INVALID);
    expect_create(bool_two, NELEM(bool_two), CKR_ATTRIBUTE_VALUE_INVALID);
    expect_create(aes_short, NELEM(aes_short), CKR_ATTRIBUTE_VALUE_INVALID);
    expect_create(dup_diff, NELEM(dup_diff), CKR_TEMPLATE_INCONSISTENT);
    expect_create(dup_same, NELEM(dup_same), CKR_OK);
    expect_create(modulus_aes, NELEM(modulus_aes), CKR_ATTRIBUTE_TYPE_INVALID);
    expect_create(wrap_tmpl, NELEM(wrap_tmpl), CKR_OK);
    expect_create(bad_date, NELEM(bad_date), CKR_ATTRIBUTE_VALUE_INVALID);
    expect_create(good_date, NELEM(good_date), CKR_OK);
    expect_create(bad_mechs, NELEM(bad_mechs), CKR_ATTRIBUTE_VALUE_INVALID);
    expect_create(null_value, NELEM(null_value), CKR_ATTRIBUTE_VALUE_INVALID);
    expect_create(prec1, NELEM(prec1), CKR_ATTRIBUTE_TYPE_INVALID);
    expect_create(prec2, NELEM(prec2), CKR_ATTRIBUTE_VALUE_INVALID);
    expect_create(prec3, NELEM(prec3), CKR_TEMPLATE_INCONSISTENT);

    /* Footnote 10: only the SO sets CKA_TRUSTED to TRUE. */
    expect_create(trusted, NELEM(trusted), CKR_ATTRIBUTE_READ_ONLY);
    assert_int_equal(attrs_new_object(ATTR_OP_CREATE, &so,
                                      CK_UNAVAILABLE_INFORMATION,
                                      CK_UNAVAILABLE_INFORMATION, trusted,
                                      NELEM(trusted), &l),
                     CKR_OK);
    assert_true(get_bool(&l, CKA_TRUSTED));
    attr_list_free(&l);
    trusted[3].pValue = &no;
    expect_create(trusted, NELEM(trusted), CKR_OK);

    /* More attributes than any template may hold. */
    expect_create(no_class, ATTR_TEMPLATE_MAX + 1, CKR_ARGUMENTS_BAD);
}

/* Appends one serialized attribute (u64 type, u32 length, value). */
static size_t blob_put(uint8_t *b, size_t off, uint64_t type, uint32_t len,
                       const void *v)
{
    for (int i = 0; i < 8; i++) {
        b[off + i] = (uint8_t)(type >> (56 - 8 * i));
    }
    for (int i = 0; i < 4; i++) {
        b[off + 8 + i] = (uint8_t)(len >> (24 - 8 * i));
    }
    if (len > 0) {
        memcpy(b + off + 12, v, len);
    }
    return off + 12 + len;
}

static void blob_count(uint8_t *b, uint32_t n)
{
    for (int i = 0; i < 4; i++) {
        b[i] = (uint8_t)(n >> (24 - 8 * i));
    }
}

/* An AES key whose CKA_WRAP_TEMPLATE is blob[0..len-1], as hsm.h takes it. */
static CK_RV create_wrap_tmpl(const void *blob, size_t len, attr_list_t *l)
{
    CK_ATTRIBUTE t[] = {A(CKA_CLASS, c_sec),
                        A(CKA_KEY_TYPE, k_aes),
                        A(CKA_VALUE, aes32),
                        {CKA_WRAP_TEMPLATE, (void *)blob, len}};

    return create(t, NELEM(t), l);
}

/*
 * An array attribute is the serialized list; a remote client may send any
 * bytes, so each limit is the core's: nothing malformed is stored and
 * nothing in the value is followed as a pointer.
 */
static void test_template_blob(void **state)
{
    static uint8_t big[4 + 12 + HSM_ATTR_VALUE_MAX];
    static uint8_t many[4 + 12 * (HSM_TEMPLATE_MAX + 1)];
    CK_ATTRIBUTE_TYPE vendor = CKA_NIMBUS_OWNER;
    uint8_t b[128];
    attr_list_t l = {NULL, 0, 0};
    const uint8_t *v;
    size_t len, off, i;
    CK_ATTRIBUTE old_form[] = {AB(CKA_LABEL, "ok")};

    (void)state;
    /* the good one: stored as given, read back the same */
    blob_count(b, 2);
    off = blob_put(b, 4, CKA_LABEL, 2, "ok");
    off = blob_put(b, off, CKA_EXTRACTABLE, 1, &no);
    assert_int_equal(create_wrap_tmpl(b, off, &l), CKR_OK);
    assert_int_equal(attrs_read(&l, CKA_WRAP_TEMPLATE, &v, &len), HSM_ATTR_OK);
    assert_int_equal(len, off);
    assert_memory_equal(v, b, off);
    attr_list_free(&l);
    /* empty value: the empty template, stored as a count of 0 */
    assert_int_equal(create_wrap_tmpl(NULL, 0, &l), CKR_OK);
    assert_int_equal(attrs_read(&l, CKA_WRAP_TEMPLATE, &v, &len), HSM_ATTR_OK);
    assert_int_equal(len, 4);
    attr_list_free(&l);

    /* the caller's CK_ATTRIBUTE array (what hsm.h took before) */
    assert_int_equal(create_wrap_tmpl(old_form, sizeof(old_form), &l),
                     CKR_ATTRIBUTE_VALUE_INVALID);
    /* short count; count without attributes; a huge count */
    assert_int_equal(create_wrap_tmpl(b, 3, &l), CKR_ATTRIBUTE_VALUE_INVALID);
    blob_count(b, 1);
    assert_int_equal(create_wrap_tmpl(b, 4, &l), CKR_ATTRIBUTE_VALUE_INVALID);
    blob_count(b, 0xffffffffu);
    assert_int_equal(create_wrap_tmpl(b, off, &l), CKR_ATTRIBUTE_VALUE_INVALID);
    /* a length past the end; a trailing byte */
    blob_count(b, 1);
    off = blob_put(b, 4, CKA_LABEL, 2, "ok");
    b[15] = 3;
    assert_int_equal(create_wrap_tmpl(b, off, &l), CKR_ATTRIBUTE_VALUE_INVALID);
    b[15] = 2;
    assert_int_equal(create_wrap_tmpl(b, off + 1, &l),
                     CKR_ATTRIBUTE_VALUE_INVALID);
    /* types out of order, one type twice */
    blob_count(b, 2);
    off = blob_put(b, 4, CKA_EXTRACTABLE, 1, &no);
    off = blob_put(b, off, CKA_LABEL, 2, "ok");
    assert_int_equal(create_wrap_tmpl(b, off, &l), CKR_ATTRIBUTE_VALUE_INVALID);
    off = blob_put(b, 4, CKA_LABEL, 2, "ok");
    off = blob_put(b, off, CKA_LABEL, 2, "ok");
    assert_int_equal(create_wrap_tmpl(b, off, &l), CKR_ATTRIBUTE_VALUE_INVALID);
    /* a template inside, one of our vendor attributes inside */
    blob_count(b, 1);
    off = blob_put(b, 4, CKA_UNWRAP_TEMPLATE, 4, "\0\0\0\0");
    assert_int_equal(create_wrap_tmpl(b, off, &l), CKR_ATTRIBUTE_VALUE_INVALID);
    off = blob_put(b, 4, vendor, 2, "ok");
    assert_int_equal(create_wrap_tmpl(b, off, &l), CKR_ATTRIBUTE_VALUE_INVALID);
    /* more attributes than a template may have */
    blob_count(many, HSM_TEMPLATE_MAX + 1);
    off = 4;
    for (i = 0; i < HSM_TEMPLATE_MAX + 1; i++) {
        off = blob_put(many, off, CKA_VENDOR_DEFINED + 0x10000000 + i, 0, NULL);
    }
    assert_int_equal(create_wrap_tmpl(many, off, &l),
                     CKR_ATTRIBUTE_VALUE_INVALID);
    /* ...and as many as it may: accepted (types are not judged here) */
    blob_count(many, HSM_TEMPLATE_MAX);
    assert_int_equal(create_wrap_tmpl(many, off - 12, &l), CKR_OK);
    attr_list_free(&l);
    /* a list longer than a value may be */
    blob_count(big, 1);
    off = blob_put(big, 4, CKA_LABEL, HSM_ATTR_VALUE_MAX, big + 16);
    assert_int_equal(create_wrap_tmpl(big, off, &l),
                     CKR_ATTRIBUTE_VALUE_INVALID);
    assert_null(l.v);
}

static void test_ec_point(void **state)
{
    uint8_t raw[65], der[67], raw521[133], ed[32], comp[33], odd[63];
    CK_ATTRIBUTE t[] = {A(CKA_CLASS, c_pub), A(CKA_KEY_TYPE, k_ec),
                        AB(CKA_EC_PARAMS, p256), A(CKA_EC_POINT, raw)};
    attr_list_t l = {NULL, 0, 0};
    const attr_t *a;

    (void)state;
    memset(raw, 0x11, sizeof(raw));
    raw[0] = 0x04;
    assert_int_equal(create(t, NELEM(t), &l), CKR_OK);
    a = attr_list_find(&l, CKA_EC_POINT);
    assert_int_equal(a->len, 67);
    assert_int_equal(a->value[0], 0x04);
    assert_int_equal(a->value[1], 65);
    assert_memory_equal(a->value + 2, raw, 65);
    memcpy(der, a->value, sizeof(der));
    attr_list_free(&l);

    /* DER input is kept as is. */
    t[3] = (CK_ATTRIBUTE)A(CKA_EC_POINT, der);
    assert_int_equal(create(t, NELEM(t), &l), CKR_OK);
    a = attr_list_find(&l, CKA_EC_POINT);
    assert_int_equal(a->len, 67);
    assert_memory_equal(a->value, der, 67);
    attr_list_free(&l);

    /* A raw point that also parses as DER (X starts 0x3F 0x04) is raw for
     * a known curve. */
    raw[1] = 0x3F;
    raw[2] = 0x04;
    t[3] = (CK_ATTRIBUTE)A(CKA_EC_POINT, raw);
    assert_int_equal(create(t, NELEM(t), &l), CKR_OK);
    a = attr_list_find(&l, CKA_EC_POINT);
    assert_int_equal(a->len, 67);
    assert_memory_equal(a->value + 2, raw, 65);
    attr_list_free(&l);

    /* Compressed. */
    memset(comp, 0x22, sizeof(comp));
    comp[0] = 0x03;
    t[3] = (CK_ATTRIBUTE)A(CKA_EC_POINT, comp);
    assert_int_equal(create(t, NELEM(t), &l), CKR_OK);
    assert_int_equal(attr_list_find(&l, CKA_EC_POINT)->len, 35);
    attr_list_free(&l);

    /* Wrong length for P-256. */
    memset(odd, 0x33, sizeof(odd));
    odd[0] = 0x04;
    t[3] = (CK_ATTRIBUTE)A(CKA_EC_POINT, odd);
    expect_create(t, NELEM(t), CKR_ATTRIBUTE_VALUE_INVALID);

    /* P-521: long-form DER length. */
    memset(raw521, 0x44, sizeof(raw521));
    raw521[0] = 0x04;
    t[2] = (CK_ATTRIBUTE)AB(CKA_EC_PARAMS, p521);
    t[3] = (CK_ATTRIBUTE)A(CKA_EC_POINT, raw521);
    assert_int_equal(create(t, NELEM(t), &l), CKR_OK);
    a = attr_list_find(&l, CKA_EC_POINT);
    assert_int_equal(a->len, 136);
    assert_int_equal(a->value[1], 0x81);
    assert_int_equal(a->value[2], 133);
    attr_list_free(&l);

    /* Ed25519: raw 32 bytes. */
    memset(ed, 0x55, sizeof(ed));
    t[1] = (CK_ATTRIBUTE)A(CKA_KEY_TYPE, k_ed);
    t[2] = (CK_ATTRIBUTE)AB(CKA_EC_PARAMS, ed25519);
    t[3] = (CK_ATTRIBUTE)A(CKA_EC_POINT, ed);
    assert_int_equal(create(t, NELEM(t), &l), CKR_OK);
    a = attr_list_find(&l, CKA_EC_POINT);
    assert_int_equal(a->len, 34);
    assert_int_equal(a->value[1], 32);
    attr_list_free(&l);

    /* EC params: neither an OID nor a PrintableString. */
    t[2] = (CK_ATTRIBUTE)AB(CKA_EC_PARAMS, "\x06\x05\x2B\x81");
    expect_create(t, NELEM(t), CKR_ATTRIBUTE_VALUE_INVALID);
    t[2] = (CK_ATTRIBUTE)AB(CKA_EC_PARAMS, "\x30\x00");
    expect_create(t, NELEM(t), CKR_ATTRIBUTE_VALUE_INVALID);
    t[2] = (CK_ATTRIBUTE)AB(CKA_EC_PARAMS, "\x13\x0C"
                                           "edwards25519");
    expect_create(t, NELEM(t), CKR_OK);
}

static void test_create_ec_private(void **state)
{
    uint8_t d[32] = {1};
    CK_ATTRIBUTE t[] = {A(CKA_CLASS, c_priv), A(CKA_KEY_TYPE, k_ec),
                        AB(CKA_EC_PARAMS, p256), A(CKA_VALUE, d)};
    CK_ATTRIBUTE no_params[] = {A(CKA_CLASS, c_priv), A(CKA_KEY_TYPE, k_ec),
                                A(CKA_VALUE, d)};

    (void)state;
    expect_create(t, NELEM(t), CKR_OK);
    expect_create(no_params, NELEM(no_params), CKR_TEMPLATE_INCOMPLETE);
}

/* ------------------------------------------------------------ generate */

static void test_generate(void **state)
{
    CK_ULONG vl = 32, vl17 = 17, bits = 2048;
    CK_ATTRIBUTE aes[] = {A(CKA_VALUE_LEN, vl), A(CKA_KEY_TYPE, k_aes)};
    CK_ATTRIBUTE aes_unextr[] = {A(CKA_VALUE_LEN, vl), A(CKA_EXTRACTABLE, no)};
    CK_ATTRIBUTE aes_value[] = {A(CKA_VALUE_LEN, vl), A(CKA_VALUE, aes32)};
    CK_ATTRIBUTE aes_17[] = {A(CKA_VALUE_LEN, vl17)};
    CK_ATTRIBUTE aes_pub[] = {A(CKA_VALUE_LEN, vl), A(CKA_CLASS, c_pub)};
    CK_ATTRIBUTE aes_kt[] = {A(CKA_VALUE_LEN, vl), A(CKA_KEY_TYPE, k_gen)};
    CK_ATTRIBUTE label[] = {AB(CKA_LABEL, "k")};
    CK_ATTRIBUTE rsa_pub[] = {A(CKA_MODULUS_BITS, bits)};
    CK_ATTRIBUTE ec_priv_params[] = {AB(CKA_EC_PARAMS, p256)};
    CK_ATTRIBUTE ec_pub[] = {AB(CKA_EC_PARAMS, p256)};
    attr_list_t l = {NULL, 0, 0};

    (void)state;
    assert_int_equal(attrs_new_object(ATTR_OP_GENERATE, &user, CKO_SECRET_KEY,
                                      CKK_AES, aes, NELEM(aes), &l),
                     CKR_OK);
    assert_int_equal(get_ulong(&l, CKA_CLASS), CKO_SECRET_KEY);
    assert_int_equal(get_ulong(&l, CKA_KEY_TYPE), CKK_AES);
    assert_true(get_bool(&l, CKA_LOCAL));
    assert_true(get_bool(&l, CKA_ALWAYS_SENSITIVE));
    assert_false(get_bool(&l, CKA_NEVER_EXTRACTABLE));
    assert_int_equal(get_ulong(&l, CKA_VALUE_LEN), 32);
    assert_null(attr_list_find(&l, CKA_VALUE));
    attr_list_free(&l);

    assert_int_equal(attrs_new_object(ATTR_OP_GENERATE, &user, CKO_SECRET_KEY,
                                      CKK_AES, aes_unextr, NELEM(aes_unextr),
                                      &l),
                     CKR_OK);
    assert_true(get_bool(&l, CKA_NEVER_EXTRACTABLE));
    attr_list_free(&l);

    /* Footnote 4: CKA_VALUE may not be given; 3: VALUE_LEN must be. */
    assert_int_equal(attrs_new_object(ATTR_OP_GENERATE, &user, CKO_SECRET_KEY,
                                      CKK_AES, aes_value, NELEM(aes_value), &l),
                     CKR_ATTRIBUTE_READ_ONLY);
    assert_int_equal(attrs_new_object(ATTR_OP_GENERATE, &user, CKO_SECRET_KEY,
                                      CKK_AES, label, NELEM(label), &l),
                     CKR_TEMPLATE_INCOMPLETE);
    assert_int_equal(attrs_new_object(ATTR_OP_GENERATE, &user, CKO_SECRET_KEY,
                                      CKK_AES, aes_17, NELEM(aes_17), &l),
                     CKR_ATTRIBUTE_VALUE_INVALID);
    assert_int_equal(attrs_new_object(ATTR_OP_GENERATE, &user, CKO_SECRET_KEY,
                                      CKK_AES, aes_pub, NELEM(aes_pub), &l),
                     CKR_TEMPLATE_INCONSISTENT);
    assert_int_equal(attrs_new_object(ATTR_OP_GENERATE, &user, CKO_SECRET_KEY,
                                      CKK_AES, aes_kt, NELEM(aes_kt), &l),
                     CKR_TEMPLATE_INCONSISTENT);

    /* DES3: the length is the token's. */
    assert_int_equal(attrs_new_object(ATTR_OP_GENERATE, &user, CKO_SECRET_KEY,
                                      CKK_DES3, label, NELEM(label), &l),
                     CKR_OK);
    assert_int_equal(get_ulong(&l, CKA_VALUE_LEN), 24);
    attr_list_free(&l);

    /* Key pairs. */
    assert_int_equal(attrs_new_object(ATTR_OP_GENERATE, &user, CKO_PUBLIC_KEY,
                                      CKK_RSA, rsa_pub, NELEM(rsa_pub), &l),
                     CKR_OK);
    assert_int_equal(get_ulong(&l, CKA_MODULUS_BITS), 2048);
    assert_true(get_bool(&l, CKA_LOCAL));
    attr_list_free(&l);
    assert_int_equal(attrs_new_object(ATTR_OP_GENERATE, &user, CKO_PUBLIC_KEY,
                                      CKK_RSA, label, NELEM(label), &l),
                     CKR_TEMPLATE_INCOMPLETE);
    assert_int_equal(attrs_new_object(ATTR_OP_GENERATE, &user, CKO_PUBLIC_KEY,
                                      CKK_EC, ec_pub, NELEM(ec_pub), &l),
                     CKR_OK);
    attr_list_free(&l);
    assert_int_equal(attrs_new_object(ATTR_OP_GENERATE, &user, CKO_PRIVATE_KEY,
                                      CKK_EC, ec_priv_params,
                                      NELEM(ec_priv_params), &l),
                     CKR_ATTRIBUTE_READ_ONLY);
    assert_int_equal(attrs_new_object(ATTR_OP_GENERATE, &user, CKO_PRIVATE_KEY,
                                      CKK_EC, NULL, 0, &l),
                     CKR_OK);
    assert_true(get_bool(&l, CKA_ALWAYS_SENSITIVE));
    assert_true(get_bool(&l, CKA_SIGN));
    attr_list_free(&l);
}

static void test_unwrap_derive(void **state)
{
    CK_ULONG vl = 16;
    CK_ATTRIBUTE tmpl[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_aes)};
    CK_ATTRIBUTE with_value[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_aes),
                                 A(CKA_VALUE, aes32)};
    CK_ATTRIBUTE with_len[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_aes),
                               A(CKA_VALUE_LEN, vl)};
    CK_ATTRIBUTE no_kt[] = {A(CKA_CLASS, c_sec)};
    CK_ATTRIBUTE rsa_priv_mod[] = {A(CKA_CLASS, c_priv), A(CKA_KEY_TYPE, k_rsa),
                                   A(CKA_MODULUS, modulus)};
    attr_list_t l = {NULL, 0, 0};

    (void)state;
    assert_int_equal(
        attrs_new_object(ATTR_OP_UNWRAP, &user, CK_UNAVAILABLE_INFORMATION,
                         CK_UNAVAILABLE_INFORMATION, tmpl, NELEM(tmpl), &l),
        CKR_OK);
    assert_false(get_bool(&l, CKA_LOCAL));
    assert_false(get_bool(&l, CKA_ALWAYS_SENSITIVE));
    assert_int_equal(get_ulong(&l, CKA_KEY_GEN_MECHANISM),
                     CK_UNAVAILABLE_INFORMATION);
    attr_list_free(&l);
    assert_int_equal(attrs_new_object(ATTR_OP_UNWRAP, &user,
                                      CK_UNAVAILABLE_INFORMATION,
                                      CK_UNAVAILABLE_INFORMATION, with_value,
                                      NELEM(with_value), &l),
                     CKR_ATTRIBUTE_READ_ONLY);
    assert_int_equal(attrs_new_object(ATTR_OP_UNWRAP, &user,
                                      CK_UNAVAILABLE_INFORMATION,
                                      CK_UNAVAILABLE_INFORMATION, with_len,
                                      NELEM(with_len), &l),
                     CKR_OK); /* the spec's AES-ECB/CBC unwrap needs it */
    attr_list_free(&l);
    assert_int_equal(
        attrs_new_object(ATTR_OP_UNWRAP, &user, CK_UNAVAILABLE_INFORMATION,
                         CK_UNAVAILABLE_INFORMATION, no_kt, NELEM(no_kt), &l),
        CKR_TEMPLATE_INCOMPLETE);
    assert_int_equal(attrs_new_object(ATTR_OP_UNWRAP, &user,
                                      CK_UNAVAILABLE_INFORMATION,
                                      CK_UNAVAILABLE_INFORMATION, rsa_priv_mod,
                                      NELEM(rsa_priv_mod), &l),
                     CKR_ATTRIBUTE_READ_ONLY);
    /* Derive takes CKA_VALUE_LEN (the new key's length), never VALUE. */
    assert_int_equal(attrs_new_object(ATTR_OP_DERIVE, &user,
                                      CK_UNAVAILABLE_INFORMATION,
                                      CK_UNAVAILABLE_INFORMATION, with_len,
                                      NELEM(with_len), &l),
                     CKR_OK);
    assert_int_equal(get_ulong(&l, CKA_VALUE_LEN), 16);
    attr_list_free(&l);
    assert_int_equal(attrs_new_object(ATTR_OP_DERIVE, &user,
                                      CK_UNAVAILABLE_INFORMATION,
                                      CK_UNAVAILABLE_INFORMATION, with_value,
                                      NELEM(with_value), &l),
                     CKR_ATTRIBUTE_READ_ONLY);
}

/* ------------------------------------------------------------ set, copy */

static CK_RV set1(const attr_list_t *cur, CK_ATTRIBUTE_TYPE t, const void *v,
                  size_t len, attr_list_t *out)
{
    CK_ATTRIBUTE a = {t, (void *)v, len};

    return attrs_set(&user, cur, &a, 1, out);
}

static void test_set(void **state)
{
    attr_list_t l = {NULL, 0, 0}, o = {NULL, 0, 0}, o2 = {NULL, 0, 0};
    CK_ATTRIBUTE_TYPE vendor = CKA_NIMBUS_SHARED_USERS;
    CK_ATTRIBUTE two_labels[] = {AB(CKA_LABEL, "a"), AB(CKA_LABEL, "b")};
    const attr_t *a;

    (void)state;
    make_aes(&l, false, true);

    /* Label change works, and cur is left as it was. */
    assert_int_equal(set1(&l, CKA_LABEL, "new", 3, &o), CKR_OK);
    a = attr_list_find(&o, CKA_LABEL);
    assert_int_equal(a->len, 3);
    assert_memory_equal(a->value, "new", 3);
    assert_int_equal(attr_list_find(&l, CKA_LABEL)->len, 0);
    attr_list_free(&o);

    /* SENSITIVE FALSE -> TRUE ok (ALWAYS_SENSITIVE stays FALSE); back no. */
    assert_int_equal(set1(&l, CKA_SENSITIVE, &yes, 1, &o), CKR_OK);
    assert_true(get_bool(&o, CKA_SENSITIVE));
    assert_false(get_bool(&o, CKA_ALWAYS_SENSITIVE));
    assert_int_equal(set1(&o, CKA_SENSITIVE, &no, 1, &o2),
                     CKR_ATTRIBUTE_READ_ONLY);
    assert_int_equal(o2.n, 0);
    attr_list_free(&o);

    /* EXTRACTABLE TRUE -> FALSE ok (NEVER_EXTRACTABLE stays FALSE). */
    assert_int_equal(set1(&l, CKA_EXTRACTABLE, &no, 1, &o), CKR_OK);
    assert_false(get_bool(&o, CKA_EXTRACTABLE));
    assert_false(get_bool(&o, CKA_NEVER_EXTRACTABLE));
    assert_int_equal(set1(&o, CKA_EXTRACTABLE, &yes, 1, &o2),
                     CKR_ATTRIBUTE_READ_ONLY);
    attr_list_free(&o);

    /* WRAP_WITH_TRUSTED FALSE -> TRUE only. */
    assert_int_equal(set1(&l, CKA_WRAP_WITH_TRUSTED, &yes, 1, &o), CKR_OK);
    assert_int_equal(set1(&o, CKA_WRAP_WITH_TRUSTED, &no, 1, &o2),
                     CKR_ATTRIBUTE_READ_ONLY);
    attr_list_free(&o);

    /* COPYABLE TRUE -> FALSE only. */
    assert_int_equal(set1(&l, CKA_COPYABLE, &no, 1, &o), CKR_OK);
    assert_int_equal(set1(&o, CKA_COPYABLE, &yes, 1, &o2),
                     CKR_ATTRIBUTE_READ_ONLY);
    attr_list_free(&o);

    /* Usage flags are modifiable. */
    assert_int_equal(set1(&l, CKA_ENCRYPT, &no, 1, &o), CKR_OK);
    assert_false(get_bool(&o, CKA_ENCRYPT));
    attr_list_free(&o);

    /* Not modifiable, even with the same value. */
    assert_int_equal(set1(&l, CKA_KEY_TYPE, &k_aes, sizeof(k_aes), &o),
                     CKR_ATTRIBUTE_READ_ONLY);
    assert_int_equal(set1(&l, CKA_TOKEN, &no, 1, &o), CKR_ATTRIBUTE_READ_ONLY);
    assert_int_equal(set1(&l, CKA_PRIVATE, &yes, 1, &o),
                     CKR_ATTRIBUTE_READ_ONLY);
    assert_int_equal(set1(&l, CKA_VALUE, aes32, 32, &o),
                     CKR_ATTRIBUTE_READ_ONLY);
    assert_int_equal(set1(&l, CKA_LOCAL, &yes, 1, &o), CKR_ATTRIBUTE_READ_ONLY);
    assert_int_equal(set1(&l, vendor, "x", 1, &o), CKR_ATTRIBUTE_READ_ONLY);
    assert_int_equal(set1(&l, CKA_MODULUS, "x", 1, &o),
                     CKR_ATTRIBUTE_TYPE_INVALID);
    assert_int_equal(set1(&l, CKA_ENCRYPT, "xx", 2, &o),
                     CKR_ATTRIBUTE_VALUE_INVALID);
    assert_int_equal(attrs_set(&user, &l, two_labels, 2, &o),
                     CKR_TEMPLATE_INCONSISTENT);

    /* MODIFIABLE FALSE: nothing changes. */
    assert_int_equal(attr_list_set_bool(&l, CKA_MODIFIABLE, false), CKR_OK);
    assert_int_equal(set1(&l, CKA_LABEL, "x", 1, &o), CKR_ACTION_PROHIBITED);
    attr_list_free(&l);
}

static void test_set_data(void **state)
{
    CK_ATTRIBUTE t[] = {A(CKA_CLASS, c_data), AB(CKA_VALUE, "abc")};
    attr_list_t l = {NULL, 0, 0}, o = {NULL, 0, 0};

    (void)state;
    assert_int_equal(create(t, NELEM(t), &l), CKR_OK);
    assert_int_equal(set1(&l, CKA_VALUE, "xyzw", 4, &o), CKR_OK);
    assert_int_equal(attr_list_find(&o, CKA_VALUE)->len, 4);
    attr_list_free(&o);
    assert_int_equal(set1(&l, CKA_APPLICATION, "app", 3, &o), CKR_OK);
    attr_list_free(&o);
    attr_list_free(&l);
}

static void test_copy(void **state)
{
    attr_list_t l = {NULL, 0, 0}, o = {NULL, 0, 0}, o2 = {NULL, 0, 0};
    CK_ATTRIBUTE label[] = {AB(CKA_LABEL, "copy"), A(CKA_TOKEN, yes)};
    CK_ATTRIBUTE kt[] = {A(CKA_KEY_TYPE, k_aes)};
    CK_ATTRIBUTE unpriv[] = {A(CKA_PRIVATE, no)};
    CK_ATTRIBUTE unmod[] = {A(CKA_MODIFIABLE, no)};
    CK_ATTRIBUTE remod[] = {A(CKA_MODIFIABLE, yes)};
    CK_ATTRIBUTE unsens[] = {A(CKA_SENSITIVE, no)};
    CK_ATTRIBUTE tok[] = {A(CKA_TOKEN, yes)};
    CK_ATTRIBUTE nocopy[] = {A(CKA_COPYABLE, no)};

    (void)state;
    make_aes(&l, true, true);
    assert_int_equal(attr_list_set(&l, CKA_UNIQUE_ID, "17", 2), CKR_OK);

    assert_int_equal(attrs_copy(&user, &l, label, NELEM(label), &o), CKR_OK);
    assert_memory_equal(attr_list_find(&o, CKA_LABEL)->value, "copy", 4);
    assert_true(get_bool(&o, CKA_TOKEN));
    assert_null(attr_list_find(&o, CKA_UNIQUE_ID));
    assert_memory_equal(attr_list_find(&o, CKA_VALUE)->value, aes32, 32);
    attr_list_free(&o);

    assert_int_equal(attrs_copy(&user, &l, kt, NELEM(kt), &o),
                     CKR_ATTRIBUTE_READ_ONLY);
    assert_int_equal(attrs_copy(&user, &l, unpriv, NELEM(unpriv), &o),
                     CKR_ATTRIBUTE_READ_ONLY);
    assert_int_equal(attrs_copy(&user, &l, unsens, NELEM(unsens), &o),
                     CKR_ATTRIBUTE_READ_ONLY);

    /* A read-only copy: its own copies stay read-only, keep no new label. */
    assert_int_equal(attrs_copy(&user, &l, unmod, NELEM(unmod), &o), CKR_OK);
    assert_false(get_bool(&o, CKA_MODIFIABLE));
    assert_int_equal(attrs_copy(&user, &o, remod, NELEM(remod), &o2),
                     CKR_ATTRIBUTE_READ_ONLY);
    assert_int_equal(attrs_copy(&user, &o, label, 1, &o2),
                     CKR_ATTRIBUTE_READ_ONLY);
    assert_int_equal(attrs_copy(&user, &o, tok, NELEM(tok), &o2), CKR_OK);
    attr_list_free(&o2);
    attr_list_free(&o);

    /* COPYABLE FALSE. */
    assert_int_equal(attrs_copy(&user, &l, nocopy, NELEM(nocopy), &o), CKR_OK);
    assert_int_equal(attrs_copy(&user, &o, NULL, 0, &o2),
                     CKR_ACTION_PROHIBITED);
    attr_list_free(&o);
    attr_list_free(&l);
}

/* What a template fixed: set and copy refuse it, the rest still changes;
 * the memory of it survives the store's serialization, and no application
 * reads or sets it. */
static void test_fixed(void **state)
{
    attr_list_t l = {NULL, 0, 0}, o = {NULL, 0, 0}, f = {NULL, 0, 0};
    attr_list_t back = {NULL, 0, 0};
    CK_ATTRIBUTE derive[] = {A(CKA_DERIVE, yes)};
    CK_ATTRIBUTE both[] = {AB(CKA_LABEL, "x"), A(CKA_SIGN, no)};
    CK_ATTRIBUTE label[] = {AB(CKA_LABEL, "x")};
    CK_ULONG junk = 0;
    CK_ATTRIBUTE mine[] = {{ATTR_FIXED_TYPES, &junk, sizeof(junk)}};
    const uint8_t *v;
    uint8_t *blob = NULL;
    size_t len, bloblen = 0;

    (void)state;
    make_aes(&l, false, true);
    assert_false(attrs_is_fixed(&l, CKA_DERIVE));
    assert_int_equal(attr_list_set_bool(&f, CKA_DERIVE, false), CKR_OK);
    assert_int_equal(attr_list_set_bool(&f, CKA_SIGN, true), CKR_OK);
    assert_int_equal(attrs_fix(&l, &f), CKR_OK);
    assert_int_equal(attrs_fix(&l, &f), CKR_OK); /* no duplicates */
    assert_int_equal(attr_list_find(&l, ATTR_FIXED_TYPES)->len,
                     2 * sizeof(CK_ATTRIBUTE_TYPE));
    assert_true(attrs_is_fixed(&l, CKA_DERIVE));
    assert_true(attrs_is_fixed(&l, CKA_SIGN));
    assert_false(attrs_is_fixed(&l, CKA_LABEL));

    assert_int_equal(attrs_set(&user, &l, derive, 1, &o),
                     CKR_ATTRIBUTE_READ_ONLY);
    assert_int_equal(attrs_set(&user, &l, both, 2, &o),
                     CKR_ATTRIBUTE_READ_ONLY);
    assert_null(o.v);
    assert_int_equal(attrs_copy(&user, &l, derive, 1, &o),
                     CKR_ATTRIBUTE_READ_ONLY);
    assert_int_equal(attrs_set(&user, &l, label, 1, &o), CKR_OK);
    assert_true(attrs_is_fixed(&o, CKA_DERIVE));
    attr_list_free(&o);
    assert_int_equal(attrs_copy(&user, &l, NULL, 0, &o), CKR_OK);
    assert_true(attrs_is_fixed(&o, CKA_SIGN));
    attr_list_free(&o);

    assert_int_equal(attrs_read(&l, ATTR_FIXED_TYPES, &v, &len),
                     HSM_ATTR_INVALID);
    assert_int_equal(attrs_set(&user, &l, mine, 1, &o),
                     CKR_ATTRIBUTE_READ_ONLY);
    assert_false(attrs_match(&l, mine, 1));

    assert_int_equal(attr_list_serialize(&l, &blob, &bloblen), CKR_OK);
    assert_int_equal(attr_list_deserialize(blob, bloblen, &back), CKR_OK);
    assert_true(attrs_is_fixed(&back, CKA_DERIVE));
    assert_false(attrs_is_secret(&back, ATTR_FIXED_TYPES));
    free(blob);
    attr_list_free(&back);
    attr_list_free(&f);
    attr_list_free(&l);
}

/* ------------------------------------------------------------ read */

static void test_read(void **state)
{
    attr_list_t l = {NULL, 0, 0};
    const uint8_t *v;
    size_t len;
    CK_ATTRIBUTE cert[] = {A(CKA_CLASS, c_cert), A(CKA_CERTIFICATE_TYPE, x509),
                           AB(CKA_SUBJECT, "s"), AB(CKA_VALUE, "v")};

    (void)state;
    make_aes(&l, true, true);
    assert_int_equal(attrs_read(&l, CKA_VALUE, &v, &len), HSM_ATTR_SENSITIVE);
    assert_int_equal(attrs_read(&l, CKA_VALUE_LEN, &v, &len), HSM_ATTR_OK);
    assert_int_equal(len, sizeof(CK_ULONG));
    assert_int_equal(attrs_read(&l, CKA_MODULUS, &v, &len), HSM_ATTR_INVALID);
    attr_list_free(&l);

    make_aes(&l, false, false);
    assert_int_equal(attrs_read(&l, CKA_VALUE, &v, &len), HSM_ATTR_SENSITIVE);
    attr_list_free(&l);

    make_aes(&l, false, true);
    assert_int_equal(attrs_read(&l, CKA_VALUE, &v, &len), HSM_ATTR_OK);
    assert_int_equal(len, 32);
    assert_memory_equal(v, aes32, 32);
    attr_list_free(&l);

    make_rsa_private(&l);
    assert_int_equal(attrs_read(&l, CKA_MODULUS, &v, &len), HSM_ATTR_OK);
    assert_int_equal(len, sizeof(modulus));
    assert_int_equal(attrs_read(&l, CKA_PRIVATE_EXPONENT, &v, &len),
                     HSM_ATTR_SENSITIVE);
    assert_int_equal(attrs_read(&l, CKA_PRIME_1, &v, &len), HSM_ATTR_SENSITIVE);
    assert_int_equal(attrs_read(&l, CKA_VALUE, &v, &len), HSM_ATTR_INVALID);
    assert_int_equal(attrs_read(&l, CKA_WRAP_TEMPLATE, &v, &len),
                     HSM_ATTR_INVALID);
    attr_list_free(&l);

    /* In the schema, no value yet: empty. */
    assert_int_equal(create(cert, NELEM(cert), &l), CKR_OK);
    assert_int_equal(attrs_read(&l, CKA_CHECK_VALUE, &v, &len), HSM_ATTR_OK);
    assert_int_equal(len, 0);
    assert_int_equal(attrs_read(&l, CKA_VALUE, &v, &len), HSM_ATTR_OK);
    assert_int_equal(len, 1);
    attr_list_free(&l);
}

static void test_is_secret(void **state)
{
    attr_list_t l = {NULL, 0, 0};
    CK_ATTRIBUTE priv_data[] = {A(CKA_CLASS, c_data), AB(CKA_VALUE, "v")};
    CK_ATTRIBUTE pub_data[] = {A(CKA_CLASS, c_data), A(CKA_PRIVATE, no),
                               AB(CKA_VALUE, "v")};

    (void)state;
    make_rsa_private(&l);
    assert_true(attrs_is_secret(&l, CKA_PRIVATE_EXPONENT));
    assert_true(attrs_is_secret(&l, CKA_COEFFICIENT));
    assert_false(attrs_is_secret(&l, CKA_MODULUS));
    assert_false(attrs_is_secret(&l, CKA_LABEL));
    attr_list_free(&l);
    make_aes(&l, false, true);
    assert_true(attrs_is_secret(&l, CKA_VALUE));
    assert_false(attrs_is_secret(&l, CKA_VALUE_LEN));
    attr_list_free(&l);
    assert_int_equal(create(priv_data, NELEM(priv_data), &l), CKR_OK);
    assert_true(attrs_is_secret(&l, CKA_VALUE));
    assert_false(attrs_is_secret(&l, CKA_LABEL));
    attr_list_free(&l);
    assert_int_equal(create(pub_data, NELEM(pub_data), &l), CKR_OK);
    assert_false(attrs_is_secret(&l, CKA_VALUE));
    attr_list_free(&l);
}

static void test_match(void **state)
{
    attr_list_t l = {NULL, 0, 0};
    CK_ATTRIBUTE_TYPE vendor = CKA_NIMBUS_OWNER;
    CK_ATTRIBUTE cls[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_aes)};
    CK_ATTRIBUTE other[] = {A(CKA_CLASS, c_pub)};
    CK_ATTRIBUTE label[] = {AB(CKA_LABEL, "x")};
    CK_ATTRIBUTE empty_label[] = {{CKA_LABEL, NULL, 0}};
    CK_ATTRIBUTE value[] = {A(CKA_VALUE, aes32)};
    CK_ATTRIBUTE absent[] = {A(CKA_MODULUS, modulus)};
    CK_ATTRIBUTE owner[] = {{vendor, "1", 1}};

    (void)state;
    make_aes(&l, false, true);
    assert_true(attrs_match(&l, NULL, 0));
    assert_true(attrs_match(&l, cls, NELEM(cls)));
    assert_true(attrs_match(&l, empty_label, NELEM(empty_label)));
    assert_false(attrs_match(&l, other, NELEM(other)));
    assert_false(attrs_match(&l, label, NELEM(label)));
    assert_false(attrs_match(&l, value, NELEM(value))); /* never, even equal */
    assert_false(attrs_match(&l, absent, NELEM(absent)));
    assert_false(attrs_match(&l, owner, NELEM(owner)));
    attr_list_free(&l);
}

/*
 * Key separation in the engine: no new object with CKA_WRAP and
 * CKA_DECRYPT (or CKA_UNWRAP and CKA_ENCRYPT), the defaults never make the
 * pair, a set may not add it, a copy may not keep it; a caller with
 * separation_off gets the permissive rules and defaults.
 */
static void test_separation(void **state)
{
    static const attr_caller_t off = {.is_so = false, .separation_off = true};
    CK_ATTRIBUTE base[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_aes),
                           A(CKA_VALUE, aes32)};
    CK_ATTRIBUTE wd[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_aes),
                         A(CKA_VALUE, aes32), A(CKA_WRAP, yes),
                         A(CKA_DECRYPT, yes)};
    CK_ATTRIBUTE ue[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_aes),
                         A(CKA_VALUE, aes32), A(CKA_UNWRAP, yes),
                         A(CKA_ENCRYPT, yes)};
    CK_ATTRIBUTE w[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_aes),
                        A(CKA_VALUE, aes32), A(CKA_WRAP, yes)};
    CK_ATTRIBUTE set_dec = A(CKA_DECRYPT, yes);
    CK_ATTRIBUTE set_enc = A(CKA_ENCRYPT, yes);
    CK_ATTRIBUTE set_nodec[] = {A(CKA_DECRYPT, no), A(CKA_WRAP, yes)};
    CK_ATTRIBUTE ue_nv[] = {A(CKA_CLASS, c_sec), A(CKA_KEY_TYPE, k_aes),
                            A(CKA_UNWRAP, yes), A(CKA_ENCRYPT, yes)};
    CK_ULONG len32 = 32;
    CK_ATTRIBUTE gen[] = {A(CKA_VALUE_LEN, len32), A(CKA_WRAP, yes),
                          A(CKA_DECRYPT, yes)};
    CK_ATTRIBUTE label = AB(CKA_LABEL, "x");
    attr_list_t l = {NULL, 0, 0}, o = {NULL, 0, 0};

    (void)state;
    expect_create(wd, NELEM(wd), CKR_TEMPLATE_INCONSISTENT);
    expect_create(ue, NELEM(ue), CKR_TEMPLATE_INCONSISTENT);
    assert_int_equal(attrs_new_object(ATTR_OP_GENERATE, &user, CKO_SECRET_KEY,
                                      CKK_AES, gen, NELEM(gen), &l),
                     CKR_TEMPLATE_INCONSISTENT);
    assert_int_equal(attrs_new_object(ATTR_OP_UNWRAP, &user, CKO_SECRET_KEY,
                                      CK_UNAVAILABLE_INFORMATION, ue_nv,
                                      NELEM(ue_nv), &l),
                     CKR_TEMPLATE_INCONSISTENT);
    assert_int_equal(attrs_new_object(ATTR_OP_DERIVE, &user, CKO_SECRET_KEY,
                                      CKK_GENERIC_SECRET, ue + 3, 2, &l),
                     CKR_TEMPLATE_INCONSISTENT);
    assert_null(l.v);

    /* WRAP asked: DECRYPT defaults FALSE, ENCRYPT stays TRUE. */
    assert_int_equal(create(w, NELEM(w), &l), CKR_OK);
    assert_true(get_bool(&l, CKA_WRAP));
    assert_false(get_bool(&l, CKA_DECRYPT));
    assert_true(get_bool(&l, CKA_ENCRYPT));
    assert_false(get_bool(&l, CKA_UNWRAP));
    assert_int_equal(attrs_set(&user, &l, &set_dec, 1, &o),
                     CKR_ATTRIBUTE_VALUE_INVALID);
    assert_null(o.v);
    assert_int_equal(attrs_set(&off, &l, &set_dec, 1, &o), CKR_OK);
    attr_list_free(&o);
    assert_false(attrs_separation_blocks(&l, CKA_WRAP));
    attr_list_free(&l);

    /* Permissive: the old defaults and the pair allowed. */
    assert_int_equal(
        attrs_new_object(ATTR_OP_CREATE, &off, CK_UNAVAILABLE_INFORMATION,
                         CK_UNAVAILABLE_INFORMATION, base, NELEM(base), &l),
        CKR_OK);
    assert_true(get_bool(&l, CKA_WRAP));
    assert_true(get_bool(&l, CKA_UNWRAP));
    assert_true(get_bool(&l, CKA_ENCRYPT));
    assert_true(get_bool(&l, CKA_DECRYPT));
    assert_true(attrs_separation_blocks(&l, CKA_WRAP));
    assert_true(attrs_separation_blocks(&l, CKA_UNWRAP));
    assert_false(attrs_separation_blocks(&l, CKA_DECRYPT));
    /* Such a key may be relabelled and lose the pair, not be copied. */
    assert_int_equal(attrs_set(&user, &l, &label, 1, &o), CKR_OK);
    attr_list_free(&o);
    assert_int_equal(attrs_set(&user, &l, set_nodec, 2, &o), CKR_OK);
    attr_list_free(&o);
    assert_int_equal(attrs_set(&user, &l, &set_enc, 1, &o),
                     CKR_ATTRIBUTE_VALUE_INVALID);
    assert_null(o.v);
    assert_int_equal(attrs_copy(&user, &l, &label, 1, &o),
                     CKR_TEMPLATE_INCONSISTENT);
    assert_null(o.v);
    assert_int_equal(attrs_copy(&off, &l, &label, 1, &o), CKR_OK);
    attr_list_free(&o);
    attr_list_free(&l);

    /* Default strict: nothing asked, no wrap side. */
    assert_int_equal(create(base, NELEM(base), &l), CKR_OK);
    assert_false(get_bool(&l, CKA_WRAP));
    assert_false(get_bool(&l, CKA_UNWRAP));
    assert_true(get_bool(&l, CKA_ENCRYPT));
    assert_true(get_bool(&l, CKA_DECRYPT));
    attr_list_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_basics),
        cmocka_unit_test(test_serialize),
        cmocka_unit_test(test_create_data),
        cmocka_unit_test(test_create_cert),
        cmocka_unit_test(test_create_rsa),
        cmocka_unit_test(test_create_secret),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_ec_point),
        cmocka_unit_test(test_create_ec_private),
        cmocka_unit_test(test_generate),
        cmocka_unit_test(test_unwrap_derive),
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_set_data),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_fixed),
        cmocka_unit_test(test_separation),
        cmocka_unit_test(test_read),
        cmocka_unit_test(test_is_secret),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_template_blob),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
