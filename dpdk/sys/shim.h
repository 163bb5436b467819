/*
 * Non-inline wrappers around DPDK's static-inline fast-path functions and TLS macros, so Rust
 * can call them. Every function is a one-line forward; see the DPDK documentation of the
 * wrapped call for its contract.
 */
#ifndef CLUA_SHIM_H
#define CLUA_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

/* ethdev fast path */
uint16_t clua_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t clua_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

/* mbuf */
struct rte_mbuf *clua_pktmbuf_alloc(struct rte_mempool *mp);
int clua_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count);
void clua_pktmbuf_free(struct rte_mbuf *m);
/* Returns the new data start, or NULL (and nothing changes) when headroom is too small. */
char *clua_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
/* Returns the new data start, or NULL (and nothing changes) when the segment is too short. */
char *clua_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
/* Returns 0, or -1 (and nothing changes) when the last segment is too short. */
int clua_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
/* Returns the start of the appended bytes, or NULL when tailroom is too small. */
char *clua_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
void *clua_pktmbuf_mtod(const struct rte_mbuf *m);
uint16_t clua_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t clua_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t clua_pktmbuf_nb_segs(const struct rte_mbuf *m);
uint16_t clua_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t clua_pktmbuf_tailroom(const struct rte_mbuf *m);
/* Returns 1 and stores the hash when RTE_MBUF_F_RX_RSS_HASH is set, else 0. */
int clua_pktmbuf_rss_hash(const struct rte_mbuf *m, uint32_t *hash);
/* Sets the RSS hash and RTE_MBUF_F_RX_RSS_HASH (for tests and software RSS). */
void clua_pktmbuf_set_rss_hash(struct rte_mbuf *m, uint32_t hash);
/* rte_mbuf_refcnt_update: adds `value` to the mbuf's reference count (atomic). */
void clua_mbuf_refcnt_update(struct rte_mbuf *m, int16_t value);
uint16_t clua_mbuf_refcnt_read(const struct rte_mbuf *m);

/* rings */
unsigned clua_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n,
                                 unsigned *free_space);
unsigned clua_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n,
                                 unsigned *available);
unsigned clua_ring_count(const struct rte_ring *r);

/* ethdev constants that are function-like macros in C (RTE_BIT64), so bindgen skips them */
/* RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP */
uint64_t clua_eth_rss_ip_tcp_udp(void);
/* RTE_ETH_RX_OFFLOAD_RSS_HASH */
uint64_t clua_eth_rx_offload_rss_hash(void);

/* misc */
int clua_errno(void);
uint64_t clua_rdtsc(void);
unsigned clua_lcore_id(void);
void clua_prefetch0(const void *p);
void clua_pause(void);

#endif
