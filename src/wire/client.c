/*
 * client.c - the client side of the wire (client.h): encode a request,
 * transfer it, decode and check the reply.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "wire/client.h"
#include "wire/proto.h"

struct wire_client {
    wire_xfer_fn xfer;
    void *ctx;
    size_t max_frame;
    uint64_t next_id;
    pthread_mutex_t lock;
};

/* One call in flight: the decoded reply and its allocator. */
struct rt {
    Nimbus__Reply *rep;
    wire_alloc_t wa;
};

CK_RV wire_client_new(wire_xfer_fn xfer, void *ctx, size_t max_frame,
                      wire_client_t **out)
{
    wire_client_t *cl;

    return_val_if_fail(xfer != NULL && out != NULL, CKR_ARGUMENTS_BAD);
    *out = NULL;
    cl = calloc(1, sizeof(*cl));
    if (cl == NULL) {
        return CKR_HOST_MEMORY;
    }
    if (util_mutex_init(&cl->lock) != 0) {
        free(cl);
        return CKR_GENERAL_ERROR;
    }
    cl->xfer = xfer;
    cl->ctx = ctx;
    cl->max_frame = max_frame != 0 ? max_frame : CONFIG_DEFAULT_MAX_FRAME;
    if (cl->max_frame < CONFIG_MIN_MAX_FRAME) {
        cl->max_frame = CONFIG_MIN_MAX_FRAME;
    }
    cl->next_id = 1;
    *out = cl;
    return CKR_OK;
}

void wire_client_free(wire_client_t *cl)
{
    if (cl == NULL) {
        return;
    }
    pthread_mutex_destroy(&cl->lock);
    free(cl);
}

/* Output bytes one reply may carry (what the server allows too). */
static size_t out_max(const wire_client_t *cl)
{
    return cl->max_frame - WIRE_REPLY_OVERHEAD;
}

/*
 * Sends q, receives and decodes the reply into t (free with rt_done).
 * want: the result the call expects on success (NOT_SET: none). Returns
 * the reply's rv, or CKR_DEVICE_REMOVED / CKR_DEVICE_ERROR when the link
 * or the reply is broken.
 */
static CK_RV roundtrip(wire_client_t *cl, Nimbus__Request *q,
                       Nimbus__Reply__ResultCase want, struct rt *t)
{
    uint8_t *req = NULL, *resp = NULL;
    size_t len = 0, resp_len = 0;
    CK_RV rv;
    bool ok;

    t->rep = NULL;
    pthread_mutex_lock(&cl->lock);
    q->id = cl->next_id++;
    if (!wire_pack(&q->base, cl->max_frame, &req, &len)) {
        pthread_mutex_unlock(&cl->lock);
        /* more than a frame carries (or out of memory) */
        return CKR_DEVICE_MEMORY;
    }
    ok = cl->xfer(cl->ctx, req, len, &resp, &resp_len);
    pthread_mutex_unlock(&cl->lock);
    util_free_wipe(req, len);
    if (!ok) {
        free(resp);
        return CKR_DEVICE_REMOVED;
    }
    wire_alloc_init(&t->wa, WIRE_DECODE_BUDGET(resp_len));
    t->rep = resp != NULL && resp_len <= cl->max_frame
                 ? nimbus__reply__unpack(&t->wa.a, resp_len, resp)
                 : NULL;
    util_free_wipe(resp, resp_len);
    if (t->rep == NULL) {
        return CKR_DEVICE_ERROR;
    }
    if (t->rep->id != q->id || (CK_RV)t->rep->rv != t->rep->rv) {
        return CKR_DEVICE_ERROR;
    }
    rv = (CK_RV)t->rep->rv;
    if (rv == CKR_OK && want != NIMBUS__REPLY__RESULT__NOT_SET &&
        t->rep->result_case != want) {
        return CKR_DEVICE_ERROR;
    }
    return rv;
}

/* Frees the reply, wiping what it held (decrypted data, key values). */
static void rt_done(struct rt *t)
{
    if (t->rep == NULL) {
        return;
    }
    switch (t->rep->result_case) {
    case NIMBUS__REPLY__RESULT_OUTPUT:
        if (t->rep->output->out.data != NULL) {
            util_wipe(t->rep->output->out.data, t->rep->output->out.len);
        }
        break;
    case NIMBUS__REPLY__RESULT_ATTRS:
        for (size_t i = 0; i < t->rep->attrs->n_attrs; i++) {
            ProtobufCBinaryData *v = &t->rep->attrs->attrs[i]->value;

            if (v->data != NULL) {
                util_wipe(v->data, v->len);
            }
        }
        break;
    case NIMBUS__REPLY__RESULT_MSG:
        if (t->rep->msg->out.data != NULL) {
            util_wipe(t->rep->msg->out.data, t->rep->msg->out.len);
        }
        break;
    default:
        break;
    }
    nimbus__reply__free_unpacked(t->rep, &t->wa.a);
    t->rep = NULL;
}

/* A call whose reply is rv alone. */
static CK_RV simple(wire_client_t *cl, Nimbus__Request *q)
{
    struct rt t;
    CK_RV rv = roundtrip(cl, q, NIMBUS__REPLY__RESULT__NOT_SET, &t);

    rt_done(&t);
    return rv;
}

static ProtobufCBinaryData bin(const void *p, size_t len)
{
    ProtobufCBinaryData b;

    b.data = (uint8_t *)(uintptr_t)p;
    b.len = p != NULL ? len : 0;
    return b;
}

/* An optional name (NULL: absent). */
static void name_out(const char *name, protobuf_c_boolean *has,
                     ProtobufCBinaryData *b)
{
    *has = name != NULL;
    *b = bin(name, name != NULL ? strlen(name) : 0);
}

/* A template as repeated Attribute (*buf to free). */
static CK_RV tmpl_out(const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                      Nimbus__Attribute ***ptrs, size_t *n, void **buf)
{
    Nimbus__Attribute *a, **p;

    *buf = NULL;
    *ptrs = NULL;
    *n = 0;
    if (count > HSM_TEMPLATE_MAX || (tmpl == NULL && count > 0)) {
        return CKR_ARGUMENTS_BAD;
    }
    if (count == 0) {
        return CKR_OK;
    }
    *buf = calloc(count, sizeof(*a) + sizeof(*p));
    if (*buf == NULL) {
        return CKR_HOST_MEMORY;
    }
    a = *buf;
    p = (Nimbus__Attribute **)(a + count);
    for (CK_ULONG i = 0; i < count; i++) {
        nimbus__attribute__init(&a[i]);
        a[i].type = tmpl[i].type;
        if (tmpl[i].pValue != NULL) {
            a[i].has_value = true;
            a[i].value = bin(tmpl[i].pValue, tmpl[i].ulValueLen);
        } else if (tmpl[i].ulValueLen != 0) {
            free(*buf);
            *buf = NULL;
            return CKR_ATTRIBUTE_VALUE_INVALID;
        }
        p[i] = &a[i];
    }
    *ptrs = p;
    *n = count;
    return CKR_OK;
}

/* Copies an output of the reply into the caller's buffer: *outlen in,
 * room (out NULL: none), out: the length. */
static CK_RV output_in(const Nimbus__OutputReply *o, CK_RV rv, uint8_t *out,
                       size_t room, size_t *outlen)
{
    if (o->out_len > SIZE_MAX) {
        return CKR_DEVICE_ERROR;
    }
    if (rv == CKR_OK && out != NULL) {
        if (!o->has_out || o->out.len != o->out_len || o->out.len > room) {
            return CKR_DEVICE_ERROR;
        }
        if (o->out.len > 0) {
            memcpy(out, o->out.data, o->out.len);
        }
    }
    *outlen = (size_t)o->out_len;
    return rv;
}

#define REQUEST(q, field, CASE, msg)                                           \
    do {                                                                       \
        nimbus__request__init(&(q));                                           \
        (q).call_case = NIMBUS__REQUEST__CALL_##CASE;                          \
        (q).field = &(msg);                                                    \
    } while (0)

/* ------------------------------------------------------------ handshake */

CK_RV wire_cl_hello(wire_client_t *cl, const char *client_name,
                    const uint8_t *token, uint8_t token_out[WIRE_TOKEN_LEN])
{
    Nimbus__Request q;
    Nimbus__Hello h;
    struct rt t;
    CK_RV rv;

    nimbus__hello__init(&h);
    h.version = WIRE_PROTOCOL_VERSION;
    h.client_name = (char *)(uintptr_t)client_name;
    if (token != NULL) {
        h.has_attach_token = true;
        h.attach_token = bin(token, WIRE_TOKEN_LEN);
    }
    REQUEST(q, hello, HELLO, h);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_HELLO, &t);
    if (rv == CKR_OK) {
        const Nimbus__HelloReply *r = t.rep->hello;

        if (r->version != WIRE_PROTOCOL_VERSION || !r->has_attach_token ||
            r->attach_token.len != WIRE_TOKEN_LEN) {
            rv = CKR_DEVICE_ERROR;
        } else {
            if (token_out != NULL) {
                memcpy(token_out, r->attach_token.data, WIRE_TOKEN_LEN);
            }
            /* the server's frame limit, when it is smaller than ours */
            if (r->has_max_frame && r->max_frame >= CONFIG_MIN_MAX_FRAME &&
                r->max_frame < cl->max_frame) {
                cl->max_frame = (size_t)r->max_frame;
            }
        }
    }
    rt_done(&t);
    return rv;
}

/* ------------------------------------------------------------ token, users */

CK_RV wire_cl_token_info(wire_client_t *cl, hsm_token_info_t *info)
{
    Nimbus__Request q;
    Nimbus__TokenInfoReq m;
    struct rt t;
    CK_RV rv;

    nimbus__token_info_req__init(&m);
    REQUEST(q, token_info, TOKEN_INFO, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_TOKEN_INFO, &t);
    if (rv == CKR_OK) {
        const Nimbus__TokenInfoReply *r = t.rep->token_info;

        memset(info, 0, sizeof(*info));
        if (strlen(r->label) >= sizeof(info->label) ||
            strlen(r->serial) >= sizeof(info->serial)) {
            rv = CKR_DEVICE_ERROR;
        } else {
            strcpy(info->label, r->label);
            strcpy(info->serial, r->serial);
            info->activated = r->activated;
            info->preco = r->preco;
            info->cu_exists = r->cu_exists;
            info->so_failures = r->so_failures;
            info->user_failures = r->user_failures;
            info->failure_limit = r->failure_limit;
            info->objects_private_mem = r->objects_private_mem;
        }
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_init_token(wire_client_t *cl, const char *name, const uint8_t *pw,
                         size_t pwlen, const char *label)
{
    Nimbus__Request q;
    Nimbus__InitTokenReq m;

    nimbus__init_token_req__init(&m);
    name_out(name, &m.has_name, &m.name);
    m.password = bin(pw, pwlen);
    m.label = bin(label, label != NULL ? strlen(label) : 0);
    REQUEST(q, init_token, INIT_TOKEN, m);
    return simple(cl, &q);
}

CK_RV wire_cl_conn_user_type(wire_client_t *cl, hsm_user_type_t *type,
                             hsm_uid_t *uid)
{
    Nimbus__Request q;
    Nimbus__ConnUserTypeReq m;
    struct rt t;
    CK_RV rv;

    nimbus__conn_user_type_req__init(&m);
    REQUEST(q, conn_user_type, CONN_USER_TYPE, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_USER_TYPE, &t);
    if (rv == CKR_OK) {
        if (t.rep->user_type->type > HSM_USER_AU) {
            rv = CKR_DEVICE_ERROR;
        } else {
            *type = (hsm_user_type_t)t.rep->user_type->type;
            if (uid != NULL) {
                *uid = t.rep->user_type->uid;
            }
        }
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_login(wire_client_t *cl, hsm_login_kind_t kind, const char *name,
                    const uint8_t *pw, size_t pwlen)
{
    Nimbus__Request q;
    Nimbus__LoginReq m;

    nimbus__login_req__init(&m);
    m.kind = kind;
    name_out(name, &m.has_name, &m.name);
    m.password = bin(pw, pwlen);
    REQUEST(q, login, LOGIN, m);
    return simple(cl, &q);
}

CK_RV wire_cl_logout(wire_client_t *cl)
{
    Nimbus__Request q;
    Nimbus__LogoutReq m;

    nimbus__logout_req__init(&m);
    REQUEST(q, logout, LOGOUT, m);
    return simple(cl, &q);
}

CK_RV wire_cl_set_password(wire_client_t *cl, const char *name,
                           const uint8_t *old_pw, size_t old_len,
                           const uint8_t *new_pw, size_t new_len)
{
    Nimbus__Request q;
    Nimbus__SetPasswordReq m;

    nimbus__set_password_req__init(&m);
    name_out(name, &m.has_name, &m.name);
    m.old_password = bin(old_pw, old_len);
    m.new_password = bin(new_pw, new_len);
    REQUEST(q, set_password, SET_PASSWORD, m);
    return simple(cl, &q);
}

CK_RV wire_cl_init_pin(wire_client_t *cl, const char *name, const uint8_t *pw,
                       size_t pwlen)
{
    Nimbus__Request q;
    Nimbus__InitPinReq m;

    nimbus__init_pin_req__init(&m);
    name_out(name, &m.has_name, &m.name);
    m.password = bin(pw, pwlen);
    REQUEST(q, init_pin, INIT_PIN, m);
    return simple(cl, &q);
}

CK_RV wire_cl_user_list(wire_client_t *cl, hsm_user_info_t **users,
                        size_t *count)
{
    Nimbus__Request q;
    Nimbus__UserListReq m;
    struct rt t;
    CK_RV rv;

    *users = NULL;
    *count = 0;
    nimbus__user_list_req__init(&m);
    REQUEST(q, user_list, USER_LIST, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_USER_LIST, &t);
    if (rv == CKR_OK) {
        const Nimbus__UserListReply *r = t.rep->user_list;
        size_t n = r->n_users;
        hsm_user_info_t *u = calloc(n == 0 ? 1 : n, sizeof(*u));

        for (size_t i = 0; u != NULL && i < n && rv == CKR_OK; i++) {
            const Nimbus__UserInfo *x = r->users[i];

            if (x->type > HSM_USER_AU || strlen(x->name) >= sizeof(u->name)) {
                rv = CKR_DEVICE_ERROR;
                break;
            }
            u[i].id = x->id;
            u[i].type = (hsm_user_type_t)x->type;
            u[i].primary = x->primary;
            strcpy(u[i].name, x->name);
            u[i].login_failures = x->login_failures;
            u[i].locked = x->locked;
        }
        if (u == NULL) {
            rv = CKR_HOST_MEMORY;
        } else if (rv != CKR_OK) {
            free(u);
        } else {
            *users = u;
            *count = n;
        }
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_user_create(wire_client_t *cl, hsm_user_type_t type,
                          const char *name, const uint8_t *pw, size_t pwlen,
                          hsm_uid_t *uid)
{
    Nimbus__Request q;
    Nimbus__UserCreateReq m;
    struct rt t;
    CK_RV rv;

    nimbus__user_create_req__init(&m);
    m.type = type;
    m.name = bin(name, name != NULL ? strlen(name) : 0);
    m.password = bin(pw, pwlen);
    REQUEST(q, user_create, USER_CREATE, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_UID, &t);
    if (rv == CKR_OK && uid != NULL) {
        *uid = t.rep->uid->uid;
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_user_delete(wire_client_t *cl, const char *name)
{
    Nimbus__Request q;
    Nimbus__UserDeleteReq m;

    nimbus__user_delete_req__init(&m);
    m.name = bin(name, name != NULL ? strlen(name) : 0);
    REQUEST(q, user_delete, USER_DELETE, m);
    return simple(cl, &q);
}

CK_RV wire_cl_context_login(wire_client_t *cl, hsm_sid_t sid, const char *name,
                            const uint8_t *pw, size_t pwlen)
{
    Nimbus__Request q;
    Nimbus__ContextLoginReq m;

    nimbus__context_login_req__init(&m);
    m.sid = sid;
    name_out(name, &m.has_name, &m.name);
    m.password = bin(pw, pwlen);
    REQUEST(q, context_login, CONTEXT_LOGIN, m);
    return simple(cl, &q);
}

CK_RV wire_cl_session_open(wire_client_t *cl, bool rw, hsm_sid_t *sid)
{
    Nimbus__Request q;
    Nimbus__SessionOpenReq m;
    struct rt t;
    CK_RV rv;

    nimbus__session_open_req__init(&m);
    m.rw = rw;
    REQUEST(q, session_open, SESSION_OPEN, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_SID, &t);
    if (rv == CKR_OK) {
        *sid = t.rep->sid->sid;
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_session_close(wire_client_t *cl, hsm_sid_t sid)
{
    Nimbus__Request q;
    Nimbus__SessionCloseReq m;

    nimbus__session_close_req__init(&m);
    m.sid = sid;
    REQUEST(q, session_close, SESSION_CLOSE, m);
    return simple(cl, &q);
}

/* ------------------------------------------------------------ objects */

/* A call that answers an object id. */
static CK_RV oid_call(wire_client_t *cl, Nimbus__Request *q, hsm_oid_t *oid)
{
    struct rt t;
    CK_RV rv = roundtrip(cl, q, NIMBUS__REPLY__RESULT_OID, &t);

    if (rv == CKR_OK) {
        *oid = t.rep->oid->oid;
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_object_create(wire_client_t *cl, hsm_sid_t sid,
                            const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                            hsm_oid_t *oid)
{
    Nimbus__Request q;
    Nimbus__ObjectCreateReq m;
    void *buf;
    CK_RV rv;

    nimbus__object_create_req__init(&m);
    m.sid = sid;
    rv = tmpl_out(tmpl, count, &m.template_, &m.n_template_, &buf);
    if (rv == CKR_OK) {
        REQUEST(q, object_create, OBJECT_CREATE, m);
        rv = oid_call(cl, &q, oid);
    }
    free(buf);
    return rv;
}

CK_RV wire_cl_object_copy(wire_client_t *cl, hsm_sid_t sid, hsm_oid_t oid,
                          const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                          hsm_oid_t *new_oid)
{
    Nimbus__Request q;
    Nimbus__ObjectCopyReq m;
    void *buf;
    CK_RV rv;

    nimbus__object_copy_req__init(&m);
    m.sid = sid;
    m.oid = oid;
    rv = tmpl_out(tmpl, count, &m.template_, &m.n_template_, &buf);
    if (rv == CKR_OK) {
        REQUEST(q, object_copy, OBJECT_COPY, m);
        rv = oid_call(cl, &q, new_oid);
    }
    free(buf);
    return rv;
}

CK_RV wire_cl_object_destroy(wire_client_t *cl, hsm_sid_t sid, hsm_oid_t oid)
{
    Nimbus__Request q;
    Nimbus__ObjectDestroyReq m;

    nimbus__object_destroy_req__init(&m);
    m.sid = sid;
    m.oid = oid;
    REQUEST(q, object_destroy, OBJECT_DESTROY, m);
    return simple(cl, &q);
}

CK_RV wire_cl_object_size(wire_client_t *cl, hsm_sid_t sid, hsm_oid_t oid,
                          CK_ULONG *size)
{
    Nimbus__Request q;
    Nimbus__ObjectSizeReq m;
    struct rt t;
    CK_RV rv;

    nimbus__object_size_req__init(&m);
    m.sid = sid;
    m.oid = oid;
    REQUEST(q, object_size, OBJECT_SIZE, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_LEN, &t);
    if (rv == CKR_OK) {
        *size = (CK_ULONG)t.rep->len->len;
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_object_get(wire_client_t *cl, hsm_sid_t sid, hsm_oid_t oid,
                         const CK_ATTRIBUTE_TYPE *types, size_t n,
                         hsm_attr_t *out)
{
    Nimbus__Request q;
    Nimbus__ObjectGetReq m;
    uint64_t *tv;
    struct rt t;
    CK_RV rv;

    if (n > HSM_TEMPLATE_MAX) {
        return CKR_ARGUMENTS_BAD;
    }
    for (size_t i = 0; i < n; i++) {
        out[i].type = types[i];
        out[i].status = HSM_ATTR_INVALID;
        out[i].value = NULL;
        out[i].len = 0;
    }
    tv = calloc(n == 0 ? 1 : n, sizeof(*tv));
    if (tv == NULL) {
        return CKR_HOST_MEMORY;
    }
    for (size_t i = 0; i < n; i++) {
        tv[i] = types[i];
    }
    nimbus__object_get_req__init(&m);
    m.sid = sid;
    m.oid = oid;
    m.n_types = n;
    m.types = tv;
    REQUEST(q, object_get, OBJECT_GET, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT__NOT_SET, &t);
    free(tv);
    if (rv == CKR_OK || rv == CKR_ATTRIBUTE_SENSITIVE ||
        rv == CKR_ATTRIBUTE_TYPE_INVALID) {
        const Nimbus__AttrsReply *r = t.rep->attrs;
        CK_RV bad = CKR_OK;

        if (t.rep->result_case != NIMBUS__REPLY__RESULT_ATTRS ||
            r->n_attrs != n) {
            bad = CKR_DEVICE_ERROR;
        }
        for (size_t i = 0; bad == CKR_OK && i < n; i++) {
            const Nimbus__AttrValue *a = r->attrs[i];

            if (a->type != types[i] || a->status > HSM_ATTR_INVALID ||
                a->value.len > HSM_ATTR_VALUE_MAX) {
                bad = CKR_DEVICE_ERROR;
                break;
            }
            out[i].status = (hsm_attr_status_t)a->status;
            if (a->status == HSM_ATTR_OK && a->value.len > 0) {
                out[i].value = malloc(a->value.len);
                if (out[i].value == NULL) {
                    bad = CKR_HOST_MEMORY;
                    break;
                }
                memcpy(out[i].value, a->value.data, a->value.len);
                out[i].len = a->value.len;
            }
        }
        if (bad != CKR_OK) {
            for (size_t i = 0; i < n; i++) {
                util_free_wipe(out[i].value, out[i].len);
                out[i].value = NULL;
                out[i].len = 0;
            }
            rv = bad;
        }
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_object_set(wire_client_t *cl, hsm_sid_t sid, hsm_oid_t oid,
                         const CK_ATTRIBUTE *tmpl, CK_ULONG count)
{
    Nimbus__Request q;
    Nimbus__ObjectSetReq m;
    void *buf;
    CK_RV rv;

    nimbus__object_set_req__init(&m);
    m.sid = sid;
    m.oid = oid;
    rv = tmpl_out(tmpl, count, &m.template_, &m.n_template_, &buf);
    if (rv == CKR_OK) {
        REQUEST(q, object_set, OBJECT_SET, m);
        rv = simple(cl, &q);
    }
    free(buf);
    return rv;
}

CK_RV wire_cl_object_find(wire_client_t *cl, hsm_sid_t sid,
                          const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                          hsm_oid_t **oids, size_t *n)
{
    Nimbus__Request q;
    Nimbus__ObjectFindReq m;
    struct rt t;
    void *buf;
    CK_RV rv;

    *oids = NULL;
    *n = 0;
    nimbus__object_find_req__init(&m);
    m.sid = sid;
    rv = tmpl_out(tmpl, count, &m.template_, &m.n_template_, &buf);
    if (rv != CKR_OK) {
        return rv;
    }
    REQUEST(q, object_find, OBJECT_FIND, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_OIDS, &t);
    free(buf);
    if (rv == CKR_OK) {
        size_t k = t.rep->oids->n_oids;
        hsm_oid_t *v = malloc((k == 0 ? 1 : k) * sizeof(*v));

        if (v == NULL) {
            rv = CKR_HOST_MEMORY;
        } else {
            for (size_t i = 0; i < k; i++) {
                v[i] = t.rep->oids->oids[i];
            }
            *oids = v;
            *n = k;
        }
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_object_is_private(wire_client_t *cl, hsm_oid_t oid, bool *priv)
{
    Nimbus__Request q;
    Nimbus__ObjectIsPrivateReq m;
    struct rt t;
    CK_RV rv;

    nimbus__object_is_private_req__init(&m);
    m.oid = oid;
    REQUEST(q, object_is_private, OBJECT_IS_PRIVATE, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_FLAG, &t);
    if (rv == CKR_OK) {
        *priv = t.rep->flag->value;
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_object_share(wire_client_t *cl, hsm_oid_t oid, hsm_uid_t uid,
                           bool share)
{
    Nimbus__Request q;
    Nimbus__ObjectShareReq m;

    nimbus__object_share_req__init(&m);
    m.oid = oid;
    m.uid = uid;
    m.share = share;
    REQUEST(q, object_share, OBJECT_SHARE, m);
    return simple(cl, &q);
}

/* ------------------------------------------------------------ mechanisms */

CK_RV wire_cl_mech_list(wire_client_t *cl, CK_MECHANISM_TYPE **list, size_t *n)
{
    Nimbus__Request q;
    Nimbus__MechListReq m;
    struct rt t;
    CK_RV rv;

    *list = NULL;
    *n = 0;
    nimbus__mech_list_req__init(&m);
    REQUEST(q, mech_list, MECH_LIST, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_MECH_LIST, &t);
    if (rv == CKR_OK) {
        size_t k = t.rep->mech_list->n_types;
        CK_MECHANISM_TYPE *v = malloc((k == 0 ? 1 : k) * sizeof(*v));

        if (v == NULL) {
            rv = CKR_HOST_MEMORY;
        } else {
            for (size_t i = 0; i < k; i++) {
                v[i] = (CK_MECHANISM_TYPE)t.rep->mech_list->types[i];
            }
            *list = v;
            *n = k;
        }
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_mech_info(wire_client_t *cl, CK_MECHANISM_TYPE type,
                        hsm_mech_info_t *info)
{
    Nimbus__Request q;
    Nimbus__MechInfoReq m;
    struct rt t;
    CK_RV rv;

    nimbus__mech_info_req__init(&m);
    m.type = type;
    REQUEST(q, mech_info, MECH_INFO, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_MECH_INFO, &t);
    if (rv == CKR_OK) {
        info->min_key = (CK_ULONG)t.rep->mech_info->min_key;
        info->max_key = (CK_ULONG)t.rep->mech_info->max_key;
        info->flags = (CK_FLAGS)t.rep->mech_info->flags;
    }
    rt_done(&t);
    return rv;
}

/* ------------------------------------------------------------ operations */

CK_RV wire_cl_op_output_len(wire_client_t *cl, hsm_sid_t sid, hsm_opkind_t kind,
                            bool final, size_t inlen, size_t *outlen)
{
    Nimbus__Request q;
    Nimbus__OpOutputLenReq m;
    struct rt t;
    CK_RV rv;

    nimbus__op_output_len_req__init(&m);
    m.sid = sid;
    m.kind = kind;
    m.final = final;
    m.in_len = inlen;
    REQUEST(q, op_output_len, OP_OUTPUT_LEN, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_LEN, &t);
    if (rv == CKR_OK) {
        if (t.rep->len->len > SIZE_MAX) {
            rv = CKR_DEVICE_ERROR;
        } else {
            *outlen = (size_t)t.rep->len->len;
        }
    }
    rt_done(&t);
    return rv;
}

/* A step with output: the reply's output into out (room *outlen). */
static CK_RV output_call(wire_client_t *cl, Nimbus__Request *q, uint8_t *out,
                         size_t *outlen)
{
    struct rt t;
    CK_RV rv = roundtrip(cl, q, NIMBUS__REPLY__RESULT__NOT_SET, &t);

    if (rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL) {
        if (t.rep->result_case != NIMBUS__REPLY__RESULT_OUTPUT) {
            rv = CKR_DEVICE_ERROR;
        } else {
            rv = output_in(t.rep->output, rv, out, *outlen, outlen);
        }
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_op_oneshot(wire_client_t *cl, hsm_sid_t sid, hsm_opkind_t kind,
                         const uint8_t *in, size_t inlen, uint8_t *out,
                         size_t *outlen)
{
    Nimbus__Request q;
    Nimbus__OpOneshotReq m;

    nimbus__op_oneshot_req__init(&m);
    m.sid = sid;
    m.kind = kind;
    m.has_in = true;
    m.in = bin(in, inlen);
    if (out != NULL) {
        m.has_out_room = true;
        m.out_room = *outlen;
    }
    REQUEST(q, op_oneshot, OP_ONESHOT, m);
    return output_call(cl, &q, out, outlen);
}

CK_RV wire_cl_op_update(wire_client_t *cl, hsm_sid_t sid, hsm_opkind_t kind,
                        const uint8_t *in, size_t inlen, uint8_t *out,
                        size_t *outlen)
{
    Nimbus__Request q;
    Nimbus__OpUpdateReq m;
    size_t room = out != NULL ? *outlen : 0;
    uint8_t dummy[1];

    nimbus__op_update_req__init(&m);
    m.sid = sid;
    m.kind = kind;
    m.has_in = true;
    m.in = bin(in, inlen);
    m.out_room = room;
    REQUEST(q, op_update, OP_UPDATE, m);
    *outlen = room;
    return output_call(cl, &q, out != NULL ? out : dummy, outlen);
}

CK_RV wire_cl_op_final(wire_client_t *cl, hsm_sid_t sid, hsm_opkind_t kind,
                       uint8_t *out, size_t *outlen)
{
    Nimbus__Request q;
    Nimbus__OpFinalReq m;
    size_t room = out != NULL ? *outlen : 0;
    uint8_t dummy[1];

    nimbus__op_final_req__init(&m);
    m.sid = sid;
    m.kind = kind;
    m.out_room = room;
    REQUEST(q, op_final, OP_FINAL, m);
    *outlen = room;
    return output_call(cl, &q, out != NULL ? out : dummy, outlen);
}

CK_RV wire_cl_op_verify(wire_client_t *cl, hsm_sid_t sid, const uint8_t *data,
                        size_t datalen, bool oneshot, const uint8_t *sig,
                        size_t siglen)
{
    Nimbus__Request q;
    Nimbus__OpVerifyReq m;

    nimbus__op_verify_req__init(&m);
    m.sid = sid;
    if (data != NULL) {
        m.has_data = true;
        m.data = bin(data, datalen);
    }
    m.oneshot = oneshot;
    m.has_signature = true;
    m.signature = bin(sig, siglen);
    REQUEST(q, op_verify, OP_VERIFY, m);
    return simple(cl, &q);
}

CK_RV wire_cl_op_digest_key(wire_client_t *cl, hsm_sid_t sid, hsm_oid_t key)
{
    Nimbus__Request q;
    Nimbus__OpDigestKeyReq m;

    nimbus__op_digest_key_req__init(&m);
    m.sid = sid;
    m.key = key;
    REQUEST(q, op_digest_key, OP_DIGEST_KEY, m);
    return simple(cl, &q);
}

CK_RV wire_cl_op_abort(wire_client_t *cl, hsm_sid_t sid, hsm_opkind_t kind)
{
    Nimbus__Request q;
    Nimbus__OpAbortReq m;

    nimbus__op_abort_req__init(&m);
    m.sid = sid;
    m.kind = kind;
    REQUEST(q, op_abort, OP_ABORT, m);
    return simple(cl, &q);
}

/* ------------------------------------------------------------ misc, mgmt */

CK_RV wire_cl_random(wire_client_t *cl, hsm_sid_t sid, uint8_t *buf, size_t len)
{
    size_t done = 0;

    do {
        Nimbus__Request q;
        Nimbus__RandomReq m;
        size_t part = len - done, got;
        CK_RV rv;

        if (part > out_max(cl)) {
            part = out_max(cl);
        }
        nimbus__random_req__init(&m);
        m.sid = sid;
        m.len = part;
        REQUEST(q, random, RANDOM, m);
        got = part;
        rv = output_call(cl, &q, buf + done, &got);
        if (rv == CKR_OK && got != part) {
            rv = CKR_DEVICE_ERROR;
        }
        if (rv != CKR_OK) {
            util_wipe(buf, len);
            return rv;
        }
        done += part;
    } while (done < len);
    return CKR_OK;
}

CK_RV wire_cl_user_set_password(wire_client_t *cl, const char *name,
                                const uint8_t *pw, size_t pwlen)
{
    Nimbus__Request q;
    Nimbus__UserSetPasswordReq m;

    nimbus__user_set_password_req__init(&m);
    m.name = bin(name, name != NULL ? strlen(name) : 0);
    m.password = bin(pw, pwlen);
    REQUEST(q, user_set_password, USER_SET_PASSWORD, m);
    return simple(cl, &q);
}

CK_RV wire_cl_key_list(wire_client_t *cl, hsm_uid_t uid, hsm_key_ref_t **keys,
                       size_t *n, uint8_t digest[HSM_DIGEST_LEN])
{
    Nimbus__Request q;
    Nimbus__KeyListReq m;
    struct rt t;
    CK_RV rv;

    *keys = NULL;
    *n = 0;
    nimbus__key_list_req__init(&m);
    m.uid = uid;
    REQUEST(q, key_list, KEY_LIST, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_KEY_LIST, &t);
    if (rv == CKR_OK) {
        const Nimbus__KeyListReply *r = t.rep->key_list;
        hsm_key_ref_t *v = NULL;

        if (r->digest.len != HSM_DIGEST_LEN) {
            rv = CKR_DEVICE_ERROR;
        } else if (r->n_keys > 0 &&
                   (v = calloc(r->n_keys, sizeof(*v))) == NULL) {
            rv = CKR_HOST_MEMORY;
        } else {
            for (size_t i = 0; i < r->n_keys; i++) {
                v[i].oid = r->keys[i]->oid;
                v[i].owned = r->keys[i]->owned;
            }
            memcpy(digest, r->digest.data, HSM_DIGEST_LEN);
            *keys = v;
            *n = r->n_keys;
        }
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_key_info(wire_client_t *cl, hsm_oid_t oid, hsm_uid_t *owner,
                       hsm_uid_t **shared, size_t *nshared)
{
    Nimbus__Request q;
    Nimbus__KeyInfoReq m;
    struct rt t;
    CK_RV rv;

    *shared = NULL;
    *nshared = 0;
    nimbus__key_info_req__init(&m);
    m.oid = oid;
    REQUEST(q, key_info, KEY_INFO, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_KEY_INFO, &t);
    if (rv == CKR_OK) {
        const Nimbus__KeyInfoReply *r = t.rep->key_info;
        hsm_uid_t *v = NULL;

        if (r->n_shared > 0 && (v = calloc(r->n_shared, sizeof(*v))) == NULL) {
            rv = CKR_HOST_MEMORY;
        } else {
            for (size_t i = 0; i < r->n_shared; i++) {
                v[i] = r->shared[i];
            }
            *owner = r->owner;
            *shared = v;
            *nshared = r->n_shared;
        }
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_audit_read(wire_client_t *cl, uint64_t after, size_t max,
                         hsm_audit_record_t **recs, size_t *n)
{
    Nimbus__Request q;
    Nimbus__AuditReadReq m;
    struct rt t;
    CK_RV rv;

    *recs = NULL;
    *n = 0;
    nimbus__audit_read_req__init(&m);
    m.after = after;
    m.max = max;
    REQUEST(q, audit_read, AUDIT_READ, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_AUDIT_READ, &t);
    if (rv == CKR_OK) {
        const Nimbus__AuditReadReply *r = t.rep->audit_read;
        hsm_audit_record_t *v = NULL;

        if (r->n_records > max) {
            rv = CKR_DEVICE_ERROR;
        } else if (r->n_records > 0 &&
                   (v = calloc(r->n_records, sizeof(*v))) == NULL) {
            rv = CKR_HOST_MEMORY;
        }
        for (size_t i = 0; rv == CKR_OK && i < r->n_records; i++) {
            const Nimbus__AuditRecord *a = r->records[i];

            if (strlen(a->hsm_id) > HSM_AUDIT_TEXT_MAX ||
                strlen(a->op) > HSM_AUDIT_TEXT_MAX ||
                (a->peer != NULL && strlen(a->peer) > HSM_PEER_MAX) ||
                a->hash.len != HSM_DIGEST_LEN) {
                rv = CKR_DEVICE_ERROR;
                break;
            }
            v[i].seq = a->seq;
            v[i].time = a->time;
            strcpy(v[i].hsm_id, a->hsm_id);
            v[i].user = a->user;
            strcpy(v[i].op, a->op);
            v[i].oid = a->oid;
            v[i].result = (CK_RV)a->result;
            memcpy(v[i].hash, a->hash.data, HSM_DIGEST_LEN);
            if (a->peer != NULL) {
                strcpy(v[i].peer, a->peer);
            }
        }
        if (rv == CKR_OK) {
            *recs = v;
            *n = r->n_records;
        } else {
            free(v);
        }
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_audit_verify(wire_client_t *cl, hsm_audit_check_t *check)
{
    Nimbus__Request q;
    Nimbus__AuditVerifyReq m;
    struct rt t;
    CK_RV rv;

    nimbus__audit_verify_req__init(&m);
    REQUEST(q, audit_verify, AUDIT_VERIFY, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_AUDIT_VERIFY, &t);
    if (rv == CKR_OK) {
        if (t.rep->audit_verify->status > HSM_AUDIT_UNEXPECTED) {
            rv = CKR_DEVICE_ERROR;
        } else {
            check->status = (hsm_audit_status_t)t.rep->audit_verify->status;
            check->records = t.rep->audit_verify->records;
            check->first_bad = t.rep->audit_verify->first_bad;
        }
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_object_set_trusted(wire_client_t *cl, hsm_oid_t oid, bool trusted)
{
    Nimbus__Request q;
    Nimbus__ObjectSetTrustedReq m;

    nimbus__object_set_trusted_req__init(&m);
    m.oid = oid;
    m.trusted = trusted;
    REQUEST(q, object_set_trusted, OBJECT_SET_TRUSTED, m);
    return simple(cl, &q);
}
