/*
 * Plain-function shim over DPDK's inline fast path, for plume-netstack's
 * `dgram::dpdk` (cargo feature `dpdk`). DPDK's rx/tx bursts and mbuf
 * helpers are `static inline` in its headers, so Rust cannot call them
 * directly; this file compiles them into ordinary symbols. It holds no
 * state of its own: every function works on the opaque pointers and port
 * ids the Rust side passes in. Errors are negative errno values (DPDK's
 * convention) unless stated otherwise.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

/* EAL start-up from an argv array. Returns rte_eal_init's result. */
int plume_dpdk_eal_init(int argc, char **argv) { return rte_eal_init(argc, argv); }

int plume_dpdk_errno(void) { return rte_errno; }

const char *plume_dpdk_strerror(int err) { return rte_strerror(err); }

/* Packet-mbuf pool on the caller's NUMA socket. NULL on failure (see
 * plume_dpdk_errno). */
struct rte_mempool *plume_dpdk_pool_create(const char *name, unsigned n, unsigned cache,
                                           uint16_t data_room) {
    return rte_pktmbuf_pool_create(name, n, cache, 0, data_room, (int)rte_socket_id());
}

void plume_dpdk_pool_free(struct rte_mempool *mp) { rte_mempool_free(mp); }

/* Port id of device `name` (vdev name such as net_af_packet0, or PCI address). */
int plume_dpdk_port_by_name(const char *name, uint16_t *port) {
    return rte_eth_dev_get_port_by_name(name, port);
}

/* Next valid port id >= `from`; returns RTE_MAX_ETHPORTS when none. */
uint16_t plume_dpdk_port_next(uint16_t from) { return rte_eth_find_next(from); }

uint16_t plume_dpdk_port_max(void) { return RTE_MAX_ETHPORTS; }

/* Name of `port` into buf (at least RTE_ETH_NAME_MAX_LEN bytes). */
int plume_dpdk_port_name(uint16_t port, char *buf, size_t len) {
    char name[RTE_ETH_NAME_MAX_LEN];
    int r = rte_eth_dev_get_name_by_port(port, name);
    if (r != 0) return r;
    if (len == 0) return -EINVAL;
    strncpy(buf, name, len - 1);
    buf[len - 1] = '\0';
    return 0;
}

/*
 * Configure `port` with one rx and one tx queue (descriptor counts are
 * adjusted to the driver's limits and written back), start it, turn
 * promiscuous mode off, and report its MTU. Returns 0 or a negative errno;
 * `*stage` names the step that failed.
 */
int plume_dpdk_port_setup(uint16_t port, uint16_t *nb_rxd, uint16_t *nb_txd,
                          struct rte_mempool *mp, uint16_t *mtu, const char **stage) {
    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof(conf));
    int socket = rte_eth_dev_socket_id(port);
    if (socket < 0) socket = (int)rte_socket_id();
    int r;

    *stage = "rte_eth_dev_configure";
    r = rte_eth_dev_configure(port, 1, 1, &conf);
    if (r != 0) return r;
    *stage = "rte_eth_dev_adjust_nb_rx_tx_desc";
    r = rte_eth_dev_adjust_nb_rx_tx_desc(port, nb_rxd, nb_txd);
    if (r != 0) return r;
    *stage = "rte_eth_rx_queue_setup";
    r = rte_eth_rx_queue_setup(port, 0, *nb_rxd, (unsigned)socket, NULL, mp);
    if (r != 0) return r;
    *stage = "rte_eth_tx_queue_setup";
    r = rte_eth_tx_queue_setup(port, 0, *nb_txd, (unsigned)socket, NULL);
    if (r != 0) return r;
    *stage = "rte_eth_dev_start";
    r = rte_eth_dev_start(port);
    if (r != 0) return r;
    *stage = "rte_eth_promiscuous_disable";
    r = rte_eth_promiscuous_disable(port);
    /* Some virtual devices cannot change promiscuous mode: not fatal. */
    if (r != 0 && r != -ENOTSUP) {
        rte_eth_dev_stop(port);
        return r;
    }
    *stage = "rte_eth_dev_get_mtu";
    r = rte_eth_dev_get_mtu(port, mtu);
    if (r != 0) {
        rte_eth_dev_stop(port);
        return r;
    }
    *stage = "";
    return 0;
}

int plume_dpdk_mac(uint16_t port, uint8_t mac[6]) {
    struct rte_ether_addr a;
    int r = rte_eth_macaddr_get(port, &a);
    if (r != 0) return r;
    memcpy(mac, a.addr_bytes, 6);
    return 0;
}

/*
 * Receive up to n frames from queue 0. For each mbuf, data[i]/lens[i] give
 * the frame bytes; a frame spread over several segments gets lens[i] = 0
 * (the caller drops it: our pool's mbufs hold a whole frame).
 */
uint16_t plume_dpdk_rx(uint16_t port, struct rte_mbuf **bufs, const uint8_t **data,
                       uint32_t *lens, uint16_t n) {
    uint16_t got = rte_eth_rx_burst(port, 0, bufs, n);
    for (uint16_t i = 0; i < got; i++) {
        struct rte_mbuf *m = bufs[i];
        data[i] = rte_pktmbuf_mtod(m, const uint8_t *);
        lens[i] = m->nb_segs == 1 ? m->data_len : 0;
    }
    return got;
}

void plume_dpdk_free_bulk(struct rte_mbuf **bufs, unsigned n) { rte_pktmbuf_free_bulk(bufs, n); }

/* A fresh mbuf holding a copy of frame[0..len]; NULL if the pool is empty or
 * the frame does not fit in one mbuf. */
struct rte_mbuf *plume_dpdk_mbuf_copy(struct rte_mempool *mp, const uint8_t *frame, uint16_t len) {
    struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
    if (m == NULL) return NULL;
    char *dst = rte_pktmbuf_append(m, len);
    if (dst == NULL) {
        rte_pktmbuf_free(m);
        return NULL;
    }
    memcpy(dst, frame, len);
    return m;
}

/* Hand up to n mbufs to queue 0; the device owns those it took. */
uint16_t plume_dpdk_tx(uint16_t port, struct rte_mbuf **bufs, uint16_t n) {
    return rte_eth_tx_burst(port, 0, bufs, n);
}

/* Stop then close `port` (a closed vdev port is released). */
int plume_dpdk_port_close(uint16_t port) {
    int r = rte_eth_dev_stop(port);
    int c = rte_eth_dev_close(port);
    return r != 0 ? r : c;
}
