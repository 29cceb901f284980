// The datastore contract shared by the file (SQLite), etcd and (later) Kubernetes stores.
// Every write is a single-key compare-and-swap: the Kubernetes store can only offer that,
// so the IPAM is built on nothing more. Revisions are opaque strings.

export interface Entry<T = unknown> {
  key: string;
  value: T;
  rev: string;
}

export interface Store {
  /** Human-readable kind, e.g. "file", "etcd", "kubernetes". */
  readonly kind: string;
  get<T = unknown>(key: string): Promise<Entry<T> | undefined>;
  /**
   * Every entry whose key starts with prefix, sorted by key. A store may answer from a
   * cache that is fresh enough for CAS-checked work; `consistent` asks for a linearizable
   * read (only the Kubernetes store's default is not).
   */
  list<T = unknown>(prefix: string, opts?: { consistent?: boolean }): Promise<Entry<T>[]>;
  /** Creates key if absent. Returns the new revision, or undefined if the key exists. */
  create(key: string, value: unknown): Promise<string | undefined>;
  /** Replaces key if its revision is still rev. Returns the new revision, or undefined on conflict (changed or deleted). */
  update(key: string, value: unknown, rev: string): Promise<string | undefined>;
  /** Deletes key if its revision is still rev. Returns false on conflict (changed or already gone). */
  delete(key: string, rev: string): Promise<boolean>;
  close(): Promise<void>;
  /** Housekeeping before a process exits without close() (file store: bounds its WAL). */
  trimWal?(): void;
}

export interface StoreConfig {
  /** kubernetes: TartanRecord objects through the node agent's own API connection. */
  type: 'file' | 'etcd' | 'kubernetes';
  /** file: path of the database file. */
  path?: string;
  /** etcd: client URLs. */
  endpoints?: string[];
  /** etcd: key prefix (namespace) for all of Tartan's keys. */
  prefix?: string;
  /** kubernetes: the namespace of the records (default tartan-system). */
  namespace?: string;
}
