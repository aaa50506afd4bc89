/*
 * client.c - the client side of the wire (client.h): encode a request,
 * transfer it, decode and check the reply.
 */
#include "config.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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
    wire_resp_done_fn resp_done; /* NULL: util_free_wipe */
    wire_xferv_fn xferv;         /* NULL: xfer */
    wire_buf_t req;              /* requests are packed here, under lock */
    wire_vec_t reqv;             /* or here, with xferv */
    uint32_t server_minor;       /* from the handshake */
    /* The shared bulk region (NULL: none), used under shm_lock (taken
     * before lock); the bytes of each half used so far, wiped at the end;
     * the process that mapped it (a forked child leaves it alone). */
    wire_xfer_fd_fn xfer_fd;
    pthread_mutex_t shm_lock;
    uint8_t *shm;
    bool shm_tried;
    size_t shm_used_in, shm_used_out;
    pid_t shm_pid;
    /* A reply answered another request: the link's replies may all be
     * one call late from here, so it is never read again (under lock). */
    bool out_of_step;
};

/* One call in flight: the decoded reply and its allocator. When a bulk
 * output was decoded where it lies in the reply frame (lift), the frame
 * and the channel's lock are held until rt_done. */
struct rt {
    Nimbus__Reply *rep;
    wire_alloc_t wa;
    wire_lifted_t lift;
    wire_client_t *cl;
    uint8_t *resp;
    size_t resp_len;
};

/* Reply fields decoded where they lie in the frame (proto.h). */
static const wire_lift_t rep_lifts[] = {
    {NIMBUS__REPLY__RESULT_OUTPUT, 1}, /* OutputReply.out */
    {NIMBUS__REPLY__RESULT_MSG, 1},    /* MsgReply.out */
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
    if (util_mutex_init(&cl->shm_lock) != 0) {
        pthread_mutex_destroy(&cl->lock);
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
    pthread_mutex_destroy(&cl->shm_lock);
    wire_buf_done(&cl->req, cl->req.cap, true);
    wire_vec_done(&cl->reqv, true);
    if (cl->shm != NULL && cl->shm_pid == getpid()) {
        util_wipe(cl->shm, cl->shm_used_in);
        util_wipe(cl->shm + WIRE_SHM_HALF, cl->shm_used_out);
        munmap(cl->shm, WIRE_SHM_SIZE);
    }
    free(cl);
}

void wire_client_set_xfer_fd(wire_client_t *cl, wire_xfer_fd_fn xfer_fd)
{
    if (cl != NULL) {
        cl->xfer_fd = xfer_fd;
    }
}

void wire_client_set_xferv(wire_client_t *cl, wire_xferv_fn xferv)
{
    if (cl != NULL) {
        cl->xferv = xferv;
    }
}

void wire_client_set_resp_done(wire_client_t *cl, wire_resp_done_fn done)
{
    if (cl != NULL) {
        cl->resp_done = done;
    }
}

static void resp_release(wire_client_t *cl, uint8_t *resp, size_t len)
{
    if (cl->resp_done != NULL) {
        cl->resp_done(cl->ctx, resp, len);
    } else {
        util_free_wipe(resp, len);
    }
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
    uint8_t *resp = NULL;
    size_t len = 0, resp_len = 0;
    CK_RV rv;
    bool ok;

    t->rep = NULL;
    t->lift.field = NULL;
    t->cl = NULL;
    pthread_mutex_lock(&cl->lock);
    if (cl->out_of_step) {
        pthread_mutex_unlock(&cl->lock);
        return CKR_DEVICE_REMOVED;
    }
    q->id = cl->next_id++;
    if (cl->xferv != NULL) {
        if (!wire_pack_vec(&q->base, cl->max_frame, &cl->reqv)) {
            pthread_mutex_unlock(&cl->lock);
            return CKR_DEVICE_MEMORY;
        }
        ok = cl->xferv(cl->ctx, cl->reqv.iov, cl->reqv.n, &resp, &resp_len);
        /* The request may carry a PIN or key bytes. */
        wire_vec_done(&cl->reqv, false);
    } else {
        if (!wire_pack_into(&q->base, cl->max_frame, &cl->req, &len)) {
            pthread_mutex_unlock(&cl->lock);
            /* more than a frame carries (or out of memory) */
            return CKR_DEVICE_MEMORY;
        }
        ok = cl->xfer(cl->ctx, cl->req.p, len, &resp, &resp_len);
        wire_buf_done(&cl->req, len, false);
    }
    if (!ok) {
        resp_release(cl, resp, resp_len);
        pthread_mutex_unlock(&cl->lock);
        return CKR_DEVICE_REMOVED;
    }
    wire_alloc_init(&t->wa, WIRE_REPLY_DECODE_BUDGET(resp_len));
    t->rep =
        resp != NULL && resp_len <= cl->max_frame
            ? (Nimbus__Reply *)wire_unpack_lifted(
                  &nimbus__reply__descriptor, &t->wa, resp, resp_len, rep_lifts,
                  sizeof(rep_lifts) / sizeof(rep_lifts[0]), &t->lift)
            : NULL;
    if (t->rep != NULL && t->rep->id != q->id)
        cl->out_of_step = true;
    if (t->rep != NULL && t->lift.field != NULL) {
        /* The output lies in the frame: it and the lock are rt_done's. */
        t->cl = cl;
        t->resp = resp;
        t->resp_len = resp_len;
    } else {
        /* Under the lock: a kept reply buffer belongs to the link, which
         * the next call reads into. */
        resp_release(cl, resp, resp_len);
        pthread_mutex_unlock(&cl->lock);
    }
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
    /* a lifted output is the frame's, wiped with it below */
    wire_unlift(&t->lift);
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
    if (t->cl != NULL) {
        resp_release(t->cl, t->resp, t->resp_len);
        pthread_mutex_unlock(&t->cl->lock);
        t->cl = NULL;
    }
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

/* A template as repeated Attribute (*buf to free). An array attribute's
 * value is already the core's serialized list (hsm.h): sent as it is. */
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
    h.has_minor = true;
    h.minor = WIRE_PROTOCOL_MINOR;
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
            cl->server_minor = r->has_minor ? r->minor : 0;
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
            u[i].mofn_pubkey = x->has_mofn_pubkey && x->mofn_pubkey;
            u[i].twofa = x->has_twofa && x->twofa;
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

/* ShmAttachReq: maps the region the reply's descriptor names. Under
 * shm_lock. */
static CK_RV shm_attach(wire_client_t *cl)
{
    Nimbus__Request q;
    Nimbus__ShmAttachReq m;
    Nimbus__Reply *rep = NULL;
    wire_alloc_t wa;
    uint8_t *resp = NULL;
    size_t len = 0, resp_len = 0;
    int fd = -1, seals;
    struct stat st;
    void *p;
    bool ok;
    CK_RV rv = CKR_DEVICE_ERROR;

    nimbus__shm_attach_req__init(&m);
    REQUEST(q, shm_attach, SHM_ATTACH, m);
    pthread_mutex_lock(&cl->lock);
    if (cl->out_of_step) {
        pthread_mutex_unlock(&cl->lock);
        return CKR_DEVICE_REMOVED;
    }
    q.id = cl->next_id++;
    if (!wire_pack_into(&q.base, cl->max_frame, &cl->req, &len)) {
        pthread_mutex_unlock(&cl->lock);
        return CKR_DEVICE_MEMORY;
    }
    ok = cl->xfer_fd(cl->ctx, cl->req.p, len, &resp, &resp_len, &fd);
    wire_buf_done(&cl->req, len, false);
    if (ok) {
        wire_alloc_init(&wa, WIRE_REPLY_DECODE_BUDGET(resp_len));
        rep = resp != NULL && resp_len <= cl->max_frame
                  ? nimbus__reply__unpack(&wa.a, resp_len, resp)
                  : NULL;
        if (rep != NULL && rep->id != q.id)
            cl->out_of_step = true;
    }
    resp_release(cl, resp, resp_len);
    pthread_mutex_unlock(&cl->lock);
    if (!ok) {
        rv = CKR_DEVICE_REMOVED;
    } else if (rep != NULL && rep->id == q.id && rep->rv != CKR_OK) {
        rv = (CK_RV)rep->rv; /* e.g. every region of the server in use */
    } else if (rep != NULL && rep->id == q.id &&
               rep->result_case == NIMBUS__REPLY__RESULT_SHM_ATTACH &&
               rep->shm_attach->size == WIRE_SHM_SIZE &&
               rep->shm_attach->half == WIRE_SHM_HALF && fd >= 0 &&
               fstat(fd, &st) == 0 && st.st_size >= (off_t)WIRE_SHM_SIZE &&
               (seals = fcntl(fd, F_GET_SEALS)) >= 0 &&
               (seals & F_SEAL_SHRINK) != 0) {
        /* Sealed against shrinking: the server cannot make our reads of
         * the region fault. */
        p = mmap(NULL, WIRE_SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                 0);
        if (p != MAP_FAILED) {
            /* a forked child has no business in it */
            (void)madvise(p, WIRE_SHM_SIZE, MADV_DONTFORK);
            cl->shm = p;
            cl->shm_pid = getpid();
            rv = CKR_OK;
        } else {
            rv = CKR_DEVICE_MEMORY;
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    if (rep != NULL) {
        nimbus__reply__free_unpacked(rep, &wa.a);
    }
    return rv;
}

/* Whether the shared region is there (asked for once). Under shm_lock. */
static bool shm_ready(wire_client_t *cl)
{
    if (cl->shm != NULL) {
        return true;
    }
    if (cl->shm_tried || cl->xfer_fd == NULL || cl->server_minor < 3) {
        return false;
    }
    cl->shm_tried = true;
    return shm_attach(cl) == CKR_OK;
}

/* wire_cl_op_oneshot through the shared region. Under shm_lock. */
static CK_RV op_oneshot_shm(wire_client_t *cl, hsm_sid_t sid, hsm_opkind_t kind,
                            const uint8_t *in, size_t inlen, uint8_t *out,
                            size_t *outlen)
{
    Nimbus__Request q;
    Nimbus__OpOneshotReq m;
    struct rt t;
    CK_RV rv;

    if (inlen > 0) {
        memcpy(cl->shm, in, inlen);
    }
    if (inlen > cl->shm_used_in) {
        cl->shm_used_in = inlen;
    }
    nimbus__op_oneshot_req__init(&m);
    m.sid = sid;
    m.kind = kind;
    m.has_shm_in = true;
    m.shm_in = inlen;
    if (out != NULL) {
        m.has_out_room = true;
        m.out_room = *outlen;
        m.has_shm_out = true;
        m.shm_out = true;
    }
    REQUEST(q, op_oneshot, OP_ONESHOT, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT__NOT_SET, &t);
    if (rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL) {
        const Nimbus__OutputReply *o = t.rep->output;

        if (t.rep->result_case != NIMBUS__REPLY__RESULT_OUTPUT) {
            rv = CKR_DEVICE_ERROR;
        } else if (o->has_shm && o->shm) {
            if (rv != CKR_OK || out == NULL || o->has_out ||
                o->out_len > *outlen || o->out_len > WIRE_SHM_HALF) {
                rv = CKR_DEVICE_ERROR;
            } else {
                memcpy(out, cl->shm + WIRE_SHM_HALF, (size_t)o->out_len);
                *outlen = (size_t)o->out_len;
                if (*outlen > cl->shm_used_out) {
                    cl->shm_used_out = *outlen;
                }
            }
        } else {
            rv = output_in(o, rv, out, *outlen, outlen);
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

    /* Bulk data through the shared region when there is one (a copy on
     * each side instead of two through the kernel, and no hand-offs). */
    if (cl->xfer_fd != NULL && inlen <= WIRE_SHM_HALF &&
        (inlen >= WIRE_SHM_MIN || (out != NULL && *outlen >= WIRE_SHM_MIN))) {
        pthread_mutex_lock(&cl->shm_lock);
        if (shm_ready(cl)) {
            CK_RV rv = op_oneshot_shm(cl, sid, kind, in, inlen, out, outlen);

            pthread_mutex_unlock(&cl->shm_lock);
            return rv;
        }
        pthread_mutex_unlock(&cl->shm_lock);
    }

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

    nimbus__op_update_req__init(&m);
    m.sid = sid;
    m.kind = kind;
    m.has_in = true;
    m.in = bin(in, inlen);
    m.has_out_room = out != NULL;
    m.out_room = room;
    REQUEST(q, op_update, OP_UPDATE, m);
    *outlen = room;
    return output_call(cl, &q, out, outlen);
}

CK_RV wire_cl_op_final(wire_client_t *cl, hsm_sid_t sid, hsm_opkind_t kind,
                       uint8_t *out, size_t *outlen)
{
    Nimbus__Request q;
    Nimbus__OpFinalReq m;
    size_t room = out != NULL ? *outlen : 0;

    nimbus__op_final_req__init(&m);
    m.sid = sid;
    m.kind = kind;
    m.has_out_room = out != NULL;
    m.out_room = room;
    REQUEST(q, op_final, OP_FINAL, m);
    *outlen = room;
    return output_call(cl, &q, out, outlen);
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

/* ------------------------------------------------------------ mechanisms */

/* Room for one Mechanism message built from an hsm_mech_t. */
struct mech_out {
    Nimbus__Mechanism m;
    union {
        Nimbus__PssParams pss;
        Nimbus__OaepParams oaep;
        Nimbus__EddsaParams eddsa;
        Nimbus__Ecdh1Params ecdh1;
        Nimbus__CtrParams ctr;
        Nimbus__GcmParams gcm;
        Nimbus__CcmParams ccm;
        Nimbus__ChachaPolyParams chacha;
        Nimbus__RsaAesWrapParams rsa_aes;
        Nimbus__HkdfParams hkdf;
        Nimbus__Sp800108Params kbkdf;
        Nimbus__Pbkdf2Params pbkdf2;
        Nimbus__AesCbcDataParams cbc_data;
        Nimbus__GcmMessageParams gcm_msg;
        Nimbus__CcmMessageParams ccm_msg;
        Nimbus__ChachaMessageParams chacha_msg;
    } u;
    Nimbus__OaepParams inner_oaep;
    Nimbus__KdfDataParam params[HSM_MECH_DATA_PARAMS_MAX];
    Nimbus__KdfDataParam *pp[HSM_MECH_DATA_PARAMS_MAX];
};

/* hsm_bytes_t as an optional bytes field. */
#define BYTES_OUT(msg, field, src)                                             \
    do {                                                                       \
        (msg)->has_##field = (src)->present;                                   \
        (msg)->field.data = (src)->data;                                       \
        (msg)->field.len = (src)->present ? (src)->len : 0;                    \
    } while (0)

static void oaep_out(const hsm_mp_oaep_t *s, Nimbus__OaepParams *o)
{
    nimbus__oaep_params__init(o);
    o->hash_alg = s->hash_alg;
    o->mgf = s->mgf;
    o->source = s->source;
    BYTES_OUT(o, source_data, &s->source_data);
}

static CK_RV kbkdf_out(const hsm_mech_t *s, struct mech_out *mo)
{
    Nimbus__Sp800108Params *k = &mo->u.kbkdf;

    if (s->u.kbkdf.n_params > HSM_MECH_DATA_PARAMS_MAX) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    nimbus__sp800108_params__init(k);
    k->prf_type = s->u.kbkdf.prf_type;
    k->has_additional_keys = true;
    k->additional_keys = s->u.kbkdf.additional_keys;
    BYTES_OUT(k, iv, &s->u.kbkdf.iv);
    for (size_t i = 0; i < s->u.kbkdf.n_params; i++) {
        const hsm_mp_prf_data_t *d = &s->u.kbkdf.params[i];
        Nimbus__KdfDataParam *p = &mo->params[i];

        nimbus__kdf_data_param__init(p);
        p->type = d->type;
        p->has_has_format = true;
        p->has_format = d->has_format;
        p->has_little_endian = true;
        p->little_endian = d->little_endian;
        p->has_width_bits = true;
        p->width_bits = d->width_bits;
        p->has_dkm_method = true;
        p->dkm_method = d->dkm_method;
        BYTES_OUT(p, bytes, &d->bytes);
        mo->pp[i] = p;
    }
    k->n_params = s->u.kbkdf.n_params;
    k->params = mo->pp;
    return CKR_OK;
}

/* hsm_mech_t -> Mechanism (pointing into s: s outlives the call). */
static CK_RV mech_out(const hsm_mech_t *s, struct mech_out *mo)
{
    Nimbus__Mechanism *m = &mo->m;

    if (s == NULL) {
        return CKR_ARGUMENTS_BAD;
    }
    nimbus__mechanism__init(m);
    m->type = s->type;
    switch (s->layout) {
    case HSM_MP_NONE:
        break;
    case HSM_MP_UNKNOWN:
        m->param_case = NIMBUS__MECHANISM__PARAM_UNKNOWN;
        m->unknown = true;
        break;
    case HSM_MP_BYTES:
        m->param_case = NIMBUS__MECHANISM__PARAM_BYTES;
        m->bytes.data = s->u.bytes.data;
        m->bytes.len = s->u.bytes.len;
        break;
    case HSM_MP_ULONG:
        m->param_case = NIMBUS__MECHANISM__PARAM_ULONG;
        m->ulong = s->u.ulong;
        break;
    case HSM_MP_OBJECT:
        m->param_case = NIMBUS__MECHANISM__PARAM_OBJECT;
        m->object = s->u.object;
        break;
    case HSM_MP_RSA_PSS:
        nimbus__pss_params__init(&mo->u.pss);
        mo->u.pss.hash_alg = s->u.pss.hash_alg;
        mo->u.pss.mgf = s->u.pss.mgf;
        mo->u.pss.salt_len = s->u.pss.salt_len;
        m->param_case = NIMBUS__MECHANISM__PARAM_PSS;
        m->pss = &mo->u.pss;
        break;
    case HSM_MP_RSA_OAEP:
        oaep_out(&s->u.oaep, &mo->u.oaep);
        m->param_case = NIMBUS__MECHANISM__PARAM_OAEP;
        m->oaep = &mo->u.oaep;
        break;
    case HSM_MP_EDDSA:
        nimbus__eddsa_params__init(&mo->u.eddsa);
        mo->u.eddsa.ph_flag = s->u.eddsa.ph_flag;
        BYTES_OUT(&mo->u.eddsa, context, &s->u.eddsa.context);
        m->param_case = NIMBUS__MECHANISM__PARAM_EDDSA;
        m->eddsa = &mo->u.eddsa;
        break;
    case HSM_MP_ECDH1:
        nimbus__ecdh1_params__init(&mo->u.ecdh1);
        mo->u.ecdh1.kdf = s->u.ecdh1.kdf;
        BYTES_OUT(&mo->u.ecdh1, shared_data, &s->u.ecdh1.shared_data);
        BYTES_OUT(&mo->u.ecdh1, public_data, &s->u.ecdh1.public_data);
        m->param_case = NIMBUS__MECHANISM__PARAM_ECDH1;
        m->ecdh1 = &mo->u.ecdh1;
        break;
    case HSM_MP_AES_CTR:
        nimbus__ctr_params__init(&mo->u.ctr);
        mo->u.ctr.counter_bits = s->u.ctr.counter_bits;
        mo->u.ctr.cb.data = (uint8_t *)(uintptr_t)s->u.ctr.cb;
        mo->u.ctr.cb.len = sizeof(s->u.ctr.cb);
        m->param_case = NIMBUS__MECHANISM__PARAM_CTR;
        m->ctr = &mo->u.ctr;
        break;
    case HSM_MP_GCM:
        nimbus__gcm_params__init(&mo->u.gcm);
        BYTES_OUT(&mo->u.gcm, iv, &s->u.gcm.iv);
        mo->u.gcm.iv_len = s->u.gcm.iv_len;
        mo->u.gcm.iv_bits = s->u.gcm.iv_bits;
        BYTES_OUT(&mo->u.gcm, aad, &s->u.gcm.aad);
        mo->u.gcm.tag_bits = s->u.gcm.tag_bits;
        mo->u.gcm.has_short_layout = s->u.gcm.short_layout;
        mo->u.gcm.short_layout = s->u.gcm.short_layout;
        m->param_case = NIMBUS__MECHANISM__PARAM_GCM;
        m->gcm = &mo->u.gcm;
        break;
    case HSM_MP_CCM:
        nimbus__ccm_params__init(&mo->u.ccm);
        mo->u.ccm.data_len = s->u.ccm.data_len;
        BYTES_OUT(&mo->u.ccm, nonce, &s->u.ccm.nonce);
        BYTES_OUT(&mo->u.ccm, aad, &s->u.ccm.aad);
        mo->u.ccm.mac_len = s->u.ccm.mac_len;
        m->param_case = NIMBUS__MECHANISM__PARAM_CCM;
        m->ccm = &mo->u.ccm;
        break;
    case HSM_MP_CHACHA20_POLY1305:
        nimbus__chacha_poly_params__init(&mo->u.chacha);
        BYTES_OUT(&mo->u.chacha, nonce, &s->u.chacha.nonce);
        BYTES_OUT(&mo->u.chacha, aad, &s->u.chacha.aad);
        m->param_case = NIMBUS__MECHANISM__PARAM_CHACHA;
        m->chacha = &mo->u.chacha;
        break;
    case HSM_MP_RSA_AES_KEY_WRAP:
        nimbus__rsa_aes_wrap_params__init(&mo->u.rsa_aes);
        mo->u.rsa_aes.aes_key_bits = s->u.rsa_aes.aes_key_bits;
        if (s->u.rsa_aes.has_oaep) {
            oaep_out(&s->u.rsa_aes.oaep, &mo->inner_oaep);
            mo->u.rsa_aes.oaep = &mo->inner_oaep;
        }
        m->param_case = NIMBUS__MECHANISM__PARAM_RSA_AES;
        m->rsa_aes = &mo->u.rsa_aes;
        break;
    case HSM_MP_HKDF:
        nimbus__hkdf_params__init(&mo->u.hkdf);
        mo->u.hkdf.extract = s->u.hkdf.extract;
        mo->u.hkdf.expand = s->u.hkdf.expand;
        mo->u.hkdf.prf_hash = s->u.hkdf.prf_hash;
        mo->u.hkdf.salt_type = s->u.hkdf.salt_type;
        BYTES_OUT(&mo->u.hkdf, salt, &s->u.hkdf.salt);
        mo->u.hkdf.has_salt_key = true;
        mo->u.hkdf.salt_key = s->u.hkdf.salt_key;
        BYTES_OUT(&mo->u.hkdf, info, &s->u.hkdf.info);
        m->param_case = NIMBUS__MECHANISM__PARAM_HKDF;
        m->hkdf = &mo->u.hkdf;
        break;
    case HSM_MP_SP800_108:
    case HSM_MP_SP800_108_FEEDBACK: {
        CK_RV rv = kbkdf_out(s, mo);

        if (rv != CKR_OK) {
            return rv;
        }
        if (s->layout == HSM_MP_SP800_108) {
            m->param_case = NIMBUS__MECHANISM__PARAM_SP800108;
            m->sp800108 = &mo->u.kbkdf;
        } else {
            m->param_case = NIMBUS__MECHANISM__PARAM_SP800108_FEEDBACK;
            m->sp800108_feedback = &mo->u.kbkdf;
        }
        break;
    }
    case HSM_MP_PBKDF2:
        nimbus__pbkdf2_params__init(&mo->u.pbkdf2);
        mo->u.pbkdf2.salt_source = s->u.pbkdf2.salt_source;
        BYTES_OUT(&mo->u.pbkdf2, salt, &s->u.pbkdf2.salt);
        mo->u.pbkdf2.iterations = s->u.pbkdf2.iterations;
        mo->u.pbkdf2.prf = s->u.pbkdf2.prf;
        BYTES_OUT(&mo->u.pbkdf2, prf_data, &s->u.pbkdf2.prf_data);
        BYTES_OUT(&mo->u.pbkdf2, password, &s->u.pbkdf2.password);
        m->param_case = NIMBUS__MECHANISM__PARAM_PBKDF2;
        m->pbkdf2 = &mo->u.pbkdf2;
        break;
    case HSM_MP_KEY_DERIVATION_STRING:
        m->param_case = NIMBUS__MECHANISM__PARAM_STRING_DATA;
        m->string_data.data = s->u.string.data;
        m->string_data.len = s->u.string.len;
        break;
    case HSM_MP_AES_CBC_ENCRYPT_DATA:
        nimbus__aes_cbc_data_params__init(&mo->u.cbc_data);
        mo->u.cbc_data.iv.data = (uint8_t *)(uintptr_t)s->u.cbc_data.iv;
        mo->u.cbc_data.iv.len = sizeof(s->u.cbc_data.iv);
        BYTES_OUT(&mo->u.cbc_data, data, &s->u.cbc_data.data);
        m->param_case = NIMBUS__MECHANISM__PARAM_AES_CBC_DATA;
        m->aes_cbc_data = &mo->u.cbc_data;
        break;
    case HSM_MP_GCM_MESSAGE:
        nimbus__gcm_message_params__init(&mo->u.gcm_msg);
        BYTES_OUT(&mo->u.gcm_msg, iv, &s->u.gcm_msg.iv);
        mo->u.gcm_msg.iv_fixed_bits = s->u.gcm_msg.iv_fixed_bits;
        mo->u.gcm_msg.generator = s->u.gcm_msg.generator;
        BYTES_OUT(&mo->u.gcm_msg, tag, &s->u.gcm_msg.tag);
        mo->u.gcm_msg.tag_bits = s->u.gcm_msg.tag_bits;
        m->param_case = NIMBUS__MECHANISM__PARAM_GCM_MSG;
        m->gcm_msg = &mo->u.gcm_msg;
        break;
    case HSM_MP_CCM_MESSAGE:
        nimbus__ccm_message_params__init(&mo->u.ccm_msg);
        mo->u.ccm_msg.data_len = s->u.ccm_msg.data_len;
        BYTES_OUT(&mo->u.ccm_msg, nonce, &s->u.ccm_msg.nonce);
        mo->u.ccm_msg.nonce_fixed_bits = s->u.ccm_msg.nonce_fixed_bits;
        mo->u.ccm_msg.generator = s->u.ccm_msg.generator;
        BYTES_OUT(&mo->u.ccm_msg, mac, &s->u.ccm_msg.mac);
        mo->u.ccm_msg.mac_len = s->u.ccm_msg.mac_len;
        m->param_case = NIMBUS__MECHANISM__PARAM_CCM_MSG;
        m->ccm_msg = &mo->u.ccm_msg;
        break;
    case HSM_MP_CHACHA20_POLY1305_MESSAGE:
        nimbus__chacha_message_params__init(&mo->u.chacha_msg);
        BYTES_OUT(&mo->u.chacha_msg, nonce, &s->u.chacha_msg.nonce);
        BYTES_OUT(&mo->u.chacha_msg, tag, &s->u.chacha_msg.tag);
        m->param_case = NIMBUS__MECHANISM__PARAM_CHACHA_MSG;
        m->chacha_msg = &mo->u.chacha_msg;
        break;
    default:
        return CKR_MECHANISM_PARAM_INVALID;
    }
    return CKR_OK;
}

/* ------------------------------------------------------------ crypto calls */

CK_RV wire_cl_op_init(wire_client_t *cl, hsm_sid_t sid, hsm_opkind_t kind,
                      const hsm_mech_t *mech, hsm_oid_t key)
{
    Nimbus__Request q;
    Nimbus__OpInitReq m;
    struct mech_out mo;
    CK_RV rv;

    if ((rv = mech_out(mech, &mo)) != CKR_OK) {
        return rv;
    }
    nimbus__op_init_req__init(&m);
    m.sid = sid;
    m.kind = kind;
    m.mech = &mo.m;
    m.key = key;
    REQUEST(q, op_init, OP_INIT, m);
    return simple(cl, &q);
}

CK_RV wire_cl_op_init_iv(wire_client_t *cl, hsm_sid_t sid, hsm_opkind_t kind,
                         const hsm_mech_t *mech, hsm_oid_t key, uint8_t *iv,
                         size_t ivroom, size_t *ivlen)
{
    Nimbus__Request q;
    Nimbus__OpInitIvReq m;
    struct mech_out mo;
    struct rt t;
    CK_RV rv;

    *ivlen = 0;
    if ((rv = mech_out(mech, &mo)) != CKR_OK) {
        return rv;
    }
    nimbus__op_init_iv_req__init(&m);
    m.sid = sid;
    m.kind = kind;
    m.mech = &mo.m;
    m.key = key;
    m.iv_room = ivroom;
    REQUEST(q, op_init_iv, OP_INIT_IV, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_IV, &t);
    if (rv == CKR_OK && t.rep->iv->has_iv) {
        if (t.rep->iv->iv.len > ivroom) {
            rv = CKR_DEVICE_ERROR;
        } else {
            memcpy(iv, t.rep->iv->iv.data, t.rep->iv->iv.len);
            *ivlen = t.rep->iv->iv.len;
        }
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_generate_key(wire_client_t *cl, hsm_sid_t sid,
                           const hsm_mech_t *mech, const CK_ATTRIBUTE *tmpl,
                           CK_ULONG count, hsm_oid_t *oid)
{
    Nimbus__Request q;
    Nimbus__GenerateKeyReq m;
    struct mech_out mo;
    void *buf = NULL;
    CK_RV rv;

    nimbus__generate_key_req__init(&m);
    if ((rv = mech_out(mech, &mo)) == CKR_OK &&
        (rv = tmpl_out(tmpl, count, &m.template_, &m.n_template_, &buf)) ==
            CKR_OK) {
        m.sid = sid;
        m.mech = &mo.m;
        REQUEST(q, generate_key, GENERATE_KEY, m);
        rv = oid_call(cl, &q, oid);
    }
    free(buf);
    return rv;
}

CK_RV wire_cl_generate_key_pair(wire_client_t *cl, hsm_sid_t sid,
                                const hsm_mech_t *mech,
                                const CK_ATTRIBUTE *pub_tmpl,
                                CK_ULONG pub_count,
                                const CK_ATTRIBUTE *priv_tmpl,
                                CK_ULONG priv_count, hsm_oid_t *pub,
                                hsm_oid_t *priv)
{
    Nimbus__Request q;
    Nimbus__GenerateKeyPairReq m;
    struct mech_out mo;
    struct rt t;
    void *b1 = NULL, *b2 = NULL;
    CK_RV rv;

    nimbus__generate_key_pair_req__init(&m);
    if ((rv = mech_out(mech, &mo)) != CKR_OK ||
        (rv = tmpl_out(pub_tmpl, pub_count, &m.pub_template, &m.n_pub_template,
                       &b1)) != CKR_OK ||
        (rv = tmpl_out(priv_tmpl, priv_count, &m.priv_template,
                       &m.n_priv_template, &b2)) != CKR_OK) {
        free(b1);
        return rv;
    }
    m.sid = sid;
    m.mech = &mo.m;
    REQUEST(q, generate_key_pair, GENERATE_KEY_PAIR, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_KEY_PAIR, &t);
    if (rv == CKR_OK) {
        *pub = t.rep->key_pair->pub;
        *priv = t.rep->key_pair->priv;
    }
    rt_done(&t);
    free(b1);
    free(b2);
    return rv;
}

CK_RV wire_cl_derive_key(wire_client_t *cl, hsm_sid_t sid,
                         const hsm_mech_t *mech, hsm_oid_t base,
                         const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                         hsm_oid_t *oid)
{
    Nimbus__Request q;
    Nimbus__DeriveKeyReq m;
    struct mech_out mo;
    void *buf = NULL;
    CK_RV rv;

    nimbus__derive_key_req__init(&m);
    if ((rv = mech_out(mech, &mo)) == CKR_OK &&
        (rv = tmpl_out(tmpl, count, &m.template_, &m.n_template_, &buf)) ==
            CKR_OK) {
        m.sid = sid;
        m.mech = &mo.m;
        m.base_key = base;
        REQUEST(q, derive_key, DERIVE_KEY, m);
        rv = oid_call(cl, &q, oid);
    }
    free(buf);
    return rv;
}

CK_RV wire_cl_wrap_key(wire_client_t *cl, hsm_sid_t sid, const hsm_mech_t *mech,
                       hsm_oid_t wrapping, hsm_oid_t key, uint8_t **out,
                       size_t *outlen)
{
    Nimbus__Request q;
    Nimbus__WrapKeyReq m;
    struct mech_out mo;
    struct rt t;
    CK_RV rv;

    *out = NULL;
    *outlen = 0;
    if ((rv = mech_out(mech, &mo)) != CKR_OK) {
        return rv;
    }
    nimbus__wrap_key_req__init(&m);
    m.sid = sid;
    m.mech = &mo.m;
    m.wrapping = wrapping;
    m.key = key;
    REQUEST(q, wrap_key, WRAP_KEY, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_OUTPUT, &t);
    if (rv == CKR_OK) {
        const Nimbus__OutputReply *o = t.rep->output;
        uint8_t *v;

        if (!o->has_out || o->out.len != o->out_len) {
            rv = CKR_DEVICE_ERROR;
        } else if ((v = malloc(o->out.len == 0 ? 1 : o->out.len)) == NULL) {
            rv = CKR_HOST_MEMORY;
        } else {
            if (o->out.len > 0) {
                memcpy(v, o->out.data, o->out.len);
            }
            *out = v;
            *outlen = o->out.len;
        }
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_unwrap_key(wire_client_t *cl, hsm_sid_t sid,
                         const hsm_mech_t *mech, hsm_oid_t unwrapping,
                         const uint8_t *in, size_t inlen,
                         const CK_ATTRIBUTE *tmpl, CK_ULONG count,
                         hsm_oid_t *oid)
{
    Nimbus__Request q;
    Nimbus__UnwrapKeyReq m;
    struct mech_out mo;
    void *buf = NULL;
    CK_RV rv;

    nimbus__unwrap_key_req__init(&m);
    if ((rv = mech_out(mech, &mo)) == CKR_OK &&
        (rv = tmpl_out(tmpl, count, &m.template_, &m.n_template_, &buf)) ==
            CKR_OK) {
        m.sid = sid;
        m.mech = &mo.m;
        m.unwrapping = unwrapping;
        m.has_wrapped = true;
        m.wrapped = bin(in, inlen);
        REQUEST(q, unwrap_key, UNWRAP_KEY, m);
        rv = oid_call(cl, &q, oid);
    }
    free(buf);
    return rv;
}

/* ------------------------------------------------------------ messages */

/* The output and result of a message step. */
static CK_RV msg_call(wire_client_t *cl, Nimbus__Request *q, uint8_t *out,
                      size_t *outlen, hsm_msg_result_t *res)
{
    struct rt t;
    CK_RV rv = roundtrip(cl, q, NIMBUS__REPLY__RESULT__NOT_SET, &t);

    memset(res, 0, sizeof(*res));
    if (rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL) {
        const Nimbus__MsgReply *r = t.rep->msg;
        size_t room = outlen != NULL ? *outlen : 0;

        if (t.rep->result_case != NIMBUS__REPLY__RESULT_MSG ||
            r->out_len > SIZE_MAX || r->iv.len > HSM_MSG_IV_MAX ||
            r->tag.len > HSM_MSG_TAG_MAX) {
            rv = CKR_DEVICE_ERROR;
        } else if (rv == CKR_OK && out != NULL &&
                   (!r->has_out || r->out.len != r->out_len ||
                    r->out.len > room)) {
            rv = CKR_DEVICE_ERROR;
        } else {
            if (rv == CKR_OK && out != NULL && r->out.len > 0) {
                memcpy(out, r->out.data, r->out.len);
            }
            if (outlen != NULL) {
                *outlen = (size_t)r->out_len;
            }
            if (r->has_iv && r->iv.len > 0) {
                memcpy(res->iv, r->iv.data, r->iv.len);
                res->iv_len = r->iv.len;
            }
            if (r->has_tag && r->tag.len > 0) {
                memcpy(res->tag, r->tag.data, r->tag.len);
                res->tag_len = r->tag.len;
            }
        }
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_msg_init(wire_client_t *cl, hsm_sid_t sid, hsm_msgkind_t kind,
                       const hsm_mech_t *mech, hsm_oid_t key)
{
    Nimbus__Request q;
    Nimbus__MsgInitReq m;
    struct mech_out mo;
    CK_RV rv;

    if ((rv = mech_out(mech, &mo)) != CKR_OK) {
        return rv;
    }
    nimbus__msg_init_req__init(&m);
    m.sid = sid;
    m.kind = kind;
    m.mech = &mo.m;
    m.key = key;
    REQUEST(q, msg_init, MSG_INIT, m);
    return simple(cl, &q);
}

CK_RV wire_cl_msg_oneshot(wire_client_t *cl, hsm_sid_t sid, hsm_msgkind_t kind,
                          const hsm_mech_t *param, const uint8_t *aad,
                          size_t aadlen, const uint8_t *in, size_t inlen,
                          uint8_t *out, size_t *outlen, hsm_msg_result_t *res)
{
    Nimbus__Request q;
    Nimbus__MsgOneshotReq m;
    struct mech_out mo;
    CK_RV rv;

    if ((rv = mech_out(param, &mo)) != CKR_OK) {
        return rv;
    }
    nimbus__msg_oneshot_req__init(&m);
    m.sid = sid;
    m.kind = kind;
    m.param = &mo.m;
    m.has_aad = true;
    m.aad = bin(aad, aadlen);
    m.has_in = true;
    m.in = bin(in, inlen);
    if (out != NULL) {
        m.has_out_room = true;
        m.out_room = *outlen;
    }
    REQUEST(q, msg_oneshot, MSG_ONESHOT, m);
    return msg_call(cl, &q, out, outlen, res);
}

CK_RV wire_cl_msg_begin(wire_client_t *cl, hsm_sid_t sid, hsm_msgkind_t kind,
                        const hsm_mech_t *param, const uint8_t *aad,
                        size_t aadlen, hsm_msg_result_t *res)
{
    Nimbus__Request q;
    Nimbus__MsgBeginReq m;
    struct mech_out mo;
    CK_RV rv;

    if ((rv = mech_out(param, &mo)) != CKR_OK) {
        return rv;
    }
    nimbus__msg_begin_req__init(&m);
    m.sid = sid;
    m.kind = kind;
    m.param = &mo.m;
    m.has_aad = true;
    m.aad = bin(aad, aadlen);
    REQUEST(q, msg_begin, MSG_BEGIN, m);
    return msg_call(cl, &q, NULL, NULL, res);
}

CK_RV wire_cl_msg_next(wire_client_t *cl, hsm_sid_t sid, hsm_msgkind_t kind,
                       const hsm_mech_t *param, const uint8_t *in, size_t inlen,
                       bool last, uint8_t *out, size_t *outlen,
                       hsm_msg_result_t *res)
{
    Nimbus__Request q;
    Nimbus__MsgNextReq m;
    struct mech_out mo;
    CK_RV rv;

    if ((rv = mech_out(param, &mo)) != CKR_OK) {
        return rv;
    }
    nimbus__msg_next_req__init(&m);
    m.sid = sid;
    m.kind = kind;
    m.param = &mo.m;
    m.has_in = true;
    m.in = bin(in, inlen);
    m.last = last;
    if (out != NULL) {
        m.has_out_room = true;
        m.out_room = *outlen;
    }
    REQUEST(q, msg_next, MSG_NEXT, m);
    return msg_call(cl, &q, out, outlen, res);
}

CK_RV wire_cl_msg_output_len(wire_client_t *cl, hsm_sid_t sid,
                             hsm_msgkind_t kind, bool last, size_t inlen,
                             size_t *outlen)
{
    Nimbus__Request q;
    Nimbus__MsgOutputLenReq m;
    struct rt t;
    CK_RV rv;

    nimbus__msg_output_len_req__init(&m);
    m.sid = sid;
    m.kind = kind;
    m.last = last;
    m.in_len = inlen;
    REQUEST(q, msg_output_len, MSG_OUTPUT_LEN, m);
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

CK_RV wire_cl_msg_final(wire_client_t *cl, hsm_sid_t sid, hsm_msgkind_t kind)
{
    Nimbus__Request q;
    Nimbus__MsgFinalReq m;

    nimbus__msg_final_req__init(&m);
    m.sid = sid;
    m.kind = kind;
    REQUEST(q, msg_final, MSG_FINAL, m);
    return simple(cl, &q);
}

CK_RV wire_cl_msg_abort(wire_client_t *cl, hsm_sid_t sid, hsm_msgkind_t kind)
{
    Nimbus__Request q;
    Nimbus__MsgAbortReq m;

    nimbus__msg_abort_req__init(&m);
    m.sid = sid;
    m.kind = kind;
    REQUEST(q, msg_abort, MSG_ABORT, m);
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

/* ------------------------------------------------------------ clients */

static bool text_copy(char *dst, size_t room, const char *src)
{
    size_t len = src != NULL ? strlen(src) : 0;

    if (len >= room) {
        return false;
    }
    memcpy(dst, src != NULL ? src : "", len);
    dst[len] = '\0';
    /* printed on an operator's terminal: no control characters */
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)dst[i] < 0x20 || (unsigned char)dst[i] == 0x7f) {
            dst[i] = '?';
        }
    }
    return true;
}

CK_RV wire_cl_client_list(wire_client_t *cl, wire_client_info_t **list,
                          size_t *n)
{
    Nimbus__Request q;
    Nimbus__ClientListReq m;
    wire_client_info_t *out = NULL;
    struct rt t;
    CK_RV rv;

    *list = NULL;
    *n = 0;
    nimbus__client_list_req__init(&m);
    REQUEST(q, client_list, CLIENT_LIST, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_CLIENT_LIST, &t);
    if (rv == CKR_OK) {
        const Nimbus__ClientListReply *r = t.rep->client_list;

        out = calloc(r->n_clients > 0 ? r->n_clients : 1, sizeof(*out));
        if (out == NULL) {
            rv = CKR_HOST_MEMORY;
        }
        for (size_t i = 0; rv == CKR_OK && i < r->n_clients; i++) {
            const Nimbus__ClientInfo *c = r->clients[i];

            if (!text_copy(out[i].peer, sizeof(out[i].peer), c->peer) ||
                !text_copy(out[i].addr, sizeof(out[i].addr), c->addr) ||
                !text_copy(out[i].client_name, sizeof(out[i].client_name),
                           c->client_name) ||
                c->user_type > HSM_USER_AU) {
                rv = CKR_DEVICE_ERROR;
                break;
            }
            out[i].sessions = c->sessions;
            out[i].channels = c->channels;
            out[i].user_type = (hsm_user_type_t)c->user_type;
            out[i].user_id = c->user_id;
            out[i].self = c->self;
        }
        if (rv == CKR_OK) {
            *list = out;
            *n = r->n_clients;
            out = NULL;
        }
    }
    free(out);
    rt_done(&t);
    return rv;
}

/* ------------------------------------------------------------ cluster */

/* A node address for an operator's terminal: printable ASCII only (a
 * byte above 0x7e may be an 8-bit control to some terminals). */
static bool addr_copy(char *dst, size_t room, const char *src)
{
    if (!text_copy(dst, room, src)) {
        return false;
    }
    for (char *p = dst; *p != '\0'; p++) {
        if ((unsigned char)*p > 0x7e) {
            *p = '?';
        }
    }
    return true;
}

CK_RV wire_cl_cluster_status(wire_client_t *cl, wire_cluster_info_t *out)
{
    Nimbus__Request q;
    Nimbus__ClusterStatusReq m;
    struct rt t;
    CK_RV rv;

    memset(out, 0, sizeof(*out));
    nimbus__cluster_status_req__init(&m);
    REQUEST(q, cluster_status, CLUSTER_STATUS, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_CLUSTER_STATUS, &t);
    if (rv == CKR_OK) {
        const Nimbus__ClusterStatusReply *r = t.rep->cluster_status;
        struct cluster_status *st = &out->status;

        if (r->node_id > UINT32_MAX || r->leader_id > UINT32_MAX ||
            r->role > CLUSTER_ROLE_LEADER || r->n_nodes > CLUSTER_NODES_MAX ||
            r->digest.len != sizeof(out->digest) ||
            !addr_copy(st->leader_address, sizeof(st->leader_address),
                       r->leader_address) ||
            (r->cluster_id != NULL &&
             !addr_copy(out->cluster_id, sizeof(out->cluster_id),
                        r->cluster_id))) {
            rv = CKR_DEVICE_ERROR;
        }
        for (size_t i = 0; rv == CKR_OK && i < r->n_nodes; i++) {
            const Nimbus__ClusterNode *n = r->nodes[i];

            if (n->id == 0 || n->id > UINT32_MAX ||
                n->member > CLUSTER_MEMBER_SPARE ||
                !addr_copy(st->nodes[i].address, sizeof(st->nodes[i].address),
                           n->address)) {
                rv = CKR_DEVICE_ERROR;
                break;
            }
            st->nodes[i].id = n->id;
            st->nodes[i].member = (enum cluster_member)n->member;
            st->nodes[i].match_index = n->match_index;
        }
        if (rv == CKR_OK) {
            st->node_id = r->node_id;
            st->role = (enum cluster_role)r->role;
            st->term = r->term;
            st->leader_id = r->leader_id;
            st->commit_index = r->commit_index;
            st->applied_index = r->applied_index;
            st->last_index = r->last_index;
            st->peers_refused = r->has_peers_refused ? r->peers_refused : 0;
            st->nnodes = r->n_nodes;
            memcpy(out->digest, r->digest.data, sizeof(out->digest));
            out->digest_applied = r->digest_applied;
        } else {
            memset(out, 0, sizeof(*out));
        }
    }
    rt_done(&t);
    return rv;
}

static CK_RV cluster_change(wire_client_t *cl, enum wire_cluster_change kind,
                            uint64_t id, const char *address)
{
    Nimbus__Request q;
    Nimbus__ClusterChangeReq m;

    nimbus__cluster_change_req__init(&m);
    m.kind = (uint32_t)kind;
    m.id = id;
    if (address != NULL) {
        m.has_address = true;
        m.address = bin(address, strlen(address));
    }
    REQUEST(q, cluster_change, CLUSTER_CHANGE, m);
    return simple(cl, &q);
}

CK_RV wire_cl_cluster_add(wire_client_t *cl, uint64_t id, const char *address)
{
    if (address == NULL) {
        return CKR_ARGUMENTS_BAD;
    }
    return cluster_change(cl, WIRE_CLUSTER_ADD, id, address);
}

CK_RV wire_cl_cluster_remove(wire_client_t *cl, uint64_t id)
{
    return cluster_change(cl, WIRE_CLUSTER_REMOVE, id, NULL);
}

CK_RV wire_cl_cluster_transfer(wire_client_t *cl, uint64_t id)
{
    return cluster_change(cl, WIRE_CLUSTER_TRANSFER, id, NULL);
}

/* ------------------------------------------------------------ quorum */

CK_RV wire_cl_quorum_register_key(wire_client_t *cl, const char *name,
                                  const uint8_t *reg_token, size_t token_len,
                                  const uint8_t *sig, size_t sig_len,
                                  const uint8_t *pubkey, size_t pubkey_len)
{
    Nimbus__Request q;
    Nimbus__QuorumRegisterKeyReq m;

    if (name == NULL) {
        return CKR_ARGUMENTS_BAD;
    }
    nimbus__quorum_register_key_req__init(&m);
    m.name = bin(name, strlen(name));
    m.reg_token = bin(reg_token, token_len);
    m.signature = bin(sig, sig_len);
    m.pubkey = bin(pubkey, pubkey_len);
    REQUEST(q, quorum_register_key, QUORUM_REGISTER_KEY, m);
    return simple(cl, &q);
}

CK_RV wire_cl_quorum_set_m(wire_client_t *cl, unsigned service, unsigned m)
{
    Nimbus__Request q;
    Nimbus__QuorumSetMReq r;

    nimbus__quorum_set_mreq__init(&r);
    r.service = service;
    r.m = m;
    REQUEST(q, quorum_set_m, QUORUM_SET_M, r);
    return simple(cl, &q);
}

CK_RV wire_cl_quorum_get_m(wire_client_t *cl, unsigned service, unsigned *m)
{
    Nimbus__Request q;
    Nimbus__QuorumGetMReq r;
    struct rt t;
    CK_RV rv;

    nimbus__quorum_get_mreq__init(&r);
    r.service = service;
    REQUEST(q, quorum_get_m, QUORUM_GET_M, r);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_QUORUM_M, &t);
    if (rv == CKR_OK) {
        if (t.rep->quorum_m->m < 1 || t.rep->quorum_m->m > HSM_QUORUM_M_MAX) {
            rv = CKR_DEVICE_ERROR;
        } else {
            *m = t.rep->quorum_m->m;
        }
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_quorum_get_token(wire_client_t *cl, unsigned service,
                               const char *name, uint8_t *token, size_t *len)
{
    Nimbus__Request q;
    Nimbus__QuorumGetTokenReq m;

    if (name == NULL || len == NULL) {
        return CKR_ARGUMENTS_BAD;
    }
    nimbus__quorum_get_token_req__init(&m);
    m.service = service;
    m.name = bin(name, strlen(name));
    if (token != NULL) {
        m.has_out_room = true;
        m.out_room = *len;
    }
    REQUEST(q, quorum_get_token, QUORUM_GET_TOKEN, m);
    return output_call(cl, &q, token, len);
}

CK_RV wire_cl_quorum_approve(wire_client_t *cl, const uint8_t *token,
                             size_t token_len, const hsm_quorum_approval_t *a,
                             size_t n, CK_RV *results)
{
    Nimbus__QuorumApproval ap[HSM_QUORUM_M_MAX], *ptrs[HSM_QUORUM_M_MAX];
    Nimbus__Request q;
    Nimbus__QuorumApproveReq m;
    struct rt t;
    CK_RV rv;

    if (n == 0 || n > HSM_QUORUM_M_MAX || a == NULL || results == NULL) {
        return CKR_ARGUMENTS_BAD;
    }
    nimbus__quorum_approve_req__init(&m);
    m.token = bin(token, token_len);
    for (size_t i = 0; i < n; i++) {
        nimbus__quorum_approval__init(&ap[i]);
        ap[i].type = a[i].type;
        ap[i].name = bin(a[i].name, strnlen(a[i].name, sizeof(a[i].name)));
        ap[i].signature = bin(a[i].sig, a[i].sig_len);
        ptrs[i] = &ap[i];
    }
    m.n_approvals = n;
    m.approvals = ptrs;
    REQUEST(q, quorum_approve, QUORUM_APPROVE, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_QUORUM_APPROVE, &t);
    if (rv == CKR_OK) {
        const Nimbus__QuorumApproveReply *r = t.rep->quorum_approve;

        /* one result per approval sent, each a CK_RV */
        if (r->n_results != n) {
            rv = CKR_DEVICE_ERROR;
        }
        for (size_t i = 0; rv == CKR_OK && i < n; i++) {
            if ((CK_RV)r->results[i] != r->results[i]) {
                rv = CKR_DEVICE_ERROR;
            } else {
                results[i] = (CK_RV)r->results[i];
            }
        }
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_quorum_list_tokens(wire_client_t *cl,
                                 hsm_quorum_token_info_t **out, size_t *n)
{
    Nimbus__Request q;
    Nimbus__QuorumListTokensReq m;
    hsm_quorum_token_info_t *list = NULL;
    struct rt t;
    CK_RV rv;

    *out = NULL;
    *n = 0;
    nimbus__quorum_list_tokens_req__init(&m);
    REQUEST(q, quorum_list_tokens, QUORUM_LIST_TOKENS, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_QUORUM_TOKENS, &t);
    if (rv == CKR_OK) {
        const Nimbus__QuorumTokenListReply *r = t.rep->quorum_tokens;

        if (r->n_tokens > HSM_QUORUM_TOKENS_MAX) {
            rv = CKR_DEVICE_ERROR;
        } else if (r->n_tokens > 0 &&
                   (list = calloc(r->n_tokens, sizeof(*list))) == NULL) {
            rv = CKR_HOST_MEMORY;
        }
        for (size_t i = 0; rv == CKR_OK && i < r->n_tokens; i++) {
            const Nimbus__QuorumTokenInfo *x = r->tokens[i];
            hsm_quorum_token_info_t *y = &list[i];

            if (!text_copy(y->user, sizeof(y->user), x->user) ||
                x->n_approvers > HSM_QUORUM_M_MAX ||
                x->needed > HSM_QUORUM_M_MAX) {
                rv = CKR_DEVICE_ERROR;
                break;
            }
            for (size_t j = 0; j < x->n_approvers; j++) {
                if (!text_copy(y->approvers[j], sizeof(y->approvers[j]),
                               x->approvers[j])) {
                    rv = CKR_DEVICE_ERROR;
                    break;
                }
            }
            y->id = x->id;
            y->service = x->service;
            y->seconds_left = x->seconds_left;
            y->needed = x->needed;
            y->given = x->given;
            y->napprovers = x->n_approvers;
        }
        if (rv == CKR_OK) {
            *out = list;
            *n = r->n_tokens;
            list = NULL;
        }
    }
    free(list);
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_quorum_del_token(wire_client_t *cl, uint32_t id)
{
    Nimbus__Request q;
    Nimbus__QuorumDelTokenReq m;

    nimbus__quorum_del_token_req__init(&m);
    m.id = id;
    REQUEST(q, quorum_del_token, QUORUM_DEL_TOKEN, m);
    return simple(cl, &q);
}

/* ------------------------------------------------------------ 2FA */

CK_RV wire_cl_login_challenge(wire_client_t *cl, hsm_login_kind_t kind,
                              const char *name, uint8_t digest[HSM_DIGEST_LEN])
{
    Nimbus__Request q;
    Nimbus__LoginChallengeReq m;
    struct rt t;
    CK_RV rv;

    nimbus__login_challenge_req__init(&m);
    m.kind = kind;
    name_out(name, &m.has_name, &m.name);
    REQUEST(q, login_challenge, LOGIN_CHALLENGE, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_DIGEST, &t);
    if (rv == CKR_OK) {
        if (t.rep->digest->digest.len != HSM_DIGEST_LEN) {
            rv = CKR_DEVICE_ERROR;
        } else {
            memcpy(digest, t.rep->digest->digest.data, HSM_DIGEST_LEN);
        }
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_login_2fa(wire_client_t *cl, hsm_login_kind_t kind,
                        const char *name, const uint8_t *pw, size_t pwlen,
                        const uint8_t *sig, size_t siglen)
{
    Nimbus__Request q;
    Nimbus__Login2faReq m;

    nimbus__login2fa_req__init(&m);
    m.kind = kind;
    name_out(name, &m.has_name, &m.name);
    m.password = bin(pw, pwlen);
    m.signature = bin(sig, siglen);
    REQUEST(q, login_2fa, LOGIN_2FA, m);
    return simple(cl, &q);
}

CK_RV wire_cl_user_create_2fa(wire_client_t *cl, const char *name,
                              const uint8_t *pw, size_t pwlen,
                              const uint8_t *pubkey, size_t pubkey_len,
                              const uint8_t *sig, size_t siglen, hsm_uid_t *uid)
{
    Nimbus__Request q;
    Nimbus__UserCreate2faReq m;
    struct rt t;
    CK_RV rv;

    nimbus__user_create2fa_req__init(&m);
    m.name = bin(name, name != NULL ? strlen(name) : 0);
    m.password = bin(pw, pwlen);
    m.pubkey = bin(pubkey, pubkey_len);
    m.signature = bin(sig, siglen);
    REQUEST(q, user_create_2fa, USER_CREATE_2FA, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_UID, &t);
    if (rv == CKR_OK && uid != NULL) {
        *uid = t.rep->uid->uid;
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_user_set_password_2fa(wire_client_t *cl, const char *name,
                                    const uint8_t *pw, size_t pwlen,
                                    const uint8_t *pubkey, size_t pubkey_len,
                                    const uint8_t *sig, size_t siglen)
{
    Nimbus__Request q;
    Nimbus__UserSetPassword2faReq m;

    nimbus__user_set_password2fa_req__init(&m);
    m.name = bin(name, name != NULL ? strlen(name) : 0);
    m.password = bin(pw, pwlen);
    m.pubkey = bin(pubkey, pubkey_len);
    m.signature = bin(sig, siglen);
    REQUEST(q, user_set_password_2fa, USER_SET_PASSWORD_2FA, m);
    return simple(cl, &q);
}

/* ------------------------------------------------------------ masked */

CK_RV wire_cl_masked_extract(wire_client_t *cl, hsm_oid_t oid, uint8_t **file,
                             size_t *len)
{
    Nimbus__Request q;
    Nimbus__MaskedExtractReq m;
    struct rt t;
    CK_RV rv;

    *file = NULL;
    *len = 0;
    nimbus__masked_extract_req__init(&m);
    m.oid = oid;
    REQUEST(q, masked_extract, MASKED_EXTRACT, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_MASKED, &t);
    if (rv == CKR_OK) {
        const ProtobufCBinaryData *f = &t.rep->masked->file;

        if (f->len == 0 || f->len > WIRE_MASKED_FILE_MAX) {
            rv = CKR_DEVICE_ERROR;
        } else if ((*file = malloc(f->len)) == NULL) {
            rv = CKR_HOST_MEMORY;
        } else {
            memcpy(*file, f->data, f->len);
            *len = f->len;
        }
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_masked_insert(wire_client_t *cl, const uint8_t *file, size_t len,
                            hsm_oid_t *oid)
{
    Nimbus__Request q;
    Nimbus__MaskedInsertReq m;

    *oid = 0;
    if (len > WIRE_MASKED_FILE_MAX) {
        return CKR_DATA_LEN_RANGE;
    }
    nimbus__masked_insert_req__init(&m);
    m.file = bin(file, len);
    REQUEST(q, masked_insert, MASKED_INSERT, m);
    return oid_call(cl, &q, oid);
}

/* ------------------------------------------------------------ backups */

/* A backup reply's header into info; false when a field is out of its
 * bounds. */
static bool backup_info_in(const Nimbus__BackupReply *r,
                           hsm_backup_info_t *info)
{
    if (r->domain == NULL || r->source == NULL ||
        strlen(r->domain) > CONFIG_CLUSTER_ID_MAX ||
        strlen(r->source) > CONFIG_CLUSTER_ID_MAX ||
        r->digest.len != HSM_DIGEST_LEN) {
        return false;
    }
    snprintf(info->domain, sizeof(info->domain), "%s", r->domain);
    snprintf(info->source, sizeof(info->source), "%s", r->source);
    info->applied = r->applied;
    info->time = r->time;
    info->users = r->users;
    info->objects = r->objects;
    memcpy(info->digest, r->digest.data, HSM_DIGEST_LEN);
    return true;
}

CK_RV wire_cl_backup(wire_client_t *cl, uint8_t **file, size_t *len,
                     hsm_backup_info_t *info)
{
    Nimbus__Request q;
    Nimbus__BackupReq m;
    struct rt t;
    CK_RV rv;

    *file = NULL;
    *len = 0;
    memset(info, 0, sizeof(*info));
    nimbus__backup_req__init(&m);
    REQUEST(q, backup, BACKUP, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_BACKUP, &t);
    if (rv == CKR_OK) {
        const Nimbus__BackupReply *r = t.rep->backup;

        if (!r->has_file || r->file.len == 0 ||
            r->file.len > HSM_BACKUP_FILE_MAX || !backup_info_in(r, info)) {
            rv = CKR_DEVICE_ERROR;
        } else if ((*file = malloc(r->file.len)) == NULL) {
            rv = CKR_HOST_MEMORY;
        } else {
            memcpy(*file, r->file.data, r->file.len);
            *len = r->file.len;
        }
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_restore(wire_client_t *cl, const uint8_t *file, size_t len,
                      hsm_backup_info_t *info, size_t *nodes)
{
    Nimbus__Request q;
    Nimbus__RestoreReq m;
    struct rt t;
    CK_RV rv;

    memset(info, 0, sizeof(*info));
    *nodes = 0;
    if (len > HSM_BACKUP_FILE_MAX) {
        return CKR_DATA_LEN_RANGE;
    }
    nimbus__restore_req__init(&m);
    m.file = bin(file, len);
    REQUEST(q, restore, RESTORE, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_BACKUP, &t);
    if (rv == CKR_OK) {
        const Nimbus__BackupReply *r = t.rep->backup;

        if (!backup_info_in(r, info)) {
            rv = CKR_DEVICE_ERROR;
        } else {
            *nodes = r->has_nodes ? r->nodes : 1;
        }
    }
    rt_done(&t);
    return rv;
}

/* ------------------------------------------------------------ tickets */

CK_RV wire_cl_login_ticket(wire_client_t *cl, uint8_t out[HSM_TICKET_LEN])
{
    Nimbus__Request q;
    Nimbus__LoginTicketReq m;
    struct rt t;
    CK_RV rv;

    nimbus__login_ticket_req__init(&m);
    REQUEST(q, login_ticket, LOGIN_TICKET, m);
    rv = roundtrip(cl, &q, NIMBUS__REPLY__RESULT_TICKET, &t);
    if (rv == CKR_OK) {
        if (t.rep->ticket->ticket.len != HSM_TICKET_LEN) {
            rv = CKR_DEVICE_ERROR;
        } else {
            memcpy(out, t.rep->ticket->ticket.data, HSM_TICKET_LEN);
        }
        util_wipe(t.rep->ticket->ticket.data, t.rep->ticket->ticket.len);
    }
    rt_done(&t);
    return rv;
}

CK_RV wire_cl_login_redeem(wire_client_t *cl, const uint8_t *ticket, size_t len)
{
    Nimbus__Request q;
    Nimbus__LoginRedeemReq m;

    nimbus__login_redeem_req__init(&m);
    m.ticket = bin(ticket, len);
    REQUEST(q, login_redeem, LOGIN_REDEEM, m);
    return simple(cl, &q);
}
