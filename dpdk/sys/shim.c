/* See shim.h. */
#include <rte_config.h>
#include <rte_branch_prediction.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_pause.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

#include "shim.h"

uint16_t clua_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t clua_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *clua_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int clua_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void clua_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

char *clua_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_prepend(m, len);
}

char *clua_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_adj(m, len);
}

int clua_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_trim(m, len);
}

char *clua_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

void *clua_pktmbuf_mtod(const struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, void *);
}

uint16_t clua_pktmbuf_data_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_data_len(m);
}

uint32_t clua_pktmbuf_pkt_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_pkt_len(m);
}

uint16_t clua_pktmbuf_nb_segs(const struct rte_mbuf *m)
{
	return m->nb_segs;
}

uint16_t clua_pktmbuf_headroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_headroom(m);
}

uint16_t clua_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

int clua_pktmbuf_rss_hash(const struct rte_mbuf *m, uint32_t *hash)
{
	if (m->ol_flags & RTE_MBUF_F_RX_RSS_HASH) {
		*hash = m->hash.rss;
		return 1;
	}
	return 0;
}

void clua_pktmbuf_set_rss_hash(struct rte_mbuf *m, uint32_t hash)
{
	m->hash.rss = hash;
	m->ol_flags |= RTE_MBUF_F_RX_RSS_HASH;
}

void clua_mbuf_refcnt_update(struct rte_mbuf *m, int16_t value)
{
	rte_mbuf_refcnt_update(m, value);
}

uint16_t clua_mbuf_refcnt_read(const struct rte_mbuf *m)
{
	return rte_mbuf_refcnt_read(m);
}

unsigned clua_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n,
				 unsigned *free_space)
{
	return rte_ring_enqueue_burst(r, objs, n, free_space);
}

unsigned clua_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n,
				 unsigned *available)
{
	return rte_ring_dequeue_burst(r, objs, n, available);
}

unsigned clua_ring_count(const struct rte_ring *r)
{
	return rte_ring_count(r);
}

uint64_t clua_eth_rss_ip_tcp_udp(void)
{
	return RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
}

uint64_t clua_eth_rx_offload_rss_hash(void)
{
	return RTE_ETH_RX_OFFLOAD_RSS_HASH;
}

int clua_errno(void)
{
	return rte_errno;
}

uint64_t clua_rdtsc(void)
{
	return rte_rdtsc();
}

unsigned clua_lcore_id(void)
{
	return rte_lcore_id();
}

void clua_prefetch0(const void *p)
{
	rte_prefetch0(p);
}

void clua_pause(void)
{
	rte_pause();
}
