/*
 * stub_server.c - a stand-in for src/wire/server.c while it is not on
 * main: answers a handshake (Request field 2) with CKR_OK, a login (field
 * 13) with CKR_PIN_INCORRECT after a second, anything else as a protocol
 * error. Enough to drive nimbusd's sockets, threads and signals.
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wire/server.h"

struct wire_server {
    unsigned long max;
    unsigned long n;
    pthread_mutex_t mu;
};
struct wire_chan {
    wire_server_t *srv;
    bool hello;
};

CK_RV wire_server_new(hsm_t *hsm, const struct config *cfg, wire_server_t **out)
{
    wire_server_t *s = calloc(1, sizeof(*s));

    (void)hsm;
    if (s == NULL)
        return CKR_HOST_MEMORY;
    s->max = cfg->max_connections;
    pthread_mutex_init(&s->mu, NULL);
    *out = s;
    return CKR_OK;
}

void wire_server_free(wire_server_t *srv)
{
    free(srv);
}

wire_chan_t *wire_chan_new(wire_server_t *srv, const wire_peer_t *peer)
{
    wire_chan_t *c;

    (void)peer;
    pthread_mutex_lock(&srv->mu);
    if (srv->n >= srv->max) {
        pthread_mutex_unlock(&srv->mu);
        return NULL;
    }
    srv->n++;
    pthread_mutex_unlock(&srv->mu);
    c = calloc(1, sizeof(*c));
    if (c != NULL)
        c->srv = srv;
    return c;
}

bool wire_chan_handle(wire_chan_t *ch, const uint8_t *req, size_t len,
                      uint8_t **resp, size_t *resp_len)
{
    uint8_t *r;

    *resp = NULL;
    *resp_len = 0;
    /* 08 <id> then the oneof's key */
    if (len < 3 || req[0] != 0x08 || req[1] >= 0x80)
        return false;
    if (req[2] == 0x12) {
        ch->hello = true;
    } else if (req[2] == 0x6a && ch->hello) {
        sleep(1);
    } else {
        return false;
    }
    r = malloc(5);
    if (r == NULL)
        return false;
    r[0] = 0x08;
    r[1] = req[1];
    r[2] = 0x10;
    r[3] = req[2] == 0x12 ? 0x00 : 0xa0; /* CKR_PIN_INCORRECT: a0 01 */
    r[4] = 0x01;
    *resp = r;
    *resp_len = req[2] == 0x12 ? 4 : 5;
    return true;
}

void wire_chan_free(wire_chan_t *ch)
{
    pthread_mutex_lock(&ch->srv->mu);
    ch->srv->n--;
    pthread_mutex_unlock(&ch->srv->mu);
    free(ch);
}
