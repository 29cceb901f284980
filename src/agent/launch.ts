// How the agent's Node process is started (DaemonSet command, tests, bench:agent). Node's
// defaults suit a throughput server: a young generation of up to 3 x 16 MiB, an old
// generation left to fill with garbage before a major GC (measured under churn: 33 MiB
// used of a 59 MiB heap, 15 MiB of it live), and TurboFan, whose code pages and compiled
// code are resident. The agent's JavaScript per call is small (kernel and datastore work
// dominate), so the heap is bounded (1 MiB semi-spaces, 32 MiB old generation: twice the
// live heap at 110 pods under churn) and TurboFan is off (same ADD latency, -10 MiB RSS).
// Each function goes straight to Sparkplug's baseline code instead of waiting in the
// interpreter for its budget: most of a call's code runs once per pod, and a one-interface
// ADD through the agent is ~0.45 ms faster for +1.4 MiB RSS (ADR 0010).
// Figures in docs/adr/0006-agent-and-shim.md and 0010-agent-netlink.md.
export const AGENT_NODE_FLAGS = [
  '--max-semi-space-size=1',
  '--max-old-space-size=32',
  '--no-opt',
  '--always-sparkplug',
];
/** Environment for the agent process (glibc: fewer malloc arenas for libuv's threads). */
export const AGENT_NODE_ENV = ['MALLOC_ARENA_MAX=2'];
