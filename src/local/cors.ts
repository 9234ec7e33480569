/** @module CORS for the local host: browsers' preflights answered, allowed origins told so. On Azure the Functions platform does this itself (infra: siteConfig.cors). */
import { GatewayRequest, GatewayResponse } from '../core/http';

/** Headers a browser client of the gateway sends, listed when a preflight names none. */
const ALLOWED_HEADERS = 'authorization, api-key, content-type, x-request-id, openai-beta, openai-organization, openai-project';
/** Response headers a browser script may read. */
const EXPOSED_HEADERS = 'x-request-id, retry-after, retry-after-ms, x-ratelimit-limit-requests, x-ratelimit-limit-tokens, x-ratelimit-remaining-requests, x-ratelimit-remaining-tokens, x-ratelimit-reset-requests, x-ratelimit-reset-tokens';
/** How long a browser may cache a preflight answer, in seconds. */
const MAX_AGE = '600';

/**
 * Which origins may call the gateway from a browser (CORS_ALLOWED_ORIGINS):
 * none by default, so no web page can spend a proxy key it has been given
 * unless the operator says so.
 */
export class CorsPolicy {
  private readonly anyOrigin: boolean;
  private readonly origins: ReadonlySet<string>;

  constructor(allowed: readonly string[]) {
    this.anyOrigin = allowed.includes('*');
    this.origins = new Set(allowed.map((o) => o.toLowerCase()));
  }

  /** A browser's preflight: an OPTIONS request naming the method it wants to send. */
  static isPreflight(req: GatewayRequest): boolean {
    return req.method === 'OPTIONS' && req.header('origin') !== undefined && req.header('access-control-request-method') !== undefined;
  }

  /**
   * The answer to a preflight: 204, and, for an allowed origin asking for a
   * method the route serves, the CORS headers that let the browser go on.
   * Without them the browser refuses by itself, and says why.
   */
  preflight(req: GatewayRequest, methods: readonly string[]): GatewayResponse {
    const headers: Record<string, string> = { vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers' };
    const origin = this.allowedOrigin(req);
    const method = req.header('access-control-request-method')!.toUpperCase();
    if (origin !== undefined && methods.includes(method)) {
      headers['access-control-allow-origin'] = origin;
      headers['access-control-allow-methods'] = methods.join(', ');
      // The SDKs add headers of their own (x-stainless-*): allow what the browser says it will send.
      headers['access-control-allow-headers'] = req.header('access-control-request-headers') || ALLOWED_HEADERS;
      headers['access-control-max-age'] = MAX_AGE;
    }
    return { status: 204, headers };
  }

  /** Adds the CORS headers an allowed origin's actual request needs to a response. */
  decorate(req: GatewayRequest, res: GatewayResponse): void {
    const origin = this.allowedOrigin(req);
    if (origin === undefined) return;
    res.headers['access-control-allow-origin'] = origin;
    res.headers['access-control-expose-headers'] = EXPOSED_HEADERS;
    res.headers.vary = res.headers.vary ? `${res.headers.vary}, Origin` : 'Origin';
  }

  private allowedOrigin(req: GatewayRequest): string | undefined {
    const origin = req.header('origin');
    if (origin === undefined) return undefined;
    return this.anyOrigin ? '*' : this.origins.has(origin.toLowerCase()) ? origin : undefined;
  }
}
