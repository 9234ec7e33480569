import { readJsonObject } from '../bodies/body';
import { badRequest, unavailable } from '../core/errors';
import { GatewayRequest, jsonResponse } from '../core/http';
import { Gateway, RealtimeSessions } from '../gateway/gateway';
import { Handler } from '../gateway/route';
import { RequestContext } from '../gateway/context';
import { requireRealtimeModel } from '../realtime/upstream';
import { admit } from './forward';

/** How long a session token from POST /v1/realtime/sessions lasts. */
const SESSION_TOKEN_SECONDS = 300;

const NO_WEB_PUBSUB = 'Realtime sessions need Azure Web PubSub, which this gateway has not been given (WEBPUBSUB_CONNECTION_STRING).';

function sessionsOf(gateway: Gateway, req: GatewayRequest): RealtimeSessions {
  if (gateway.realtime !== undefined) return gateway.realtime;
  if (!gateway.directRealtime) throw unavailable(NO_WEB_PUBSUB);
  // The direct socket is on the address the client just used, whatever its port.
  const host = req.header('host');
  throw unavailable(`${NO_WEB_PUBSUB} Locally, connect to ws://${host && /^[\w.:[\]-]+$/.test(host) ? host : 'localhost'}/v1/realtime instead.`);
}

/**
 * POST /v1/realtime/sessions: OpenAI's (beta) session object, whose
 * `client_secret.value` is the token a client connects with, plus `url`, the
 * Web PubSub address to connect to (the token already in it).
 */
export const realtimeSessions: Handler = async (req, gateway, ctx) => {
  const { value } = await readJsonObject(req, gateway.config.maxRequestBodyBytes);
  ctx.model = typeof value.model === 'string' ? value.model : undefined;
  const sessions = sessionsOf(gateway, req);
  await admitSession(gateway, ctx, value.model);
  // Everything but the model is the session's configuration (instructions, voice, tools, ...), applied once the client connects.
  // client_secret configures the token, not the session.
  const { model: _model, client_secret: _secret, ...settings } = value;
  const s = await sessions.start(value.model, SESSION_TOKEN_SECONDS, ctx.key, settings);
  return jsonResponse(200, {
    id: s.sessionId, object: 'realtime.session', model: s.model, expires_at: s.expiresAt,
    client_secret: { value: s.token, expires_at: s.expiresAt }, url: s.url,
  });
};

/**
 * POST /v1/realtime/client_secrets: GA's form of the same, `{ expires_after?,
 * session?: { type: "realtime", model } }` in, `{ value, expires_at, session }`
 * out, with `url` beside them. Tokens last whole minutes, so `expires_at` says
 * when this one really expires.
 */
export const realtimeClientSecrets: Handler = async (req, gateway, ctx) => {
  const { value } = await readJsonObject(req, gateway.config.maxRequestBodyBytes);
  const session = (value.session ?? {}) as Record<string, unknown>;
  if (typeof session !== 'object' || Array.isArray(session)) throw badRequest('`session` must be an object.', 'session', 'invalid_type');
  if (session.type !== undefined && session.type !== 'realtime') throw badRequest('Only `session.type` "realtime" is served.', 'session.type', 'invalid_value');
  const expiresAfter = value.expires_after as { seconds?: unknown } | undefined;
  const seconds = expiresAfter?.seconds ?? 600;
  if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 10 || seconds > 7200) {
    throw badRequest('`expires_after.seconds` must be a whole number from 10 to 7200.', 'expires_after.seconds', 'invalid_value');
  }
  ctx.model = typeof session.model === 'string' ? session.model : undefined;
  const sessions = sessionsOf(gateway, req);
  await admitSession(gateway, ctx, session.model);
  // The rest of the session object (instructions, audio, tools, ...) is applied once the client connects.
  const { type: _type, model: _model, ...settings } = session;
  const s = await sessions.start(session.model, seconds, ctx.key, settings);
  return jsonResponse(200, {
    value: s.token, expires_at: s.expiresAt,
    session: { type: 'realtime', object: 'realtime.session', id: s.sessionId, model: s.model, expires_at: s.expiresAt },
    url: s.url,
  });
};

/** A session is one request on the key's limits (its tokens count as its responses finish); a model it may not use is a 404. */
async function admitSession(gateway: Gateway, ctx: RequestContext, model: unknown): Promise<void> {
  await admit(gateway, ctx, requireRealtimeModel(gateway, model, ctx.key));
}

/** /realtime/events: where Web PubSub posts the sessions' events. */
export const realtimeEvents: Handler = (req, gateway) => sessionsOf(gateway, req).handleEvent(req);
