/** @module Who a proxy key belongs to: its name, the models it may use, its limits, whether it is an admin. */

/** A key's limits; each unset one is unlimited. Tokens count prompt and completion together. */
export interface KeyLimits {
  readonly rpm?: number;
  readonly tpm?: number;
  readonly tokensPerDay?: number;
  readonly tokensPerMonth?: number;
}

/**
 * The identity behind a proxy key. Everything here may be logged or shown
 * except nothing: the key itself is never part of it, only its name.
 */
export class ProxyKey {
  /** True when any limit is set: only then are budgets kept and x-ratelimit headers sent. */
  readonly limited: boolean;

  constructor(
    /** Undefined for the unnamed keys of PROXY_API_KEY. */
    readonly name: string | undefined,
    /** Undefined: every model the gateway serves. */
    readonly models: ReadonlySet<string> | undefined,
    readonly limits: KeyLimits,
    /** May read GET /v1/usage. */
    readonly admin: boolean,
  ) {
    this.limited = limits.rpm !== undefined || limits.tpm !== undefined || limits.tokensPerDay !== undefined || limits.tokensPerMonth !== undefined;
  }

  mayUse(model: string): boolean {
    return this.models === undefined || this.models.has(model);
  }
}

/** What every PROXY_API_KEY key is: no name, every model, no limits, not an admin. */
export const UNNAMED_KEY = new ProxyKey(undefined, undefined, {}, false);
