// Phase timings for diagnosing slow ADDs: with TARTAN_TRACE=1 each mark writes one JSON line
// to stderr with the milliseconds since the process started (`ms`) and since the epoch
// (`at`, to line up the shim's marks with the agent's), and the minor page faults so far
// (`pf`: each costs a fresh process ~1 us and is undone at exit). Off by default: stderr of a
// CNI plugin ends up in the runtime's logs.
const on = process.env.TARTAN_TRACE === '1';

export function mark(phase: string): void {
  // Synchronous: the executable ends without flushing streams (src/bin/tartan.ts).
  // node:fs is loaded only when tracing: the shim path needs it for nothing else.
  if (on)
    process.getBuiltinModule('node:fs').writeSync(
      2,
      `${JSON.stringify({
        trace: phase,
        ms: Math.round(performance.now() * 100) / 100,
        at: Math.round((performance.timeOrigin + performance.now()) * 100) / 100,
        pf: process.resourceUsage().minorPageFault,
      })}\n`,
    );
}
