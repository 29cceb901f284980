// Shared by the encoder tests: the ifindexes of the links in the captured requests (eth0 3,
// vx0 5, br0 8, br1 9, dm0p 10, dm0/dm1 11, dm5 13, the netns fd 4) and hex rendering.
import type { EncodeContext } from './encode-ops.js';

const INDEX: Record<string, number> = {
  eth0: 3,
  vx0: 5,
  br0: 8,
  br1: 9,
  dm0p: 10,
  dm0: 11,
  dm1: 11,
  dm5: 13,
};

export const ctx: EncodeContext = {
  ifindex: (n) => {
    const i = INDEX[n];
    if (i === undefined) throw new Error(`Cannot find device "${n}"`);
    return i;
  },
  nsFd: () => 4,
};

export const hex = (rows: string[]): string => rows.join(' ');

export const bytes = (b: Uint8Array): string =>
  Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
