/** @module Which deployment holds each stored response: remembered on this instance, shared through the balancer's store. */

/** Where instances share which member holds a stored object; both calls may fail or be skipped while storage is out. */
export interface SharedHolders {
  recordHolder(objectId: string, memberId: string): Promise<void>;
  findHolder(objectId: string): Promise<string | undefined>;
}

/** Ids Azure issues fit a table key; anything else a client sends is never looked up in the store. */
const STORABLE = /^[A-Za-z0-9_-]{1,256}$/;

/**
 * The member (deployment) that holds each stored object, by the object's own
 * id: a bounded map on this instance, most recently used kept, in front of
 * the shared store. One shared write per object, when it is made; one shared
 * read per object an instance has not seen. A miss is not remembered: a
 * later write (another instance's) must still be found.
 */
export class StoredHolders {
  private readonly local = new Map<string, string>();
  /** Calls made to the shared store: what tests and benchmarks read. */
  readonly sharedCalls = { writes: 0, reads: 0 };

  constructor(
    private readonly shared?: SharedHolders,
    private readonly capacity = 50_000,
  ) {}

  /** Records the holder here and in the shared store; resolves once the store has it, or has failed (warned there). */
  async remember(objectId: string, memberId: string): Promise<void> {
    this.keep(objectId, memberId);
    if (this.shared === undefined || !STORABLE.test(objectId)) return;
    this.sharedCalls.writes++;
    await this.shared.recordHolder(objectId, memberId).catch(() => {});
  }

  async find(objectId: string): Promise<string | undefined> {
    const known = this.local.get(objectId);
    if (known !== undefined) {
      this.keep(objectId, known);
      return known;
    }
    if (this.shared === undefined || !STORABLE.test(objectId)) return undefined;
    this.sharedCalls.reads++;
    const found = await this.shared.findHolder(objectId).catch(() => undefined);
    if (found !== undefined) this.keep(objectId, found);
    return found;
  }

  /** The object is gone (deleted): nothing to remember on this instance. */
  forget(objectId: string): void {
    this.local.delete(objectId);
  }

  private keep(objectId: string, memberId: string): void {
    this.local.delete(objectId);
    this.local.set(objectId, memberId);
    if (this.local.size > this.capacity) this.local.delete(this.local.keys().next().value!);
  }
}
