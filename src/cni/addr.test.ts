// The hand-written address parser and printer against ipaddr.js, which the IPAM used before
// (its keys hold printed addresses, so the printing must not change).
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import { formatBytes, parse4, parse6 } from './addr.js';

// Groups biased towards zero, so that runs of zeros (the "::" cases) are common.
const group = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
const v6 = fc
  .array(group, { minLength: 8, maxLength: 8 })
  .map((gs) => gs.flatMap((g) => [g >> 8, g & 0xff]));
const v4 = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 4, maxLength: 4 });
// Edits that turn a valid text into a likely invalid one.
const mutate = (s: string, at: number, what: string) => {
  const i = at % (s.length + 1);
  return s.slice(0, i) + what + s.slice(i + 1);
};
const junk = fc.constantFrom(':', '::', '.', 'g', '0', '00000', '1.2.3.4', '%eth0', '', ' ', '-');
const ipaddrAccepts6 = (s: string) => !s.includes('%') && ipaddr.IPv6.isValid(s);
// ipaddr.js reads a leading zero in an embedded IPv4 octet ("::1:01.2.3.4"); inet_pton, and
// this parser, refuse it as possibly octal: the one way in which we are stricter.
const leadingZeroOctet = (s: string) => /(^|[:.])0\d[^:]*$/.test(s) && s.includes('.');

describe('addresses by hand, as ipaddr.js reads and prints them', () => {
  it('prints IPv6 in the same RFC 5952 form and reads back every form of it', () => {
    fc.assert(
      fc.property(v6, (bytes) => {
        const ref = ipaddr.fromByteArray(bytes).toString();
        expect(formatBytes(bytes)).toBe(ref);
        expect(parse6(ref)).toEqual(bytes);
        const full = (ipaddr.fromByteArray(bytes) as ipaddr.IPv6).toNormalizedString();
        expect(parse6(full)).toEqual(bytes);
        expect(parse6(full.toUpperCase())).toEqual(bytes);
      }),
      { numRuns: 3000 },
    );
  });

  it('reads and prints IPv4 alike', () => {
    fc.assert(
      fc.property(v4, (bytes) => {
        const ref = ipaddr.fromByteArray(bytes).toString();
        expect(formatBytes(bytes)).toBe(ref);
        expect(parse4(ref)).toEqual(bytes);
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses what ipaddr.js refuses (IPv4 in four decimal parts, IPv6 without zone)', () => {
    fc.assert(
      fc.property(v4, fc.nat(), junk, (bytes, at, what) => {
        const s = mutate(bytes.join('.'), at, what);
        expect(parse4(s) !== undefined).toBe(ipaddr.IPv4.isValidFourPartDecimal(s));
      }),
      { numRuns: 3000 },
    );
    fc.assert(
      fc.property(v6, fc.nat(), junk, (bytes, at, what) => {
        const s = mutate(formatBytes(bytes), at, what);
        const ours = parse6(s) !== undefined;
        if (ours || !leadingZeroOctet(s)) expect(ours).toBe(ipaddrAccepts6(s));
      }),
      { numRuns: 5000 },
    );
  });

  it('knows the edge cases', () => {
    expect(parse4('010.0.0.1')).toBeUndefined();
    expect(parse4('10.1')).toBeUndefined();
    expect(parse6('::ffff:192.0.2.1')).toEqual([...new Array(10).fill(0), 255, 255, 192, 0, 2, 1]);
    expect(parse6('1::2::3')).toBeUndefined();
    expect(parse6('1:2:3:4:5:6:7::8')).toBeUndefined();
    expect(formatBytes(new Array(16).fill(0))).toBe('::');
    expect(formatBytes([0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1])).toBe('1:0:0:1::1');
    expect(formatBytes([0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0])).toBe('::1:1:0:0:0');
    expect(parse6('::1:1:0:01.2.3.4')).toBeUndefined();
  });
});
