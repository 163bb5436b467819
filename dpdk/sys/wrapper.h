/* Headers bindgen generates the clua-dpdk-sys bindings from. */
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_eth_ring.h>
#include <rte_dev.h>
#include <rte_bus_vdev.h>
#include "shim.h"

#include <stddef.h>

/*
 * Where the fast path's three mbuf fields are, for inline reads in Rust (clua-dpdk's
 * `mbuf::view`): a call into the shim per `data()` was ~2 % of aliasd's worker time, and the
 * pipeline asks for a packet's bytes several times (issue 12). bindgen evaluates these with
 * clang against the installed DPDK's own struct, so they follow its layout; the asserts stop
 * the build if a field's type ever changes.
 */
enum clua_mbuf_layout {
	CLUA_MBUF_BUF_ADDR = offsetof(struct rte_mbuf, buf_addr),
	CLUA_MBUF_DATA_OFF = offsetof(struct rte_mbuf, data_off),
	CLUA_MBUF_DATA_LEN = offsetof(struct rte_mbuf, data_len),
};
_Static_assert(sizeof(((struct rte_mbuf *)0)->buf_addr) == sizeof(void *), "buf_addr is a pointer");
_Static_assert(sizeof(((struct rte_mbuf *)0)->data_off) == 2, "data_off is a uint16_t");
_Static_assert(sizeof(((struct rte_mbuf *)0)->data_len) == 2, "data_len is a uint16_t");
