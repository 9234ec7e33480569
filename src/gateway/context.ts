import { performance } from 'node:perf_hooks';
import { TryRecord } from '../balancer/balancer';
import { GatewayError } from '../core/errors';
import { GatewayResponse } from '../core/http';
import { Usage } from '../bodies/usage';
import { ProxyKey } from '../keys/proxy-key';
import { Admission } from '../limits/limiter';

/** What one request did, filled in as it goes and logged as one line when it ends. */
export class RequestContext {
  readonly startedAt = performance.now();
  model: string | undefined;
  /** Whose proxy key the request carried, once authenticated. */
  key: ProxyKey | undefined;
  readonly tries: TryRecord[] = [];
  usage: Usage | undefined;
  /** The key's limits let it through on this estimate; settled with `usage` when the request ends. */
  admission: Admission | undefined;
  /** Events of a streamed answer that reached the client: what a stream cut short before its usage is counted by. */
  streamedEvents: number | undefined;
  /** Milliseconds from arrival to response headers. */
  headersMs: number | undefined;
  errorCode: string | undefined;

  constructor(
    readonly requestId: string,
    /** The route's name; a path that stands for another route (an Azure-style one) names the route it reached. */
    public route: string,
  ) {}

  /**
   * The client's answer for an error, its code kept for the log line: the
   * error's own code, or its type when Azure sent none.
   */
  fail(error: GatewayError): GatewayResponse {
    this.errorCode = error.code ?? error.type;
    return error.toResponse();
  }

  elapsedMs(): number {
    return performance.now() - this.startedAt;
  }
}
