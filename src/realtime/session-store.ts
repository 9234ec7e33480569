/** @module Where realtime sessions are known across instances: each session's lease and owner, and its recorded conversation. */
import { createHash } from 'node:crypto';
import { odata, RestError, TableClient } from '@azure/data-tables';

/**
 * One session as every instance sees it. The owner keeps `expiresAt` in the
 * future while it holds the session; another instance may claim it once that
 * has passed. Every write by an owner is conditional on the ETag it last saw,
 * so an owner that lost the session cannot overwrite its new owner.
 */
export interface SessionRecord {
  /** Web PubSub's id for the client's connection: the session's key. */
  readonly connectionId: string;
  readonly sessionId: string;
  readonly model: string;
  /** The name of the key that started the session ('' for an unnamed key): its tokens count on that key. */
  readonly keyName: string;
  readonly owner: string;
  /** Milliseconds since the epoch. */
  readonly expiresAt: number;
  /** The client disconnected while no owner could hear it: whoever finds it cleans up. */
  readonly ended: boolean;
  /** The client's session configuration so far (its session.update events merged), as JSON; '' for none. */
  readonly config: string;
  /** The response Azure was producing, '' when none. */
  readonly inFlight: string;
  readonly etag: string;
}

export type SessionPatch = Partial<Pick<SessionRecord, 'owner' | 'expiresAt' | 'config' | 'inFlight'>>;

/** A conversation item as recorded for replay, in order of `seq`. */
export interface StoredItem {
  readonly seq: number;
  readonly json: string;
}

/** The conditional write lost: someone else wrote the session since this owner last saw it. */
export class LeaseLost extends Error {
  constructor() {
    super('the session record changed under its owner');
  }
}

export class SessionExists extends Error {}

export interface SessionStore {
  /** Whether other instances see these records, and so can take a session over. */
  readonly shared: boolean;
  /** Creates the record; SessionExists if there is one. Returns its ETag. */
  create(record: Omit<SessionRecord, 'etag'>): Promise<string>;
  read(connectionId: string): Promise<SessionRecord | undefined>;
  /** Writes the patch if the record still has this ETag (else LeaseLost); returns the new ETag. */
  update(connectionId: string, etag: string, patch: SessionPatch): Promise<string>;
  /** Marks the session ended, whoever owns it; its owner notices at its next write. */
  markEnded(connectionId: string): Promise<void>;
  /** Deletes the record and its items; with an ETag, only if the record still has it. */
  remove(connectionId: string, etag?: string): Promise<void>;
  /** Sessions whose lease has lapsed (or that ended), at most `limit`. */
  lapsed(now: number, limit: number): Promise<SessionRecord[]>;
  /**
   * Keeps the settings a session was created with (a session object, as
   * JSON) until its client connects, by session id, until `expiresAt`.
   */
  putSettings(sessionId: string, json: string, expiresAt: number): Promise<void>;
  /** The settings kept for a session ('' when none): each connect with its token gets them, until they lapse. */
  settingsOf(sessionId: string): Promise<string>;
  /** Forgets settings whose session was never connected to, at most `limit`. */
  dropLapsedSettings(now: number, limit: number): Promise<void>;
  putItem(connectionId: string, item: StoredItem): Promise<void>;
  deleteItem(connectionId: string, seq: number): Promise<void>;
  items(connectionId: string): Promise<StoredItem[]>;
}

/** One instance's own store, for a host without Table Storage: sessions cannot outlive the process. */
export class MemorySessionStore implements SessionStore {
  readonly shared = false;
  private readonly records = new Map<string, SessionRecord>();
  private readonly itemsOf = new Map<string, Map<number, string>>();
  private version = 0;

  async create(record: Omit<SessionRecord, 'etag'>): Promise<string> {
    if (this.records.has(record.connectionId)) throw new SessionExists();
    const etag = String(++this.version);
    this.records.set(record.connectionId, { ...record, etag });
    return etag;
  }

  async read(connectionId: string): Promise<SessionRecord | undefined> {
    return this.records.get(connectionId);
  }

  async update(connectionId: string, etag: string, patch: SessionPatch): Promise<string> {
    const current = this.records.get(connectionId);
    if (!current || current.etag !== etag) throw new LeaseLost();
    const next = String(++this.version);
    this.records.set(connectionId, { ...current, ...patch, etag: next });
    return next;
  }

  async markEnded(connectionId: string): Promise<void> {
    const current = this.records.get(connectionId);
    if (current) this.records.set(connectionId, { ...current, ended: true, etag: String(++this.version) });
  }

  async remove(connectionId: string, etag?: string): Promise<void> {
    const current = this.records.get(connectionId);
    if (etag !== undefined && current && current.etag !== etag) throw new LeaseLost();
    this.records.delete(connectionId);
    this.itemsOf.delete(connectionId);
  }

  async lapsed(now: number, limit: number): Promise<SessionRecord[]> {
    return [...this.records.values()].filter((r) => r.ended || r.expiresAt < now).slice(0, limit);
  }

  private readonly settings = new Map<string, { json: string; expiresAt: number }>();

  async putSettings(sessionId: string, json: string, expiresAt: number): Promise<void> {
    this.settings.set(sessionId, { json, expiresAt });
  }

  async settingsOf(sessionId: string): Promise<string> {
    return this.settings.get(sessionId)?.json ?? '';
  }

  async dropLapsedSettings(now: number): Promise<void> {
    for (const [id, kept] of this.settings) if (kept.expiresAt < now) this.settings.delete(id);
  }

  async putItem(connectionId: string, item: StoredItem): Promise<void> {
    let items = this.itemsOf.get(connectionId);
    if (!items) this.itemsOf.set(connectionId, (items = new Map()));
    items.set(item.seq, item.json);
  }

  async deleteItem(connectionId: string, seq: number): Promise<void> {
    this.itemsOf.get(connectionId)?.delete(seq);
  }

  async items(connectionId: string): Promise<StoredItem[]> {
    return [...(this.itemsOf.get(connectionId) ?? new Map<number, string>())].map(([seq, json]) => ({ seq, json })).sort((a, b) => a.seq - b.seq);
  }
}

/**
 * Sessions in an Azure Table (the balancer's). A session's record lives in one
 * of 16 partitions "rtsession-<hex>" (spreading lease renewals over
 * partitions); its items in a partition of their own. A string longer than a
 * property may hold (32K characters) is split over numbered properties.
 */
export class TableSessionStore implements SessionStore {
  readonly shared = true;
  private tableReady?: Promise<void>;

  constructor(private readonly table: TableClient) {}

  async create(record: Omit<SessionRecord, 'etag'>): Promise<string> {
    await this.ensureTable();
    try {
      const res = await this.table.createEntity(toEntity(record));
      return res.etag ?? '';
    } catch (err) {
      if (isStatus(err, 409)) throw new SessionExists();
      throw err;
    }
  }

  async read(connectionId: string): Promise<SessionRecord | undefined> {
    await this.ensureTable();
    try {
      const e = await this.table.getEntity<Record<string, unknown>>(partitionOf(connectionId), rowOf(connectionId));
      return fromEntity(e);
    } catch (err) {
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
  }

  async update(connectionId: string, etag: string, patch: SessionPatch): Promise<string> {
    await this.ensureTable();
    const entity: Record<string, unknown> = { partitionKey: partitionOf(connectionId), rowKey: rowOf(connectionId) };
    if (patch.owner !== undefined) entity.owner = patch.owner;
    if (patch.expiresAt !== undefined) entity.expiresAt = patch.expiresAt;
    if (patch.inFlight !== undefined) entity.inFlight = patch.inFlight;
    if (patch.config !== undefined) Object.assign(entity, chunks('config', patch.config));
    try {
      const res = await this.table.updateEntity(entity as { partitionKey: string; rowKey: string }, 'Merge', { etag });
      return res.etag ?? '';
    } catch (err) {
      if (isStatus(err, 412) || isStatus(err, 404)) throw new LeaseLost();
      throw err;
    }
  }

  async markEnded(connectionId: string): Promise<void> {
    await this.ensureTable();
    try {
      await this.table.updateEntity({ partitionKey: partitionOf(connectionId), rowKey: rowOf(connectionId), ended: true }, 'Merge');
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
    }
  }

  async remove(connectionId: string, etag?: string): Promise<void> {
    await this.ensureTable();
    try {
      await this.table.deleteEntity(partitionOf(connectionId), rowOf(connectionId), etag ? { etag } : {});
    } catch (err) {
      if (isStatus(err, 412)) throw new LeaseLost();
      if (!isStatus(err, 404)) throw err;
    }
    const pk = itemsPartition(connectionId);
    for await (const e of this.table.listEntities({ queryOptions: { filter: odata`PartitionKey eq ${pk}`, select: ['rowKey'] } })) {
      await this.table.deleteEntity(pk, e.rowKey!).catch(() => {});
    }
  }

  async lapsed(now: number, limit: number): Promise<SessionRecord[]> {
    await this.ensureTable();
    const found: SessionRecord[] = [];
    const filter = odata`PartitionKey ge ${'rtsession-'} and PartitionKey lt ${'rtsession.'} and (expiresAt lt ${now} or ended eq true)`;
    for await (const e of this.table.listEntities<Record<string, unknown>>({ queryOptions: { filter } })) {
      found.push(fromEntity(e));
      if (found.length >= limit) break;
    }
    return found;
  }

  async putSettings(sessionId: string, json: string, expiresAt: number): Promise<void> {
    await this.ensureTable();
    await this.table.upsertEntity({ partitionKey: SETTINGS, rowKey: sessionId, expiresAt, ...chunks('settings', json) }, 'Replace');
  }

  async settingsOf(sessionId: string): Promise<string> {
    await this.ensureTable();
    try {
      return unchunk('settings', await this.table.getEntity<Record<string, unknown>>(SETTINGS, sessionId));
    } catch (err) {
      if (isStatus(err, 404)) return '';
      throw err;
    }
  }

  async dropLapsedSettings(now: number, limit: number): Promise<void> {
    await this.ensureTable();
    const lapsed: string[] = [];
    for await (const e of this.table.listEntities({ queryOptions: { filter: odata`PartitionKey eq ${SETTINGS} and expiresAt lt ${now}`, select: ['rowKey'] } })) {
      lapsed.push(e.rowKey!);
      if (lapsed.length >= limit) break;
    }
    await Promise.all(lapsed.map((rowKey) => this.table.deleteEntity(SETTINGS, rowKey).catch(() => {})));
  }

  async putItem(connectionId: string, item: StoredItem): Promise<void> {
    await this.ensureTable();
    await this.table.upsertEntity({ partitionKey: itemsPartition(connectionId), rowKey: seqKey(item.seq), ...chunks('item', item.json) }, 'Replace');
  }

  async deleteItem(connectionId: string, seq: number): Promise<void> {
    await this.ensureTable();
    await this.table.deleteEntity(itemsPartition(connectionId), seqKey(seq)).catch((err) => {
      if (!isStatus(err, 404)) throw err;
    });
  }

  async items(connectionId: string): Promise<StoredItem[]> {
    await this.ensureTable();
    const out: StoredItem[] = [];
    const pk = itemsPartition(connectionId);
    for await (const e of this.table.listEntities<Record<string, unknown>>({ queryOptions: { filter: odata`PartitionKey eq ${pk}` } })) {
      out.push({ seq: Number(e.rowKey), json: unchunk('item', e) });
    }
    return out.sort((a, b) => a.seq - b.seq);
  }

  private ensureTable(): Promise<void> {
    this.tableReady ??= this.table.createTable().then(() => undefined, (err) => {
      this.tableReady = undefined;
      if (!isStatus(err, 409)) throw err;
    });
    return this.tableReady;
  }
}

/** The partition of the settings sessions were created with, until their clients connect (outside the sessions' range). */
const SETTINGS = 'rtsettings';

/** Characters per string property: Table Storage allows 64 KiB of UTF-16. */
const CHUNK = 32_000;

function chunks(name: string, value: string): Record<string, string | number> {
  const out: Record<string, string | number> = { [`${name}Parts`]: Math.ceil(value.length / CHUNK) };
  for (let i = 0; i * CHUNK < value.length; i++) out[`${name}${i}`] = value.slice(i * CHUNK, (i + 1) * CHUNK);
  return out;
}

function unchunk(name: string, e: Record<string, unknown>): string {
  let s = '';
  for (let i = 0; i < Number(e[`${name}Parts`] ?? 0); i++) s += String(e[`${name}${i}`] ?? '');
  return s;
}

function toEntity(r: Omit<SessionRecord, 'etag'>): { partitionKey: string; rowKey: string } & Record<string, unknown> {
  return {
    partitionKey: partitionOf(r.connectionId), rowKey: rowOf(r.connectionId),
    connectionId: r.connectionId, sessionId: r.sessionId, model: r.model, keyName: r.keyName, owner: r.owner,
    expiresAt: r.expiresAt, ended: r.ended, inFlight: r.inFlight, ...chunks('config', r.config),
  };
}

function fromEntity(e: Record<string, unknown>): SessionRecord {
  return {
    connectionId: String(e.connectionId), sessionId: String(e.sessionId), model: String(e.model), keyName: String(e.keyName ?? ''), owner: String(e.owner),
    expiresAt: Number(e.expiresAt), ended: e.ended === true, inFlight: String(e.inFlight ?? ''), config: unchunk('config', e),
    etag: String(e.etag ?? ''),
  };
}

function partitionOf(connectionId: string): string {
  return `rtsession-${createHash('sha256').update(connectionId).digest('hex')[0]}`;
}

/** Row keys may not hold / \ # ? or control characters: the id is base64url-encoded. */
function rowOf(connectionId: string): string {
  return Buffer.from(connectionId).toString('base64url');
}

function itemsPartition(connectionId: string): string {
  return `rtitems-${rowOf(connectionId)}`;
}

function seqKey(seq: number): string {
  return String(seq).padStart(10, '0');
}

function isStatus(err: unknown, status: number): boolean {
  return err instanceof RestError ? err.statusCode === status : (err as { statusCode?: number })?.statusCode === status;
}
