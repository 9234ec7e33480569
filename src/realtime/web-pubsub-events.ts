/** @module Web PubSub's CloudEvents HTTP protocol: abuse protection, event authenticity, and each event's answer. */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readBody } from '../bodies/body';
import { badRequest, unauthorized } from '../core/errors';
import { GatewayRequest, GatewayResponse, jsonResponse } from '../core/http';
import { EntraTokenValidator } from './event-auth';

export interface ClientEvent {
  readonly connectionId: string;
  readonly userId: string;
}

export interface ConnectEvent extends ClientEvent {
  /** The subprotocols the client offered, as it offered them. */
  readonly subprotocols: readonly string[];
}

export interface MessageEvent extends ClientEvent {
  /** ce-id: the same for a retried delivery of one event. */
  readonly eventId: string;
  readonly data: string;
}

/** What the connect answer says: the chosen subprotocol, if any (the userId comes from the token). */
export interface ConnectAnswer {
  readonly subprotocol?: string;
}

/** The session logic behind the protocol. A thrown GatewayError refuses a connect with its status. */
export interface EventHandlers {
  connect(e: ConnectEvent): Promise<ConnectAnswer>;
  connected(e: ClientEvent): Promise<void>;
  disconnected(e: ClientEvent): Promise<void>;
  message(e: MessageEvent): Promise<void>;
}

/** Whether an event really comes from this gateway's Web PubSub service. */
export interface EventCheck {
  authentic(req: GatewayRequest, connectionId: string): Promise<boolean>;
}

/** Largest event body read: Web PubSub's frame limit is 1 MB. */
const MAX_EVENT_BYTES = 1024 * 1024;

/**
 * Speaks Web PubSub's side of the CloudEvents protocol
 * (learn.microsoft.com/azure/azure-web-pubsub/reference-cloud-events): the
 * OPTIONS abuse-protection handshake, each event's authenticity, and the
 * answers the service expects. A user event is always answered 2xx with an
 * empty body: anything else makes the service drop the client.
 */
export class WebPubSubEvents {
  constructor(
    private readonly hub: string,
    private readonly origin: string,
    private readonly check: EventCheck,
    private readonly handlers: EventHandlers,
  ) {}

  async handle(req: GatewayRequest): Promise<GatewayResponse> {
    if (req.method === 'OPTIONS') return this.abuseProtection(req);
    const connectionId = req.header('ce-connectionid') ?? '';
    if (!connectionId || !(await this.check.authentic(req, connectionId))) {
      throw unauthorized('The event is not signed by this gateway\'s Web PubSub service.');
    }
    // The service sends the hub's name lower-cased, whatever case it was given (Azure/azure-sdk-for-js#22134;
    // @azure/web-pubsub-express compares hub names regardless of case for it).
    if (req.header('ce-hub')?.toLowerCase() !== this.hub.toLowerCase()) throw badRequest('The event is for another hub.', null, 'wrong_hub');
    const userId = req.header('ce-userid') ?? '';
    const body = await readBody(req.body, MAX_EVENT_BYTES);
    switch (req.header('ce-type')) {
      case 'azure.webpubsub.sys.connect': {
        let subprotocols: string[] = [];
        try {
          const parsed = JSON.parse(body.toString('utf8')) as { subprotocols?: unknown };
          if (Array.isArray(parsed.subprotocols)) subprotocols = parsed.subprotocols.filter((p): p is string => typeof p === 'string');
        } catch {
          throw badRequest('The connect event\'s body is not JSON.', null, 'invalid_json');
        }
        const answer = await this.handlers.connect({ connectionId, userId, subprotocols });
        // Without a chosen subprotocol the property must be absent: a blank one is invalid.
        return jsonResponse(200, answer.subprotocol ? { subprotocol: answer.subprotocol } : {});
      }
      case 'azure.webpubsub.sys.connected':
        await this.handlers.connected({ connectionId, userId });
        return noContent();
      case 'azure.webpubsub.sys.disconnected':
        await this.handlers.disconnected({ connectionId, userId });
        return noContent();
      case 'azure.webpubsub.user.message':
        await this.handlers.message({ connectionId, userId, eventId: req.header('ce-id') ?? '', data: body.toString('utf8') });
        return noContent();
      default:
        return noContent();
    }
  }

  private abuseProtection(req: GatewayRequest): GatewayResponse {
    const origins = (req.header('webhook-request-origin') ?? '').split(',').map((o) => o.trim());
    if (!origins.includes(this.origin)) return { status: 400, headers: {} };
    return { status: 200, headers: { 'webhook-allowed-origin': this.origin } };
  }
}

/** A fresh answer each time: the pipeline adds its own headers to it. */
const noContent = (): GatewayResponse => ({ status: 204, headers: {} });

/**
 * By access key: ce-signature carries `sha256=<hex>` for each of the
 * service's keys, comma-separated; the event is authentic if any matches a
 * key the gateway holds (hex compared case-insensitively, as the .NET SDK's
 * validator does). A mismatch may mean the key just rotated: the key source
 * is asked once, rate-limited, to look again.
 */
export class SignatureCheck implements EventCheck {
  constructor(private readonly keys: () => readonly string[], private readonly reload?: () => Promise<boolean>) {}

  async authentic(req: GatewayRequest, connectionId: string): Promise<boolean> {
    const header = req.header('ce-signature');
    if (!header) return false;
    if (this.matches(header, connectionId)) return true;
    return (await this.reload?.()) === true && this.matches(header, connectionId);
  }

  private matches(header: string, connectionId: string): boolean {
    const given = header.split(',').map((s) => Buffer.from(s.trim().toLowerCase()));
    let ok = false;
    for (const key of this.keys()) {
      const expected = Buffer.from(`sha256=${createHmac('sha256', key).update(connectionId).digest('hex')}`);
      for (const candidate of given) ok = (candidate.length === expected.length && timingSafeEqual(candidate, expected)) || ok;
    }
    return ok;
  }
}

/** By identity: each event carries an Entra ID token from the Web PubSub service's own identity. */
export class IdentityCheck implements EventCheck {
  constructor(private readonly validator: EntraTokenValidator) {}

  authentic(req: GatewayRequest): Promise<boolean> {
    return this.validator.valid(req.header('authorization'));
  }
}
