import { GatewayRequest, GatewayResponse } from '../core/http';
import { Gateway } from './gateway';
import { RequestContext } from './context';

export type HttpMethod = 'GET' | 'POST' | 'DELETE' | 'PUT' | 'PATCH' | 'HEAD' | 'OPTIONS';

export type Handler = (req: GatewayRequest, gateway: Gateway, ctx: RequestContext) => Promise<GatewayResponse>;

/** One entry of the route table that both hosts serve. */
export interface Route {
  /** The Azure Functions function name. */
  readonly name: string;
  readonly methods: readonly HttpMethod[];
  /** Functions route template, without a leading slash: "v1/models/{model}". */
  readonly route: string;
  /** Whether a proxy key is required. */
  readonly auth: boolean;
  readonly handler: Handler;
  /**
   * Whether a successful request gets its own log line. Off for Web PubSub's
   * event posts: a voice session sends hundreds of audio events a minute, and
   * its start and end are logged instead.
   */
  readonly logSuccess?: boolean;
}

/** Whether a route takes a method: only those its entry lists (HEAD too only where it says so), as the Functions host registers them. */
export function takesMethod(route: Route, method: string): boolean {
  return route.methods.includes(method as HttpMethod);
}

/**
 * Work on a schedule rather than a request: a timer-triggered function on
 * Azure (one run at a time across instances), an interval on the local host.
 */
export interface Timer {
  /** The Azure Functions function name. */
  readonly name: string;
  /** Six-field NCRONTAB, seconds first. */
  readonly schedule: string;
  /** The same period for the local host's interval. */
  readonly everyMs: number;
  run(gateway: Gateway): Promise<void>;
}
