/*
 * backend_impl.h - for implementations of the seam only (embedded.c, the
 * remote backend): the base structs their own types start with. Callers
 * of the seam see backend_t and backend_conn_t as opaque.
 */
#ifndef NIMBUS_BACKEND_IMPL_H
#define NIMBUS_BACKEND_IMPL_H

#include "backend/backend.h"

struct backend {
    const struct backend_ops *ops;
};

struct backend_conn {
    backend_t *be; /* the backend that made it: its ops answer */
};

/* Whether every entry of ops is set (backend_open checks each backend). */
bool backend_ops_complete(const struct backend_ops *ops);

/* The embedded backend: the core on cfg->store in this process. */
extern const struct backend_ops backend_embedded_ops;
CK_RV backend_embedded_open(const struct config *cfg, backend_t **out);

/* The remote backend: nimbusd at cfg->servers (remote.c). */
extern const struct backend_ops backend_remote_ops;
CK_RV backend_remote_open(const struct config *cfg, backend_t **out);

/* Several servers, one cluster: a remote backend per server, sessions
 * spread over them and moved when one dies (failover.c). */
extern const struct backend_ops backend_failover_ops;
CK_RV backend_failover_open(const struct config *cfg, backend_t **out);

#endif
