/*
 * object.c - objects: C_CreateObject, C_CopyObject, C_DestroyObject,
 * C_GetObjectSize, C_GetAttributeValue, C_SetAttributeValue and the
 * C_FindObjects* calls, and the object handle maps.
 *
 * Object handles are this application's names for store object ids: one
 * map handle -> oid, one oid -> handle, so that an object keeps its handle
 * within a login. Handles come from a counter and are never reused while
 * the module is loaded; every handle becomes invalid at C_Logout and when
 * the last session closes. Whether the caller may see an object is the
 * core's decision: it answers CKR_OBJECT_HANDLE_INVALID, passed through.
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "pkcs11/mod.h"

/* ------------------------------------------------------------ handles */

void mod_handles_drop_locked(void)
{
    mod_state.handles_epoch++;
    mod_hmap_clear(&mod_state.h2o);
    mod_hmap_clear(&mod_state.o2h);
}

CK_RV mod_handle_for_oid_locked(hsm_oid_t oid, CK_OBJECT_HANDLE *h)
{
    CK_OBJECT_HANDLE nh = mod_state.next_object;
    uint64_t v;
    CK_RV rv;

    if (mod_hmap_get(&mod_state.o2h, oid, &v)) {
        *h = (CK_OBJECT_HANDLE)v;
        return CKR_OK;
    }
    rv = mod_hmap_put(&mod_state.h2o, (uint64_t)nh, oid);
    if (rv != CKR_OK) {
        return rv;
    }
    rv = mod_hmap_put(&mod_state.o2h, oid, (uint64_t)nh);
    if (rv != CKR_OK) {
        mod_hmap_del(&mod_state.h2o, (uint64_t)nh);
        return rv;
    }
    mod_state.next_object++;
    *h = nh;
    return CKR_OK;
}

bool mod_oid_for_handle_locked(CK_OBJECT_HANDLE h, hsm_oid_t *oid)
{
    uint64_t v;

    if (!mod_hmap_get(&mod_state.h2o, (uint64_t)h, &v)) {
        return false;
    }
    *oid = v;
    return true;
}

void mod_handle_forget_locked(hsm_oid_t oid)
{
    uint64_t h;

    if (mod_hmap_get(&mod_state.o2h, oid, &h)) {
        mod_hmap_del(&mod_state.h2o, h);
        mod_hmap_del(&mod_state.o2h, oid);
    }
}

CK_RV mod_session_object_note_locked(struct mod_session *s, hsm_oid_t oid)
{
    /* From the id, not from a read of CKA_TOKEN: the read needs a login
     * that another thread may have ended since the object was made, and
     * a token object that is stored must be reported, not lost. */
    if ((oid & HSM_SESSION_OID_BIT) == 0) {
        return CKR_OK;
    }
    return mod_hmap_put(&s->sobjs, oid, 0);
}

/* A destroyed session object leaves the set of the session that made it
 * (usually s, else another session of this application), so that the set
 * stays as small as the live objects. */
static void session_object_gone_locked(struct mod_session *s, hsm_oid_t oid)
{
    uint64_t h, v;
    size_t pos = 0;

    if (mod_hmap_del(&s->sobjs, oid)) {
        return;
    }
    while (mod_hmap_next(&mod_state.sessions, &pos, &h, &v)) {
        struct mod_session *o = (struct mod_session *)(uintptr_t)v;

        if (mod_hmap_del(&o->sobjs, oid)) {
            return;
        }
    }
}

void mod_handles_drop_session_locked(struct mod_session *s)
{
    uint64_t oid, v;
    size_t pos = 0;

    while (mod_hmap_next(&s->sobjs, &pos, &oid, &v)) {
        mod_handle_forget_locked(oid);
    }
    mod_hmap_free(&s->sobjs);
}

CK_RV mod_objects_register_locked(struct mod_session *s, const hsm_oid_t *oids,
                                  CK_OBJECT_HANDLE *hs, size_t n)
{
    CK_RV rv = CKR_OK;
    size_t i;

    if (s->closed) {
        /* Closed during the call: its session objects are gone. */
        return CKR_SESSION_CLOSED;
    }
    for (i = 0; i < n && rv == CKR_OK; i++) {
        rv = mod_session_object_note_locked(s, oids[i]);
        if (rv == CKR_OK) {
            rv = mod_handle_for_oid_locked(oids[i], &hs[i]);
        }
    }
    if (rv != CKR_OK) {
        /* No handle to give: the objects must not stay behind. */
        for (i = 0; i < n; i++) {
            mod_handle_forget_locked(oids[i]);
            if (backend_object_destroy(mod_state.conn, s->sid, oids[i]) ==
                CKR_OK) {
                session_object_gone_locked(s, oids[i]);
            }
        }
    }
    return rv;
}

/* ------------------------------------------------------------ templates */

static bool is_array_attr(CK_ATTRIBUTE_TYPE t)
{
    return t == CKA_WRAP_TEMPLATE || t == CKA_UNWRAP_TEMPLATE ||
           t == CKA_DERIVE_TEMPLATE;
}

static void put_be(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    }
}

static int cmp_attr_type(const void *a, const void *b)
{
    CK_ATTRIBUTE_TYPE x = (*(const CK_ATTRIBUTE *const *)a)->type;
    CK_ATTRIBUTE_TYPE y = (*(const CK_ATTRIBUTE *const *)b)->type;

    return x < y ? -1 : x > y;
}

/*
 * An array attribute's CK_ATTRIBUTE array as the core's serialized list:
 * u32 count, then per attribute (ascending types, one each) u64 type, u32
 * length, value, big-endian. The nested attributes' types are the core's
 * to judge; their shape is checked here, where the caller's memory is.
 */
static CK_RV array_serialize(const CK_ATTRIBUTE *a, uint8_t **blob, size_t *len)
{
    const CK_ATTRIBUTE *in = a->pValue;
    const CK_ATTRIBUTE *sorted[MOD_TEMPLATE_MAX];
    size_t n, m = 0, total = 4, off;
    uint8_t *buf;

    *blob = NULL;
    *len = 0;
    if (a->ulValueLen % sizeof(CK_ATTRIBUTE) != 0) {
        return CKR_ATTRIBUTE_VALUE_INVALID;
    }
    n = a->ulValueLen / sizeof(CK_ATTRIBUTE);
    if (n > MOD_TEMPLATE_MAX || (n > 0 && in == NULL)) {
        return CKR_ATTRIBUTE_VALUE_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        if (in[i].ulValueLen > MOD_ATTR_VALUE_MAX ||
            (in[i].ulValueLen > 0 && in[i].pValue == NULL)) {
            return CKR_ATTRIBUTE_VALUE_INVALID;
        }
        sorted[i] = &in[i];
    }
    qsort(sorted, n, sizeof(sorted[0]), cmp_attr_type);
    for (size_t i = 0; i < n; i++) {
        const CK_ATTRIBUTE *x = sorted[i];

        if (m > 0 && sorted[m - 1]->type == x->type) {
            if (sorted[m - 1]->ulValueLen != x->ulValueLen ||
                (x->ulValueLen > 0 && memcmp(sorted[m - 1]->pValue, x->pValue,
                                             x->ulValueLen) != 0)) {
                return CKR_TEMPLATE_INCONSISTENT;
            }
            continue; /* the same attribute twice: once is enough */
        }
        sorted[m++] = x;
        total += 12 + x->ulValueLen;
    }
    buf = malloc(total);
    if (buf == NULL) {
        return CKR_HOST_MEMORY;
    }
    put_be(buf, m, 4);
    off = 4;
    for (size_t i = 0; i < m; i++) {
        put_be(buf + off, sorted[i]->type, 8);
        put_be(buf + off + 8, sorted[i]->ulValueLen, 4);
        off += 12;
        if (sorted[i]->ulValueLen > 0) {
            memcpy(buf + off, sorted[i]->pValue, sorted[i]->ulValueLen);
        }
        off += sorted[i]->ulValueLen;
    }
    *blob = buf;
    *len = total;
    return CKR_OK;
}

void mod_template_free(mod_tmpl_t *t)
{
    static const CK_ATTRIBUTE empty = {0, NULL, 0};

    if (t->own != NULL) {
        for (CK_ULONG i = 0; i < t->n; i++) {
            if (is_array_attr(t->own[i].type)) {
                util_free_wipe(t->own[i].pValue, t->own[i].ulValueLen);
            }
        }
        free(t->own);
    }
    t->own = NULL;
    t->v = &empty;
    t->n = 0;
}

CK_RV mod_template_in(const CK_ATTRIBUTE *t, CK_ULONG n, mod_tmpl_t *out)
{
    bool arrays = false;
    CK_ULONG i;
    CK_RV rv = CKR_OK;

    out->own = NULL;
    out->n = 0;
    mod_template_free(out); /* out->v: the empty template */
    if (t == NULL && n > 0) {
        return CKR_ARGUMENTS_BAD;
    }
    if (n > MOD_TEMPLATE_MAX) {
        return CKR_ARGUMENTS_BAD;
    }
    for (i = 0; i < n; i++) {
        if (t[i].pValue == NULL && t[i].ulValueLen != 0) {
            return CKR_ATTRIBUTE_VALUE_INVALID;
        }
        if (t[i].ulValueLen > MOD_ATTR_VALUE_MAX) {
            return CKR_ATTRIBUTE_VALUE_INVALID;
        }
        arrays = arrays || is_array_attr(t[i].type);
    }
    if (n == 0) {
        return CKR_OK;
    }
    if (!arrays) {
        out->v = t;
        out->n = n;
        return CKR_OK;
    }
    out->own = calloc(n, sizeof(*out->own));
    if (out->own == NULL) {
        return CKR_HOST_MEMORY;
    }
    for (i = 0; i < n && rv == CKR_OK; i++) {
        uint8_t *blob;
        size_t len;

        out->own[i] = t[i];
        if (!is_array_attr(t[i].type)) {
            continue;
        }
        out->own[i].pValue = NULL;
        out->own[i].ulValueLen = 0;
        rv = array_serialize(&t[i], &blob, &len);
        if (rv == CKR_OK) {
            out->own[i].pValue = blob;
            out->own[i].ulValueLen = len;
        }
    }
    out->n = i; /* what mod_template_free has to look at */
    if (rv != CKR_OK) {
        mod_template_free(out);
        return rv;
    }
    out->v = out->own;
    return CKR_OK;
}

/*
 * Session lookup plus handle lookup, for every call on one object. On
 * success *s and *oid are set.
 */
static CK_RV session_object_locked(CK_SESSION_HANDLE hSession,
                                   CK_OBJECT_HANDLE hObject,
                                   struct mod_session **s, hsm_oid_t *oid)
{
    *s = mod_session_get_locked(hSession);
    if (*s == NULL) {
        return CKR_SESSION_HANDLE_INVALID;
    }
    if (!mod_oid_for_handle_locked(hObject, oid)) {
        return CKR_OBJECT_HANDLE_INVALID;
    }
    return CKR_OK;
}

/* ------------------------------------------------------------ objects */

CK_RV mod_C_CreateObject(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate,
                         CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phObject)
{
    struct mod_session *s;
    CK_OBJECT_HANDLE h;
    mod_tmpl_t tm = {NULL, NULL, 0};
    hsm_oid_t oid;
    CK_RV rv;

    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_CreateObject, rv);
    }
    s = mod_session_get_locked(hSession);
    if (s == NULL) {
        rv = CKR_SESSION_HANDLE_INVALID;
        goto out;
    }
    if (phObject == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    rv = mod_template_in(pTemplate, ulCount, &tm);
    if (rv != CKR_OK) {
        goto out;
    }
    if ((rv = mod_session_call_unlock(s)) != CKR_OK) {
        mod_template_free(&tm);
        return mod_ret(MOD_FN_C_CreateObject, rv);
    }
    rv = backend_object_create(mod_state.conn, s->sid, tm.v, tm.n, &oid);
    mod_template_free(&tm);
    if (mod_session_call_relock(s) != CKR_OK) {
        return mod_ret(MOD_FN_C_CreateObject, CKR_CRYPTOKI_NOT_INITIALIZED);
    }
    if (rv == CKR_OK) {
        /* CKR_SESSION_CLOSED when s closed meanwhile */
        rv = mod_objects_register_locked(s, &oid, &h, 1);
    }
    if (rv == CKR_OK) {
        *phObject = h;
    }
    mod_session_unref_locked(s);
out:
    mod_template_free(&tm);
    mod_leave();
    return mod_ret(MOD_FN_C_CreateObject, rv);
}

CK_RV mod_C_CopyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                       CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                       CK_OBJECT_HANDLE_PTR phNewObject)
{
    struct mod_session *s;
    CK_OBJECT_HANDLE h;
    hsm_oid_t oid;
    hsm_oid_t new_oid;
    mod_tmpl_t tm = {NULL, NULL, 0};
    CK_RV rv;

    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_CopyObject, rv);
    }
    s = mod_session_get_locked(hSession);
    if (s == NULL) {
        rv = CKR_SESSION_HANDLE_INVALID;
        goto out;
    }
    if (phNewObject == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    rv = mod_template_in(pTemplate, ulCount, &tm);
    if (rv != CKR_OK) {
        goto out;
    }
    if (!mod_oid_for_handle_locked(hObject, &oid)) {
        rv = CKR_OBJECT_HANDLE_INVALID;
        goto out;
    }
    rv = backend_object_copy(mod_state.conn, s->sid, oid, tm.v, tm.n, &new_oid);
    if (rv != CKR_OK) {
        goto out;
    }
    rv = mod_objects_register_locked(s, &new_oid, &h, 1);
    if (rv != CKR_OK) {
        goto out;
    }
    *phNewObject = h;
out:
    mod_template_free(&tm);
    mod_leave();
    return mod_ret(MOD_FN_C_CopyObject, rv);
}

CK_RV mod_C_DestroyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject)
{
    struct mod_session *s;
    hsm_oid_t oid;
    CK_RV rv;

    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_DestroyObject, rv);
    }
    rv = session_object_locked(hSession, hObject, &s, &oid);
    if (rv != CKR_OK) {
        goto out;
    }
    if ((rv = mod_session_call_unlock(s)) != CKR_OK) {
        return mod_ret(MOD_FN_C_DestroyObject, rv);
    }
    rv = backend_object_destroy(mod_state.conn, s->sid, oid);
    if (mod_session_call_relock(s) != CKR_OK) {
        return mod_ret(MOD_FN_C_DestroyObject, CKR_CRYPTOKI_NOT_INITIALIZED);
    }
    if (rv == CKR_USER_NOT_LOGGED_IN) {
        /* A public object in a public session: seen, not to be destroyed
         * (C_DestroyObject has no USER_NOT_LOGGED_IN). */
        rv = CKR_ACTION_PROHIBITED;
    }
    if (rv == CKR_OK) {
        mod_handle_forget_locked(oid);
        session_object_gone_locked(s, oid);
    }
    mod_session_unref_locked(s);
out:
    mod_leave();
    return mod_ret(MOD_FN_C_DestroyObject, rv);
}

CK_RV mod_C_GetObjectSize(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                          CK_ULONG_PTR pulSize)
{
    struct mod_session *s;
    CK_ULONG size = 0;
    hsm_oid_t oid;
    CK_RV rv;

    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_GetObjectSize, rv);
    }
    rv = session_object_locked(hSession, hObject, &s, &oid);
    if (rv != CKR_OK) {
        goto out;
    }
    if (pulSize == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    rv = backend_object_size(mod_state.conn, s->sid, oid, &size);
    if (rv != CKR_OK) {
        goto out;
    }
    *pulSize = size;
out:
    mod_leave();
    return mod_ret(MOD_FN_C_GetObjectSize, rv);
}

/*
 * Fills the caller's template from what the core read. PKCS#11 3.0
 * section 5.7 (C_GetAttributeValue), for each (type, pValue, ulValueLen):
 *
 *   1. If the specified attribute (i.e., the attribute specified by the
 *      type field) for the object cannot be revealed because the object is
 *      sensitive or unextractable, then the ulValueLen field in that triple
 *      is modified to hold the value CK_UNAVAILABLE_INFORMATION.
 *   2. Otherwise, if the specified value for the object is invalid (the
 *      object does not possess such an attribute), then the ulValueLen
 *      field in that triple is modified to hold the value
 *      CK_UNAVAILABLE_INFORMATION.
 *   3. Otherwise, if the pValue field has the value NULL_PTR, then the
 *      ulValueLen field is modified to hold the exact length of the
 *      specified attribute for the object.
 *   4. Otherwise, if the length specified in ulValueLen is large enough to
 *      hold the value of the specified attribute for the object, then that
 *      attribute is copied into the buffer located at pValue, and the
 *      ulValueLen field is modified to hold the exact length of the
 *      attribute.
 *   5. Otherwise, the ulValueLen field is modified to hold the value
 *      CK_UNAVAILABLE_INFORMATION.
 *
 * "If case 1 applies to any of the requested attributes, then the call
 * should return the value CKR_ATTRIBUTE_SENSITIVE. If case 2 applies ...
 * CKR_ATTRIBUTE_TYPE_INVALID. If case 5 applies ... CKR_BUFFER_TOO_SMALL.
 * As usual, if more than one of these error codes is applicable, Cryptoki
 * may return any of them." We fix the precedence SENSITIVE > TYPE_INVALID >
 * BUFFER_TOO_SMALL and process every attribute.
 *
 * The attributes whose value is an array of attributes (CKA_WRAP_TEMPLATE,
 * CKA_UNWRAP_TEMPLATE, CKA_DERIVE_TEMPLATE) follow the same section: pValue
 * NULL gives the length of the array (count * sizeof(CK_ATTRIBUTE)); else
 * pValue points at the caller's array, whose ulValueLen must hold the
 * whole array, and whose elements get the rules above one by one ("the
 * type element of attributes within the array MUST be ignored on input and
 * MUST be set on output"; an element too small is set to
 * CK_UNAVAILABLE_INFORMATION and the call returns CKR_BUFFER_TOO_SMALL).
 * The core gives such a value serialized; hsm_template_parse reads it.
 */

/* Fills one array attribute a from the serialized list g (status OK). */
static CK_RV array_fill(CK_ATTRIBUTE *a, const hsm_attr_t *g, bool *too_small)
{
    CK_ATTRIBUTE *inner = a->pValue;
    hsm_attr_t *list = NULL;
    size_t n = 0;
    size_t i;
    CK_RV rv;

    if (g->len == 0) {
        n = 0; /* no attribute in the template */
    } else {
        rv = backend_template_parse(mod_state.be, g->value, g->len, &list, &n);
        if (rv != CKR_OK) {
            return rv;
        }
    }
    if (a->pValue == NULL) {
        a->ulValueLen = (CK_ULONG)(n * sizeof(CK_ATTRIBUTE)); /* case 3 */
        goto out;
    }
    if (a->ulValueLen < n * sizeof(CK_ATTRIBUTE)) {
        a->ulValueLen = CK_UNAVAILABLE_INFORMATION; /* case 5 */
        *too_small = true;
        goto out;
    }
    for (i = 0; i < n; i++) {
        inner[i].type = list[i].type;
        if (inner[i].pValue == NULL) {
            inner[i].ulValueLen = (CK_ULONG)list[i].len;
        } else if (inner[i].ulValueLen >= list[i].len) {
            if (list[i].len > 0) {
                memcpy(inner[i].pValue, list[i].value, list[i].len);
            }
            inner[i].ulValueLen = (CK_ULONG)list[i].len;
        } else {
            inner[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
            *too_small = true;
        }
    }
    a->ulValueLen = (CK_ULONG)(n * sizeof(CK_ATTRIBUTE));
out:
    if (list != NULL) {
        backend_attrs_free(mod_state.be, list, n);
        free(list);
    }
    return CKR_OK;
}

static CK_RV template_fill(CK_ATTRIBUTE *t, CK_ULONG n, const hsm_attr_t *got)
{
    bool sensitive = false;
    bool invalid = false;
    bool too_small = false;
    CK_ULONG i;

    for (i = 0; i < n; i++) {
        CK_ATTRIBUTE *a = &t[i];
        const hsm_attr_t *g = &got[i];

        if (g->status == HSM_ATTR_SENSITIVE) {
            a->ulValueLen = CK_UNAVAILABLE_INFORMATION; /* case 1 */
            sensitive = true;
        } else if (g->status != HSM_ATTR_OK) {
            a->ulValueLen = CK_UNAVAILABLE_INFORMATION; /* case 2 */
            invalid = true;
        } else if (is_array_attr(a->type)) {
            CK_RV rv = array_fill(a, g, &too_small);

            if (rv != CKR_OK) {
                return rv;
            }
        } else if (a->pValue == NULL) {
            a->ulValueLen = (CK_ULONG)g->len; /* case 3 */
        } else if (a->ulValueLen >= g->len) {
            if (g->len > 0) {
                memcpy(a->pValue, g->value, g->len); /* case 4 */
            }
            a->ulValueLen = (CK_ULONG)g->len;
        } else {
            a->ulValueLen = CK_UNAVAILABLE_INFORMATION; /* case 5 */
            too_small = true;
        }
    }
    if (sensitive) {
        return CKR_ATTRIBUTE_SENSITIVE;
    }
    if (invalid) {
        return CKR_ATTRIBUTE_TYPE_INVALID;
    }
    if (too_small) {
        return CKR_BUFFER_TOO_SMALL;
    }
    return CKR_OK;
}

CK_RV mod_C_GetAttributeValue(CK_SESSION_HANDLE hSession,
                              CK_OBJECT_HANDLE hObject,
                              CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
    struct mod_session *s;
    CK_ATTRIBUTE_TYPE one_type = 0;
    hsm_attr_t one_attr;
    CK_ATTRIBUTE_TYPE *types = &one_type;
    hsm_attr_t *got = &one_attr;
    bool have_got = false;
    hsm_oid_t oid;
    CK_ULONG i;
    CK_RV rv;

    memset(&one_attr, 0, sizeof(one_attr));
    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_GetAttributeValue, rv);
    }
    rv = session_object_locked(hSession, hObject, &s, &oid);
    if (rv != CKR_OK) {
        goto out;
    }
    if ((pTemplate == NULL && ulCount > 0) || ulCount > MOD_TEMPLATE_MAX) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (ulCount > 1) {
        types = calloc(ulCount, sizeof(*types));
        got = calloc(ulCount, sizeof(*got));
        if (types == NULL || got == NULL) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
    }
    for (i = 0; i < ulCount; i++) {
        types[i] = pTemplate[i].type;
    }
    /* Even for an empty template: the object must be one the caller sees. */
    rv = backend_object_get(mod_state.conn, s->sid, oid, types, (size_t)ulCount,
                            got);
    if (rv != CKR_OK) {
        goto out;
    }
    have_got = true;
    rv = template_fill(pTemplate, ulCount, got);
out:
    if (have_got) {
        backend_attrs_free(mod_state.be, got, (size_t)ulCount);
    }
    if (types != &one_type) {
        free(types);
    }
    if (got != &one_attr) {
        free(got);
    }
    mod_leave();
    return mod_ret(MOD_FN_C_GetAttributeValue, rv);
}

CK_RV mod_C_SetAttributeValue(CK_SESSION_HANDLE hSession,
                              CK_OBJECT_HANDLE hObject,
                              CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
    struct mod_session *s;
    mod_tmpl_t tm = {NULL, NULL, 0};
    hsm_oid_t oid;
    CK_RV rv;

    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_SetAttributeValue, rv);
    }
    rv = session_object_locked(hSession, hObject, &s, &oid);
    if (rv != CKR_OK) {
        goto out;
    }
    rv = mod_template_in(pTemplate, ulCount, &tm);
    if (rv != CKR_OK) {
        goto out;
    }
    rv = backend_object_set(mod_state.conn, s->sid, oid, tm.v, tm.n);
out:
    mod_template_free(&tm);
    mod_leave();
    return mod_ret(MOD_FN_C_SetAttributeValue, rv);
}

/* ------------------------------------------------------------ find */

/*
 * The search itself runs without the library lock (under the session's
 * mutex, with a reference), so that sessions search in parallel. If the
 * login changed meanwhile (handles_epoch moved), its result may hold what
 * the new user must not see: it is done again under the library lock.
 */
CK_RV mod_C_FindObjectsInit(CK_SESSION_HANDLE hSession,
                            CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
    struct mod_session *s;
    hsm_oid_t *oids = NULL;
    mod_tmpl_t tm = {NULL, NULL, 0};
    uint64_t epoch;
    size_t n = 0;
    CK_RV rv;

    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_FindObjectsInit, rv);
    }
    s = mod_session_get_locked(hSession);
    if (s == NULL) {
        rv = CKR_SESSION_HANDLE_INVALID;
        goto out;
    }
    rv = mod_template_in(pTemplate, ulCount, &tm);
    if (rv != CKR_OK) {
        goto out;
    }
    if (s->find.active) {
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    epoch = mod_state.handles_epoch;
    if ((rv = mod_session_call_unlock(s)) != CKR_OK) {
        mod_template_free(&tm);
        return mod_ret(MOD_FN_C_FindObjectsInit, rv);
    }
    rv = backend_object_find(mod_state.conn, s->sid, tm.v, tm.n, &oids, &n);
    if (mod_session_call_relock(s) != CKR_OK) {
        free(oids);
        mod_template_free(&tm);
        return mod_ret(MOD_FN_C_FindObjectsInit, CKR_CRYPTOKI_NOT_INITIALIZED);
    }
    if (s->closed) {
        rv = CKR_SESSION_CLOSED;
        goto out_unref;
    }
    if (rv == CKR_OK && epoch != mod_state.handles_epoch) {
        free(oids);
        oids = NULL;
        rv = backend_object_find(mod_state.conn, s->sid, tm.v, tm.n, &oids, &n);
    }
    if (rv != CKR_OK) {
        goto out_unref;
    }
    if (s->find.active) {
        rv = CKR_OPERATION_ACTIVE;
        goto out_unref;
    }
    s->find.active = true;
    s->find.oids = oids;
    s->find.n = n;
    s->find.pos = 0;
    oids = NULL;
out_unref:
    mod_session_unref_locked(s);
out:
    free(oids);
    mod_template_free(&tm);
    mod_leave();
    return mod_ret(MOD_FN_C_FindObjectsInit, rv);
}

CK_RV mod_C_FindObjects(CK_SESSION_HANDLE hSession,
                        CK_OBJECT_HANDLE_PTR phObject,
                        CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount)
{
    struct mod_session *s;
    CK_ULONG got = 0;
    size_t pos;
    CK_RV rv;

    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_FindObjects, rv);
    }
    s = mod_session_get_locked(hSession);
    if (s == NULL) {
        rv = CKR_SESSION_HANDLE_INVALID;
        goto out;
    }
    if (pulObjectCount == NULL || (phObject == NULL && ulMaxObjectCount > 0)) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (!s->find.active) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto out;
    }
    pos = s->find.pos;
    while (got < ulMaxObjectCount && pos < s->find.n) {
        rv = mod_handle_for_oid_locked(s->find.oids[pos], &phObject[got]);
        if (rv != CKR_OK) {
            goto out;
        }
        got++;
        pos++;
    }
    s->find.pos = pos;
    *pulObjectCount = got;
out:
    mod_leave();
    return mod_ret(MOD_FN_C_FindObjects, rv);
}

CK_RV mod_C_FindObjectsFinal(CK_SESSION_HANDLE hSession)
{
    struct mod_session *s;
    CK_RV rv;

    rv = mod_enter();
    if (rv != CKR_OK) {
        return mod_ret(MOD_FN_C_FindObjectsFinal, rv);
    }
    s = mod_session_get_locked(hSession);
    if (s == NULL) {
        rv = CKR_SESSION_HANDLE_INVALID;
        goto out;
    }
    if (!s->find.active) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto out;
    }
    mod_find_end(&s->find);
out:
    mod_leave();
    return mod_ret(MOD_FN_C_FindObjectsFinal, rv);
}
