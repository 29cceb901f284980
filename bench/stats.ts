export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1));
  return s[i]!;
}

export const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

export function printTable(headers: string[], rows: (string | number)[][]): void {
  const cells = rows.map((r) => r.map(String));
  const w = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r.map((c, i) => c.padStart(i === 0 ? 0 : w[i]!).padEnd(i === 0 ? w[i]! : 0)).join('  ');
  console.log(line(headers));
  console.log(line(w.map((n) => '-'.repeat(n))));
  for (const r of cells) console.log(line(r));
}
