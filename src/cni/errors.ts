// One error type for the whole codebase. Every failure carries a stable Tartan code
// (asserted by tests) and the CNI code it maps to; the conversion to CNI error JSON
// happens once, in src/cni/protocol.ts.

/** CNI spec error codes (1-99 are reserved by the spec). */
export const CniCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidNetworkConfig: 7,
  TryAgainLater: 11,
  // Tartan's own codes start at 100.
  Internal: 100,
  KernelFailure: 101,
  IpamExhausted: 102,
  IpamConflict: 103,
  IpamInvalidRequest: 104,
  StoreFailure: 105,
  DelegateFailure: 106,
  InvalidInterfaceRequest: 107,
  CheckFailed: 108,
  AlreadyAttached: 109,
  PluginNotReady: 50,
} as const;
export type CniCodeValue = (typeof CniCode)[keyof typeof CniCode];

export type TartanCode =
  | 'ERR_VERSION'
  | 'ERR_ENV'
  | 'ERR_DECODE'
  | 'ERR_IO'
  | 'ERR_CONFIG'
  | 'ERR_UNKNOWN_NETWORK'
  | 'ERR_IFACE_REQUEST'
  | 'ERR_KERNEL'
  | 'ERR_NETNS'
  | 'ERR_IPAM_EXHAUSTED'
  | 'ERR_IPAM_TAKEN'
  | 'ERR_IPAM_OUT_OF_RANGE'
  | 'ERR_IPAM_EXCLUDED'
  | 'ERR_IPAM_RESERVED'
  | 'ERR_IPAM_RANGE'
  | 'ERR_IPAM_CONTENTION'
  | 'ERR_IPAM_CLAIM'
  | 'ERR_STORE'
  | 'ERR_STORE_CORRUPT'
  | 'ERR_DELEGATE'
  | 'ERR_CHECK'
  | 'ERR_ATTACHED'
  | 'ERR_INTERNAL';

const cniCodeOf: Record<TartanCode, CniCodeValue> = {
  ERR_VERSION: CniCode.IncompatibleVersion,
  ERR_ENV: CniCode.InvalidEnvironment,
  ERR_DECODE: CniCode.DecodeFailure,
  ERR_IO: CniCode.IoFailure,
  ERR_CONFIG: CniCode.InvalidNetworkConfig,
  ERR_UNKNOWN_NETWORK: CniCode.InvalidNetworkConfig,
  ERR_IFACE_REQUEST: CniCode.InvalidInterfaceRequest,
  ERR_KERNEL: CniCode.KernelFailure,
  ERR_NETNS: CniCode.InvalidEnvironment,
  ERR_IPAM_EXHAUSTED: CniCode.IpamExhausted,
  ERR_IPAM_TAKEN: CniCode.IpamConflict,
  ERR_IPAM_OUT_OF_RANGE: CniCode.IpamInvalidRequest,
  ERR_IPAM_EXCLUDED: CniCode.IpamInvalidRequest,
  ERR_IPAM_RESERVED: CniCode.IpamInvalidRequest,
  ERR_IPAM_RANGE: CniCode.InvalidNetworkConfig,
  ERR_IPAM_CONTENTION: CniCode.TryAgainLater,
  ERR_IPAM_CLAIM: CniCode.IpamInvalidRequest,
  ERR_STORE: CniCode.StoreFailure,
  ERR_STORE_CORRUPT: CniCode.StoreFailure,
  ERR_DELEGATE: CniCode.DelegateFailure,
  ERR_CHECK: CniCode.CheckFailed,
  ERR_ATTACHED: CniCode.AlreadyAttached,
  ERR_INTERNAL: CniCode.Internal,
};

export class TartanError extends Error {
  readonly code: TartanCode;
  readonly cniCode: number;
  readonly details: string | undefined;

  constructor(
    code: TartanCode,
    message: string,
    opts: { cause?: unknown; details?: string; cniCode?: number } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'TartanError';
    this.code = code;
    this.cniCode = opts.cniCode ?? cniCodeOf[code];
    this.details = opts.details;
  }
}

export function isTartanError(e: unknown, code?: TartanCode): e is TartanError {
  return e instanceof TartanError && (code === undefined || e.code === code);
}

/** Wraps an unknown failure with context, keeping an existing TartanError's code. */
export function withContext(e: unknown, context: string): TartanError {
  if (e instanceof TartanError) {
    const wrapped = new TartanError(e.code, `${context}: ${e.message}`, {
      cause: e,
      cniCode: e.cniCode,
      ...(e.details === undefined ? {} : { details: e.details }),
    });
    return wrapped;
  }
  const msg = e instanceof Error ? e.message : String(e);
  return new TartanError('ERR_INTERNAL', `${context}: ${msg}`, { cause: e });
}
