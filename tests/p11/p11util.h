/*
 * p11util.h - shared helpers of the module suite (tests/p11/test_p11).
 *
 * The suite loads the built module with dlopen, as an application would,
 * and talks to it only through the CK_FUNCTION_LIST_3_0 it gets from
 * C_GetInterface("PKCS 11", {3, 0}). Every test that needs one gets a fresh
 * store: a temporary directory with its own nimbus.conf, named through
 * NIMBUS_CONF before C_Initialize.
 *
 * Remote mode (NIMBUS_TEST_REMOTE=unix or tls): every fresh store is a
 * fresh nimbusd (NIMBUSD, else NIMBUS_TOP_BUILDDIR/nimbusd) started on that
 * store in the same directory, with the configuration the test asked for;
 * the module's own nimbus.conf then names the daemon (`servers = ...`) and
 * the same keys (the front end reads some of them). Over TLS the daemon
 * and the module use the certificates of NIMBUS_TEST_PKI (a directory the
 * calling script filled with a throw-away CA: ca.pem, server.pem/.key,
 * client.pem/.key). A daemon that does not exit 0 on SIGTERM is counted in
 * p11_remote_failures().
 */
#ifndef NIMBUS_P11UTIL_H
#define NIMBUS_P11UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pkcs11/pkcs11.h"

#include "nimbus/pkcs11-vendor.h"

/* Passwords used throughout the suite (7..32 bytes). */
#define P11_SO_PW "sopass123"
#define P11_ALICE_PW "alicepw1"
#define P11_BOB_PW "bobpass1"
#define P11_AU_PW "apppass1"
#define P11_TOKEN_LABEL "test"

/* The module, loaded once by p11_load(). */
extern CK_FUNCTION_LIST_3_0_PTR p11;
extern CK_FUNCTION_LIST_PTR p11_v2; /* the 2.40 interface's list */
extern CK_C_GetInterface p11_get_interface;
extern CK_C_GetInterfaceList p11_get_interface_list;
extern CK_C_GetFunctionList p11_get_function_list;

/* dlopen($NIMBUS_MODULE or ./.libs/libnimbus-pkcs11.so); 0 on success. */
int p11_load(void);
void p11_unload(void);

const char *p11_rv_name(CK_RV rv);

/* Fails the running test with both return codes spelled out. */
void p11_assert_rv_(CK_RV got, CK_RV want, const char *expr, const char *file,
                    int line);
#define assert_rv(expr, want)                                                  \
    p11_assert_rv_((expr), (want), #expr, __FILE__, __LINE__)

/*
 * Soft check: prints a mismatch and returns 1 (0 when equal), so that a
 * test can check a whole table and then assert that nothing failed.
 */
int p11_expect_rv_(CK_RV got, CK_RV want, const char *expr, const char *file,
                   int line);
#define expect_rv(fails, expr, want)                                           \
    ((fails) += p11_expect_rv_((expr), (want), #expr, __FILE__, __LINE__))

/*
 * A fresh store: finalizes the module if needed, removes the previous
 * directory, makes a new one, writes nimbus.conf (store, kdf_iterations =
 * 1000, login_failure_limit = 5, then the lines of extra_conf, which may be
 * NULL and which replace those two defaults when they name them), sets
 * NIMBUS_CONF and calls C_Initialize(NULL). p11_fresh asserts CKR_OK;
 * p11_fresh_rv returns what C_Initialize returned.
 */
void p11_fresh(const char *extra_conf);
CK_RV p11_fresh_rv(const char *extra_conf);
/* The current temporary directory ("" when none). */
const char *p11_dir(void);
/* Writes text to p11_dir()/name; returns the full path (static buffer). */
const char *p11_write_file(const char *name, const char *text);
/* C_Finalize + C_Initialize(NULL) on the same store (asserts both); in
 * remote mode the daemon is restarted between the two. */
void p11_restart(void);
/* The same with the store's configuration replaced by the defaults and
 * extra_conf (as p11_fresh writes it). */
void p11_restart_conf(const char *extra_conf);
/* C_Finalize (any result), stop the daemon, remove the directory. */
void p11_cleanup(void);

/* "unix", "tls", "cluster" or "cluster-degraded" in remote mode, NULL
 * when embedded. */
const char *p11_remote(void);
/*
 * For a test that can only run embedded (it inspects the module's own
 * store or memory): in remote mode prints why it is skipped and returns 1
 * (the caller then calls skip()); 0 when embedded.
 */
int p11_embedded_only(const char *why);
/* Daemons that died or did not stop cleanly so far (remote mode). */
int p11_remote_failures(void);
/* Whether a group named in NIMBUS_P11_GROUPS (comma-separated; unset or
 * empty: every group) should run. */
int p11_group_wanted(const char *name);

/* cmocka setup/teardown: a fresh store with the default config. */
int p11_setup(void **state);
int p11_teardown(void **state);

/* C_InitToken(slot 0, so_pw, "test") on a fresh token (no session open). */
void p11_activate(const char *so_pw);
/*
 * Opens a RW session, logs in as the CO (admin, the password given to
 * p11_activate), C_InitPIN("name:pw"), logs out, closes the session.
 */
void p11_create_cu(const char *name, const char *pw);
/* Same as p11_create_cu: resets (or creates) any user's password. */
void p11_co_init_pin(const char *pin);
/*
 * The id of the user called name on the current store, as nimbus-mgmt
 * listUsers shows it (in a cluster ids come from blocks reserved through
 * the log, not 1, 2, 3 ...). Fails the test if there is none.
 */
CK_ULONG p11_user_id(const char *name);
/* C_Login(CKU_USER, "name:pw"), asserting CKR_OK. */
void p11_login_cu(CK_SESSION_HANDLE s, const char *name, const char *pw);
/* C_Login(CKU_SO, pin), asserting CKR_OK. */
void p11_login_so(CK_SESSION_HANDLE s, const char *pin);
/* C_Login with a string PIN, returning the result. */
CK_RV p11_login(CK_SESSION_HANDLE s, CK_USER_TYPE type, const char *pin);
CK_RV p11_init_pin(CK_SESSION_HANDLE s, const char *pin);
CK_RV p11_set_pin(CK_SESSION_HANDLE s, const char *old_pin,
                  const char *new_pin);
CK_RV p11_init_token(const char *pin, const char *label);

CK_SESSION_HANDLE p11_open_rw(void);
CK_SESSION_HANDLE p11_open_ro(void);

/* Creates a data object (CKA_VALUE "v", default CKA_PRIVATE), asserts OK. */
CK_OBJECT_HANDLE p11_make_data(CK_SESSION_HANDLE s, const char *label,
                               CK_BBOOL token);
/* Same with CKA_PRIVATE given. */
CK_OBJECT_HANDLE p11_make_data_priv(CK_SESSION_HANDLE s, const char *label,
                                    CK_BBOOL token, CK_BBOOL priv);
/*
 * Runs a whole find (Init, Objects in chunks, Final), asserting CKR_OK at
 * each step. Returns how many handles matched; stores up to max of them in
 * out (which may be NULL).
 */
CK_ULONG p11_find_all(CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG n,
                      CK_OBJECT_HANDLE *out, CK_ULONG max);
/* How many objects the session sees with this CKA_LABEL. */
CK_ULONG p11_count_label(CK_SESSION_HANDLE s, const char *label);
/* How many objects the session sees in all. */
CK_ULONG p11_count_all(CK_SESSION_HANDLE s);

void p11_token_info(CK_TOKEN_INFO *ti);
CK_FLAGS p11_token_flags(void);
CK_STATE p11_session_state(CK_SESSION_HANDLE s);

/* Reads one CK_ULONG / CK_BBOOL attribute, asserting CKR_OK and size. */
CK_ULONG p11_get_ulong(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                       CK_ATTRIBUTE_TYPE type);
CK_BBOOL p11_get_bool(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                      CK_ATTRIBUTE_TYPE type);
/* Reads a byte attribute into buf (asserting CKR_OK); returns its length. */
CK_ULONG p11_get_bytes(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                       CK_ATTRIBUTE_TYPE type, void *buf, CK_ULONG max);

/*
 * A template built attribute by attribute; a type set twice replaces the
 * first (its slot keeps its place). The CK_ULONG values live inside it,
 * so it is never copied. Clear it with memset before use.
 */
#define P11_TMPL_MAX 32
struct p11_tmpl {
    CK_ATTRIBUTE a[P11_TMPL_MAX];
    CK_ULONG u[P11_TMPL_MAX];
    CK_ULONG n;
};
/* pValue points to v (not copied). */
void p11_tmpl_set(struct p11_tmpl *t, CK_ATTRIBUTE_TYPE type, const void *v,
                  CK_ULONG len);
void p11_tmpl_bool(struct p11_tmpl *t, CK_ATTRIBUTE_TYPE type, int v);
void p11_tmpl_ulong(struct p11_tmpl *t, CK_ATTRIBUTE_TYPE type, CK_ULONG v);

/* Whether a blank-padded PKCS#11 string field equals text. */
int p11_padded_eq(const CK_UTF8CHAR *field, size_t flen, const char *text);
void p11_pad(CK_UTF8CHAR *field, size_t flen, const char *text);

/* The groups, each returning cmocka's failure count. */
int p11_group_sessions(void);
int p11_group_login(void);
int p11_group_objects(void);
int p11_group_roles(void);
int p11_group_crypto(void);
int p11_group_sym(void);
int p11_group_protect(void);
int p11_group_separation(void);
int p11_group_stale(void);
int p11_group_robust(void);
int p11_group_public(void);
int p11_group_corners(void);

#endif
